//! Headless Chromium as a peer of a run: `rtclab run --receiver browser` opens the demo page in
//! it as the receiver; `rtclab bench cc` opens it in send mode as the sender.
//!
//! The page is the same one `rtclab demo` serves; it joins the room, answers the Rust sender's
//! offer, plays the video and sends its `getStats()` once a second (see [`crate::bridge`]).

use crate::error::RunError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Environment variable naming the Chromium binary to use instead of searching `PATH`.
pub const CHROMIUM_ENV: &str = "RTCLAB_CHROMIUM";

/// Flags for a headless Chromium on a machine with no network but loopback. The background
/// networking switches stop it from calling Google's services (refused here, many at a time);
/// loopback candidates are needed because both peers are on 127.0.0.1.
const FLAGS: &[&str] = &[
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
    "--enable-logging=stderr",
    // A sending page (`rtclab bench cc`) uses a fake camera, without a prompt; it plays the
    // Rust sender's source (see `FakeCamera`).
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
];

/// Finds Chromium: `$RTCLAB_CHROMIUM`, else `chromium`, `chromium-browser`, `google-chrome` on
/// `PATH`.
pub fn find_chromium() -> Result<PathBuf, RunError> {
    if let Some(p) = std::env::var_os(CHROMIUM_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(RunError::Failed(format!(
                "{CHROMIUM_ENV}={} is not a file; point it at a Chromium binary",
                p.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(RunError::Failed(
        "Chromium not found: a browser receiver needs it. Install it (`./lab deps` does, or \
         `apt-get install chromium`), or set RTCLAB_CHROMIUM to its binary, or use receiver = \"rust\""
            .into(),
    ))
}

/// Seconds of the source the fake camera loops. 4 s of 720p Y4M is 166 MB in the profile folder
/// (removed with the browser); a longer loop would only cost disk and start-up time.
const CAMERA_CLIP_S: u32 = 4;

/// What a sending page's fake camera shows: the Rust sender's source at its size and rate, so
/// both senders in `rtclab bench cc` encode the same pictures.
#[derive(Debug, Clone)]
pub struct FakeCamera {
    /// The pictures.
    pub source: rtclab_media::SourceSpec,
    /// Their size.
    pub size: rtclab_media::Resolution,
    /// Frames per second.
    pub fps: u32,
}

impl FakeCamera {
    /// Writes the clip the camera plays (a few seconds of Y4M, in a folder removed when the
    /// returned clip is dropped), off the async runtime: 720p takes about a second.
    pub async fn write_clip(self) -> Result<CameraClip, RunError> {
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().map_err(|source| RunError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
            let path = dir.path().join("camera.y4m");
            let frames = u64::from(self.fps * CAMERA_CLIP_S);
            rtclab_media::write_y4m(&path, &self.source, self.size, self.fps, frames)?;
            Ok(CameraClip { path, _dir: dir })
        })
        .await
        .map_err(|e| RunError::Failed(format!("writing the fake camera's clip: {e}")))?
    }
}

/// A Y4M clip on disk for Chromium's fake camera; removed when dropped.
pub struct CameraClip {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

/// A running headless Chromium; killed when dropped.
pub struct Chromium {
    child: Child,
    /// Where its stderr goes.
    pub log: PathBuf,
    // Held for its Drop: the profile folder is removed with the browser.
    _profile: tempfile::TempDir,
    // Held for its Drop: the fake camera's clip, read by the browser while it runs.
    _camera: Option<CameraClip>,
}

impl Chromium {
    /// Starts Chromium on `url`, its stderr in `log`; `camera`: the clip its fake camera plays
    /// (without it, Chromium's own generated picture), kept until the browser is dropped.
    pub fn launch(url: &str, log: &Path, camera: Option<CameraClip>) -> Result<Chromium, RunError> {
        let bin = find_chromium()?;
        let profile = tempfile::tempdir().map_err(|source| RunError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let log_file = std::fs::File::create(log).map_err(|source| RunError::Io {
            path: log.to_owned(),
            source,
        })?;
        let mut cmd = Command::new(&bin);
        if let Some(clip) = &camera {
            cmd.arg(format!(
                "--use-file-for-fake-video-capture={}",
                clip.path.display()
            ));
        }
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true);
        // Chromium refuses to start as root without this; as a normal user its sandbox stays on.
        if is_root() {
            cmd.arg("--no-sandbox");
        }
        // `kill_on_drop` covers every exit that runs destructors; this covers `kill -9` too.
        rtclab_turn::child::die_with_parent(cmd.as_std_mut());
        let child = cmd
            .spawn()
            .map_err(|e| RunError::Failed(format!("cannot start {}: {e}", bin.display())))?;
        Ok(Chromium {
            child,
            log: log.to_owned(),
            _profile: profile,
            _camera: camera,
        })
    }

    /// Resolves when the browser exits on its own (a crash, a missing library).
    pub async fn exited(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => format!("Chromium exited ({status}); see {}", self.log.display()),
            Err(e) => format!("Chromium: {e}"),
        }
    }

    /// Stops the browser and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
