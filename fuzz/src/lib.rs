//! What the fuzz targets in `fuzz_targets/` share: the [`fuzz_target!`] macro.
//!
//! With the default feature `libfuzzer-sys` it is libfuzzer-sys's macro, as `cargo fuzz`
//! expects. Without it (the short runs of `./lab test`), it defines the one function libFuzzer
//! calls, `LLVMFuzzerTestOneInput`, and `build.rs` links a libFuzzer the `lab` script compiled.

#[cfg(feature = "libfuzzer-sys")]
#[doc(hidden)]
pub use libfuzzer_sys;

/// Declares the fuzz target: `fuzz_target!(|data: &[u8]| { ... });`.
#[macro_export]
macro_rules! fuzz_target {
    (|$data:ident: &[u8]| $body:block) => {
        #[cfg(feature = "libfuzzer-sys")]
        $crate::libfuzzer_sys::fuzz_target!(|$data: &[u8]| $body);

        #[cfg(not(feature = "libfuzzer-sys"))]
        fn rtclab_fuzz_one($data: &[u8]) $body

        /// Called by libFuzzer with each input. A panic cannot unwind out of an `extern "C"`
        /// function, so it aborts the process, which libFuzzer reports as a crash and saves.
        #[cfg(not(feature = "libfuzzer-sys"))]
        #[unsafe(no_mangle)]
        pub extern "C" fn LLVMFuzzerTestOneInput(data: *const u8, size: usize) -> i32 {
            let input: &[u8] = if size == 0 {
                &[]
            } else {
                // SAFETY: libFuzzer passes `size` readable bytes at `data` for this call.
                unsafe { ::std::slice::from_raw_parts(data, size) }
            };
            rtclab_fuzz_one(input);
            0
        }
    };
}
