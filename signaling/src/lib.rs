//! rtclab's signaling server (placeholder until the server lands).
pub mod protocol;
