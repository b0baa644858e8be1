// Pieces of the impairing-relay tests: start the real `rtclab relay` (its TURN server impairs what
// it relays), open web/call.html in two headless Chromium pages (a browser <-> browser call),
// read each page's getStats() through window.call, the relay's per-allocation logs, and drive its
// control API. Bounded waits and the process handling come from harness.mjs.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { REPO, CHROMIUM, CHROMIUM_ARGS, parseLines, screenshot, sleep, startRtclab, waitFor } from './harness.mjs';

export { REPO, screenshot, sleep, waitFor };

const live = new Set();  // the relay and the browser: killed whatever happens
process.on('exit', () => {
  for (const p of live) {
    try { if (p.pid) process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

/**
 * Starts `rtclab relay [--scenario FILE] --addr 127.0.0.1:0 --turn 127.0.0.1:0 --out <tmp>` and
 * waits for the four lines it prints (page, TURN, iceServers, control). `scenario` is a path
 * relative to the repository (e.g. scenarios/loss-5.toml). Returns
 * { page, base, turn, iceServers, control, out, proc, output(), stop() }.
 */
export async function startRelay({ scenario, args = [], timeoutMs = 15_000 } = {}) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'rtclab-relay-'));
  const argv = ['relay', '--addr', '127.0.0.1:0', '--turn', '127.0.0.1:0', '--out', out, ...args];
  if (scenario) argv.push('--scenario', path.join(REPO, scenario));
  const relay = await startRtclab(argv, {
    what: 'the four "rtclab relay: ..." lines (page, TURN, iceServers, control)',
    ready: (text) => {
      const page = /rtclab relay: page (http:\/\/\S+)/.exec(text);
      const turn = /rtclab relay: TURN on (\S+) (\S+)/.exec(text);
      const ice = /rtclab relay: iceServers (\[.*\])/.exec(text);  // then "(give them to your app ...)"
      const control = /rtclab relay: control (http:\/\/\S+)/.exec(text);
      return page && turn && ice && control && { page: page[1], turn: `${turn[1]} ${turn[2]}`, ice: ice[1], control: control[1] };
    },
    timeoutMs,
  });
  const lines = relay.value;
  return {
    page: lines.page,
    base: new URL(lines.page).origin,
    turn: lines.turn,
    iceServers: JSON.parse(lines.ice),
    control: lines.control,
    out, proc: relay.proc,
    output: relay.output,
    stop: relay.stop,
  };
}

/**
 * A Y4M clip for Chromium's fake camera (`--use-file-for-fake-video-capture`, played in a loop):
 * 640x360, 30 fps, 4 s of moving colour bars under moving grain, written once into the temp folder
 * (41 MB). Chromium's built-in fake camera is a flat green picture that VP8 codes in ~200 kbit/s
 * at 20 fps whatever the bandwidth, so a 300 kbit/s cap would never bind and 5 % loss would be
 * measured on ~30 packets a second; this clip makes the encoder use the rate it is given (up to
 * libwebrtc's ~1.7 Mbit/s for 360p), as runner/src/browser.rs does with testsrc2 for `bench cc`.
 */
export function cameraClip({ width = 640, height = 360, fps = 30, seconds = 4 } = {}) {
  const file = path.join(os.tmpdir(), `rtclab-call-camera-${width}x${height}-${fps}-${seconds}s-v1.y4m`);
  if (fs.existsSync(file)) return file;
  // A small xorshift PRNG: the same clip every time.
  let seed = 0x2545f491;
  const rand = () => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) & 0xff; };
  const grain = Buffer.alloc(width * height * 2);
  for (let i = 0; i < grain.length; i++) grain[i] = rand();
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  fs.writeSync(fd, `YUV4MPEG2 W${width} H${height} F${fps}:1 Ip A1:1 C420jpeg\n`);
  const cw = width / 2, ch = height / 2;
  const frame = Buffer.alloc(width * height * 3 / 2);
  for (let n = 0; n < fps * seconds; n++) {
    // Luma: eight bars sliding right 6 px a frame, plus grain of +-24 that moves every frame.
    const off = (n * 7919) % (width * height);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const bar = Math.floor(((x + n * 6) % width) / (width / 8));
        const base = 40 + bar * 22 + Math.floor(y / 6);
        frame[y * width + x] = Math.max(0, Math.min(255, base + (grain[off + y * width + x] >> 3) - 16));
      }
    }
    // Chroma: the bars' colours, sliding with them.
    const u = width * height, v = u + cw * ch;
    for (let y = 0; y < ch; y++) {
      for (let x = 0; x < cw; x++) {
        const bar = Math.floor(((2 * x + n * 6) % width) / (width / 8));
        frame[u + y * cw + x] = (bar * 37 + y) & 0xff;
        frame[v + y * cw + x] = (255 - bar * 29 - x / 4) & 0xff;
      }
    }
    fs.writeSync(fd, 'FRAME\n');
    fs.writeSync(fd, frame);
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  return file;
}

/**
 * One headless Chromium with two contexts (two separate windows, so neither is a background
 * tab), each with a page on `url` (web/call.html). The first page is opened first and so waits;
 * the second joins with peers == 2 and makes the offer. Returns { browser, pages, consoleLines, close() }.
 */
export async function openCall(url, { width = 1340, height = 860 } = {}) {
  const args = [...CHROMIUM_ARGS, `--use-file-for-fake-video-capture=${cameraClip()}`];
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args, timeout: 10_000 });
  const proc = browser.process && browser.process();
  if (proc) live.add(proc);
  const pages = [];
  const consoleLines = [];
  try {
    for (const name of ['A', 'B']) {
      const context = await browser.newContext({ viewport: { width, height } });
      const page = await context.newPage();
      page.setDefaultTimeout(10_000);
      page.on('console', (m) => consoleLines.push(`[${name}] ${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => consoleLines.push(`[${name}] pageerror: ${e.message}`));
      await page.goto(url, { waitUntil: 'domcontentloaded' });
      // The first page joins alone before the second one comes (so who offers is known).
      if (name === 'A') await waitFor('page A to join its room', () => page.evaluate(() => /waiting for the other tab/.test(window.call?.status || '')), 10_000);
      pages.push(page);
    }
  } catch (e) {
    await browser.close().catch(() => {});
    throw e;
  }
  return {
    browser, pages, consoleLines,
    async close() {
      await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
      if (proc) live.delete(proc);
    },
  };
}

/** Waits (bounded) until the page shows the other tab's video (window.call.ready). */
export async function callReady(page, ms = 20_000) {
  const ok = await page.evaluate((ms) => Promise.race([
    window.call.ready.then(() => true),
    new Promise((r) => setTimeout(() => r(false), ms)),
  ]), ms);
  if (!ok) {
    const why = await page.evaluate(() => `status "${window.call.status}", error ${JSON.stringify(window.call.error)}`);
    throw new Error(`no remote video within ${ms} ms (${why})`);
  }
}

/** window.call.stats(): { inbound, outbound, remoteInbound, transport, pair, local, remote, codec }. */
export async function callStats(page) {
  return page.evaluate(() => window.call.stats());
}

/**
 * Loss of first transmissions between two callStats() results (`a` null: since the start):
 * { lost, received, ratio = lost / (received + lost) }. Chromium's packetsLost counts the media
 * SSRC's first transmissions that never arrived (a packet later repaired by a resend still
 * counts); its packetsReceived counts the media SSRC's arrivals plus every packet of the RTX
 * stream (retransmittedPacketsReceived: resends and bandwidth probes), so those are taken out.
 */
export function lossBetween(a, b) {
  const firsts = (s) => (s ? (s.inbound.packetsReceived || 0) - (s.inbound.retransmittedPacketsReceived || 0) : 0);
  const lost = (b.inbound.packetsLost || 0) - (a ? a.inbound.packetsLost || 0 : 0);
  const received = firsts(b) - firsts(a);
  return { lost, received, ratio: received + lost > 0 ? lost / (received + lost) : 0 };
}

/** Received video bitrate (RTP, headers included) between two callStats() results, bit/s. */
export function recvBps(a, b) {
  const bytes = (s) => (s.inbound.bytesReceived || 0) + (s.inbound.headerBytesReceived || 0);
  const dt = (b.inbound.timestamp - a.inbound.timestamp) / 1000;
  return dt > 0 ? (bytes(b) - bytes(a)) * 8 / dt : 0;
}

/** Every allocation-<n>-<port>/events.jsonl under the relay's out folder: [{ dir, lines }]. */
export function allocationLogs(out) {
  return fs.readdirSync(out, { withFileTypes: true })
    .filter((e) => e.isDirectory() && /^allocation-/.test(e.name))
    .map((e) => ({ dir: e.name, lines: readLog(path.join(out, e.name, 'events.jsonl')) }));
}

/** A log file's complete lines (a line still being written is left out). */
export function readLog(file) {
  return fs.existsSync(file) ? parseLines(fs.readFileSync(file, 'utf8').replace(/[^\n]*$/, '')) : [];
}

/** The last line of `kind` (and direction, if given) in `lines`. */
export function last(lines, kind, direction) {
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i];
    if (l.kind === kind && (!direction || l.direction === direction)) return l;
  }
  return null;
}

/** POST body (JSON) to the relay's control URL: { status, body } (body parsed when JSON). */
export async function postImpair(control, body) {
  const res = await fetch(control, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON: keep the text */ }
  return { status: res.status, body: parsed };
}
