//! Two real webrtc-rs peer connections on 127.0.0.1, the offerer's sockets wrapped by an
//! `ImpairedRuntime`: ICE, DTLS and SCTP must work through it, and a reliable data channel must
//! deliver everything despite loss in both directions.

use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtclab_netem::{ImpairedRuntime, Impairment, ImpairmentConfig, Schedule};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};
use webrtc::runtime::{Runtime, Sender, channel, default_runtime, timeout};

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
        // No multicast mDNS off the machine; keep the 127.0.0.1 host candidate.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channel_works_through_an_impaired_runtime() {
    let inner = default_runtime().expect("tokio runtime");
    let lossy = |delay| {
        Schedule::constant(ImpairmentConfig {
            loss_pct: Some(5.0),
            delay_ms: Some(delay),
            ..Default::default()
        })
    };
    let imp = Impairment {
        downlink: lossy(30.0),
        uplink: lossy(20.0),
    };
    let impaired = ImpairedRuntime::new(inner.clone(), imp, 3, None).expect("valid");

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
        .create_data_channel("impaired", Some(RTCDataChannelInit::default()))
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
    timeout(&*inner, Duration::from_secs(20), c1_rx.recv())
        .await
        .expect("sender connects");
    timeout(&*inner, Duration::from_secs(20), c2_rx.recv())
        .await
        .expect("receiver connects");
    timeout(&*inner, Duration::from_secs(20), open_rx.recv())
        .await
        .expect("data channel opens");
    let connect = inner.now() - started;

    for i in 0..200u32 {
        dc.send_text(&format!("message {i}")).await.expect("send");
    }
    let deadline = inner.now() + Duration::from_secs(20);
    while received.load(Ordering::Relaxed) < 200 && inner.now() < deadline {
        inner.sleep(Duration::from_millis(20)).await;
    }
    let s = impaired.stats();
    println!(
        "connected in {connect:?}; downlink in {} out {} lost {}; uplink in {} out {} lost {}",
        s.downlink.input.packets,
        s.downlink.output.packets,
        s.downlink.dropped.random.packets,
        s.uplink.input.packets,
        s.uplink.output.packets,
        s.uplink.dropped.random.packets
    );
    assert_eq!(received.load(Ordering::Relaxed), 200);
    assert!(s.downlink.input.packets > 0 && s.uplink.input.packets > 0);
    assert_eq!(s.send_errors, 0);
    let _ = sender.close().await;
    let _ = receiver.close().await;
}
