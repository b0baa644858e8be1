//! The signaling server: rooms, relaying, error handling, hooks and shutdown over real loopback
//! WebSockets (an upgrade needs a real connection), and the plain HTTP routes (`/health`, `/ws`
//! without an upgrade, static files) through the router alone, with `tower::ServiceExt::oneshot`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use rtclab_signaling::{AppState, app, bind, serve, serve_with_shutdown};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tower::ServiceExt;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Every wait is bounded, so a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(5);

/// Starts a server on a free loopback port; returns its address, and its state for asking the
/// HTTP routes through the router (see [`http_get`]) while sessions run on the socket.
async fn start(state: AppState) -> (SocketAddr, Arc<AppState>) {
    let (listener, addr) = bind("127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("bind loopback");
    let state = Arc::new(state);
    tokio::spawn(serve(listener, Arc::clone(&state)));
    (addr, state)
}

async fn connect(addr: SocketAddr, query: &str) -> Ws {
    let url = format!("ws://{addr}/ws{query}");
    let (ws, _) = timeout(WAIT, connect_async(url.as_str()))
        .await
        .expect("connect timed out")
        .expect("WebSocket connect");
    ws
}

/// Connects to `room` and checks the `joined` answer.
async fn join(addr: SocketAddr, room: &str, peers: usize) -> Ws {
    let mut ws = connect(addr, &format!("?room={room}")).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"type": "joined", "room": room, "peers": peers})
    );
    ws
}

/// Two peers in `room`, with the first told about the second.
async fn pair(addr: SocketAddr, room: &str) -> (Ws, Ws) {
    let mut a = join(addr, room, 1).await;
    let b = join(addr, room, 2).await;
    assert_eq!(recv(&mut a).await, json!({"type": "peer-joined"}));
    (a, b)
}

/// The next JSON text message (control frames skipped).
async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a message")
            .expect("socket ended while waiting for a message")
            .expect("socket error while waiting for a message");
        match msg {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str()).expect("server sent invalid JSON");
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, value: Value) {
    send_text(ws, value.to_string()).await;
}

async fn send_text(ws: &mut Ws, text: String) {
    timeout(WAIT, ws.send(Message::text(text)))
        .await
        .expect("send timed out")
        .expect("send");
}

/// Receives an `error` and checks its code; returns its message.
async fn expect_error(ws: &mut Ws, code: &str) -> String {
    let msg = recv(ws).await;
    assert_eq!(msg["type"], "error", "expected an error, got {msg}");
    assert_eq!(msg["code"], code, "wrong error code in {msg}");
    let obj = msg.as_object().expect("error is an object");
    assert_eq!(obj.len(), 3, "error has exactly type, code, message: {msg}");
    let message = msg["message"].as_str().expect("message is a string");
    assert!(!message.is_empty());
    message.to_owned()
}

/// The server closes the socket: a close frame with `code`, then the end of the stream.
async fn expect_closed(ws: &mut Ws, code: CloseCode) {
    let msg = timeout(WAIT, ws.next())
        .await
        .expect("timed out waiting for close");
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, code),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let end = timeout(WAIT, ws.next())
        .await
        .expect("timed out waiting for end of stream");
    assert!(
        !matches!(end, Some(Ok(Message::Text(_)))),
        "no messages after close: {end:?}"
    );
}

/// Sends `msg` from `from` and checks that `to` receives exactly `expected`.
async fn relays(from: &mut Ws, to: &mut Ws, msg: Value, expected: Value) {
    send(from, msg).await;
    assert_eq!(recv(to).await, expected);
}

async fn offer_relays(from: &mut Ws, to: &mut Ws, sdp: &str) {
    relays(
        from,
        to,
        json!({"type": "offer", "sdp": sdp}),
        json!({"type": "offer", "sdp": sdp}),
    )
    .await;
}

/// `GET path` through the router of `state`, without a socket.
async fn request(state: &Arc<AppState>, path: &str) -> Response {
    let request = Request::get(path)
        .body(Body::empty())
        .expect("valid request");
    let response = app(Arc::clone(state)).oneshot(request);
    timeout(WAIT, response)
        .await
        .expect("HTTP request timed out")
        .expect("the router is infallible")
}

/// The whole body of `response` as text.
async fn body_text(response: Response) -> String {
    let body = timeout(WAIT, response.into_body().collect())
        .await
        .expect("reading the body timed out")
        .expect("read body")
        .to_bytes();
    String::from_utf8(body.to_vec()).expect("UTF-8 body")
}

/// `GET path` through the router of `state`; returns (status, body).
async fn http_get(state: &Arc<AppState>, path: &str) -> (u16, String) {
    let response = request(state, path).await;
    let status = response.status().as_u16();
    (status, body_text(response).await)
}

async fn health(state: &Arc<AppState>) -> Value {
    let (status, body) = http_get(state, "/health").await;
    assert_eq!(status, 200);
    serde_json::from_str(&body).expect("health is JSON")
}

#[tokio::test]
async fn join_tells_joiner_and_present_peer() {
    let (addr, _) = start(AppState::new(None)).await;
    let mut a = join(addr, "r1", 1).await;
    let _b = join(addr, "r1", 2).await;
    assert_eq!(recv(&mut a).await, json!({"type": "peer-joined"}));
    // Another room is independent.
    let _c = join(addr, "r2", 1).await;
}

#[tokio::test]
async fn offer_answer_candidate_are_relayed_exactly() {
    let (addr, _) = start(AppState::new(None)).await;
    let (mut a, mut b) = pair(addr, "relay").await;
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n";
    offer_relays(&mut a, &mut b, sdp).await;
    relays(
        &mut b,
        &mut a,
        json!({"type": "answer", "sdp": "v=0\r\nanswer\r\n"}),
        json!({"type": "answer", "sdp": "v=0\r\nanswer\r\n"}),
    )
    .await;
    let full = json!({"type": "candidate", "candidate": {
        "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
        "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}});
    relays(&mut a, &mut b, full.clone(), full).await;
    // Absent optional fields stay absent; the end-of-candidates marker is an empty candidate.
    let end = json!({"type": "candidate", "candidate": {"candidate": ""}});
    relays(&mut b, &mut a, end.clone(), end).await;
}

#[tokio::test]
async fn malformed_json_is_answered_and_connection_keeps_relaying() {
    let (addr, _) = start(AppState::new(None)).await;
    let (mut a, mut b) = pair(addr, "malformed").await;
    send_text(&mut a, "{\"type\": \"offer\", sdp".to_owned()).await;
    let message = expect_error(&mut a, "malformed-json").await;
    assert!(message.contains("not valid JSON"), "{message}");
    assert!(
        message.contains("JSON object"),
        "says what is expected: {message}"
    );
    offer_relays(&mut a, &mut b, "after-malformed").await;
    offer_relays(&mut b, &mut a, "other-way").await;
}

#[tokio::test]
async fn unknown_type_and_bad_fields_are_unknown_message() {
    let (addr, _) = start(AppState::new(None)).await;
    let (mut a, mut b) = pair(addr, "unknown").await;
    for bad in [
        json!({"type": "hello"}),
        json!({"type": "offer"}),
        json!({"type": "offer", "sdp": 5}),
        json!({"type": "offer", "sdp": "x", "extra": true}),
        json!({"sdp": "x"}),
        json!([1, 2]),
        json!({"type": "candidate", "candidate": {"sdpMid": "0"}}),
    ] {
        send(&mut a, bad.clone()).await;
        let message = expect_error(&mut a, "unknown-message").await;
        assert!(
            message.contains("offer"),
            "lists expected types for {bad}: {message}"
        );
    }
    let message = {
        send(&mut a, json!({"type": "hello"})).await;
        expect_error(&mut a, "unknown-message").await
    };
    assert!(
        message.contains("hello"),
        "quotes the serde error: {message}"
    );
    // Nothing of that reached b; the room still works.
    offer_relays(&mut a, &mut b, "after-unknown").await;
}

/// Issue 18 finding 9: `{"type":"bye","x":1}` was taken as bye (and ended the session), and an
/// `event` that is not an object got no reply at all. Both are now `unknown-message` errors that
/// name the problem, and the session goes on.
#[tokio::test]
async fn bye_with_extra_field_and_non_object_event_are_refused() {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let state = AppState::new(None).with_event_hook(move |_, event| {
        sink.lock().expect("hook lock").push(event);
    });
    let (addr, _) = start(state).await;
    let (mut a, mut b) = pair(addr, "strict").await;

    send(&mut a, json!({"type": "bye", "x": 1})).await;
    let message = expect_error(&mut a, "unknown-message").await;
    assert!(message.contains("unknown field `x`"), "{message}");

    for event in [json!(5), json!("text"), json!([1]), Value::Null] {
        send(&mut a, json!({"type": "event", "event": event})).await;
        let message = expect_error(&mut a, "unknown-message").await;
        assert!(
            message.contains("\"event\" must be a JSON object"),
            "{event}: {message}"
        );
    }
    // None of it reached the hook or b, and a is still in the room: its offer is b's next message.
    offer_relays(&mut a, &mut b, "after-strict").await;
    assert!(seen.lock().expect("hook lock").is_empty());
    // A real bye still works.
    send(&mut a, json!({"type": "bye"})).await;
    assert_eq!(recv(&mut b).await, json!({"type": "bye"}));
    assert_eq!(recv(&mut b).await, json!({"type": "peer-left"}));
}

#[tokio::test]
async fn too_large_message_is_refused_and_connection_stays_open() {
    let (addr, _) = start(AppState::new(None)).await;
    let (mut a, mut b) = pair(addr, "large").await;
    let huge = json!({"type": "offer", "sdp": "x".repeat(70 * 1024)});
    send(&mut a, huge).await;
    let message = expect_error(&mut a, "too-large").await;
    assert!(message.contains("65536"), "states the limit: {message}");
    // b's next message is the small offer: the huge one was not relayed.
    offer_relays(&mut a, &mut b, "small").await;
    offer_relays(&mut b, &mut a, "small-back").await;
}

#[tokio::test]
async fn binary_frame_is_refused_and_connection_stays_open() {
    let (addr, _) = start(AppState::new(None)).await;
    let (mut a, mut b) = pair(addr, "binary").await;
    timeout(WAIT, a.send(Message::binary(vec![1u8, 2, 3])))
        .await
        .expect("send timed out")
        .expect("send binary");
    expect_error(&mut a, "binary-not-supported").await;
    offer_relays(&mut a, &mut b, "after-binary").await;
}

#[tokio::test]
async fn third_peer_gets_room_full_and_is_closed() {
    let (addr, state) = start(AppState::new(None)).await;
    let (mut a, mut b) = pair(addr, "full").await;
    let mut c = connect(addr, "?room=full").await;
    let message = expect_error(&mut c, "room-full").await;
    assert_eq!(
        message,
        "room 'full' already has two peers; pick another room name"
    );
    expect_closed(&mut c, CloseCode::Policy).await;
    // The two peers are unaffected, and were told nothing.
    offer_relays(&mut a, &mut b, "still-here").await;
    offer_relays(&mut b, &mut a, "still-here-too").await;
    assert_eq!(
        health(&state).await,
        json!({"status": "ok", "rooms": 1, "peers": 2})
    );
}

#[tokio::test]
async fn vanished_peer_mid_negotiation_frees_the_room() {
    let (addr, state) = start(AppState::new(None)).await;
    let (mut a, mut b) = pair(addr, "vanish").await;
    offer_relays(&mut b, &mut a, "offer-then-vanish").await;
    // TCP close without bye or close frame.
    drop(b);
    assert_eq!(recv(&mut a).await, json!({"type": "peer-left"}));
    assert_eq!(
        health(&state).await,
        json!({"status": "ok", "rooms": 1, "peers": 1})
    );
    let mut c = join(addr, "vanish", 2).await;
    assert_eq!(recv(&mut a).await, json!({"type": "peer-joined"}));
    offer_relays(&mut a, &mut c, "fresh-offer").await;
    relays(
        &mut c,
        &mut a,
        json!({"type": "answer", "sdp": "fresh-answer"}),
        json!({"type": "answer", "sdp": "fresh-answer"}),
    )
    .await;
}

#[tokio::test]
async fn bye_is_relayed_then_peer_left_and_leaver_is_closed() {
    let (addr, _) = start(AppState::new(None)).await;
    let (mut a, mut b) = pair(addr, "bye").await;
    send(&mut b, json!({"type": "bye"})).await;
    assert_eq!(recv(&mut a).await, json!({"type": "bye"}));
    assert_eq!(recv(&mut a).await, json!({"type": "peer-left"}));
    expect_closed(&mut b, CloseCode::Normal).await;
    let mut c = join(addr, "bye", 2).await;
    assert_eq!(recv(&mut a).await, json!({"type": "peer-joined"}));
    offer_relays(&mut c, &mut a, "after-bye").await;
}

#[tokio::test]
async fn closing_the_socket_sends_peer_left() {
    let (addr, _) = start(AppState::new(None)).await;
    let (mut a, mut b) = pair(addr, "close").await;
    timeout(WAIT, b.close(None))
        .await
        .expect("close timed out")
        .expect("close");
    assert_eq!(recv(&mut a).await, json!({"type": "peer-left"}));
}

#[tokio::test]
async fn relaying_alone_is_no_peer_and_room_keeps_working() {
    let (addr, _) = start(AppState::new(None)).await;
    let mut a = join(addr, "alone", 1).await;
    send(&mut a, json!({"type": "offer", "sdp": "early"})).await;
    let message = expect_error(&mut a, "no-peer").await;
    assert!(message.contains("alone"), "{message}");
    send(
        &mut a,
        json!({"type": "candidate", "candidate": {"candidate": ""}}),
    )
    .await;
    expect_error(&mut a, "no-peer").await;
    let mut b = join(addr, "alone", 2).await;
    assert_eq!(recv(&mut a).await, json!({"type": "peer-joined"}));
    offer_relays(&mut a, &mut b, "now-with-peer").await;
}

#[tokio::test]
async fn health_counts_rooms_and_peers() {
    let (addr, state) = start(AppState::new(None)).await;
    assert_eq!(
        health(&state).await,
        json!({"status": "ok", "rooms": 0, "peers": 0})
    );
    let (_a, _b) = pair(addr, "h1").await;
    let _c = join(addr, "h2", 1).await;
    assert_eq!(
        health(&state).await,
        json!({"status": "ok", "rooms": 2, "peers": 3})
    );
}

#[tokio::test]
async fn event_goes_to_hook_and_not_to_other_peer() {
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let state = AppState::new(None).with_event_hook(move |room, event| {
        sink.lock()
            .expect("hook lock")
            .push((room.to_owned(), event));
    });
    let (addr, _) = start(state).await;
    let (mut a, mut b) = pair(addr, "events").await;
    let event = json!({"kind": "browser-stats", "bytes_received": 1234, "rtt_ms": 12.5});
    send(&mut a, json!({"type": "event", "event": event})).await;
    // Messages are handled in order, so once b has the offer the hook has run, and b's next
    // message being the offer shows the event was not relayed.
    offer_relays(&mut a, &mut b, "after-event").await;
    let seen = seen.lock().expect("hook lock").clone();
    assert_eq!(seen, vec![("events".to_owned(), event)]);
}

#[tokio::test]
async fn event_without_hook_is_ignored_silently() {
    let (addr, _) = start(AppState::new(None)).await;
    let (mut a, mut b) = pair(addr, "no-hook").await;
    send(&mut a, json!({"type": "event", "event": {"kind": "x"}})).await;
    offer_relays(&mut a, &mut b, "after-event").await;
    // a got no error: its next message is b's answer.
    relays(
        &mut b,
        &mut a,
        json!({"type": "answer", "sdp": "ok"}),
        json!({"type": "answer", "sdp": "ok"}),
    )
    .await;
}

#[tokio::test]
async fn join_hook_sees_peer_counts() {
    let seen: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let state = AppState::new(None).with_join_hook(move |room, peers| {
        sink.lock()
            .expect("hook lock")
            .push((room.to_owned(), peers));
    });
    let (addr, _) = start(state).await;
    let (_a, _b) = pair(addr, "hooked").await;
    // A session sends `joined` only after its hook ran, so both calls are in by now.
    let seen = seen.lock().expect("hook lock").clone();
    assert_eq!(
        seen,
        vec![("hooked".to_owned(), 1), ("hooked".to_owned(), 2)]
    );
}

#[tokio::test]
async fn bad_room_names_get_bad_room_and_close() {
    let (addr, _) = start(AppState::new(None)).await;
    let long = "x".repeat(65);
    for query in [
        String::new(),
        "?room=".to_owned(),
        "?room=a%20b".to_owned(),
        "?room=a/b".to_owned(),
        format!("?room={long}"),
    ] {
        let mut ws = connect(addr, &query).await;
        let message = expect_error(&mut ws, "bad-room").await;
        assert!(message.contains("A-Z a-z 0-9 _ . -"), "{query}: {message}");
        expect_closed(&mut ws, CloseCode::Policy).await;
    }
    // 64 characters is fine.
    let _ok = join(addr, &"x".repeat(64), 1).await;
}

#[tokio::test]
async fn plain_http_to_ws_is_a_client_error() {
    let state = Arc::new(AppState::new(None));
    let (status, body) = http_get(&state, "/ws?room=r").await;
    assert!((400..500).contains(&status), "status {status}");
    assert!(body.contains("WebSocket"), "{body}");
}

#[tokio::test]
async fn root_without_web_dir_is_a_note() {
    let state = Arc::new(AppState::new(None));
    let (status, body) = http_get(&state, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("no web directory"), "{body}");
    let missing = Arc::new(AppState::new(Some("/nonexistent/rtclab-web".into())));
    let (status, body) = http_get(&missing, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("no web directory"), "{body}");
}

#[tokio::test]
async fn root_serves_web_index() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("index.html"), "<h1>rtclab page</h1>").expect("write index");
    std::fs::write(dir.path().join("app.js"), "console.log(1);").expect("write js");
    let state = Arc::new(AppState::new(Some(dir.path().to_owned())));
    assert_eq!(
        http_get(&state, "/").await,
        (200, "<h1>rtclab page</h1>".to_owned())
    );
    assert_eq!(
        http_get(&state, "/app.js").await,
        (200, "console.log(1);".to_owned())
    );
    assert_eq!(http_get(&state, "/missing.js").await.0, 404);
    // Routes still win over files.
    assert_eq!(http_get(&state, "/health").await.0, 200);
}

#[tokio::test]
async fn api_log_downloads_the_room_log_or_is_not_found() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("events.jsonl");
    std::fs::write(&log, "{\"kind\":\"x\"}\n").expect("write log");
    let gone = dir.path().join("deleted.jsonl");
    let state = Arc::new(AppState::new(None).with_log_lookup(move |room| match room {
        "r1" => Some(log.clone()),
        "r2" => Some(gone.clone()),
        _ => None,
    }));
    let response = request(&state, "/api/log?room=r1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/x-ndjson");
    assert_eq!(
        response.headers()[CONTENT_DISPOSITION],
        "attachment; filename=\"rtclab-r1.jsonl\""
    );
    assert_eq!(body_text(response).await, "{\"kind\":\"x\"}\n");
    // A room without a log, a log that is gone, and a server that keeps no logs: 404 with the
    // reason, never a server error.
    for (state, room) in [
        (&state, "r3"),
        (&state, "r2"),
        (&Arc::new(AppState::new(None)), "r1"),
    ] {
        let (status, body) = http_get(state, &format!("/api/log?room={room}")).await;
        assert_eq!(status, 404, "{room}: {body}");
        assert!(body.contains("no event log"), "{room}: {body}");
    }
}

#[tokio::test]
async fn shutdown_closes_sessions_and_returns() {
    let (listener, addr) = bind("127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("bind loopback");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_shutdown(
        listener,
        Arc::new(AppState::new(None)),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let (mut a, mut b) = pair(addr, "shutdown").await;
    stop_tx.send(()).expect("server is running");
    for ws in [&mut a, &mut b] {
        // Whichever session ends first tells the other `peer-left`; then the close frame.
        let mut msg = timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for close");
        if let Some(Ok(Message::Text(text))) = &msg {
            assert_eq!(text.as_str(), r#"{"type":"peer-left"}"#);
            msg = timeout(WAIT, ws.next())
                .await
                .expect("timed out waiting for close");
        }
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    timeout(WAIT, server)
        .await
        .expect("server did not stop")
        .expect("server task")
        .expect("server result");
}

/// With a TURN secret, `joined` carries the STUN/TURN servers and per-peer REST credentials that
/// verify under that secret; without one, no `iceServers` at all.
#[tokio::test]
async fn joined_carries_ice_servers_with_per_peer_turn_credentials() {
    let secret = "signaling-secret";
    let ice = rtclab_signaling::IceIssuer::new(
        secret,
        vec!["stun:127.0.0.1:3478".into()],
        vec!["turn:127.0.0.1:3478?transport=udp".into()],
    );
    let (addr, _) = start(AppState::new(None).with_ice(ice)).await;
    let mut a = connect(addr, "?room=ice").await;
    let mut b = connect(addr, "?room=ice").await;
    let ja = recv(&mut a).await;
    let jb = recv(&mut b).await;
    assert_eq!(ja["type"], "joined");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut users = Vec::new();
    for j in [&ja, &jb] {
        let servers = j["iceServers"].as_array().expect("iceServers");
        assert_eq!(servers.len(), 2, "{j}");
        assert_eq!(servers[0]["urls"], json!(["stun:127.0.0.1:3478"]));
        assert!(
            servers[0].get("username").is_none(),
            "STUN needs no credentials"
        );
        assert_eq!(
            servers[1]["urls"],
            json!(["turn:127.0.0.1:3478?transport=udp"])
        );
        let user = servers[1]["username"].as_str().expect("username");
        let pass = servers[1]["credential"].as_str().expect("credential");
        rtclab_turn::credentials::verify(secret, user, pass, now)
            .unwrap_or_else(|e| panic!("issued credentials do not verify: {e}"));
        let expiry = rtclab_turn::credentials::expiry_of(user).expect("expiry");
        assert!(
            (now + 3500..=now + 3700).contains(&expiry),
            "TTL about one hour: {expiry} vs {now}"
        );
        users.push(user.to_owned());
    }
    assert_ne!(users[0], users[1], "each peer gets credentials of its own");

    let (addr, _) = start(AppState::new(None)).await;
    let mut c = connect(addr, "?room=plain").await;
    let jc = recv(&mut c).await;
    assert!(
        jc.get("iceServers").is_none(),
        "no TURN secret, no iceServers: {jc}"
    );
}

/// A control that records what it was asked and refuses one value, to test the routes alone.
struct FakeControl(Mutex<Vec<(String, Value)>>);

impl rtclab_signaling::ImpairControl for FakeControl {
    fn catalog(&self) -> Value {
        json!({ "scenarios": [] })
    }
    fn state(&self, room: &str) -> Result<Value, rtclab_signaling::ControlError> {
        match room {
            "live" => Ok(json!({ "t": 1.0 })),
            other => Err(rtclab_signaling::ControlError::NoSession(other.to_owned())),
        }
    }
    fn change(&self, room: &str, request: Value) -> Result<Value, rtclab_signaling::ControlError> {
        self.state(room)?;
        if request["bad"] == true {
            return Err(rtclab_signaling::ControlError::Invalid("bad: no".into()));
        }
        self.0
            .lock()
            .expect("lock")
            .push((room.to_owned(), request));
        Ok(json!({ "ok": true }))
    }
}

async fn call(state: &Arc<AppState>, request: Request<Body>) -> (u16, String) {
    let response = timeout(WAIT, app(Arc::clone(state)).oneshot(request))
        .await
        .expect("HTTP request timed out")
        .expect("the router is infallible");
    let status = response.status().as_u16();
    (status, body_text(response).await)
}

fn post(path: &str, origin: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(path).header("host", "127.0.0.1:8080");
    if let Some(o) = origin {
        b = b.header("origin", o);
    }
    b.body(Body::from(body.to_owned())).expect("valid request")
}

/// The live control routes hand requests to the control, answer its refusals as JSON with the
/// right status, and refuse pages from other origins (a page on any site could otherwise POST a
/// text/plain body to the lab without a CORS preflight).
#[tokio::test]
async fn impair_routes_reach_the_control_and_refuse_other_origins() {
    let control = Arc::new(FakeControl(Mutex::new(Vec::new())));
    let state = Arc::new(AppState::new(None).with_control(control.clone()));
    let (status, body) = http_get(&state, "/api/scenarios").await;
    assert_eq!((status, body.as_str()), (200, r#"{"scenarios":[]}"#));
    let (status, body) = http_get(&state, "/api/impair?room=live").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&state, "/api/impair?room=none").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no session in room"), "{body}");

    let ok = r#"{"action":"reset"}"#;
    let (status, body) = call(&state, post("/api/impair?room=live", None, ok)).await;
    assert_eq!(status, 200, "{body}");
    let same = Some("http://127.0.0.1:8080");
    let (status, _) = call(&state, post("/api/impair?room=live", same, ok)).await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &state,
        post("/api/impair?room=live", None, r#"{"bad":true}"#),
    )
    .await;
    assert_eq!((status, body.as_str()), (400, r#"{"error":"bad: no"}"#));
    let (status, body) = call(&state, post("/api/impair?room=live", None, "not json")).await;
    assert_eq!(status, 400);
    assert!(body.contains("not JSON"), "{body}");
    let (status, body) = call(
        &state,
        post("/api/impair?room=live", Some("https://evil.example"), ok),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("--allow-origin https://evil.example"),
        "{body}"
    );
    assert_eq!(
        control.0.lock().expect("lock").len(),
        2,
        "the refused ones never reached it"
    );

    // Named with --allow-origin, the same page may.
    let allowing = Arc::new(
        AppState::new(None)
            .with_control(control.clone())
            .with_allowed_origins(vec!["https://evil.example".into()]),
    );
    let (status, _) = call(
        &allowing,
        post("/api/impair?room=live", Some("https://evil.example"), ok),
    )
    .await;
    assert_eq!(status, 200);

    // Without a control (plain `rtclab serve`), the routes say where it comes from.
    let (status, body) = http_get(&Arc::new(AppState::new(None)), "/api/scenarios").await;
    assert_eq!(status, 404);
    assert!(body.contains("rtclab demo"), "{body}");
}

/// A WebSocket upgrade from a page on another site is refused before any room is joined.
#[tokio::test]
async fn websocket_from_another_origin_is_refused() {
    let state = Arc::new(AppState::new(None));
    let (listener, addr) = bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let server = tokio::spawn(serve(listener, Arc::clone(&state)));
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{addr}/ws?room=r1"
        ))
        .expect("request");
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().expect("header"));
    let err = connect_async(request).await.expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("403"), "{text}");
    assert_eq!(state.peer_count(), 0);
    // The same client without a foreign Origin joins.
    let (_ws, _) = connect_async(format!("ws://{addr}/ws?room=r1"))
        .await
        .expect("joins");
    server.abort();
}
