//! Two real webrtc-rs peer connections and a reliable data channel between them, for the tests
//! that run a session through the impairment: on tokio (`peer_connection.rs`) and in virtual
//! time (`sim_peers.rs`).

use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtclab_netem::ImpairedRuntime;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
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

/// What a session did.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Messages the answerer received.
    pub received: usize,
    /// From the answer to connected and the channel open (runtime clock).
    pub connect: Duration,
}

/// Connects an offerer on `impaired` to an answerer on `inner`, sends `messages` text messages
/// on a reliable data channel, waits until all arrived or `linger` passed, keeps the session
/// open `hold` longer (consent checks, keepalives), and closes both.
pub async fn data_channel_session(
    inner: Arc<dyn Runtime>,
    impaired: Arc<ImpairedRuntime>,
    messages: usize,
    linger: Duration,
    hold: Duration,
) -> Session {
    let (g1, mut g1_rx) = channel::<()>(1);
    let (c1, mut c1_rx) = channel::<()>(1);
    let (g2, mut g2_rx) = channel::<()>(1);
    let (c2, mut c2_rx) = channel::<()>(1);
    let received = Arc::new(AtomicUsize::new(0));
    let sender = peer(
        impaired,
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
    for (what, rx) in [
        ("sender connects", &mut c1_rx),
        ("receiver connects", &mut c2_rx),
        ("data channel opens", &mut open_rx),
    ] {
        timeout(&*inner, Duration::from_secs(20), rx.recv())
            .await
            .expect(what);
    }
    let connect = inner.now() - started;

    for i in 0..messages {
        dc.send_text(&format!("message {i}")).await.expect("send");
    }
    let deadline = inner.now() + linger;
    while received.load(Ordering::Relaxed) < messages && inner.now() < deadline {
        inner.sleep(Duration::from_millis(20)).await;
    }
    let session = Session {
        received: received.load(Ordering::Relaxed),
        connect,
    };
    inner.sleep(hold).await;
    let _ = sender.close().await;
    let _ = receiver.close().await;
    session
}
