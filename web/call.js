// rtclab call page: a plain WebRTC video call between two browsers (two tabs) in one room.
//
// Open call.html?room=NAME in two tabs. Each tab sends its camera and shows the other's. By
// default the connection is relay-only (iceTransportPolicy 'relay'): every packet goes through
// the TURN server the signaling server hands out in `joined`, which is where `rtclab relay`
// impairs it. ?relay=0 lets ICE pick any path.
//
// Signaling (signaling/src/protocol.rs): connect to ws://HOST/ws?room=NAME; the server answers
// {type:"joined", peers, iceServers}. The tab that joins second (peers == 2) makes the offer; the
// first one waits for `peer-joined` and then the offer. Both trickle their ICE candidates. Once a
// second each tab sends its getStats() as {type:"event", event:{kind:"browser.stats", stats}}
// (the same snapshot as web/app.js), which the server writes into the room's log.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const ROOM = params.get('room') || 'call';
const RELAY_ONLY = params.get('relay') !== '0';

const call = {
  ws: null,
  pc: null,
  camera: null,            // this tab's MediaStream
  iceServers: [],          // from `joined`: the TURN server, with credentials for this tab
  pending: [],             // candidates that arrived before the remote description
  prev: null,              // previous stats figures, for per-second rates
  latest: null,            // latest snapshot (what is sent as browser.stats)
  timer: null,
  error: null,             // the last error shown in the banner
  refused: false,          // the server refused this tab (room full)
  ready: null,             // resolves when the other tab's video is on screen
  markReady: () => {},
};

function newReady() {
  call.ready = new Promise((resolve) => { call.markReady = resolve; });
}
newReady();

// ---------------------------------------------------------------------------------------------
// what the tab shows

function setStatus(text, state = 'info') {
  $('status').textContent = text;
  $('status').dataset.state = state;
}

function showBanner(text, kind = 'error') {
  $('banner').textContent = text;
  $('banner').dataset.kind = kind;
  $('banner').hidden = false;
  if (kind === 'error') call.error = text;
}

function hideBanner() {
  $('banner').hidden = true;
}

function fail(what, err) {
  const message = err && err.message ? err.message : String(err);
  console.error(what, err);
  showBanner(`${what}: ${message}`);
  setStatus('error', 'error');
  browserEvent('error', { what, message });
}

function send(msg) {
  if (call.ws && call.ws.readyState === WebSocket.OPEN) {
    call.ws.send(JSON.stringify(msg));
    return true;
  }
  return false;
}

/** A notable event of this tab, into the room's log (as web/app.js does). */
function browserEvent(what, detail = {}) {
  send({ type: 'event', event: { kind: 'browser.event', what, detail } });
}

// ---------------------------------------------------------------------------------------------
// signaling

async function start() {
  $('room').textContent = ROOM;
  $('policy').textContent = RELAY_ONLY ? 'relay only (TURN)' : 'any (?relay=0)';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(ROOM)) {
    fail('bad room name', `"${ROOM}": use 1–64 characters of A–Z a–z 0–9 _ . -`);
    return;
  }
  try {
    setStatus('opening the camera…');
    call.camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360, frameRate: 30 }, audio: false });
    $('local').srcObject = call.camera;
  } catch (err) {
    fail('the camera could not be opened', err);
    return;
  }
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/ws?room=${encodeURIComponent(ROOM)}`);
  call.ws = ws;
  setStatus('connecting to the signaling server…');
  ws.onmessage = (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    onSignal(msg).catch((err) => fail(`handling "${msg.type}"`, err));
  };
  ws.onclose = (e) => {
    if (call.ws !== ws) return;
    call.ws = null;
    stopStats();
    const why = e.reason ? `${e.code} ${e.reason}` : `code ${e.code}`;
    // After room-full the server closes the socket: its banner says more than this one would.
    if (!call.refused) showBanner(`The signaling connection closed (${why}). Is the server still running? Reload to try again.`);
    setStatus(call.refused ? 'room full' : 'signaling closed', 'error');
  };
  ws.onerror = () => { /* onclose follows with the details */ };
  window.addEventListener('beforeunload', () => send({ type: 'bye' }));
}

async function onSignal(msg) {
  switch (msg.type) {
    case 'joined':
      call.iceServers = Array.isArray(msg.iceServers) ? msg.iceServers : [];
      startStats();
      if (msg.peers >= 2) {
        setStatus('the other tab is here: calling it…');
        await offer();
      } else {
        setStatus('waiting for the other tab (open this page again with the same room)…', 'waiting');
      }
      break;
    case 'peer-joined':
      hideBanner();
      setStatus('the other tab joined: waiting for its offer…', 'waiting');
      break;
    case 'offer':
      await answer(msg.sdp);
      break;
    case 'answer':
      if (!call.pc) return;
      await call.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      await flushCandidates();
      break;
    case 'candidate':
      if (!msg.candidate || !msg.candidate.candidate) return;  // end of candidates
      if (call.pc && call.pc.remoteDescription) {
        await call.pc.addIceCandidate(msg.candidate);
      } else {
        call.pending.push(msg.candidate);
      }
      break;
    case 'bye':
    case 'peer-left':
      hangUp();
      showBanner('The other tab left the call. Waiting for a new one to join this room…', 'info');
      setStatus('the other tab left: waiting for a new one…', 'waiting');
      break;
    case 'error':
      if (msg.code === 'room-full') {
        call.refused = true;
        showBanner(`Room "${ROOM}" already has two tabs in it: close one, or open this page with another ?room=.`);
        setStatus('room full', 'error');
      } else {
        showBanner(`The signaling server refused something (${msg.code}): ${msg.message}`);
      }
      break;
    default:
      break;  // `event` lines pushed by the server, anything newer: not used here
  }
}

// ---------------------------------------------------------------------------------------------
// the peer connection

function hasTurn() {
  return call.iceServers.some((s) => [].concat(s.urls || []).some((u) => /^turns?:/.test(u)));
}

function newPc() {
  if (RELAY_ONLY && !hasTurn()) {
    throw new Error('relay-only needs a TURN server, and the signaling server handed out none (open the page with ?relay=0 to allow direct paths)');
  }
  const pc = new RTCPeerConnection({ iceServers: call.iceServers, iceTransportPolicy: RELAY_ONLY ? 'relay' : 'all' });
  call.pc = pc;
  call.prev = null;
  for (const track of call.camera.getTracks()) pc.addTrack(track, call.camera);
  browserEvent('ice config', { policy: RELAY_ONLY ? 'relay' : 'all', urls: call.iceServers.flatMap((s) => [].concat(s.urls || [])) });

  pc.onicecandidate = (e) => {
    if (e.candidate) send({ type: 'candidate', candidate: e.candidate.toJSON() });
  };
  pc.ontrack = (e) => {
    if (e.track.kind !== 'video') return;
    const video = $('remote');
    video.srcObject = e.streams[0] || new MediaStream([e.track]);
    video.play().catch(() => {});
    const shown = () => {
      if (call.pc !== pc) return;
      $('remote-empty').hidden = true;
      call.markReady();
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(shown);
    video.addEventListener('loadeddata', shown, { once: true });
  };
  pc.onconnectionstatechange = () => {
    if (call.pc !== pc) return;
    const s = pc.connectionState;
    browserEvent('pc state', { state: s });
    if (s === 'connected') {
      hideBanner();
      setStatus('in a call', 'connected');
    } else if (s === 'failed') {
      showBanner('The connection failed (ICE or DTLS): no path through the TURN server worked. Is the relay still running?');
      setStatus('connection failed', 'error');
    } else if (s === 'disconnected') {
      setStatus('connection interrupted (ICE disconnected)…', 'waiting');
    } else {
      setStatus(`connection ${s}…`, 'waiting');
    }
  };
  return pc;
}

async function offer() {
  if (call.pc) hangUp();
  const pc = newPc();
  await pc.setLocalDescription(await pc.createOffer());
  send({ type: 'offer', sdp: pc.localDescription.sdp });
  browserEvent('offer sent', {});
}

async function answer(sdp) {
  // This page never renegotiates: an offer while a call is up is a new call (the other tab
  // reloaded before we heard that it left).
  if (call.pc) hangUp();
  const pc = newPc();
  await pc.setRemoteDescription({ type: 'offer', sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  send({ type: 'answer', sdp: pc.localDescription.sdp });
  browserEvent('answer sent', {});
  await flushCandidates();
}

async function flushCandidates() {
  const pc = call.pc;
  if (!pc || !pc.remoteDescription) return;
  const list = call.pending;
  call.pending = [];
  for (const c of list) await pc.addIceCandidate(c);
}

/** Ends the call with the other tab (it left); keeps the camera and the signaling socket. */
function hangUp() {
  if (call.pc) call.pc.close();
  call.pc = null;
  call.pending = [];
  call.prev = null;
  $('remote').srcObject = null;
  $('remote-empty').hidden = false;
  newReady();
  renderStats(null);
}

// ---------------------------------------------------------------------------------------------
// getStats once a second

/** The RTCStats this page uses, by name (the video ones; the selected candidate pair). */
function pick(report) {
  const all = [...report.values()];
  const byId = new Map(all.map((s) => [s.id, s]));
  const transport = all.find((s) => s.type === 'transport');
  const pair = (transport && byId.get(transport.selectedCandidatePairId))
    || all.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
  const inbound = all.find((s) => s.type === 'inbound-rtp' && s.kind === 'video');
  return {
    all,
    inbound,
    outbound: all.find((s) => s.type === 'outbound-rtp' && s.kind === 'video'),
    remoteInbound: all.find((s) => s.type === 'remote-inbound-rtp' && s.kind === 'video'),
    transport,
    pair,
    local: pair && byId.get(pair.localCandidateId),
    remote: pair && byId.get(pair.remoteCandidateId),
    codec: inbound && inbound.codecId ? byId.get(inbound.codecId) : null,
  };
}

/** The session-log snapshot: exactly the shape web/app.js sends (runner/src/bridge.rs reads it). */
function snapshot(p) {
  const plain = (s) => (s ? { ...s } : null);
  return {
    'inbound-rtp': plain(p.inbound),
    'outbound-rtp': plain(p.outbound),
    'remote-inbound-rtp': plain(p.remoteInbound),
    'candidate-pair': p.all.filter((s) => s.type === 'candidate-pair').map(plain),
    'local-candidate': p.all.filter((s) => s.type === 'local-candidate').map(plain),
    'remote-candidate': p.all.filter((s) => s.type === 'remote-candidate').map(plain),
    transport: plain(p.transport),
    codec: plain(p.codec),
  };
}

function startStats() {
  stopStats();
  call.timer = setInterval(() => { pollStats().catch((err) => console.warn('getStats', err)); }, 1000);
}

function stopStats() {
  if (call.timer) clearInterval(call.timer);
  call.timer = null;
}

async function pollStats() {
  const pc = call.pc;
  if (!pc) return;
  const p = pick(await pc.getStats());
  if (call.pc !== pc) return;  // hung up meanwhile
  const snap = snapshot(p);
  call.latest = snap;
  send({ type: 'event', event: { kind: 'browser.stats', stats: snap } });
  if (p.inbound && p.inbound.framesDecoded > 0) call.markReady();
  renderStats(p);
}

const kbps = (bps) => (bps == null || !Number.isFinite(bps) ? '–' : bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mbit/s` : `${Math.round(bps / 1000)} kbit/s`);
const count = (n) => (n == null ? '–' : String(n));

function renderStats(p) {
  const cells = {};
  if (p) {
    const { inbound: i, outbound: o, pair, local, remote } = p;
    const now = {
      at: (i || o || pair || {}).timestamp,
      sentBytes: o ? (o.bytesSent || 0) + (o.headerBytesSent || 0) : null,
      recvBytes: i ? (i.bytesReceived || 0) + (i.headerBytesReceived || 0) : null,
      // First transmissions that arrived: Chromium's packetsReceived also counts every packet of
      // the resend (RTX) stream, while packetsLost counts first transmissions that never came
      // (even those a resend repaired later).
      received: i ? (i.packetsReceived || 0) - (i.retransmittedPacketsReceived || 0) : null,
      lost: i ? i.packetsLost || 0 : null,
      frames: i ? i.framesDecoded || 0 : null,
    };
    const prev = call.prev;
    call.prev = now;
    const dt = prev && now.at > prev.at ? (now.at - prev.at) / 1000 : null;
    const rate = (k) => (dt && now[k] != null && prev[k] != null ? (now[k] - prev[k]) / dt : null);
    cells.sent = o ? kbps(rate('sentBytes') * 8) : 'nothing sent yet';
    cells.received = i ? `${kbps(rate('recvBytes') * 8)}` : 'nothing received yet';
    if (i) {
      const dLost = dt ? now.lost - prev.lost : null;
      const dAll = dt ? now.received - prev.received + dLost : null;
      const share = dAll > 0 ? ` (${(100 * dLost / dAll).toFixed(1)} % in the last second)` : '';
      cells.lost = `${count(i.packetsLost)} of ${now.received + now.lost} sent${share}`;
      cells.nacks = count(i.nackCount);
      cells.rtx = count(i.retransmittedPacketsReceived);
      const fps = rate('frames');
      const size = i.frameWidth ? `, ${i.frameWidth}×${i.frameHeight}` : '';
      cells.fps = `${fps == null ? '–' : fps.toFixed(0)} frames/s${size}`;
      cells.freezes = `${count(i.freezeCount)} (${(i.totalFreezesDuration || 0).toFixed(1)} s in all)`;
    }
    if (pair) {
      cells.estimate = pair.availableOutgoingBitrate != null ? kbps(pair.availableOutgoingBitrate) : '– (not sending yet)';
      cells.rtt = pair.currentRoundTripTime != null ? `${Math.round(pair.currentRoundTripTime * 1000)} ms` : '–';
    }
    if (local) {
      const via = local.candidateType === 'relay'
        ? `relay via ${local.url || 'the TURN server'} (${local.relayProtocol || 'udp'}), relayed address ${local.address}:${local.port}`
        : `${local.candidateType} ${local.address}:${local.port}`;
      const other = remote ? ` → other tab: ${remote.candidateType} ${remote.address}:${remote.port}` : '';
      cells.pair = `this tab: ${via}${other}`;
    }
  }
  for (const tr of document.querySelectorAll('#stats tr[data-key]')) {
    tr.children[1].textContent = cells[tr.dataset.key] || '–';
  }
  const pathRow = document.querySelector('#stats tr[data-key="pair"]');
  pathRow.dataset.relay = String(!!(p && p.local && p.local.candidateType === 'relay'));
}

// ---------------------------------------------------------------------------------------------
// for tests and the console

window.call = {
  get pc() { return call.pc; },
  /** Resolves when the other tab's video is on screen (a new promise after the other tab left). */
  get ready() { return call.ready; },
  get status() { return $('status').textContent; },
  get error() { return call.error; },
  /** The last snapshot sent as browser.stats. */
  get latest() { return call.latest; },
  room: ROOM,
  relayOnly: RELAY_ONLY,
  /** getStats() now: the video inbound/outbound RTP, remote-inbound, the selected pair and its candidates. */
  async stats() {
    const pc = call.pc;
    if (!pc) return null;
    const { all, ...p } = pick(await pc.getStats());
    const plain = (s) => (s ? { ...s } : null);
    return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, plain(v)]));
  },
};

window.addEventListener('unhandledrejection', (e) => fail('unexpected error', e.reason));
start().catch((err) => fail('starting the call failed', err));
