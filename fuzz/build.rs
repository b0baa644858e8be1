//! Without the `libfuzzer-sys` feature, links the libFuzzer the `lab` script compiled: the
//! static library `libfuzzer.a` in the folder `RTCLAB_LIBFUZZER_DIR` names.

fn main() {
    println!("cargo:rerun-if-env-changed=RTCLAB_LIBFUZZER_DIR");
    // Cargo does not track RUSTC_WRAPPER: rebuild the targets when the instrumented list changes.
    println!("cargo:rerun-if-changed=instrument.sh");
    if std::env::var_os("CARGO_FEATURE_LIBFUZZER_SYS").is_some() {
        return; // libfuzzer-sys builds and links libFuzzer itself
    }
    let Some(dir) = std::env::var_os("RTCLAB_LIBFUZZER_DIR") else {
        panic!(
            "without the libfuzzer-sys feature, set RTCLAB_LIBFUZZER_DIR to a folder holding \
             libfuzzer.a (the `lab` script's fuzz step builds one); or build with cargo fuzz"
        );
    };
    println!("cargo:rustc-link-search=native={}", dir.to_string_lossy());
    println!("cargo:rustc-link-lib=static=fuzzer");
    println!("cargo:rustc-link-lib=stdc++");
}
