// The browser demo end to end: the real `rtclab demo`, Debian's Chromium headless, the page in
// web/. Run: node --test --test-concurrency=1 tests/browser/   (RTCLAB_BIN = the rtclab binary)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  startDemo, launchBrowser, fetchLog, findLogs, parseLines, screenshot, firstDecodedFrameMs,
  inbound, uniqueRoom, waitFor, sleep,
} from './harness.mjs';

const MIME = { h264: 'video/H264', vp8: 'video/VP8' };

/** Starts the demo and a browser, runs `body`, and always stops both (screenshot on failure). */
async function session(t, name, { demoCodec, pageCodec }, body) {
  const room = uniqueRoom(name);
  const demo = await startDemo({ room, codec: demoCodec });
  let browser;
  try {
    browser = await launchBrowser();
    const url = `${demo.base}/?room=${room}&codec=${pageCodec}&autostart=1`;
    await browser.page.goto(url, { waitUntil: 'domcontentloaded' });
    await body({ demo, page: browser.page, room, browser });
  } catch (e) {
    if (browser) {
      await screenshot(browser.page, `${name}-failed`).catch(() => {});
      t.diagnostic('page console (last 20 lines):');
      for (const l of browser.consoleLines.slice(-20)) t.diagnostic(`  ${l}`);
    }
    t.diagnostic('rtclab demo output (last 20 lines):');
    for (const l of demo.output().trim().split('\n').slice(-20)) t.diagnostic(`  ${l}`);
    throw e;
  } finally {
    if (browser) await browser.close();
    await demo.stop();
  }
  return demo;
}

const has = (lines, pred) => lines.some(pred);
const kinds = (lines) => [...new Set(lines.map((l) => `${l.peer}/${l.kind}`))].sort().join(', ');

/** What every codec must show: decoding, the candidate table, charts, both sides in the log. */
async function checkCodec(t, codec, { demoCodec }) {
  const name = demoCodec === codec ? codec : `${codec}-chosen-by-page`;
  const demo = await session(t, name, { demoCodec, pageCodec: codec }, async ({ demo, page, room }) => {
    // Time to first frame: performance.now() is ms since navigation start.
    const firstMs = await firstDecodedFrameMs(page, 10_000);
    assert.ok(firstMs != null, 'no frame decoded within 10 s of page load');
    const timing = await page.evaluate(() => window.rtclab.timing);
    const fmt = (x) => (x == null ? '–' : `${Math.round(x)} ms`);
    const msg = `[${name}] first decoded frame ${Math.round(firstMs)} ms after page load ` +
      `(page loaded ${fmt(timing.domContentLoadedMs)}, ws open ${fmt(timing.wsOpenMs)}, offer ${fmt(timing.offerMs)}, answer ${fmt(timing.answerMs)}, ` +
      `ICE connected ${fmt(timing.iceConnectedMs)}, DTLS/pc connected ${fmt(timing.connectedMs)}, first frame shown ${fmt(timing.firstFrameMs)})`;
    t.diagnostic(msg);

    // framesDecoded grows over 5 s, in the requested codec.
    const a = await inbound(page);
    await sleep(5000);
    const b = await inbound(page);
    t.diagnostic(`[${name}] framesDecoded ${a.framesDecoded} -> ${b.framesDecoded} in 5 s, ${b.codec} ${b.frameWidth}x${b.frameHeight}`);
    assert.equal(b.codec, MIME[codec], `browser decodes ${b.codec}, asked for ${MIME[codec]}`);
    assert.ok(b.framesDecoded - a.framesDecoded >= 25, `framesDecoded grew by only ${b.framesDecoded - a.framesDecoded} in 5 s`);

    // The page's own snapshot (window.rtclab.stats) agrees.
    const snap = await page.evaluate(() => window.rtclab.stats);
    assert.ok(snap && snap['inbound-rtp'] && snap['inbound-rtp'].framesDecoded > 0, 'window.rtclab.stats has no decoded frames');

    // Candidate table: candidates listed, the selected pair highlighted.
    await page.waitForSelector('#pairs tr.selected', { timeout: 5000 });
    const sel = await page.textContent('#selected-pair');
    assert.match(sel, /^selected: /);
    const cands = await page.$$eval('#candidates-body tr', (rows) => rows.map((r) => r.cells[0].textContent));
    assert.ok(cands.includes('local') && cands.includes('remote'), `candidate table: ${cands}`);

    // The session flow, live (issue 14 #1): the steps in the wire's order and the startup delay.
    await page.waitForFunction(() => /startup delay: \d+ ms/.test(document.getElementById('startup').textContent), null, { timeout: 5000 });
    const steps = await page.$$eval('#flow li', (li) => li.map((x) => x.textContent));
    const at = (re) => steps.findIndex((x) => re.test(x));
    for (const re of [/ICE connected/, /DTLS connected/, /first RTP sent/, /first frame on screen/]) {
      assert.ok(at(re) >= 0, `session flow has no ${re}: ${steps.join(' | ')}`);
    }
    assert.ok(at(/ICE connected/) < at(/DTLS connected/) && at(/DTLS connected/) < at(/first RTP sent/) &&
      at(/first RTP sent/) < at(/first frame on screen/), `session flow out of order: ${steps.join(' | ')}`);

    // Charts: points, with received bitrate and the sender's target/encoder bitrate in them.
    const points = await page.evaluate(() => window.rtclab.chartsPoints());
    assert.ok(points > 0, 'charts have no points');
    const series = await page.evaluate(() => window.rtclab.chartsSeries());
    for (const k of ['received', 'target', 'encoder', 'decoded']) {
      assert.ok(series[k].some((v) => v != null && v > 0), `chart series ${k} has no data: ${JSON.stringify(series[k])}`);
    }

    // Session log over HTTP: the browser's stats and the Rust sender's events.
    const lines = await waitFor('browser.stats, bwe.estimate and encoder.rate in /api/log', async () => {
      const l = await fetchLog(demo.base, room);
      return has(l, (x) => x.peer === 'browser' && x.kind === 'browser.stats') &&
        has(l, (x) => x.peer === 'sender' && x.kind === 'bwe.estimate') &&
        has(l, (x) => x.peer === 'sender' && x.kind === 'encoder.rate') && l;
    }, 5000).catch(async (e) => { throw new Error(`${e.message}; kinds: ${kinds(await fetchLog(demo.base, room))}`); });
    const enc = lines.filter((x) => x.kind === 'encoder.rate').at(-1);
    assert.equal(enc.codec, codec, `the Rust sender encodes ${enc.codec}, the page asked for ${codec}`);

    // The event log view lists pushed events, filterable by kind.
    const rows = await page.$$eval('#log li', (li) => li.length);
    assert.ok(rows > 0, 'event log view is empty');
    assert.ok(await page.$('#log li[data-kind="bwe.estimate"]'), 'no bwe.estimate row in the log view');
    await page.uncheck('#log-kinds input[value="bwe.estimate"]');
    assert.equal(await page.$('#log li[data-kind="bwe.estimate"]'), null, 'unchecked kind still listed');
    await page.check('#log-kinds input[value="bwe.estimate"]');

    // "Download log" serves the same session log.
    const download = await page.evaluate(async () => {
      const res = await fetch(document.getElementById('download').href);
      return { status: res.status, lines: (await res.text()).split('\n').filter(Boolean).length };
    });
    assert.equal(download.status, 200);
    assert.ok(download.lines >= lines.length / 2, `download log has ${download.lines} lines`);

    await screenshot(page, name);
  });

  // The log on disk (written until the demo stopped).
  const files = findLogs(demo.out);
  assert.equal(files.length, 1, `expected one events.jsonl under ${demo.out}, found ${files}`);
  const disk = parseLines(fs.readFileSync(files[0], 'utf8'));
  assert.ok(has(disk, (x) => x.peer === 'browser' && x.kind === 'browser.stats'), 'no browser.stats on disk');
  assert.ok(has(disk, (x) => x.peer === 'browser' && x.kind === 'browser.event'), 'no browser.event on disk');
  assert.ok(has(disk, (x) => x.peer === 'sender' && x.kind === 'bwe.estimate'), 'no bwe.estimate on disk');
  assert.ok(has(disk, (x) => x.peer === 'sender' && x.kind === 'encoder.rate'), 'no encoder.rate on disk');
  fs.rmSync(demo.out, { recursive: true, force: true });
}

test('h264: video decodes, candidate table, charts, session log', { timeout: 25_000 }, async (t) => {
  await checkCodec(t, 'h264', { demoCodec: 'h264' });
});

test('vp8: video decodes, candidate table, charts, session log', { timeout: 25_000 }, async (t) => {
  await checkCodec(t, 'vp8', { demoCodec: 'vp8' });
});

// The sender offers both codecs and encodes what the browser's answer puts first, so the page's
// codec control wins over the demo's --codec.
test('the page picks the codec: vp8 against a demo that prefers h264', { timeout: 25_000 }, async (t) => {
  await checkCodec(t, 'vp8', { demoCodec: 'h264' });
});

test('send my camera too: the Rust peer receives and decodes it', { timeout: 25_000 }, async (t) => {
  const demo = await session(t, 'camera', { demoCodec: 'h264', pageCodec: 'h264' }, async ({ demo, page, room }) => {
    await waitFor('the page to decode video', async () => (await inbound(page))?.framesDecoded > 0, 10_000);
    await page.waitForSelector('#camera:not([disabled])', { timeout: 5000 });
    await page.click('#camera');
    const started = Date.now();
    const deadline = started + 10_000;
    const receiverFrames = (l) => l.filter((x) => x.peer === 'receiver' && x.kind === 'media.stats' && x.frames > 0);
    const lines = await waitFor('media.stats from peer "receiver" with frames > 0', async () => {
      const l = await fetchLog(demo.base, room);
      return receiverFrames(l).length > 0 && l;
    }, 10_000, 250).catch(async (e) => {
      const l = await fetchLog(demo.base, room);
      throw new Error(`${e.message}; browser events: ${JSON.stringify(l.filter((x) => x.kind === 'browser.event').map((x) => x.what))}`);
    });
    t.diagnostic(`[camera] receiver media.stats with frames > 0 ${Date.now() - started} ms after the click`);
    const last = receiverFrames(lines).at(-1);
    t.diagnostic(`[camera] Rust receiver: ${last.frames} frames, ${Math.round(last.fps)} fps, decode errors ${last.decode_errors}`);
    assert.equal(await page.evaluate(() => window.rtclab.pc.signalingState), 'stable', 'renegotiation did not complete');
    // The page still decodes the sender's video after renegotiating.
    const a = (await inbound(page)).framesDecoded;
    await sleep(1500);
    assert.ok((await inbound(page)).framesDecoded > a, 'the remote video stopped after sending the camera');
    await screenshot(page, 'camera');

    // The Rust peer's feedback for the camera stream: TWCC it sends, logged as the receiver.
    const isTwccOut = (x) => x.kind === 'rtcp' && x.direction === 'out' && x.type === 'TWCC';
    await waitFor('rtcp out TWCC from peer "receiver"', async () => {
      const l = await fetchLog(demo.base, room);
      return l.some((x) => isTwccOut(x) && x.peer === 'receiver');
    }, Math.max(1000, deadline - Date.now()), 250).catch(async (e) => {
      const l = await fetchLog(demo.base, room);
      const byPeer = l.filter(isTwccOut).reduce((m, x) => ({ ...m, [x.peer]: (m[x.peer] || 0) + 1 }), {});
      throw new Error(`${e.message}; rtcp out TWCC lines by peer: ${JSON.stringify(byPeer)}`);
    });

    // Glass-to-glass latency of the camera: Chromium stamps abs-capture-time (about once a
    // second; the Rust receiver extrapolates the other frames by RTP timestamp). No PSNR: the
    // receiver cannot know the camera's source pictures, so it must say so (null).
    const qoe = await waitFor('a qoe line from peer "receiver" with a g2g median', async () => {
      const l = await fetchLog(demo.base, room);
      return l.find((x) => x.kind === 'qoe' && x.peer === 'receiver' && x.g2g_p50_ms != null);
    }, Math.max(2000, deadline + 3000 - Date.now()), 250);
    t.diagnostic(`[camera] glass-to-glass p50 ${qoe.g2g_p50_ms} ms, p95 ${qoe.g2g_p95_ms} ms (${qoe.g2g_ms.length} frames, ${qoe.g2g_interpolated} extrapolated)`);
    assert.ok(qoe.g2g_p50_ms > 0 && qoe.g2g_p50_ms < 1000, `camera g2g p50 ${qoe.g2g_p50_ms} ms`);
    assert.equal(qoe.psnr_db, null, 'PSNR for a source the receiver cannot know');
  });
  fs.rmSync(demo.out, { recursive: true, force: true });
});

test('banner: room full, and the signaling socket closing, each with retry', { timeout: 25_000 }, async (t) => {
  const demo = await session(t, 'banner', { demoCodec: 'h264', pageCodec: 'h264' }, async ({ demo, page, room, browser }) => {
    // The first page has the room with its Rust sender; a second page in that room is refused.
    await waitFor('the page to decode video', async () => (await inbound(page))?.framesDecoded > 0, 10_000);
    const second = await browser.context.newPage();
    try {
      await second.goto(`${demo.base}/?room=${room}&autostart=1`, { waitUntil: 'domcontentloaded' });
      await second.waitForSelector('#banner:not([hidden])', { timeout: 5000 });
      assert.match(await second.textContent('#banner-text'), /full/i);
      assert.ok(await second.isVisible('#retry'), 'no retry button on the room-full banner');
    } finally {
      await second.close();
    }
    // The first page is unaffected, then the server goes away.
    assert.ok(await page.isHidden('#banner'), 'the first page shows a banner');
    await demo.stop();
    await page.waitForSelector('#banner:not([hidden])', { timeout: 5000 });
    const text = await page.textContent('#banner-text');
    assert.match(text, /signaling socket closed|sender left/i);
    assert.ok(await page.isVisible('#retry'), 'no retry button');
    assert.equal(await page.textContent('#state-ws'), 'closed');
    await screenshot(page, 'banner');
  });
  fs.rmSync(demo.out, { recursive: true, force: true });
});
