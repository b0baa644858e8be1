//! Where the repository's folders are when rtclab is run from elsewhere: a binary built in the
//! checkout (`target/*/rtclab`) finds `web/` and `scenarios/` beside it, so `rtclab demo` and
//! `rtclab scenarios` work from any directory.

use std::path::{Path, PathBuf};

/// `name` in the current directory if it holds `marker`; else the first `name` holding `marker`
/// in a folder above the running binary; else `name` (relative, for the caller's error).
pub fn repo_folder(name: &str, marker: &str) -> PathBuf {
    let cwd = PathBuf::from(name);
    if cwd.join(marker).is_file() {
        return cwd;
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            exe.ancestors()
                .skip(1)
                .map(|d| d.join(name))
                .find(|d| d.join(marker).is_file())
        })
        .unwrap_or(cwd)
}

/// The shipped scenarios: `scenarios/` here or beside the binary's checkout.
pub fn default_scenarios_dir() -> PathBuf {
    repo_folder("scenarios", "README.md")
}

/// `path` made absolute against the current directory, for error messages that must say which
/// path was tried.
pub fn shown(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}
