//! The session clock: the webrtc-rs `Runtime`'s `now`, so a run can move to virtual time.

use rtclab_events::Clock;
use std::sync::Arc;
use std::time::Instant;
use webrtc::runtime::Runtime;

/// Reads time from a webrtc-rs runtime (the tokio runtime in real runs, the mock clock in tests).
#[derive(Debug, Clone)]
pub struct RuntimeClock(pub Arc<dyn Runtime>);

impl Clock for RuntimeClock {
    fn now(&self) -> Instant {
        self.0.now()
    }
}
