// rtclab browser page: receives the Rust sender's video, charts what the browser measures next
// to what the sender logs, lists ICE candidates and the session's event log.
//
// Protocol (signaling/src/protocol.rs): the page connects to ws://HOST/ws?room=NAME; the server
// starts a Rust sender for the room, which makes the offer; the page answers (picking the codec
// with setCodecPreferences) and trickles candidates. Every session-log line is pushed to the page
// as {type:"event"}; the page sends its getStats() once a second as a browser.stats event.

import { bps, compactFields, field, num, settingsText, arrow } from './format.js';
import { createMarks, marksPlugin } from './markers.js';
import { createNetworkPanel } from './network.js';

// uPlot comes from web/node_modules (npm). Without it the page still runs the session, and says
// what to run instead of silently drawing nothing.
const UPLOT_URL = '/node_modules/uplot/dist/uPlot.esm.js';
let uPlot = null;
let uPlotError = null;
try {
  uPlot = (await import(UPLOT_URL)).default;
} catch (err) {
  uPlotError = err;
}

const WINDOW_S = 60;          // chart window, one point per second
const MIN_WINDOW_S = 15;      // narrowest chart window while a session is young
const LOG_KEEP = 5000;        // events kept in memory for re-filtering
const LOG_ROWS = 3000;        // rows in the DOM at most
const DEFAULT_HIDDEN = new Set(['browser.stats']);  // noisy kinds, unchecked until asked for

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
/** The page sends its camera instead of receiving (see offerCamera). */
const SEND_MODE = params.get('send') === 'camera';

// ---------------------------------------------------------------------------------------------
// state

const app = {
  ws: null,
  pc: null,
  running: false,
  stopping: false,
  pendingCandidates: [],
  iceServers: [],           // STUN/TURN servers (TURN with credentials for this page) from `joined`
  camera: null,             // MediaStream of the local camera, once sent
  stats: null,              // latest snapshot (what is sent as browser.stats)
  prev: null,               // previous raw values for per-second deltas
  statsTimer: null,
  sender: { target: null, encoder: null, rtt: null, encoderInfo: null },  // latest Rust sender figures
  timing: { firstFrameMs: null, wsOpenMs: null, offerMs: null, answerMs: null, iceConnectedMs: null, connectedMs: null },
  eventsSeen: 0,
  net: { downlink: null, uplink: null },          // latest impair.stats per direction, per second
  impairLast: { downlink: null, uplink: null },   // the previous impair.stats line (for deltas)
};

/**
 * The session clock: seconds since the session's log started (every log line's `t`). The charts'
 * x and every mark on them use it. Estimated from the lines as they arrive: a line logged at `t`
 * arrives a little later, so the smallest (arrival - t) seen is the best offset.
 */
const clock = {
  offset: null,
  observe(t, lagS = 0) {
    if (typeof t !== 'number') return;
    const o = performance.now() / 1000 - lagS - t;
    if (this.offset == null || o < this.offset) this.offset = o;
  },
  now() { return this.offset == null ? null : performance.now() / 1000 - this.offset; },
  reset() { this.offset = null; },
};

// ---------------------------------------------------------------------------------------------
// small helpers

function setState(which, value) {
  const el = $('state-' + which);
  el.textContent = value;
  el.dataset.state = value;
}

function showBanner(text, { retry = true } = {}) {
  $('banner-text').textContent = text;
  $('retry').hidden = !retry;
  $('banner').hidden = false;
  $('banner').dataset.kind = 'error';
}

function hideBanner() {
  $('banner').hidden = true;
}

function send(msg) {
  if (app.ws && app.ws.readyState === WebSocket.OPEN) {
    app.ws.send(JSON.stringify(msg));
    return true;
  }
  return false;
}

/** A notable page event, into the session log (peer "browser"). */
function browserEvent(what, detail = {}) {
  send({ type: 'event', event: { kind: 'browser.event', what, detail } });
}

function fmtBytes(n) {
  if (n == null) return '';
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1024 / 1024).toFixed(1) + ' MiB';
}

function roomName() {
  return $('room').value.trim() || 'demo';
}

function updateDownloadLink() {
  const room = roomName();
  $('download').href = '/api/log?room=' + encodeURIComponent(room);
  $('download').download = room + '-events.jsonl';
}

// ---------------------------------------------------------------------------------------------
// session: signaling socket and peer connection

function start() {
  if (app.running) return;
  const room = roomName();
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(room)) {
    showBanner(`Room name "${room}" is invalid: use 1–64 characters of A–Z a–z 0–9 _ . -`, { retry: false });
    return;
  }
  hideBanner();
  updateDownloadLink();
  app.running = true;
  app.stopping = false;
  app.pendingCandidates = [];
  app.prev = null;
  clock.reset();
  resetCharts();
  resetFlow();
  net.detach('waiting for the session…');
  app.sender = { target: null, encoder: null, rtt: null, encoderInfo: null, rtx: null, mediaLast: null };
  $('video-empty').textContent = 'connecting…';
  $('start').disabled = true;
  $('stop').disabled = false;
  $('room').disabled = true;
  $('codec').disabled = true;
  $('relay').disabled = true;

  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws?room=${encodeURIComponent(room)}`);
  app.ws = ws;
  setState('ws', 'connecting');
  ws.onopen = () => {
    if (app.ws !== ws) return;
    setState('ws', 'open');
    app.timing.wsOpenMs ??= performance.now();
    browserEvent('start', { room, codec: $('codec').value, autostart: params.get('autostart') === '1', userAgent: navigator.userAgent });
  };
  ws.onmessage = (e) => {
    if (app.ws !== ws) return;
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    onSignal(msg).catch((err) => fail('negotiation failed', err));
  };
  ws.onclose = (e) => {
    if (app.ws !== ws) return;
    setState('ws', 'closed');
    if (!app.stopping) {
      const why = e.reason ? ` (${e.code} ${e.reason})` : ` (code ${e.code})`;
      if ($('banner').hidden) {
        showBanner(`The signaling socket closed${why}. Is \`rtclab demo\` still running?`);
      }
      teardown();
    }
  };
  ws.onerror = () => { /* onclose follows with the details */ };
  startStatsLoop();
}

function stop(reason = 'user') {
  if (!app.running) return;
  app.stopping = true;
  browserEvent('stop', { reason });
  send({ type: 'bye' });
  teardown();
}

/** Closes everything; leaves the banner as it is. */
function teardown() {
  app.running = false;
  const ws = app.ws;
  app.ws = null;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'bye');
  setState('ws', 'closed');
  if (app.pc) {
    app.pc.close();
    app.pc = null;
  }
  if (app.camera) {
    app.camera.getTracks().forEach((t) => t.stop());
    app.camera = null;
  }
  const video = $('video');
  video.srcObject = null;
  for (const id of ['ov-res', 'ov-fps', 'ov-codec']) $(id).textContent = '–';
  $('overlay').hidden = true;
  $('video-empty').textContent = 'stopped — press Start';
  $('video-empty').hidden = false;
  $('self-view').hidden = true;
  $('self-view').srcObject = null;
  $('self-label').hidden = true;
  stopStatsLoop();
  net.detach();
  $('start').disabled = false;
  $('stop').disabled = true;
  $('camera').disabled = true;
  $('camera').textContent = 'Send my camera too';
  $('room').disabled = false;
  $('codec').disabled = false;
  $('relay').disabled = false;
  setState('signaling', '–');
  setState('ice', '–');
  setState('pc', '–');
}

function retry() {
  hideBanner();
  if (app.running) {
    app.stopping = true;
    send({ type: 'bye' });
    teardown();
  }
  start();
}

function fail(what, err) {
  const text = `${what}: ${err && err.message ? err.message : err}`;
  console.error(text, err);
  browserEvent('error', { what, message: String(err && err.message ? err.message : err) });
  showBanner(text);
}

async function onSignal(msg) {
  switch (msg.type) {
    case 'joined':
      app.iceServers = Array.isArray(msg.iceServers) ? msg.iceServers : [];
      // The demo starts this room's session (and its impairment) when the page joins.
      if (!SEND_MODE) net.attach(roomName());
      setState('signaling', msg.peers === 1 ? (SEND_MODE ? 'waiting for receiver' : 'waiting for sender') : 'peer present');
      if (SEND_MODE && msg.peers === 2) await offerCamera();
      break;
    case 'peer-joined':
      setState('signaling', 'peer joined');
      if (SEND_MODE) await offerCamera();
      break;
    case 'offer':
      app.timing.offerMs ??= performance.now();
      await onOffer(msg.sdp);
      break;
    case 'answer':
      if (!app.pc) return;
      await app.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      await flushCandidates();
      browserEvent('answer received', {});
      break;
    case 'candidate':
      if (!msg.candidate || !msg.candidate.candidate) return;  // end-of-candidates
      if (app.pc && app.pc.remoteDescription) {
        await app.pc.addIceCandidate(msg.candidate).catch((err) => browserEvent('error', { what: 'addIceCandidate', message: err.message }));
      } else {
        app.pendingCandidates.push(msg.candidate);
      }
      break;
    case 'event':
      onLogEvent(msg.event);
      break;
    case 'bye':
    case 'peer-left':
      showBanner('The Rust sender left the room (its session ended). Retry starts a new session.');
      app.stopping = true;
      teardown();
      break;
    case 'error':
      if (msg.code === 'room-full') {
        showBanner(`Room "${roomName()}" is full (two peers already): pick another room name, or stop the other page, then retry.`);
        app.stopping = true;
        teardown();
      } else if (msg.code === 'bad-room') {
        showBanner(`Bad room name: ${msg.message}`, { retry: false });
        app.stopping = true;
        teardown();
      } else {
        showBanner(`Signaling error ${msg.code}: ${msg.message}`);
      }
      break;
    default:
      break;
  }
}

/** True if the server handed out a TURN server (relay-only is impossible without one). */
function haveTurn() {
  return app.iceServers.some((s) => [].concat(s.urls || []).some((u) => /^turns?:/.test(u)));
}

function createPc() {
  const relay = $('relay').checked;
  if (relay && !haveTurn()) {
    throw new Error('"relay only" needs a TURN server, and the server handed out none (was rtclab demo started with --no-turn?)');
  }
  const config = { iceServers: app.iceServers, iceTransportPolicy: relay ? 'relay' : 'all' };
  const pc = new RTCPeerConnection(config);
  // The URLs, never the credentials, go into the log.
  browserEvent('ice config', { policy: config.iceTransportPolicy, urls: app.iceServers.flatMap((s) => [].concat(s.urls || [])) });
  app.pc = pc;
  pc.onicecandidate = (e) => {
    if (e.candidate) send({ type: 'candidate', candidate: e.candidate.toJSON() });
  };
  pc.ontrack = (e) => {
    if (e.track.kind !== 'video') return;
    const video = $('video');
    video.srcObject = e.streams[0] || new MediaStream([e.track]);
    video.play().catch(() => {});
    watchFirstFrame(video);
    watchPaints(video);
  };
  const stateHandler = (which, getter, evName) => () => {
    if (app.pc !== pc) return;
    const s = getter();
    setState(which, s);
    browserEvent(evName, { state: s });
  };
  pc.onsignalingstatechange = stateHandler('signaling', () => pc.signalingState, 'signaling state');
  pc.oniceconnectionstatechange = () => {
    stateHandler('ice', () => pc.iceConnectionState, 'ice state')();
    if (app.pc === pc && pc.iceConnectionState === 'connected') app.timing.iceConnectedMs ??= performance.now();
  };
  pc.onconnectionstatechange = () => {
    if (app.pc !== pc) return;
    const s = pc.connectionState;
    setState('pc', s);
    browserEvent('pc state', { state: s });
    if (s === 'connected') {
      app.timing.connectedMs ??= performance.now();
      $('camera').disabled = !!app.camera;
    }
    if (s === 'failed') showBanner('The peer connection failed (ICE or DTLS): see the candidate table and the ice.* events below.');
  };
  return pc;
}

/** Puts the codec chosen in the codec control first; the Rust sender encodes what the answer lists first. */
function preferCodec(transceiver, codec) {
  if (!transceiver.setCodecPreferences || !RTCRtpReceiver.getCapabilities) return false;
  const caps = RTCRtpReceiver.getCapabilities('video');
  if (!caps) return false;
  const mime = codec === 'vp8' ? 'video/vp8' : 'video/h264';
  const score = (c) => {
    if (c.mimeType.toLowerCase() !== mime) return 0;
    if (mime === 'video/h264') {
      const f = c.sdpFmtpLine || '';
      // The sender offers constrained baseline, packetization-mode=1.
      return (f.includes('packetization-mode=1') ? 2 : 0) + (f.includes('42e01f') ? 1 : 0) + 1;
    }
    return 1;
  };
  const ordered = caps.codecs.map((c, i) => ({ c, i, s: score(c) }))
    .sort((a, b) => b.s - a.s || a.i - b.i)
    .map((x) => x.c);
  transceiver.setCodecPreferences(ordered);
  return true;
}

async function onOffer(sdp) {
  const pc = app.pc || createPc();
  await pc.setRemoteDescription({ type: 'offer', sdp });
  const codec = $('codec').value;
  for (const t of pc.getTransceivers()) {
    if (t.receiver.track && t.receiver.track.kind === 'video' && !t.stopped) {
      try { preferCodec(t, codec); } catch (err) { browserEvent('error', { what: 'setCodecPreferences', message: err.message }); }
    }
  }
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  send({ type: 'answer', sdp: pc.localDescription.sdp });
  app.timing.answerMs ??= performance.now();
  browserEvent('answer sent', { codec });
  await flushCandidates();
}

async function flushCandidates() {
  const pc = app.pc;
  if (!pc || !pc.remoteDescription) return;
  const list = app.pendingCandidates;
  app.pendingCandidates = [];
  for (const c of list) {
    await pc.addIceCandidate(c).catch((err) => browserEvent('error', { what: 'addIceCandidate', message: err.message }));
  }
}

/**
 * Send mode (`?send=camera`, used by `rtclab bench cc`): the page is the sender. It offers its
 * camera (Chromium's fake device under test) send-only at 1280x720/30, the chosen codec first,
 * to the Rust receiver that joins the room; Chromium's own congestion control drives it.
 */
async function offerCamera() {
  if (app.pc) return;
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720, frameRate: 30 }, audio: false });
  app.camera = stream;
  const track = stream.getVideoTracks()[0];
  // Keep the resolution and let the encoder trade quality, as the Rust sender does at 720p.
  track.contentHint = 'motion';
  const pc = createPc();
  const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
  try { preferCodec(transceiver, $('codec').value); } catch (err) { browserEvent('error', { what: 'setCodecPreferences', message: err.message }); }
  try { offerAbsCaptureTime(transceiver); } catch (err) { browserEvent('error', { what: 'setHeaderExtensionsToNegotiate', message: err.message }); }
  const selfView = $('self-view');
  selfView.srcObject = stream;
  selfView.hidden = false;
  $('self-label').hidden = false;
  browserEvent('camera on', { label: track.label, settings: track.getSettings(), mode: 'send' });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  send({ type: 'offer', sdp: pc.localDescription.sdp });
  browserEvent('offer sent', { reason: 'send mode' });
}

/** abs-capture-time (a webrtc.org header extension, no RFC): capture instants the receiver turns into glass-to-glass latency. */
const ABS_CAPTURE_TIME = 'http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time';

/**
 * Chromium implements abs-capture-time but leaves it out of its offers unless asked: turn it on
 * so the Rust receiver can measure Chromium's glass-to-glass latency in `rtclab bench cc` (the
 * sender stamps about one frame a second; the receiver extrapolates the rest).
 */
function offerAbsCaptureTime(transceiver) {
  if (!transceiver.getHeaderExtensionsToNegotiate) return;
  const exts = transceiver.getHeaderExtensionsToNegotiate();
  const ext = exts.find((e) => e.uri === ABS_CAPTURE_TIME);
  if (!ext || ext.direction !== 'stopped') return;
  ext.direction = 'sendrecv';
  transceiver.setHeaderExtensionsToNegotiate(exts);
}

/** "Send my camera too": add the camera to the call and renegotiate (the page offers). */
async function sendCamera() {
  const pc = app.pc;
  if (!pc || app.camera) return;
  $('camera').disabled = true;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360, frameRate: 30 }, audio: false });
    app.camera = stream;
    const track = stream.getVideoTracks()[0];
    const selfView = $('self-view');
    selfView.srcObject = stream;
    selfView.hidden = false;
    $('self-label').hidden = false;
    // addTrack reuses the video transceiver of the sender's offer (never used to send), so the
    // one m-line becomes sendrecv and keeps the codec chosen above.
    pc.addTrack(track, stream);
    browserEvent('camera on', { label: track.label, settings: track.getSettings() });
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    send({ type: 'offer', sdp: pc.localDescription.sdp });
    browserEvent('offer sent', { reason: 'camera' });
    $('camera').textContent = 'Camera sent';
  } catch (err) {
    $('camera').disabled = false;
    fail('sending the camera failed', err);
  }
}

// ---------------------------------------------------------------------------------------------
// first frame (time from navigation start to the first decoded/painted frame)

function watchFirstFrame(video) {
  if (app.timing.firstFrameMs != null) return;
  const mark = (how) => {
    if (app.timing.firstFrameMs != null) return;
    app.timing.firstFrameMs = performance.now();
    browserEvent('first frame', { ms_since_load: Math.round(app.timing.firstFrameMs), how });
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => mark('requestVideoFrameCallback'));
  video.addEventListener('loadeddata', () => mark('loadeddata'), { once: true });
}

// ---------------------------------------------------------------------------------------------
// getStats once a second

function startStatsLoop() {
  stopStatsLoop();
  app.statsTimer = setInterval(() => { pollStats().catch((err) => console.warn('getStats', err)); }, 1000);
}

function stopStatsLoop() {
  if (app.statsTimer) clearInterval(app.statsTimer);
  app.statsTimer = null;
}

/** Turns an RTCStatsReport into the snapshot the session log gets (browser's field names). */
function snapshot(report) {
  const all = [...report.values()];
  const byId = new Map(all.map((s) => [s.id, s]));
  const plain = (s) => (s ? { ...s } : null);
  const inbound = all.find((s) => s.type === 'inbound-rtp' && s.kind === 'video');
  const outbound = all.find((s) => s.type === 'outbound-rtp' && s.kind === 'video');
  const remoteInbound = all.find((s) => s.type === 'remote-inbound-rtp' && s.kind === 'video');
  const transport = all.find((s) => s.type === 'transport');
  const codec = inbound && inbound.codecId ? byId.get(inbound.codecId) : null;
  return {
    'inbound-rtp': plain(inbound),
    'outbound-rtp': plain(outbound),
    'remote-inbound-rtp': plain(remoteInbound),
    'candidate-pair': all.filter((s) => s.type === 'candidate-pair').map(plain),
    'local-candidate': all.filter((s) => s.type === 'local-candidate').map(plain),
    'remote-candidate': all.filter((s) => s.type === 'remote-candidate').map(plain),
    transport: plain(transport),
    codec: plain(codec),
  };
}

async function pollStats() {
  const pc = app.pc;
  if (!pc) return;
  const snap = snapshot(await pc.getStats());
  if (app.pc !== pc) return;  // stopped meanwhile
  app.stats = snap;
  send({ type: 'event', event: { kind: 'browser.stats', stats: snap } });
  chartTick(snap);
  renderOverlay(snap);
  renderIce(snap);
  renderKindCounts();
}

// ---------------------------------------------------------------------------------------------
// overlay

function renderOverlay(s) {
  const v = s['inbound-rtp'];
  $('overlay').hidden = !v;
  const video = $('video');
  const w = (v && v.frameWidth) || video.videoWidth;
  const h = (v && v.frameHeight) || video.videoHeight;
  $('ov-res').textContent = w && h ? `${w}×${h}` : '–';
  $('ov-fps').textContent = v && v.framesPerSecond != null ? `${Math.round(v.framesPerSecond)} fps` : '– fps';
  const c = s.codec;
  let codec = '–';
  if (c) {
    codec = c.mimeType.replace(/^video\//, '');
    const prof = /profile-level-id=([0-9a-f]{6})/i.exec(c.sdpFmtpLine || '');
    if (prof) codec += ' ' + prof[1];
  }
  $('ov-codec').textContent = codec;
  $('video-empty').hidden = !!(v && v.framesDecoded > 0);
  const o = s['outbound-rtp'];
  if (app.camera) {
    const oc = o && o.frameWidth ? ` ${o.frameWidth}×${o.frameHeight} ${Math.round(o.framesPerSecond || 0)} fps` : '';
    $('self-label').textContent = `camera → Rust peer${oc}`;
  }
}

// ---------------------------------------------------------------------------------------------
// ICE tables

function candText(c, withProto = true) {
  if (!c) return '?';
  const addr = c.address ?? c.ip ?? '';
  const host = addr.includes(':') ? `[${addr}]` : addr;
  return `${host}:${c.port} ${c.candidateType}${withProto ? '/' + c.protocol : ''}`;
}

function renderIce(s) {
  const selectedId = s.transport && s.transport.selectedCandidatePairId;
  const pairs = s['candidate-pair'];
  const selected = pairs.find((p) => p.id === selectedId) || null;
  const locals = new Map(s['local-candidate'].map((c) => [c.id, c]));
  const remotes = new Map(s['remote-candidate'].map((c) => [c.id, c]));

  const inSelected = new Set(selected ? [selected.localCandidateId, selected.remoteCandidateId] : []);
  const candRows = [];
  const candRow = (side, c) => {
    const tr = document.createElement('tr');
    if (inSelected.has(c.id)) tr.className = 'in-selected';
    const related = c.relatedAddress ? `${c.relatedAddress}:${c.relatedPort ?? ''}` : '';
    // url: the STUN/TURN server a srflx/relay candidate came from (its ?transport= is what
    // relayProtocol says); relayProtocol: how this browser reaches its TURN server (udp, tcp, tls).
    for (const v of [side, c.candidateType, c.protocol, c.address ?? c.ip ?? '', c.port, related, c.priority, (c.url ?? '').replace(/\?.*$/, ''), c.relayProtocol ?? '']) {
      const td = document.createElement('td');
      td.textContent = v ?? '';
      tr.append(td);
    }
    tr.dataset.id = c.id;
    return tr;
  };
  for (const c of locals.values()) candRows.push(candRow('local', c));
  for (const c of remotes.values()) candRows.push(candRow('remote', c));
  $('candidates-body').replaceChildren(...candRows);

  const pairRows = pairs.map((p) => {
    const tr = document.createElement('tr');
    tr.dataset.id = p.id;
    if (p.id === selectedId) tr.className = 'selected';
    const l = locals.get(p.localCandidateId);
    const r = remotes.get(p.remoteCandidateId);
    const rtt = p.currentRoundTripTime != null ? (p.currentRoundTripTime * 1000).toFixed(1) : '';
    for (const v of [candText(l, false), candText(r, false), p.state, p.nominated ? 'yes' : '', fmtBytes(p.bytesSent), fmtBytes(p.bytesReceived), rtt]) {
      const td = document.createElement('td');
      td.textContent = v ?? '';
      tr.append(td);
    }
    return tr;
  });
  $('pairs-body').replaceChildren(...pairRows);

  const sel = $('selected-pair');
  if (selected) {
    const rtt = selected.currentRoundTripTime != null ? `, RTT ${(selected.currentRoundTripTime * 1000).toFixed(1)} ms` : '';
    const lc = locals.get(selected.localCandidateId);
    // The relay used: which TURN server, and how this browser reaches it.
    const via = lc && lc.candidateType === 'relay' ? ` via ${(lc.url || 'TURN').replace(/\?.*$/, '')} over ${lc.relayProtocol || '?'}` : '';
    sel.textContent = `selected: ${candText(lc)} ⇄ ${candText(remotes.get(selected.remoteCandidateId))}${via}${rtt}`;
    sel.className = 'ok';
  } else {
    sel.textContent = 'no selected pair';
    sel.className = 'muted';
  }
}

// ---------------------------------------------------------------------------------------------
// charts: one point a second, x = session seconds (the log's t), so the marks from the log
// (network changes, resolution changes, keyframes) and the browser's points share one axis

const charts = [];
const series = {
  x: [],
  pageMs: [],                                  // performance.now() of each point (tests, timing)
  target: [], encoder: [], received: [], capacity: [],
  decoded: [], dropped: [],
  lost: [], nackSent: [], rtxRecv: [],
  qDelay: [], dropRandom: [], dropBurst: [], dropNth: [], dropQueue: [], dropOutage: [], upDropped: [],
  sentHeight: [], recvHeight: [],
  jitter: [], jbDelay: [],
  rtt: [], bweRtt: [], camRtt: [],
  nack: [], pli: [], fir: [], freezes: [],
};
const marks = createMarks();
/**
 * Freezes on the charts. A freeze is what the browser counts (getStats freezeCount, the W3C rule
 * on decoded frames), once a second. Where requestVideoFrameCallback exists, every painted frame
 * is timed too, so the band starts and ends where the picture stood still (a paint gap counted
 * as a freeze by the browser; a gap it does not count, e.g. the page itself busy, is dropped);
 * otherwise the band is placed from totalFreezesDuration, within a second. `stall`: the open
 * band of a freeze going on now.
 */
const freezeWatch = { lastFrameX: null, stall: null, paintMs: null, meanMs: null, painting: false, pending: [] };

const COLORS = {
  blue: '#1f6feb', orange: '#d97706', purple: '#8b5cf6', red: '#dc2626', green: '#16a34a', grey: '#6b7280',
  teal: '#0d9488', black: '#111827', pink: '#db2777', brown: '#92400e', olive: '#65a30d',
};

function line(label, stroke, extra = {}) {
  return { label, stroke, width: 2, spanGaps: false, points: { show: false }, ...extra };
}

/** A line that holds its value until the next point (a setting or a resolution, not a rate). */
function step(label, stroke, extra = {}) {
  return line(label, stroke, { paths: uPlot.paths.stepped({ align: 1 }), ...extra });
}

function xRange(u, min, max) {
  if (min == null || max == null) return [0, MIN_WINDOW_S];
  const width = Math.min(WINDOW_S, Math.max(MIN_WINDOW_S, max - min));
  const start = Math.max(min, max - width);
  return [start, start + width];
}

/** A y axis as wide as its longest label ("3,000" needs more room than "20"). */
function axisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size;  // uPlot asks again while converging; keep the answer
  const longest = (values || []).reduce((n, v) => Math.max(n, String(v).length), 1);
  return Math.ceil(longest * 6.6) + 16;
}

const AXIS = { stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' }, font: '11px system-ui, sans-serif' };

/**
 * One chart in the card `id`: `defs` = uPlot series, `keys` = their arrays in `series`.
 * opts: minMax (the y scale shows at least 0..minMax), y2 = {label, minMax} puts the series with
 * `scale: 'y2'` on a right-hand axis, marks = which marks (markers.js), bandText = label the bands.
 */
function makeChart(id, defs, keys, opts = {}) {
  const el = $(id);
  const box = document.createElement('div');
  box.className = 'plot';
  el.append(box);
  if (!uPlot) return;
  // Headroom above the highest point: the marks' labels sit at the top of the plot.
  const yRange = (minMax) => (u, min, max) => [0, Math.max((max ?? 0) * 1.3, minMax ?? 1)];
  const scales = { x: { time: false, range: xRange }, y: { range: yRange(opts.minMax) } };
  const axes = [
    // Whole seconds on x: steps of 1, 2, 5, 10... s, never 2.5 s shown as "3 s".
    { ...AXIS, size: 26, incrs: [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 1800, 3600], values: (u, vals) => vals.map((v) => `${num(v, 0)} s`) },
    { ...AXIS, size: axisSize, space: 36 },
  ];
  if (opts.y2) {
    scales.y2 = { range: yRange(opts.y2.minMax) };
    axes.push({ ...AXIS, scale: 'y2', side: 1, size: (u, v, i, c) => axisSize(u, v, i, c) + 14, grid: { show: false }, label: opts.y2.label, labelSize: 14, labelFont: '10px system-ui, sans-serif' });
  }
  const u = new uPlot({
    width: Math.max(200, box.clientWidth), height: Math.max(60, box.clientHeight),
    legend: { show: true, live: false },
    cursor: { drag: { x: false, y: false } },
    // A young session fills a MIN_WINDOW_S-wide chart from the left, the window then widens with
    // the data up to WINDOW_S and scrolls.
    scales, axes,
    series: [{}, ...defs],
    plugins: [marksPlugin(marks, { kinds: opts.marks ?? ['impair', 'freeze', 'stall'], bandText: opts.bandText })],
  }, [series.x, ...keys.map((k) => series[k])], box);
  // The legend sits under the plot inside the card: the plot gets the card's height minus the
  // legend's (which wraps on narrow cards), so nothing spills onto the card below.
  const legend = u.root.querySelector('.u-legend');
  const fit = () => {
    const lh = legend ? legend.offsetHeight : 0;
    const size = { width: Math.max(160, box.clientWidth), height: Math.max(60, box.clientHeight - lh) };
    if (size.width !== u.width || size.height !== u.height) u.setSize(size);
  };
  // Refit when the card changes size, and when the legend wraps onto more or fewer lines.
  const ro = new ResizeObserver(fit);
  ro.observe(box);
  if (legend) ro.observe(legend);
  fit();
  charts.push({ u, keys });
}

function buildCharts() {
  if (!uPlot) {
    const why = uPlotError && uPlotError.message ? uPlotError.message : String(uPlotError);
    const msg = $('charts-missing');
    msg.textContent = `No charts: the charting library (uPlot) did not load from ${UPLOT_URL} (${why}). ` +
      'Install the page\'s npm packages, then reload: `./lab demo` does it, or run `npm ci --prefix web` in the repository. ' +
      'The session itself still runs.';
    msg.hidden = false;
    $('charts-key').hidden = true;
    for (const id of ['chart-bitrate', 'chart-frames', 'chart-network', 'chart-loss', 'chart-resolution', 'chart-jitter', 'chart-rtt', 'chart-feedback']) $(id).hidden = true;
    return;
  }
  const onResolution = ['impair', 'freeze', 'stall', 'adapt', 'key'];
  makeChart('chart-bitrate', [
    line('BWE target', COLORS.orange, { dash: [6, 4] }),
    line('encoder', COLORS.purple),
    line('received', COLORS.blue),
    step('link capacity ↓', COLORS.black, { width: 1.5, dash: [2, 3] }),
  ], ['target', 'encoder', 'received', 'capacity'], { minMax: 100, marks: onResolution });
  makeChart('chart-frames', [line('decoded/s', COLORS.green), line('dropped/s', COLORS.red)], ['decoded', 'dropped'],
    { minMax: 5, marks: ['impair', 'freeze', 'stall', 'camfreeze', 'adapt', 'key'], bandText: true });
  makeChart('chart-network', [
    line('queue delay p95, ms', COLORS.teal),
    line('random', COLORS.red, { scale: 'y2' }),
    line('burst', COLORS.pink, { scale: 'y2' }),
    line('every nth', COLORS.olive, { scale: 'y2' }),
    line('queue full', COLORS.orange, { scale: 'y2' }),
    line('outage', COLORS.black, { scale: 'y2' }),
    line('↑ feedback dropped', COLORS.grey, { scale: 'y2', dash: [4, 3] }),
  ], ['qDelay', 'dropRandom', 'dropBurst', 'dropNth', 'dropQueue', 'dropOutage', 'upDropped'],
  { minMax: 5, y2: { label: 'dropped/s', minMax: 2 } });
  makeChart('chart-loss', [
    line('lost/s', COLORS.red), line('NACKs sent/s', COLORS.orange), line('retransmitted/s', COLORS.blue, { dash: [5, 3] }),
  ], ['lost', 'nackSent', 'rtxRecv'], { minMax: 1 });
  makeChart('chart-resolution', [step('sent (encoder)', COLORS.purple), step('received', COLORS.blue, { dash: [5, 3] })],
    ['sentHeight', 'recvHeight'], { minMax: 200, marks: onResolution });
  makeChart('chart-jitter', [line('jitter', COLORS.blue), line('jitter buffer', COLORS.grey)], ['jitter', 'jbDelay'], { minMax: 5 });
  makeChart('chart-rtt', [
    line('pair RTT', COLORS.teal), line('sender BWE RTT', COLORS.orange, { dash: [6, 4] }), line('camera RTT', COLORS.purple),
  ], ['rtt', 'bweRtt', 'camRtt'], { minMax: 2 });
  makeChart('chart-feedback', [
    line('NACK', COLORS.orange), line('PLI', COLORS.purple), line('FIR', COLORS.grey), line('freezes', COLORS.red),
  ], ['nack', 'pli', 'fir', 'freezes'], { minMax: 1 });
}

function redrawCharts() {
  for (const { u, keys } of charts) u.setData([series.x, ...keys.map((k) => series[k])]);
}

/** A new session starts with empty charts. */
function resetCharts() {
  for (const k of Object.keys(series)) series[k].length = 0;
  marks.clear();
  Object.assign(freezeWatch, { lastFrameX: null, stall: null, paintMs: null, meanMs: null, painting: false, pending: [] });
  app.net = { downlink: null, uplink: null };
  app.impairLast = { downlink: null, uplink: null };
  redrawCharts();
}

/** Latest value from the log, or null when it is stale (no update for 5 s). */
function fresh(entry) {
  return entry && performance.now() - entry.at < 5000 ? entry.value : null;
}

/** The session time of a performance.now() instant. */
const sessionAt = (ms) => (clock.offset == null ? null : ms / 1000 - clock.offset);

/** Every painted frame of the remote video: a long gap since the previous one is a freeze. */
function watchPaints(video) {
  if (!video.requestVideoFrameCallback || video.dataset.paintWatch) return;
  video.dataset.paintWatch = '1';
  const onPaint = (nowMs) => {
    video.requestVideoFrameCallback(onPaint);
    const w = freezeWatch;
    // A hidden tab paints nothing: that is not a freeze of the stream.
    if (document.hidden || !app.pc) { w.paintMs = null; return; }
    w.painting = true;
    if (w.paintMs != null) {
      const gap = nowMs - w.paintMs;
      const mean = w.meanMs ?? 33;
      // W3C webrtc-stats freezeCount: longer than max(3 × mean frame interval, mean + 150 ms).
      if (gap > Math.max(3 * mean, mean + 150) && sessionAt(w.paintMs) != null) {
        // A candidate until getStats' freezeCount confirms it (trackFreezes).
        w.pending.push({ from: sessionAt(w.paintMs), to: sessionAt(nowMs), text: `freeze ${num(gap / 1000, 1)} s`, seenMs: nowMs });
      } else if (gap < 500) {
        w.meanMs = w.meanMs == null ? gap : w.meanMs * 0.9 + gap * 0.1;
      }
    }
    w.paintMs = nowMs;
  };
  video.requestVideoFrameCallback(onPaint);
}

/** Ends the "no frames" band of a freeze going on (a freeze band replaces it). */
function closeStall() {
  const st = freezeWatch.stall;
  if (!st) return;
  const i = marks.marks.bands.indexOf(st);
  if (i >= 0) marks.marks.bands.splice(i, 1);
  freezeWatch.stall = null;
}

/** Once a second: the freezes getStats counted since the last point, and the one going on now. */
function trackFreezes(x, v, prev) {
  if (!v) return;
  const w = freezeWatch;
  const now = performance.now();
  const counted = prev && v.freezeCount > (prev.freezeCount ?? 0) ? v.freezeCount - (prev.freezeCount ?? 0) : 0;
  if (counted > 0) {
    closeStall();
    const timed = w.pending.splice(-counted);
    if (timed.length) {
      for (const f of timed) marks.band(f.from, f.to, 'freeze', f.text);
    } else {
      // No paint times: the freeze ended since the last point and lasted the duration's growth.
      const d = Math.max(0.1, (v.totalFreezesDuration ?? 0) - (prev.totalFreezesDuration ?? 0));
      marks.band(x - d, x, 'freeze', `freeze ${num(d, 1)} s`);
    }
  }
  w.pending = w.pending.filter((f) => now - f.seenMs < 3000);
  if (!prev || prev.framesDecoded == null || v.framesDecoded > prev.framesDecoded) {
    if (v.framesDecoded > 0) w.lastFrameX = x;
  }
  // The picture standing still now: since the last painted (or decoded) frame.
  const since = w.painting && w.paintMs != null ? sessionAt(w.paintMs) : w.lastFrameX;
  if (since != null && x - since > 0.5) {
    if (!w.stall) w.stall = marks.band(since, x, 'stall', '');
    w.stall.to = x;
    w.stall.text = `no frames ${num(x - since, 0)} s`;
  } else {
    closeStall();
  }
}

function chartTick(s) {
  const x = clock.now();
  const v = s['inbound-rtp'];
  const now = performance.now();
  const prev = app.prev;
  app.prev = { at: now, v };
  if (x == null) return;  // no log line yet: no session time to plot at
  const pairs = s['candidate-pair'];
  const selId = s.transport && s.transport.selectedCandidatePairId;
  const sel = pairs.find((p) => p.id === selId);
  const dt = prev ? (now - prev.at) / 1000 : 0;
  const rate = (key, scale = 1) => {
    if (!v || !prev || !prev.v || dt <= 0 || v[key] == null || prev.v[key] == null) return null;
    return Math.max(0, (v[key] - prev.v[key]) / dt) * scale;
  };
  const kbps = (val) => (val == null ? null : val / 1000);
  const push = (k, val) => series[k].push(val == null || Number.isNaN(val) ? null : val);
  const down = fresh(app.net.downlink);
  const up = fresh(app.net.uplink);

  series.x.push(x);
  series.pageMs.push(now);
  push('target', kbps(fresh(app.sender.target)));
  push('encoder', kbps(fresh(app.sender.encoder)));
  push('received', rate('bytesReceived', 8 / 1000));
  push('capacity', down && down.capacity != null ? down.capacity / 1000 : null);
  push('decoded', rate('framesDecoded'));
  push('dropped', rate('framesDropped'));
  push('lost', rate('packetsLost'));
  push('nackSent', rate('nackCount'));
  push('rtxRecv', rate('retransmittedPacketsReceived') ?? fresh(app.sender.rtx));
  push('qDelay', down ? down.queueP95 : null);
  push('dropRandom', down ? down.drops.random : null);
  push('dropBurst', down ? down.drops.burst : null);
  push('dropNth', down ? down.drops.nth : null);
  push('dropQueue', down ? down.drops.queue_overflow : null);
  push('dropOutage', down ? down.drops.outage : null);
  push('upDropped', up ? up.total : null);
  const enc = app.sender.encoderInfo && fresh({ value: app.sender.encoderInfo, at: app.sender.encoder?.at ?? 0 });
  push('sentHeight', enc ? enc.height : null);
  push('recvHeight', v && v.frameHeight ? v.frameHeight : null);
  push('jitter', v && v.jitter != null ? v.jitter * 1000 : null);
  push('jbDelay', v && v.jitterBufferEmittedCount > 0 ? (v.jitterBufferDelay / v.jitterBufferEmittedCount) * 1000 : null);
  push('rtt', sel && sel.currentRoundTripTime != null ? sel.currentRoundTripTime * 1000 : null);
  push('bweRtt', fresh(app.sender.rtt));
  const ri = s['remote-inbound-rtp'];
  push('camRtt', ri && ri.roundTripTime != null ? ri.roundTripTime * 1000 : null);
  push('nack', v ? v.nackCount ?? null : null);
  push('pli', v ? v.pliCount ?? null : null);
  push('fir', v ? v.firCount ?? null : null);
  push('freezes', v ? v.freezeCount ?? null : null);
  trackFreezes(x, v, prev && prev.v);
  for (const k of Object.keys(series)) {
    if (series[k].length > WINDOW_S) series[k].splice(0, series[k].length - WINDOW_S);
  }
  marks.trim(series.x[0] - 1);
  redrawCharts();
}

/** impair.stats: totals since the start; the charts want the last second's drops, per cause. */
function onImpairStats(ev) {
  const dir = ev.direction;
  if (dir !== 'downlink' && dir !== 'uplink') return;
  const last = app.impairLast[dir];
  app.impairLast[dir] = ev;
  const drops = {};
  let total = null;
  if (last && ev.t > last.t) {
    const dt = ev.t - last.t;
    total = 0;
    for (const [cause, n] of Object.entries(ev.dropped_packets || {})) {
      drops[cause] = Math.max(0, n - ((last.dropped_packets || {})[cause] ?? 0)) / dt;
      total += drops[cause];
    }
  }
  app.net[dir] = {
    at: performance.now(),
    value: { capacity: ev.capacity_bps ?? null, queueP95: ev.queue_delay_p95_ms ?? null, drops, total },
  };
}

/** The marks a log line puts on the charts. */
function markFromLog(ev) {
  if (typeof ev.t !== 'number') return;
  switch (ev.kind) {
    case 'impair.change':
      marks.line(ev.t, 'impair', `${arrow(ev.direction)} ${settingsText(ev.settings)}`);
      redrawCharts();  // at once: the click's effect should not wait for the next point
      break;
    case 'encoder.adapt':
      if (ev.peer === 'sender') marks.line(ev.t, 'adapt', `${ev.to_width}×${ev.to_height}`);
      break;
    case 'encoder.keyframe':
      if (ev.peer === 'sender') marks.line(ev.t, 'key', ev.reason, 0);
      break;
    case 'video.freeze':
      // The Rust receiver's freezes: the camera this page sends (t is when it ended).
      marks.band(ev.t - ev.duration_ms / 1000, ev.t, 'camfreeze', `camera freeze ${num(ev.duration_ms / 1000, 1)} s`);
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------------------------
// the session log (events pushed by the server)

const log = { all: [], kinds: new Map(), hidden: new Set(DEFAULT_HIDDEN), search: '' };

// ---------------------------------------------------------------------------------------------
// the session's flow, live: the first of each step as the log reports it (the same steps as the
// report's sequence diagram), and the startup delay once the first frame is on screen

const FLOW_STEPS = [
  // [key, test(ev), label]
  ['start', (e) => e.kind === 'browser.event' && e.what === 'start', 'page started its session (first line it logged)'],
  ['offer', (e) => e.kind === 'signaling' && e.what === 'offer sent', 'offer sent (SDP)'],
  ['offer-page', (e) => e.kind === 'browser.event' && e.what === 'offer sent', 'offer sent (SDP)'],
  ['answer', (e) => e.kind === 'browser.event' && e.what === 'answer sent', 'answer sent (SDP)'],
  ['answer-in', (e) => e.kind === 'signaling' && e.what === 'answer received', 'answer received'],
  ['ice', (e) => e.kind === 'ice.state' && e.state === 'connected', 'ICE connected: a candidate pair works'],
  ['pair', (e) => e.kind === 'ice.selected_pair', (e) => `selected pair ${e.local?.type ?? '?'} ↔ ${e.remote?.type ?? '?'} (${e.local?.protocol ?? '?'})`],
  ['dtls', (e) => e.kind === 'dtls.state' && e.state === 'connected', 'DTLS connected: SRTP keys ready'],
  ['pc', (e) => e.kind === 'pc.state' && e.state === 'connected', 'peer connection connected'],
  ['rtp', (e) => e.kind === 'media.first' && e.what === 'rtp_sent', 'first RTP sent'],
  ['rtcp', (e) => e.kind === 'rtcp', (e) => `first RTCP (${e.type ?? '?'} ${e.direction ?? ''})`],
  ['frame', (e) => e.kind === 'browser.event' && e.what === 'first frame', 'first frame on screen'],
];
const flow = { seen: new Set(), first: null };

function resetFlow() {
  flow.seen.clear();
  flow.first = null;
  $('flow').replaceChildren();
  $('startup').textContent = 'startup delay: waiting for the first frame';
}

function onFlowEvent(ev) {
  if (typeof ev.t !== 'number') return;
  for (const [key, test, label] of FLOW_STEPS) {
    if (flow.seen.has(key) || !test(ev)) continue;
    flow.seen.add(key);
    flow.first ??= ev.t;
    const li = document.createElement('li');
    const t = document.createElement('span');
    t.className = 't';
    t.textContent = `${ev.t.toFixed(3)} s`;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = ev.peer ?? '';
    li.append(t, who, typeof label === 'function' ? label(ev) : label);
    $('flow').append(li);
    if (key === 'frame') {
      $('startup').textContent = `startup delay: ${Math.round((ev.t - flow.first) * 1000)} ms (first step → first frame)`;
    }
  }
}

function onLogEvent(ev) {
  if (!ev || typeof ev !== 'object') return;
  app.eventsSeen++;
  clock.observe(ev.t);
  onFlowEvent(ev);
  markFromLog(ev);
  net.onLogEvent(ev);
  // Charts use the Rust peers' figures; the page's own echoes (peer "browser") are only listed.
  if (ev.peer === 'sender') {
    const at = performance.now();
    if (ev.kind === 'bwe.estimate') {
      app.sender.target = { value: ev.target_bps, at };
      if (ev.rtt_ms != null) app.sender.rtt = { value: ev.rtt_ms, at };
    } else if (ev.kind === 'encoder.rate') {
      app.sender.encoder = { value: ev.actual_bps, at };
      app.sender.encoderInfo = ev;
    } else if (ev.kind === 'media.stats' && ev.direction === 'send') {
      // Its `retransmitted` is a total: the packets it resent per second, for the loss chart
      // when the browser does not count them (no RTX stream: resends reuse the media SSRC).
      const last = app.sender.mediaLast;
      app.sender.mediaLast = ev;
      if (last && ev.t > last.t && ev.retransmitted != null) {
        app.sender.rtx = { value: Math.max(0, ev.retransmitted - (last.retransmitted ?? 0)) / (ev.t - last.t), at };
      }
    }
  } else if (ev.kind === 'impair.stats') {
    onImpairStats(ev);
  }
  log.all.push(ev);
  if (log.all.length > LOG_KEEP) log.all.splice(0, log.all.length - LOG_KEEP);
  const k = ev.kind || '?';
  if (!log.kinds.has(k)) addKind(k);
  log.kinds.set(k, (log.kinds.get(k) || 0) + 1);
  if (matches(ev)) appendRows([ev]);
}

function matches(ev) {
  if (log.hidden.has(ev.kind || '?')) return false;
  if (log.search && !JSON.stringify(ev).toLowerCase().includes(log.search)) return false;
  return true;
}

/** One line of the log view: a few words per kind, numbers rounded (the download stays raw). */
function summary(ev) {
  const { t, peer, kind, ...rest } = ev;
  const f = (key) => field(key, rest[key])[1];
  switch (kind) {
    case 'browser.stats': {
      const s = rest.stats || {};
      const v = s['inbound-rtp'];
      return v ? `framesDecoded ${v.framesDecoded} · received ${fmtBytes(v.bytesReceived)} · packetsLost ${v.packetsLost} · NACKs ${v.nackCount ?? '–'} · freezes ${v.freezeCount ?? '–'} · pairs ${(s['candidate-pair'] || []).length}` : 'no inbound-rtp yet';
    }
    case 'rtcp': {
      const { direction, type, ...r } = rest;
      return `${direction} ${type} ${compactFields(r)}`;
    }
    case 'bwe.estimate':
      return `target ${bps(rest.target_bps)}` +
        (rest.delay_based_bps != null ? ` · delay-based ${bps(rest.delay_based_bps)}` : '') +
        (rest.loss_based_bps != null ? ` · loss-based ${bps(rest.loss_based_bps)}` : '') +
        (rest.loss_ratio != null ? ` · loss ratio ${num(rest.loss_ratio, 3)}` : '') +
        (rest.rtt_ms != null ? ` · rtt ${num(rest.rtt_ms, 1)} ms` : '');
    case 'encoder.rate':
      return `${rest.codec} ${rest.width}×${rest.height} ${num(rest.fps, 1)} fps · actual ${bps(rest.actual_bps)} / target ${bps(rest.target_bps)} · ${rest.keyframes} key` +
        (rest.dropped ? ` · ${rest.dropped} skipped` : '');
    case 'encoder.adapt':
      return `resolution ${rest.from_width}×${rest.from_height} → ${rest.to_width}×${rest.to_height} (${rest.reason}, target ${bps(rest.target_bps)})`;
    case 'encoder.keyframe':
      return `keyframe #${rest.frame_index} (${rest.reason})` + (rest.after_request_ms != null ? ` ${f('after_request_ms')} after the request` : '');
    case 'video.freeze':
      return `no new frame for ${f('duration_ms')}`;
    case 'impair.change':
      return `${arrow(rest.direction)} ${rest.direction === 'uplink' ? 'feedback path' : 'media path'}: ${settingsText(rest.settings)}` +
        (rest.until_s != null ? ` until ${num(rest.until_s, 1)} s` : '') + (rest.source ? ` (${rest.source})` : '');
    case 'impair.stats': {
      const d = rest.dropped_packets || {};
      const dropped = Object.entries(d).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
      return `${arrow(rest.direction)} ${rest.capacity_bps != null ? `cap ${bps(rest.capacity_bps)} · ` : ''}out ${bps(rest.out_bps)}` +
        (rest.queue_delay_p50_ms != null ? ` · queue delay p50 ${num(rest.queue_delay_p50_ms, 1)} ms p95 ${num(rest.queue_delay_p95_ms, 1)} ms` : '') +
        ` · ${rest.packets_in} in, dropped: ${dropped}`;
    }
    default:
      return compactFields(rest);
  }
}

function row(ev) {
  const li = document.createElement('li');
  li.dataset.kind = ev.kind;
  li.dataset.peer = ev.peer;
  const t = document.createElement('span');
  t.className = 't';
  t.textContent = typeof ev.t === 'number' ? ev.t.toFixed(3) : '';
  const p = document.createElement('span');
  p.className = 'peer';
  p.textContent = ev.peer ?? '';
  const k = document.createElement('span');
  k.className = 'kind';
  k.textContent = ev.kind;
  const d = document.createElement('span');
  d.className = 'detail';
  d.textContent = summary(ev);
  li.append(t, p, k, d);
  return li;
}

function appendRows(evs) {
  const list = $('log');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const frag = document.createDocumentFragment();
  for (const ev of evs) frag.append(row(ev));
  list.append(frag);
  while (list.childElementCount > LOG_ROWS) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function rerenderLog() {
  $('log').replaceChildren();
  appendRows(log.all.filter(matches).slice(-LOG_ROWS));
  const list = $('log');
  list.scrollTop = list.scrollHeight;
}

function addKind(kind) {
  const label = document.createElement('label');
  label.className = 'kind-chip';
  const box = document.createElement('input');
  box.type = 'checkbox';
  box.value = kind;
  box.checked = !log.hidden.has(kind);
  box.onchange = () => {
    if (box.checked) log.hidden.delete(kind); else log.hidden.add(kind);
    rerenderLog();
  };
  const name = document.createElement('span');
  name.textContent = kind;
  const count = document.createElement('small');
  count.className = 'count';
  label.append(box, name, count);
  label.dataset.kind = kind;
  // Keep the chips sorted by name.
  const chips = [...$('log-kinds').children];
  const after = chips.find((c) => c.dataset.kind > kind);
  $('log-kinds').insertBefore(label, after || null);
}

function renderKindCounts() {
  for (const chip of $('log-kinds').children) {
    chip.querySelector('.count').textContent = log.kinds.get(chip.dataset.kind) || 0;
  }
  $('log-count').textContent = `${app.eventsSeen} events`;
}

function setAllKinds(on) {
  log.hidden = on ? new Set() : new Set(log.kinds.keys());
  for (const box of $('log-kinds').querySelectorAll('input')) box.checked = on;
  rerenderLog();
}

// ---------------------------------------------------------------------------------------------
// wiring

/** The network panel (network.js): live impairment of this room's session. */
const net = createNetworkPanel({ room: roomName, clock });

function init() {
  const room = params.get('room') || 'demo';
  $('room').value = room;
  const codec = (params.get('codec') || 'h264').toLowerCase();
  $('codec').value = codec === 'vp8' ? 'vp8' : 'h264';
  $('relay').checked = params.get('relay') === '1';
  updateDownloadLink();
  $('room').addEventListener('input', updateDownloadLink);

  $('controls').addEventListener('submit', (e) => {
    e.preventDefault();
    start();
  });
  $('stop').onclick = () => stop('user');
  $('camera').onclick = () => sendCamera();
  $('retry').onclick = () => retry();
  $('banner-close').onclick = () => hideBanner();
  $('download').addEventListener('click', () => browserEvent('download log', {}));
  $('kinds-all').onclick = () => setAllKinds(true);
  $('kinds-none').onclick = () => setAllKinds(false);
  let searchTimer = null;
  $('log-search').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { log.search = $('log-search').value.trim().toLowerCase(); rerenderLog(); }, 200);
  });
  window.addEventListener('beforeunload', () => { if (app.running) send({ type: 'bye' }); });

  buildCharts();
  if (params.get('autostart') === '1') start();
}

// For tests and the console.
window.rtclab = {
  get pc() { return app.pc; },
  get ws() { return app.ws; },
  get stats() { return app.stats; },
  /** ms since navigation start: page parsed, socket open, offer in, answer out, connected, first frame shown. */
  get timing() {
    const nav = performance.getEntriesByType('navigation')[0];
    return { domContentLoadedMs: nav ? nav.domContentLoadedEventEnd : null, ...app.timing };
  },
  get events() { return app.eventsSeen; },
  get sender() { return { ...app.sender }; },
  chartsPoints() { return series.x.length; },
  chartsSeries() { return JSON.parse(JSON.stringify(series)); },
  /** The marks on the charts: lines [{t, kind, text}] and bands [{from, to, kind, text}]. */
  chartsMarks() { return JSON.parse(JSON.stringify(marks.marks)); },
  /** Session seconds now (the log's t), as the page estimates it. */
  sessionNow() { return clock.now(); },
  /**
   * The network panel: state (last GET/POST /api/impair answer), scenarios, changes
   * (impair.change lines as they arrived, with performance.now()), actions (each control click:
   * action, clickMs, doneMs, ok, error), enabled; apply(), reset(), outage(), play(name), refresh().
   */
  net,
  /** Whether the charting library loaded (false: web/node_modules is missing). */
  get chartsLoaded() { return !!uPlot; },
  start, stop, retry, sendCamera,
};

init();
