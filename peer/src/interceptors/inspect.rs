//! The shape of rtclab's own interceptors: they look at packets passing by and may rewrite or
//! drop them, but never hold or generate any. [`Inspector`] turns such an [`Inspect`] into a
//! webrtc-rs interceptor (the queues every pass-through needs; stream bindings are forwarded).

use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::time::Instant;

/// A packet inspector: return the packet to pass it on (possibly changed), `None` to drop it.
pub trait Inspect: Send + Sync + 'static {
    /// A packet on its way from the network to the application.
    fn on_read(&mut self, msg: TaggedPacket) -> Option<TaggedPacket> {
        Some(msg)
    }
    /// A packet on its way from the application to the network.
    fn on_write(&mut self, msg: TaggedPacket) -> Option<TaggedPacket> {
        Some(msg)
    }
    /// A stream this peer sends was bound (its SSRCs, payload types, extensions).
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    /// A stream this peer sends was unbound.
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    /// A stream this peer receives was bound.
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    /// A stream this peer receives was unbound.
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// An [`Inspect`] as an interceptor for `Registry::with`.
pub struct Inspector<T> {
    inner: T,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl<T: Inspect> Inspector<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Inspector {
            inner,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }
}

impl<T: Inspect> Protocol<TaggedPacket, TaggedPacket, ()> for Inspector<T> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.read.extend(self.inner.on_read(msg));
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.extend(self.inner.on_write(msg));
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl<T: Inspect> Interceptor for Inspector<T> {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.inner.bind_local_stream(info);
    }
    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.inner.unbind_local_stream(info);
    }
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.inner.bind_remote_stream(info);
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.inner.unbind_remote_stream(info);
    }
}
