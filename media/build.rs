//! Generates Rust bindings for the few libvpx encoder items `src/encoder/vp8.rs` uses.
//!
//! VP8 is encoded through libvpx's own API rather than through libavcodec because FFmpeg 5.1's
//! libvpx wrapper ignores `bit_rate` changes after open (docs/notes/ffmpeg.md#vp8-rate-control), and a live
//! sender must follow the congestion controller's target.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/encoder/vpx_wrapper.h");

    // Tested with Debian 12's libvpx 1.12; every item used exists since 1.8 (untested there).
    // The bindings follow the installed headers, so struct layouts always match the library.
    let vpx = match pkg_config::Config::new()
        .atleast_version("1.8")
        .probe("vpx")
    {
        Ok(lib) => lib,
        Err(e) => panic!(
            "libvpx (>= 1.8) not found through pkg-config: {e}\n\
             install it with `apt-get install libvpx-dev pkg-config` (Debian/Ubuntu)"
        ),
    };

    let mut builder = bindgen::Builder::default()
        .header("src/encoder/vpx_wrapper.h")
        .allowlist_function("vpx_codec_enc_init_ver")
        .allowlist_function("vpx_codec_enc_config_default")
        .allowlist_function("vpx_codec_enc_config_set")
        .allowlist_function("vpx_codec_vp8_cx")
        .allowlist_function("vpx_codec_encode")
        .allowlist_function("vpx_codec_get_cx_data")
        .allowlist_function("vpx_codec_control_")
        .allowlist_function("vpx_codec_destroy")
        .allowlist_function("vpx_codec_error")
        .allowlist_function("vpx_codec_error_detail")
        .allowlist_function("vpx_img_wrap")
        .allowlist_var("VPX_ENCODER_ABI_VERSION")
        .allowlist_var("VPX_EFLAG_FORCE_KF")
        .allowlist_var("VPX_DL_REALTIME")
        .allowlist_var("VPX_FRAME_IS_KEY")
        .allowlist_var("VPX_ERROR_RESILIENT_DEFAULT")
        .allowlist_type("vp8e_enc_control_id")
        .allowlist_type("vpx_codec_cx_pkt_kind")
        .allowlist_type("vpx_img_fmt")
        .allowlist_type("vpx_rc_mode")
        .allowlist_type("vpx_kf_mode")
        .allowlist_type("vpx_enc_pass")
        // Rust enums for C enums would be UB on unknown values; plain constants are safe.
        .default_enum_style(bindgen::EnumVariation::Consts)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for path in &vpx.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!(
            "bindgen failed on <vpx/vpx_encoder.h>: {e}\n\
             bindgen needs libclang: `apt-get install libclang-dev`"
        )
    });
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("vpx.rs");
    bindings
        .write_to_file(&out)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
