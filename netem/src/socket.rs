//! `ImpairedSocket`: a wrapped UDP socket whose sends go through the egress model and whose
//! receives come out of the ingress model.

use crate::model::Packet;
use crate::shared::{EgressMeta, Inbox, IngressMeta, Shared, lock};
use bytes::Bytes;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use webrtc::runtime::{AsyncUdpSocket, RecvMeta, Transmit};

/// How many datagrams one `poll_recv` takes from the kernel before handing back what is due;
/// bounds the time spent in one poll under a flood.
const MAX_READS_PER_POLL: usize = 64;

/// Receive buffer for one datagram from the inner socket: the largest UDP payload (65,507
/// bytes over IPv4, RFC 768 length field minus headers) rounded up; with GRO the kernel may
/// coalesce several datagrams into it, split again by `stride`.
const SCRATCH_BYTES: usize = 64 * 1024;

struct Timer {
    at: Instant,
    sleep: Pin<Box<dyn Future<Output = ()> + Send>>,
}

struct RecvState {
    scratch: Vec<u8>,
    timer: Option<Timer>,
}

/// A UDP socket of the peer, impaired by the runtime that wrapped it.
pub struct ImpairedSocket {
    id: u64,
    inner: Arc<dyn AsyncUdpSocket>,
    shared: Arc<Shared>,
    recv: Mutex<RecvState>,
}

impl fmt::Debug for ImpairedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImpairedSocket")
            .field("id", &self.id)
            .field("inner", &self.inner)
            .finish()
    }
}

impl ImpairedSocket {
    pub(crate) fn new(id: u64, inner: Arc<dyn AsyncUdpSocket>, shared: Arc<Shared>) -> Self {
        lock(&shared.ingress).sockets.insert(id, Inbox::default());
        ImpairedSocket {
            id,
            inner,
            shared,
            recv: Mutex::new(RecvState {
                scratch: vec![0; SCRATCH_BYTES],
                timer: None,
            }),
        }
    }

    /// Feeds one message read from the inner socket (possibly GRO-coalesced) into the model.
    fn ingest(&self, now: Instant, data: &[u8], meta: &RecvMeta) {
        let stride = meta.stride.max(1);
        let m = IngressMeta {
            socket: self.id,
            addr: meta.addr,
            ecn: meta.ecn,
            dst_ip: meta.dst_ip,
        };
        let mut ingress = lock(&self.shared.ingress);
        for chunk in data.chunks(stride) {
            ingress.engine.handle_packet(
                now,
                Packet {
                    payload: Bytes::copy_from_slice(chunk),
                    meta: m,
                },
            );
        }
    }
}

impl Drop for ImpairedSocket {
    fn drop(&mut self) {
        lock(&self.shared.ingress).sockets.remove(&self.id);
    }
}

impl AsyncUdpSocket for ImpairedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, _cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let now = self.shared.inner.now();
        let contents = transmit.contents;
        // We report max_gso_segments() = 1, but split a GSO batch anyway rather than impair
        // (and later send) it as one oversized datagram.
        let segment = transmit
            .segment_size
            .filter(|&s| s > 0 && s < contents.len())
            .unwrap_or(contents.len());
        let meta = EgressMeta {
            socket: self.inner.clone(),
            destination: transmit.destination,
            ecn: transmit.ecn,
            src_ip: transmit.src_ip,
        };
        {
            let mut egress = lock(&self.shared.egress);
            if contents.is_empty() {
                // A zero-length datagram is still a datagram.
                let packet = Packet {
                    payload: Bytes::new(),
                    meta,
                };
                egress.handle_packet(now, packet);
            } else {
                for chunk in contents.chunks(segment) {
                    let packet = Packet {
                        payload: Bytes::copy_from_slice(chunk),
                        meta: meta.clone(),
                    };
                    egress.handle_packet(now, packet);
                }
            }
        }
        // Accepted into the model at once; the egress task sends it when due.
        self.shared.egress_signal.notify();
        Poll::Ready(Ok(contents.len()))
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let max = bufs.len().min(meta.len());
        if max == 0 {
            return Poll::Ready(Ok(0));
        }
        let mut state = lock(&self.recv);
        let state = &mut *state;

        // 1. Everything the kernel has for us goes into the model now, stamped with its arrival.
        let mut kernel_drained = false;
        for _ in 0..MAX_READS_PER_POLL {
            let mut m = [RecvMeta::default()];
            let res = {
                let mut b = [IoSliceMut::new(&mut state.scratch)];
                self.inner.poll_recv(cx, &mut b, &mut m)
            };
            match res {
                Poll::Pending => {
                    kernel_drained = true;
                    break;
                }
                // The driver classifies errors and polls again; what is due waits until then.
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => {}
                Poll::Ready(Ok(_)) => {
                    let len = m[0].len.min(state.scratch.len());
                    self.ingest(self.shared.inner.now(), &state.scratch[..len], &m[0]);
                }
            }
        }

        // 2. Release what is due, to whichever wrapped socket it belongs.
        let now = self.shared.inner.now();
        let mut wake = Vec::new();
        let (n, deadline) = {
            let mut ingress = lock(&self.shared.ingress);
            let ingress = &mut *ingress;
            while let Some(d) = ingress.engine.poll_output(now) {
                let owner = d.packet.meta.socket;
                if let Some(inbox) = ingress.sockets.get_mut(&owner) {
                    inbox.ready.push_back(d.packet);
                    if owner != self.id {
                        wake.extend(inbox.waker.take());
                    }
                }
                // A packet for a socket that has been closed is lost, as in the kernel.
            }
            let mut n = 0;
            if let Some(inbox) = ingress.sockets.get_mut(&self.id) {
                while n < max {
                    let Some(p) = inbox.ready.pop_front() else {
                        break;
                    };
                    let len = p.payload.len().min(bufs[n].len());
                    bufs[n][..len].copy_from_slice(&p.payload[..len]);
                    let mut rm = RecvMeta::default();
                    rm.addr = p.meta.addr;
                    rm.len = len;
                    rm.stride = len.max(1);
                    rm.ecn = p.meta.ecn;
                    rm.dst_ip = p.meta.dst_ip;
                    meta[n] = rm;
                    n += 1;
                }
                if n == 0 {
                    inbox.waker = Some(cx.waker().clone());
                }
            }
            (n, ingress.engine.poll_timeout())
        };
        for w in wake {
            w.wake();
        }
        if !kernel_drained {
            // The kernel may hold more, and its waker was not armed: come back soon.
            cx.waker().wake_by_ref();
        }
        if n > 0 {
            return Poll::Ready(Ok(n));
        }

        // 3. Nothing due yet: wake up when the model next has something.
        match deadline {
            Some(at) => {
                if state.timer.as_ref().map(|t| t.at) != Some(at) {
                    state.timer = Some(Timer {
                        at,
                        sleep: self.shared.inner.sleep(at.saturating_duration_since(now)),
                    });
                }
                if let Some(timer) = &mut state.timer
                    && timer.sleep.as_mut().poll(cx).is_ready()
                {
                    state.timer = None;
                    cx.waker().wake_by_ref();
                }
            }
            None => state.timer = None,
        }
        Poll::Pending
    }

    fn max_gso_segments(&self) -> usize {
        // Every datagram is impaired on its own, so batches must be split.
        1
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}
