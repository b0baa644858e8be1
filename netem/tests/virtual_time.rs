//! The socket adapter on webrtc-rs' `MockRuntime`: delivery follows the virtual clock, not the
//! wall clock, so a run can move to virtual time unchanged.

use rtclab_netem::{ImpairedRuntime, Impairment, ImpairmentConfig, Schedule, Side};
use std::io::IoSliceMut;
use std::net::UdpSocket;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use webrtc::runtime::{AsyncUdpSocket, MockRuntime, RecvMeta, Runtime};

fn bind(rt: &dyn Runtime) -> Arc<dyn AsyncUdpSocket> {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    rt.wrap_udp_socket(s).expect("wrap")
}

/// One non-blocking receive attempt.
fn try_recv(s: &dyn AsyncUdpSocket) -> Option<usize> {
    let mut buf = [0u8; 2048];
    let mut meta = [RecvMeta::default()];
    let mut cx = Context::from_waker(Waker::noop());
    let mut bufs = [IoSliceMut::new(&mut buf)];
    match s.poll_recv(&mut cx, &mut bufs, &mut meta) {
        Poll::Ready(Ok(_)) => Some(meta[0].len),
        _ => None,
    }
}

/// Waits (wall clock, for the mock's task threads to run) until `s` has a datagram.
fn settle_and_recv(s: &dyn AsyncUdpSocket) -> Option<usize> {
    for _ in 0..100 {
        if let Some(n) = try_recv(s) {
            return Some(n);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn egress_delay_follows_the_virtual_clock() {
    let mock = Arc::new(MockRuntime::new());
    let clock = mock.clock();
    let inner: Arc<dyn Runtime> = mock.clone();
    let imp = Impairment {
        downlink: Schedule::constant(ImpairmentConfig {
            delay_ms: Some(200.0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let rt = ImpairedRuntime::new(inner.clone(), imp, 1, None).expect("valid");
    let a = bind(&*rt);
    let b = bind(&*inner);
    let to = b.local_addr().expect("addr");
    futures::executor::block_on(a.send_to(&[1u8; 100], to)).expect("send");

    // However long the wall clock runs, nothing arrives before 200 virtual ms.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(try_recv(&*b), None);
    clock.advance(Duration::from_millis(199));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(try_recv(&*b), None);
    clock.advance(Duration::from_millis(1));
    assert_eq!(settle_and_recv(&*b), Some(100));
    assert_eq!(rt.stats().downlink.output.packets, 1);
}

#[test]
fn ingress_delay_follows_the_virtual_clock() {
    let mock = Arc::new(MockRuntime::new());
    let clock = mock.clock();
    let inner: Arc<dyn Runtime> = mock.clone();
    let imp = Impairment {
        downlink: Schedule::constant(ImpairmentConfig {
            delay_ms: Some(80.0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let rt = ImpairedRuntime::builder(inner.clone(), imp)
        .side(Side::Receiver)
        .build()
        .expect("valid");
    let a = bind(&*inner);
    let b = bind(&*rt);
    let to = b.local_addr().expect("addr");
    futures::executor::block_on(a.send_to(&[2u8; 60], to)).expect("send");
    // The mock network delivers synchronously; the model holds the datagram for 80 ms.
    assert_eq!(try_recv(&*b), None);
    clock.advance(Duration::from_millis(79));
    assert_eq!(try_recv(&*b), None);
    clock.advance(Duration::from_millis(1));
    assert_eq!(try_recv(&*b), Some(60));
}
