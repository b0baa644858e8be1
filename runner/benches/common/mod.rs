//! What the benches that drive the release `rtclab` binary share.

use std::path::{Path, PathBuf};

/// The release binary: `RTCLAB_BIN`, else `target/release/rtclab` (`./lab bench` builds it).
pub fn rtclab_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("RTCLAB_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("release/rtclab");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release -p rtclab` (or set RTCLAB_BIN)",
            bin.display()
        ))
    }
}
