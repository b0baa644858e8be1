// Shared pieces of the browser tests: start the real `rtclab demo`, launch Debian's Chromium
// headless through playwright-core, read the session log, wait with bounded timeouts.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');
export const OUT = path.join(HERE, 'out');
export const RTCLAB_BIN = process.env.RTCLAB_BIN || path.join(REPO, 'target', 'debug', 'rtclab');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// Flags that work headless as root against a webrtc-rs peer (docs/notes/webrtc-rs-0.21.md#chromium).
// The last two give a host 127.0.0.1 <-> 127.0.0.1 pair; the fake device is the "camera".
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection',
];

const live = new Set();  // child processes and browsers to kill whatever happens
process.on('exit', () => {
  for (const x of live) {
    try { if (x.pid) process.kill(x.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` (sync or async) until it returns a truthy value, or throws after `ms`. */
export async function waitFor(what, fn, ms = 10_000, every = 200) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await sleep(every);
  }
}

export function uniqueRoom(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}`;
}

/**
 * Starts `rtclab ARGS...` (killed when this process exits) and waits until `ready(output)`
 * returns a value, failing with what it printed if it exits first. Returns { value, proc,
 * output(), stop() }; `stop()` sends SIGTERM (rtclab ends its sessions and writes session.end),
 * SIGKILL after 5 s.
 */
export async function startRtclab(args, { what, ready, timeoutMs = 10_000 }) {
  if (!fs.existsSync(RTCLAB_BIN)) {
    throw new Error(`${RTCLAB_BIN} does not exist: build it (cargo build -p rtclab) or set RTCLAB_BIN`);
  }
  const proc = spawn(RTCLAB_BIN, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let text = '';
  proc.stdout.on('data', (d) => { text += d; });
  proc.stderr.on('data', (d) => { text += d; });
  const exited = new Promise((r) => proc.once('exit', (code, sig) => r({ code, sig })));
  let exitInfo = null;
  exited.then((e) => { exitInfo = e; live.delete(proc); });
  const value = await waitFor(what, () => {
    if (exitInfo) throw new Error(`rtclab ${args[0]} exited early (${JSON.stringify(exitInfo)}): ${text}`);
    return ready(text);
  }, timeoutMs, 50).catch((e) => { proc.kill('SIGKILL'); throw e; });
  return {
    value, proc,
    output: () => text,
    async stop() {
      if (exitInfo) return exitInfo;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const e = await exited;
      clearTimeout(t);
      return e;
    },
  };
}

/**
 * Starts `rtclab demo --addr 127.0.0.1:0 --out <tmp> --room <room> [--codec c]` and waits for its
 * "rtclab demo: open http://..." line. Returns { url, base, out, proc, output(), stop() }.
 */
export async function startDemo({ room, codec, timeoutMs = 10_000 } = {}) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'rtclab-browser-'));
  const args = ['demo', '--addr', '127.0.0.1:0', '--out', out, '--room', room];
  if (codec) args.push('--codec', codec);
  const demo = await startRtclab(args, {
    what: 'the "rtclab demo: open http://..." line',
    ready: (text) => { const m = /rtclab demo: open (http:\/\/\S+)/.exec(text); return m && m[1]; },
    timeoutMs,
  });
  const url = demo.value;
  return { url, base: new URL(url).origin, out, room, proc: demo.proc, output: demo.output, stop: demo.stop };
}

/** GET /api/log?room=NAME, parsed. */
export async function fetchLog(base, room) {
  const res = await fetch(`${base}/api/log?room=${encodeURIComponent(room)}`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET /api/log: HTTP ${res.status}`);
  return parseLines(await res.text());
}

export function parseLines(text) {
  return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
}

/** Every session's events.jsonl under `dir` (not the demo TURN server's own, in `turn-server/`). */
export function findLogs(dir) {
  const found = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'turn-server') walk(p);
      }
      else if (e.name === 'events.jsonl') found.push(p);
    }
  };
  walk(dir);
  return found;
}

/** A fresh headless Chromium (its own user-data-dir) with one page. Returns { context, page, close() }. */
export async function launchBrowser({ width = 1600, height = 1000 } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtclab-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width, height },
    timeout: 10_000,
  });
  const browserProc = context.browser()?.process?.();
  if (browserProc) live.add(browserProc);
  const page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(10_000);
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  return {
    context, page, consoleLines,
    async close() {
      await Promise.race([context.close().catch(() => {}), sleep(5000)]);
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page, name) {
  fs.mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file, timeout: 10_000 });
  return file;
}

/**
 * In the page: polls getStats() every 25 ms until the video inbound-rtp has framesDecoded > 0;
 * returns performance.now() at that moment (ms since navigation start, i.e. since page load began).
 */
export async function firstDecodedFrameMs(page, timeoutMs = 15_000) {
  return page.evaluate(async (timeoutMs) => {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const pc = window.rtclab && window.rtclab.pc;
      if (pc) {
        const stats = await pc.getStats();
        for (const s of stats.values()) {
          if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0) return performance.now();
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    return null;
  }, timeoutMs);
}

/** framesDecoded and the codec of the video inbound-rtp, straight from pc.getStats(). */
export async function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.rtclab && window.rtclab.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        const codec = s.codecId && stats.get(s.codecId);
        return { framesDecoded: s.framesDecoded || 0, codec: codec ? codec.mimeType : null, frameWidth: s.frameWidth, frameHeight: s.frameHeight };
      }
    }
    return null;
  });
}

/**
 * The whole video inbound-rtp of `page` (packetsLost, nackCount, freezeCount, framesDecoded,
 * frameHeight, ...), straight from pc.getStats(); null before there is one.
 */
export async function inboundStats(page) {
  return page.evaluate(async () => {
    const pc = window.rtclab && window.rtclab.pc;
    if (!pc) return null;
    const stats = await pc.getStats();
    for (const s of stats.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'video') return { ...s };
    }
    return null;
  });
}

/** GET /api/impair?room=NAME: the impairment in force in a demo session (throws on HTTP errors). */
export async function impairState(base, room) {
  const res = await fetch(`${base}/api/impair?room=${encodeURIComponent(room)}`, { signal: AbortSignal.timeout(5000) });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(`GET /api/impair: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}
