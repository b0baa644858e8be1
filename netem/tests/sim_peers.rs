//! Two real webrtc-rs peer connections on one [`SimRuntime`] (virtual time), the offerer's
//! sockets wrapped by an `ImpairedRuntime` with loss and delay both ways: ICE, DTLS and SCTP
//! connect, a reliable data channel delivers everything, and a minute of session passes in a
//! fraction of a second of wall time (issue 15 #1). Two runs with one seed lose the same packets.

use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtclab_netem::{ImpairedRuntime, Impairment, ImpairmentConfig, Schedule, SimRuntime};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};
use webrtc::runtime::{Runtime, Sender, channel, timeout};

struct Handler {
    gathered: Sender<()>,
    connected: Sender<()>,
    received: Option<(Arc<AtomicUsize>, Arc<dyn Runtime>)>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            let _ = self.connected.try_send(());
        }
    }
    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        if let Some((received, rt)) = &self.received {
            let received = received.clone();
            rt.spawn(Box::pin(async move {
                while let Some(event) = dc.poll().await {
                    match event {
                        DataChannelEvent::OnMessage(_) => {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        DataChannelEvent::OnClose | DataChannelEvent::OnError => break,
                        _ => {}
                    }
                }
            }));
        }
    }
}

async fn peer(rt: Arc<dyn Runtime>, handler: Handler) -> Arc<dyn PeerConnection> {
    let setting_engine = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_setting_engine(setting_engine)
        .with_handler(Arc::new(handler))
        .with_runtime(rt)
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .expect("peer connection");
    Arc::new(pc)
}

/// What one run saw, compared between runs.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    received: usize,
    connect: Duration,
    virtual_s: f64,
    /// Per direction: packets in, out, dropped at random.
    down: (u64, u64, u64),
    up: (u64, u64, u64),
}

fn session(seed: u64) -> (Outcome, Duration) {
    let sim = Arc::new(SimRuntime::new());
    let inner: Arc<dyn Runtime> = sim.clone();
    let lossy = |delay| {
        Schedule::constant(ImpairmentConfig {
            loss_pct: Some(5.0),
            delay_ms: Some(delay),
            ..Default::default()
        })
    };
    let imp = Impairment {
        downlink: lossy(40.0),
        uplink: lossy(40.0),
    };
    let impaired = ImpairedRuntime::new(inner.clone(), imp, seed, None).expect("valid");
    let result = Arc::new(Mutex::new(None));
    let out = result.clone();
    let wall = Instant::now();
    let stats = sim
        .run(
            async move {
                let (g1, mut g1_rx) = channel::<()>(1);
                let (c1, mut c1_rx) = channel::<()>(1);
                let (g2, mut g2_rx) = channel::<()>(1);
                let (c2, mut c2_rx) = channel::<()>(1);
                let received = Arc::new(AtomicUsize::new(0));
                let sender = peer(
                    impaired.clone(),
                    Handler {
                        gathered: g1,
                        connected: c1,
                        received: None,
                    },
                )
                .await;
                let dc = sender
                    .create_data_channel("sim", Some(RTCDataChannelInit::default()))
                    .await
                    .expect("data channel");
                let (open_tx, mut open_rx) = channel::<()>(1);
                {
                    let dc = dc.clone();
                    inner.spawn(Box::pin(async move {
                        while let Some(event) = dc.poll().await {
                            match event {
                                DataChannelEvent::OnOpen => {
                                    let _ = open_tx.try_send(());
                                }
                                DataChannelEvent::OnClose => break,
                                _ => {}
                            }
                        }
                    }));
                }
                let offer = sender.create_offer(None).await.expect("offer");
                sender.set_local_description(offer).await.expect("local");
                let _ = timeout(&*inner, Duration::from_secs(5), g1_rx.recv()).await;
                let offer = sender.local_description().await.expect("offer sdp");
                let receiver = peer(
                    inner.clone(),
                    Handler {
                        gathered: g2,
                        connected: c2,
                        received: Some((received.clone(), inner.clone())),
                    },
                )
                .await;
                receiver
                    .set_remote_description(offer)
                    .await
                    .expect("remote");
                let answer = receiver.create_answer(None).await.expect("answer");
                receiver.set_local_description(answer).await.expect("local");
                let _ = timeout(&*inner, Duration::from_secs(5), g2_rx.recv()).await;
                let answer = receiver.local_description().await.expect("answer sdp");
                sender.set_remote_description(answer).await.expect("remote");

                let started = inner.now();
                for rx in [&mut c1_rx, &mut c2_rx, &mut open_rx] {
                    timeout(&*inner, Duration::from_secs(20), rx.recv())
                        .await
                        .expect("connects");
                }
                let connect = inner.now() - started;
                for i in 0..200u32 {
                    dc.send_text(&format!("message {i}")).await.expect("send");
                }
                // A minute of session: SCTP repairs its losses, ICE checks consent.
                inner.sleep(Duration::from_secs(60)).await;
                let s = impaired.stats();
                let dir = |d: &rtclab_netem::accounting::DirectionStats| {
                    (d.input.packets, d.output.packets, d.dropped.random.packets)
                };
                *out.lock().expect("lock") = Some(Outcome {
                    received: received.load(Ordering::Relaxed),
                    connect,
                    virtual_s: 0.0,
                    down: dir(&s.downlink),
                    up: dir(&s.uplink),
                });
                let _ = sender.close().await;
                let _ = receiver.close().await;
            },
            Duration::from_secs(600),
        )
        .expect("the virtual-time run finishes");
    let wall = wall.elapsed();
    let mut outcome = result.lock().expect("lock").take().expect("an outcome");
    outcome.virtual_s = stats.elapsed.as_secs_f64();
    (outcome, wall)
}

#[test]
fn two_peers_connect_and_repair_loss_in_virtual_time() {
    let (first, wall) = session(11);
    println!("{first:?} in {wall:?} of wall time");
    assert_eq!(first.received, 200, "SCTP delivered every message");
    assert!(
        first.down.2 > 0 && first.up.2 > 0,
        "loss both ways: {first:?}"
    );
    assert!(first.virtual_s >= 60.0);
    // Generous: the minute of session took ~0.2 s here; a loaded CI machine may be slower.
    assert!(
        wall < Duration::from_secs(20),
        "{wall:?} of wall time for a virtual minute"
    );
    // Deterministic: one thread, one clock, one seed. The same packets go each way and the
    // same ones are lost (ICE credentials and DTLS keys still differ, but not the sizes or
    // the timing of what the impairment sees).
    let (second, _) = session(11);
    assert_eq!(second, first, "two runs with one seed");
}
