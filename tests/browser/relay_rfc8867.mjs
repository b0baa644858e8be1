// RFC 8867 §5.1 (variable available capacity, one flow) through `rtclab relay`: a measurement run
// by hand, not a test (CI runs only *.test.mjs). Each client's downlink is the scenario's link:
// 1 Mbit/s, 2.5 Mbit/s at 40 s, 0.6 Mbit/s at 60 s, 1 Mbit/s at 80 s, 50 ms one way each way,
// a 300 ms queue; the schedule of each allocation runs from the allocation's creation.
//
//   cd tests/browser && node relay_rfc8867.mjs           # Chromium A <-> Chromium B (web/call.html)
//   cd tests/browser && node relay_rfc8867.mjs --rust    # rtclab peer send -> rtclab peer recv
//
// RTCLAB_BIN (default target/debug/rtclab), DURATION_S (default 105: seconds of the receiving
// allocation's clock to run for). Prints a per-flow summary; writes samples.json (the raw
// once-a-second samples) and report-*.txt (`rtclab report` of each allocation) into the relay's
// log folder, whose path it prints.
//
// A flow is named after the client that receives it: "into A" is B's video, sent through B's
// uplink and A's downlink (A's allocation), so its capacity is A's downlink schedule and its
// reaction is B's congestion controller (B's availableOutgoingBitrate) after A's 60 s.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  startRelay, openCall, callReady, callStats, readLog, sleep, waitFor, REPO,
} from './relay_harness.mjs';
import { RTCLAB_BIN } from './harness.mjs';

const SCENARIO = 'scenarios/rfc8867-5.1.toml';
const DURATION_S = Number(process.env.DURATION_S || 105);
const RUST = process.argv.includes('--rust');
// [from, to, capacity bit/s] on the receiving allocation's clock.
const PERIODS = [[0, 40, 1_000_000], [40, 60, 2_500_000], [60, 80, 600_000], [80, 100, 1_000_000]];
const OVERHEAD = 28;  // bytes per packet the link counts on top of the UDP payload (netem DEFAULT_OVERHEAD_BYTES)

const kb = (bps) => (bps == null || !Number.isFinite(bps) ? '–' : `${Math.round(bps / 1000)}`);
const log = (...a) => console.log(...a);

/** Records, every 50 ms, when each allocation-* and peer-* log first appears (wall clock, ms). */
function watchLogs(out) {
  const seen = new Map();
  const timer = setInterval(() => {
    for (const e of fs.readdirSync(out, { withFileTypes: true })) {
      if (e.isDirectory() && !seen.has(e.name) && fs.existsSync(path.join(out, e.name, 'events.jsonl'))) seen.set(e.name, Date.now());
    }
  }, 50);
  return { seen, stop: () => clearInterval(timer) };
}

/** The downlink impair.stats of an allocation log: [{ t, bytes, packets, cap, p50, p95 }]. */
function downlinkStats(dir) {
  return readLog(path.join(dir, 'events.jsonl'))
    .filter((l) => l.kind === 'impair.stats' && l.direction === 'downlink')
    .map((l) => ({ t: l.t, bytes: l.bytes_out, packets: l.packets_out, cap: l.capacity_bps, p50: l.queue_delay_p50_ms, p95: l.queue_delay_p95_ms, qmax: l.queue_delay_max_ms }));
}

/** Cumulative counter `get` over [a, b] of a time series (first point at/after a, last at/before b): rate per second. */
function rateOver(series, a, b, get, tOf = (x) => x.t) {
  const inside = series.filter((x) => tOf(x) >= a - 0.25 && tOf(x) <= b + 0.25);
  if (inside.length < 2) return null;
  const x = inside[0], y = inside[inside.length - 1];
  const dt = tOf(y) - tOf(x);
  return dt > 0 ? (get(y) - get(x)) / dt : null;
}

/** Per period: what the relay delivered on the downlink (UDP payload + 28 B/packet, i.e. as the capacity counts), and the worst queue p95. */
function relayPeriods(stats) {
  // The first period from the second before media first flowed (call setup is not the controller's doing).
  const k = stats.findIndex((s, i) => i > 0 && (s.bytes - stats[i - 1].bytes) * 8 / (s.t - stats[i - 1].t) > 100_000);
  const media = k > 0 ? stats[k - 1].t : 0;
  return PERIODS.map(([a0, b, cap]) => {
    const a = a0 === 0 ? media : a0;
    const wire = rateOver(stats, a, b, (s) => (s.bytes + OVERHEAD * s.packets) * 8);
    const p95s = stats.filter((s) => s.t > a && s.t <= b && s.p95 != null).map((s) => s.p95);
    return { from: a0, to: b, measured_from: a, capacity_bps: cap, delivered_bps: wire, queue_p95_max_ms: p95s.length ? Math.max(...p95s) : null };
  });
}

/** The capacity steps as the relay logged them (capacity_bps changes, dated by the line's t). */
function capacitySteps(stats) {
  const steps = [];
  for (const s of stats) if (!steps.length || steps[steps.length - 1].cap !== s.cap) steps.push({ t: s.t, cap: s.cap });
  return steps.map((s) => `${s.t.toFixed(1)} s: ${kb(s.cap)} kbit/s`).join(', ');
}

/** `rtclab report DIR`: its text (saved as report-NAME.txt) and the figures read from it. */
function runReport(dir, out, name) {
  const r = spawnSync(RTCLAB_BIN, ['report', dir], { cwd: REPO, encoding: 'utf8' });
  const text = `${r.stdout}${r.stderr ? `\n[stderr]\n${r.stderr}` : ''}`;
  fs.writeFileSync(path.join(out, `report-${name}.txt`), text);
  const num = (re) => { const m = re.exec(r.stdout); return m ? m.slice(1).map((x) => (x === '–' ? null : Number(x))) : null; };
  const u = num(/link utilisation[\s┆|]*([\d.]+) % over ([\d.]+) s/);
  const q = num(/queuing delay p50 \/ p95 \/ max[\s┆|]*([\d.–]+) \/ ([\d.–]+) \/ ([\d.–]+) ms/);
  return {
    text,
    utilisation_pct: u ? u[0] : null,
    limited_s: u ? u[1] : null,
    queue_p50_ms: q ? q[0] : null,
    queue_p95_ms: q ? q[1] : null,
    queue_max_ms: q ? q[2] : null,
  };
}

function printFlow(f) {
  log(`\n== ${f.name} (received through ${f.allocation}) ==`);
  log(`  relay capacity steps (impair.stats): ${f.capacitySteps}`);
  log(`  rtclab report: link utilisation ${f.report.utilisation_pct ?? '–'} % over ${f.report.limited_s ?? '–'} s; queue delay p50 ${f.report.queue_p50_ms ?? '–'} ms, p95 ${f.report.queue_p95_ms ?? '–'} ms, max ${f.report.queue_max_ms ?? '–'} ms`);
  log(`  period      capacity  relay delivered (wire)  receiver RTP  queue p95 max   kbit/s, ms (0-40 s measured from ${f.periods[0].measured_from.toFixed(1)} s, the second before media first flowed)`);
  for (const [i, p] of f.periods.entries()) {
    log(`  ${String(p.from).padStart(3)}-${String(p.to).padEnd(3)} s   ${kb(p.capacity_bps).padStart(6)}   ${kb(p.delivered_bps).padStart(8)} (${p.delivered_bps ? Math.round(100 * p.delivered_bps / p.capacity_bps) : '–'} %)` +
      `        ${kb(f.receivedPeriods[i]).padStart(6)}      ${p.queue_p95_max_ms == null ? '–' : p.queue_p95_max_ms.toFixed(0)}`);
  }
  log(`  sender's estimate after the drop at 60 s: ${f.reaction}`);
  log(`  frames: ${f.frames}`);
  log(`  freezes: ${f.freezes}`);
  log(`  loss: ${f.loss}`);
}

// ---------------------------------------------------------------------------------------------
// Chromium <-> Chromium

/** The figures of one getStats() result this script keeps. */
function compact(s) {
  const i = s.inbound || {}, o = s.outbound || {}, p = s.pair || {};
  return {
    in_ts: i.timestamp, in_bytes: (i.bytesReceived || 0) + (i.headerBytesReceived || 0),
    packetsReceived: i.packetsReceived, retransmittedPacketsReceived: i.retransmittedPacketsReceived, packetsLost: i.packetsLost,
    nackCount: i.nackCount, pliCount: i.pliCount, framesReceived: i.framesReceived, framesDecoded: i.framesDecoded, framesDropped: i.framesDropped,
    freezeCount: i.freezeCount, totalFreezesDuration: i.totalFreezesDuration, frameWidth: i.frameWidth, frameHeight: i.frameHeight,
    jitterBufferDelay: i.jitterBufferDelay, jitterBufferEmittedCount: i.jitterBufferEmittedCount,
    out_ts: o.timestamp, out_bytes: (o.bytesSent || 0) + (o.headerBytesSent || 0), retransmittedBytesSent: o.retransmittedBytesSent,
    framesSent: o.framesSent, framesEncoded: o.framesEncoded, targetBitrate: o.targetBitrate,
    qualityLimitationReason: o.qualityLimitationReason, sentWidth: o.frameWidth, sentHeight: o.frameHeight,
    availableOutgoingBitrate: p.availableOutgoingBitrate, rtt: p.currentRoundTripTime,
    localPort: s.local && s.local.port, localType: s.local && s.local.candidateType, codec: s.codec && s.codec.mimeType,
  };
}

async function chromiumRun() {
  const relay = await startRelay({ scenario: SCENARIO });
  const watch = watchLogs(relay.out);
  log(`rtclab relay --scenario ${SCENARIO} --addr 127.0.0.1:0 --turn 127.0.0.1:0 --out ${relay.out}`);
  log(`  page ${relay.page}, TURN ${relay.turn}, control ${relay.control}`);
  let call;
  const samples = [[], []];
  let allocs;
  try {
    call = await openCall(relay.page);
    const opened = Date.now();
    await Promise.all(call.pages.map((p) => callReady(p, 30_000)));
    log(`both pages show the other's video ${Date.now() - opened} ms after the second page opened`);
    const first = await Promise.all(call.pages.map(callStats));
    allocs = first.map((s) => {
      const dir = [...watch.seen.keys()].find((d) => d.startsWith('allocation-') && d.endsWith(`-${s.local.port}`));
      if (!dir) throw new Error(`no allocation log for relayed port ${s.local.port} (${s.local.candidateType}) in ${relay.out}`);
      return { dir, startMs: watch.seen.get(dir) };
    });
    log(`page A receives through ${allocs[0].dir}, page B through ${allocs[1].dir}; all allocations: ${[...watch.seen.keys()].join(', ')}`);
    const endMs = Math.max(...allocs.map((a) => a.startMs)) + DURATION_S * 1000;
    let next = Date.now();
    while (Date.now() < endMs) {
      const at = Date.now();
      const stats = await Promise.all(call.pages.map(callStats));
      stats.forEach((s, k) => { if (s) samples[k].push({ at, ...compact(s) }); });
      const n = samples[0].length;
      if (n % 10 === 0) {
        const tA = (at - allocs[0].startMs) / 1000;
        log(`  t(A) ${tA.toFixed(0)} s: A est ${kb(samples[0][n - 1].availableOutgoingBitrate)}, B est ${kb(samples[1][samples[1].length - 1]?.availableOutgoingBitrate)} kbit/s; ` +
          `A ${samples[0][n - 1].frameHeight}p, B ${samples[1][samples[1].length - 1]?.frameHeight}p`);
      }
      next += 1000;
      await sleep(Math.max(0, next - Date.now()));
    }
  } finally {
    watch.stop();
    const e = await relay.stop();  // SIGTERM: the allocation logs end with session.end
    log(`relay stopped (${JSON.stringify(e)})`);
    if (call) await call.close();
  }

  const flows = [0, 1].map((k) => {
    const me = 'AB'[k], other = 'AB'[1 - k];
    const dir = path.join(relay.out, allocs[k].dir);
    const rx = samples[k].map((s) => ({ ...s, t: (s.at - allocs[k].startMs) / 1000 }));
    const tx = samples[1 - k].map((s) => ({ ...s, t: (s.at - allocs[k].startMs) / 1000 }));  // the sender, on the receiver's clock
    const stats = downlinkStats(dir);
    const report = runReport(dir, relay.out, `page-${me}`);
    const receivedPeriods = PERIODS.map(([a, b]) => rateOver(rx, a, b, (s) => s.in_bytes * 8, (s) => s.in_ts / 1000 - (rx[0].in_ts / 1000 - rx[0].t)));
    const fall = tx.find((s) => s.t >= 60 && s.availableOutgoingBitrate != null && s.availableOutgoingBitrate < 600_000);
    const beforeFall = fall ? tx[tx.indexOf(fall) - 1] : null;  // the last sample still above: the fall happened in between
    const during = tx.filter((s) => s.t >= 60 && s.t <= 80);
    const aobMin = Math.min(...during.map((s) => s.availableOutgoingBitrate ?? Infinity));
    const sentDrop = rateOver(tx, 60, 80, (s) => s.out_bytes * 8);
    const last = rx[rx.length - 1], lastTx = tx[tx.length - 1];
    const firsts = (s) => (s.packetsReceived || 0) - (s.retransmittedPacketsReceived || 0);
    const heights = [...new Set(rx.filter((s) => s.t >= 5).map((s) => s.frameHeight))].filter(Boolean);
    return {
      name: `into ${me} (sent by ${other})`, allocation: allocs[k].dir, dir, allocationStartMs: allocs[k].startMs,
      capacitySteps: capacitySteps(stats),
      report: { ...report, text: undefined },
      periods: relayPeriods(stats),
      receivedPeriods,
      reaction_s: fall ? fall.t - 60 : null,
      reaction_after_s: beforeFall ? Math.max(0, beforeFall.t - 60) : null,
      reaction: `${other}'s availableOutgoingBitrate under 600 kbit/s ${fall ? `${(fall.t - 60).toFixed(1)} s after ${me}'s 60 s (still ${kb(beforeFall.availableOutgoingBitrate)} kbit/s at +${(beforeFall.t - 60).toFixed(1)} s)` : 'never within 60-80 s'}; ` +
        `min in 60-80 s ${kb(aobMin)} kbit/s; ${other} sent ${kb(sentDrop)} kbit/s (RTP incl. RTX) over 60-80 s; ` +
        `${other}'s estimate at 59 s ${kb(tx.filter((s) => s.t < 60).pop()?.availableOutgoingBitrate)} kbit/s`,
      framesDecoded: last.framesDecoded, framesSent: lastTx.framesSent,
      frames: `${me} decoded ${last.framesDecoded} of the ${lastTx.framesSent} frames ${other} sent (${(100 * last.framesDecoded / lastTx.framesSent).toFixed(1)} %), ` +
        `received ${last.framesReceived}, dropped ${last.framesDropped}; heights seen ${heights.join('/')}p, last ${last.frameWidth}x${last.frameHeight}; ` +
        `${other}'s qualityLimitationReason at the end: ${lastTx.qualityLimitationReason}`,
      freezeCount: last.freezeCount, freezeS: last.totalFreezesDuration,
      freezes: `${last.freezeCount} freezes, ${(last.totalFreezesDuration || 0).toFixed(2)} s frozen in all`,
      loss: `packetsLost ${last.packetsLost} of ${firsts(last) + last.packetsLost} first transmissions (${(100 * last.packetsLost / (firsts(last) + last.packetsLost)).toFixed(2)} %), nackCount ${last.nackCount}, pliCount ${last.pliCount}`,
    };
  });
  for (const f of flows) printFlow(f);
  const file = path.join(relay.out, 'samples.json');
  fs.writeFileSync(file, JSON.stringify({
    scenario: SCENARIO, duration_s: DURATION_S, relay: { page: relay.page, turn: relay.turn, out: relay.out },
    allocations: Object.fromEntries(watch.seen), pages: ['A', 'B'].map((n, k) => ({ page: n, allocation: allocs[k], samples: samples[k] })),
    flows: flows.map((f) => ({ ...f, dir: undefined })),
  }, null, 1));
  log(`\nsamples: ${file}\nreports: ${flows.map((f, k) => path.join(relay.out, `report-page-${'AB'[k]}.txt`)).join(', ')}`);
}

// ---------------------------------------------------------------------------------------------
// rtclab Rust sender -> Rust receiver

async function rustRun() {
  const relay = await startRelay({ scenario: SCENARIO });
  const watch = watchLogs(relay.out);
  log(`rtclab relay --scenario ${SCENARIO} --addr 127.0.0.1:0 --turn 127.0.0.1:0 --out ${relay.out}`);
  const signal = relay.base.replace(/^http/, 'ws');
  const peers = [];
  const logs = { recv: path.join(relay.out, 'peer-recv', 'events.jsonl'), send: path.join(relay.out, 'peer-send', 'events.jsonl') };
  const startPeer = (role) => {
    const argv = ['peer', '--signal', signal, '--room', 'r1', '--role', role, '--ice-policy', 'relay', '--log', logs[role]];
    log(`${path.relative(REPO, RTCLAB_BIN)} ${argv.join(' ')}`);
    const p = spawn(RTCLAB_BIN, argv, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.on('data', (d) => { text += d; });
    p.stderr.on('data', (d) => { text += d; });
    const exited = new Promise((r) => p.once('exit', (code, sig) => r({ code, sig })));
    peers.push({ role, p, exited, output: () => text });
  };
  let recvAlloc;
  try {
    startPeer('recv');
    await sleep(1000);
    startPeer('send');
    // The receiver's allocation: the one whose downlink carries the video (the most bytes).
    recvAlloc = await waitFor('an allocation whose downlink carries > 100 kB', () => {
      const best = [...watch.seen.keys()].filter((d) => d.startsWith('allocation-'))
        .map((d) => ({ d, s: downlinkStats(path.join(relay.out, d)).pop() }))
        .filter((x) => x.s && x.s.bytes > 100_000)
        .sort((x, y) => y.s.bytes - x.s.bytes)[0];
      return best && best.d;
    }, 30_000, 500);
    const startMs = watch.seen.get(recvAlloc);
    log(`the receiver's allocation: ${recvAlloc}; all: ${[...watch.seen.keys()].join(', ')}`);
    while (Date.now() < startMs + DURATION_S * 1000) {
      await sleep(10_000);
      const s = downlinkStats(path.join(relay.out, recvAlloc)).pop();
      log(`  t ${s ? s.t.toFixed(0) : '?'} s: capacity ${kb(s?.cap)} kbit/s, queue p95 ${s?.p95 ?? '–'} ms`);
    }
  } finally {
    watch.stop();
    for (const x of peers) x.p.kill('SIGTERM');
    for (const x of peers) {
      const t = setTimeout(() => x.p.kill('SIGKILL'), 10_000);
      const e = await x.exited;
      clearTimeout(t);
      log(`peer ${x.role} exited ${JSON.stringify(e)}; last output: ${x.output().trim().split('\n').slice(-3).join(' | ')}`);
    }
    log(`relay stopped (${JSON.stringify(await relay.stop())})`);
  }

  const startMs = watch.seen.get(recvAlloc);
  const dir = path.join(relay.out, recvAlloc);
  const stats = downlinkStats(dir);
  const report = runReport(dir, relay.out, 'rust-allocation');
  const recvReport = runReport(path.dirname(logs.recv), relay.out, 'rust-recv');
  const sendReport = runReport(path.dirname(logs.send), relay.out, 'rust-send');
  // Peer logs' t on the receiving allocation's clock: each log's first appearance (wall) - the allocation's.
  const shift = (name) => (watch.seen.get(name) - startMs) / 1000;
  const recv = readLog(logs.recv).map((l) => ({ ...l, t: l.t + shift('peer-recv') }));
  const send = readLog(logs.send).map((l) => ({ ...l, t: l.t + shift('peer-send') }));
  const bwe = send.filter((l) => l.kind === 'bwe.estimate');
  const fall = bwe.find((l) => l.t >= 60 && l.target_bps < 600_000);
  const before = bwe.filter((l) => l.t < 60).pop();
  const minDrop = Math.min(...bwe.filter((l) => l.t >= 60 && l.t <= 80).map((l) => l.target_bps));
  const mstats = recv.filter((l) => l.kind === 'media.stats');
  // media.stats bytes: RTP (header and payload) received since the start.
  const receivedPeriods = PERIODS.map(([a, b]) => rateOver(mstats, a, b, (l) => l.bytes * 8));
  const qoes = recv.filter((l) => l.kind === 'qoe');
  // qoe: frames_decoded is that second's, freezes / freeze_ms are totals so far.
  const qoe = { ...(qoes[qoes.length - 1] || {}), frames_decoded: qoes.reduce((s, l) => s + (l.frames_decoded || 0), 0) };
  const freezeEvents = recv.filter((l) => l.kind === 'video.freeze');
  const sentFrames = send.filter((l) => l.kind === 'media.stats').pop()?.frames;
  const adapts = send.filter((l) => l.kind === 'encoder.adapt').map((l) => `${l.t.toFixed(1)} s ${l.from_height}p->${l.to_height}p (${l.reason})`);
  const lastMedia = mstats[mstats.length - 1] || {};
  const flow = {
    name: 'rtclab Rust sender -> Rust receiver', allocation: recvAlloc,
    capacitySteps: capacitySteps(stats), report: { ...report, text: undefined }, periods: relayPeriods(stats), receivedPeriods,
    reaction_s: fall ? fall.t - 60 : null,
    reaction: `sender's bwe target_bps under 600 kbit/s ${fall ? `${(fall.t - 60).toFixed(1)} s after 60 s` : 'never within 60-80 s'}; min in 60-80 s ${kb(minDrop)} kbit/s; at 59 s ${kb(before?.target_bps)} kbit/s`,
    framesDecoded: qoe.frames_decoded, framesSent: sentFrames,
    frames: `decoded ${qoe.frames_decoded} of ${sentFrames} sent (${(100 * qoe.frames_decoded / sentFrames).toFixed(1)} %); adaptations: ${adapts.join(', ') || 'none'}`,
    freezeCount: qoe.freezes, freezeS: qoe.freeze_ms != null ? qoe.freeze_ms / 1000 : null,
    freezes: `${qoe.freezes} freezes, ${qoe.freeze_ms} ms frozen (last qoe line); video.freeze: ${freezeEvents.map((l) => `${l.t.toFixed(1)} s ${l.duration_ms} ms`).join(', ') || 'none'}`,
    loss: `receiver media.stats: lost ${lastMedia.lost}, retransmitted ${lastMedia.retransmitted}, packets ${lastMedia.packets}`,
    peerLogShift_s: { recv: shift('peer-recv'), send: shift('peer-send') },
    recvReport: { ...recvReport, text: undefined }, sendReport: { ...sendReport, text: undefined },
  };
  printFlow(flow);
  log(`  peer logs on the allocation's clock: recv +${flow.peerLogShift_s.recv.toFixed(2)} s, send +${flow.peerLogShift_s.send.toFixed(2)} s`);
  const file = path.join(relay.out, 'samples.json');
  fs.writeFileSync(file, JSON.stringify({
    scenario: SCENARIO, duration_s: DURATION_S, relay: { page: relay.page, turn: relay.turn, out: relay.out },
    allocations: Object.fromEntries(watch.seen), logs, flows: [flow],
    bwe: bwe.map((l) => ({ t: l.t, target_bps: l.target_bps, delay_based_bps: l.delay_based_bps, loss_based_bps: l.loss_based_bps, rtt_ms: l.rtt_ms })),
    media: mstats.map((l) => ({ t: l.t, bytes: l.bytes, bitrate_bps: l.bitrate_bps, frames: l.frames, lost: l.lost, width: l.width, height: l.height })),
    sender: send.filter((l) => l.kind === 'encoder.rate').map((l) => ({ t: l.t, target_bps: l.target_bps, actual_bps: l.actual_bps, fps: l.fps, width: l.width, height: l.height, dropped: l.dropped })),
  }, null, 1));
  log(`\nsamples: ${file}\nreports: ${['rust-allocation', 'rust-recv', 'rust-send'].map((n) => path.join(relay.out, `report-${n}.txt`)).join(', ')}`);
}

(RUST ? rustRun() : chromiumRun()).then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
