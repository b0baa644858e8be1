// Breaking the network live from the demo page (issue 13): the real `rtclab demo`, headless
// Chromium, the page's network panel. Every change goes through the panel's controls (fill a
// field, click), never a direct fetch, and is checked three ways: the browser's own getStats(),
// the session log (/api/log) and what the page shows.
//
// Run: RTCLAB_BIN=target/debug/rtclab node --test --test-concurrency=1 tests/browser/impair.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  startDemo, launchBrowser, fetchLog, screenshot, inbound, inboundStats, impairState, uniqueRoom,
  waitFor, sleep,
} from './harness.mjs';

/** Opens `/?room=..&autostart=1` and waits for decoded video and an enabled network panel. */
async function openRoom(page, demo, room) {
  await page.goto(`${demo.base}/?room=${room}&codec=h264&autostart=1`, { waitUntil: 'domcontentloaded' });
  await waitFor(`room ${room}: the page to decode video`, async () => (await inbound(page))?.framesDecoded > 0, 15_000);
  // The panel stays disabled until it has read the session's state (GET /api/impair).
  await page.waitForSelector('#net-fields:not([disabled])', { timeout: 10_000 });
  assert.ok(await page.evaluate(() => window.rtclab.net.enabled), 'network panel not enabled');
  // A few seconds of clean link first: the charts (and screenshots) show the before and after.
  await chartPoints(page, 4);
}

/** Waits until the charts have `n` more points than when `from` were counted (one a second). */
async function chartPoints(page, n, from = 0) {
  return waitFor(`${n} chart points`, () => page.evaluate(({ n, from }) => window.rtclab.chartsPoints() >= from + n, { n, from }), (n + 10) * 1000, 200);
}

/** Screenshot once the charts have a few points after the change. */
async function shotAfter(page, name, points = 4) {
  const from = await page.evaluate(() => window.rtclab.chartsPoints());
  await chartPoints(page, points, from).catch(() => {});
  return screenshot(page, name);
}

/** Starts the demo and a browser in a fresh room, runs `body`, always stops both. */
async function session(t, name, body, { rooms = 1 } = {}) {
  const room = uniqueRoom(name);
  const demo = await startDemo({ room, codec: 'h264' });
  let browser;
  const pages = [];
  try {
    browser = await launchBrowser({ width: 1400, height: 900 });
    pages.push(browser.page);
    for (let i = 1; i < rooms; i++) {
      const p = await browser.context.newPage();
      p.setDefaultTimeout(10_000);
      pages.push(p);
    }
    const names = pages.map((_, i) => (i === 0 ? room : `${room}-${i + 1}`));
    // A page opened behind another is a background tab, whose timers Chromium throttles on a
    // CPU budget: under load its once-a-second stats loop (and so its charts) can stall for many
    // seconds. Each page is brought to the front while it opens.
    for (let i = 0; i < pages.length; i++) {
      await pages[i].bringToFront();
      await openRoom(pages[i], demo, names[i]);
    }
    await body({ demo, page: pages[0], pages, room, rooms: names });
  } catch (e) {
    for (const [i, p] of pages.entries()) await screenshot(p, `${name}${i ? `-${i + 1}` : ''}-failed`).catch(() => {});
    if (browser) {
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
  fs.rmSync(demo.out, { recursive: true, force: true });
}

/** The page's record of the last control click: performance.now() at the click and at the answer. */
const lastAction = (page) => page.evaluate(() => window.rtclab.net.actions.at(-1));

/** performance.now() when the page got the first impair.change line matching `pred` after `sinceMs`. */
async function changeArrival(page, sinceMs, pred, ms = 5000) {
  return waitFor('the impair.change line on the page', () => page.evaluate(({ sinceMs, src }) => {
    // eslint-disable-next-line no-new-func
    const test = new Function('ev', `return (${src})(ev);`);
    const hit = window.rtclab.net.changes.find((c) => c.ms >= sinceMs && test(c.ev));
    return hit ? { ms: hit.ms, ev: hit.ev } : null;
  }, { sinceMs, src: pred.toString() }), ms, 50);
}

/**
 * performance.now() of the first chart point after `sinceMs` whose `key` is above `above` (or
 * below `below`), or null.
 */
function firstPoint(page, key, sinceMs, { above = null, below = null } = { above: 0 }) {
  return page.evaluate(({ key, sinceMs, above, below }) => {
    const s = window.rtclab.chartsSeries();
    const hit = (v) => v != null && (above == null || v > above) && (below == null || v < below);
    const i = s.pageMs.findIndex((ms, j) => ms >= sinceMs && hit(s[key][j]));
    return i < 0 ? null : s.pageMs[i];
  }, { key, sinceMs, above, below });
}

const ms = (x) => `${Math.round(x)} ms`;

test('10 % loss on the media path from the panel: the browser loses packets and NACKs them', { timeout: 60_000 }, async (t) => {
  await session(t, 'impair-loss', async ({ demo, page, room }) => {
    const before = await inboundStats(page);
    await page.fill('#net-down-loss', '10');
    await page.click('#net-apply');
    const act = await waitFor('the apply request to finish', async () => {
      const a = await lastAction(page);
      return a && a.doneMs != null && a;
    }, 5000, 50);
    assert.equal(act.ok, true, `apply failed: ${act.error}`);
    const change = await changeArrival(page, act.clickMs,
      (ev) => ev.direction === 'downlink' && ev.source === 'page' && ev.settings && ev.settings.loss_pct === 10);
    t.diagnostic(`[loss] click -> POST answered ${ms(act.doneMs - act.clickMs)}, click -> impair.change on the page ${ms(change.ms - act.clickMs)}`);
    assert.ok(change.ms - act.clickMs < 3000, `the impair.change line took ${ms(change.ms - act.clickMs)} to reach the page`);

    // The panel shows the state in force.
    assert.equal(await page.inputValue('#net-down-loss'), '10');
    assert.match(await page.textContent('#net-down-now'), /loss 10 %/);

    // 10 % of ~300 packets/s: within 8 s the browser has lost some and sent NACKs for them.
    // packetsLost falls back as retransmissions fill the holes, so take the largest growth seen.
    let maxLost = 0;
    const after = await waitFor('packetsLost and nackCount rising in getStats()', async () => {
      const s = await inboundStats(page);
      maxLost = Math.max(maxLost, s.packetsLost - before.packetsLost);
      return maxLost > 0 && s.nackCount > before.nackCount && s;
    }, 8000, 250);
    t.diagnostic(`[loss] getStats: packetsLost grew by up to ${maxLost}, nackCount ${before.nackCount} -> ${after.nackCount}`);

    // The first chart point showing it (points come once a second).
    const firstNack = await waitFor('a chart point with NACKs', () => firstPoint(page, 'nackSent', act.clickMs), 5000);
    const firstLost = await firstPoint(page, 'lost', act.clickMs);
    t.diagnostic(`[loss] click -> first chart point with NACKs sent ${ms(firstNack - act.clickMs)}, with packets lost ${firstLost == null ? 'none yet' : ms(firstLost - act.clickMs)}`);

    // The session log has the change, with where it came from.
    const lines = await fetchLog(demo.base, room);
    const logged = lines.filter((l) => l.kind === 'impair.change' && l.source === 'page' && l.direction === 'downlink');
    assert.ok(logged.some((l) => l.settings && l.settings.loss_pct === 10), `impair.change lines: ${JSON.stringify(logged)}`);

    // The change is a marker on the charts.
    const marks = await page.evaluate(() => window.rtclab.chartsMarks());
    assert.ok(marks.lines.some((m) => m.kind === 'impair' && /loss 10 %/.test(m.text)), `chart marks: ${JSON.stringify(marks.lines)}`);
    await shotAfter(page, 'impair-loss');
  });
});

test('a 300 kbps cap on the media path: the estimate falls below it and the encoder scales down', { timeout: 60_000 }, async (t) => {
  await session(t, 'impair-cap', async ({ demo, page, room }) => {
    const start = (await inboundStats(page)).frameHeight;
    await page.fill('#net-down-rate', '300');
    await page.click('#net-apply');
    const act = await waitFor('the apply request to finish', async () => {
      const a = await lastAction(page);
      return a && a.doneMs != null && a;
    }, 5000, 50);
    assert.equal(act.ok, true, `apply failed: ${act.error}`);
    const change = await changeArrival(page, act.clickMs,
      (ev) => ev.direction === 'downlink' && ev.settings && ev.settings.rate_kbps === 300);
    t.diagnostic(`[cap] click -> impair.change on the page ${ms(change.ms - act.clickMs)}`);
    const at = change.ev.t;

    // The sender's estimate must find the bottleneck (under 300 kbps, headers and all) and the
    // encoder drop its resolution: the delay-based estimator sees the 300 ms queue fill within a
    // few seconds; 20 s is generous.
    const found = await waitFor('bwe.estimate below 300 kbps and a smaller resolution after the cap', async () => {
      const lines = await fetchLog(demo.base, room);
      const after = lines.filter((l) => l.peer === 'sender' && l.t >= at);
      const bwe = after.find((l) => l.kind === 'bwe.estimate' && l.target_bps < 300_000);
      const adapt = after.find((l) => l.kind === 'encoder.adapt' && l.to_height < l.from_height);
      const rate = after.find((l) => l.kind === 'encoder.rate' && l.height < start);
      return bwe && (adapt || rate) && { bwe, adapt, rate };
    }, 20_000, 500);
    t.diagnostic(`[cap] target ${Math.round(found.bwe.target_bps / 1000)} kbps at +${(found.bwe.t - at).toFixed(1)} s; ` +
      (found.adapt ? `encoder.adapt ${found.adapt.from_width}x${found.adapt.from_height} -> ${found.adapt.to_width}x${found.adapt.to_height} (${found.adapt.reason}) at +${(found.adapt.t - at).toFixed(1)} s` :
        `encoder.rate ${found.rate.width}x${found.rate.height} at +${(found.rate.t - at).toFixed(1)} s`));
    const firstBelow = await waitFor('a chart point with the target under 300 kbps',
      () => firstPoint(page, 'target', act.clickMs, { below: 300 }), 3000).catch(() => null);
    t.diagnostic(`[cap] click -> first chart point with the target under 300 kbps ${firstBelow == null ? 'none yet' : ms(firstBelow - act.clickMs)}`);

    // The page shows the capacity line, and the resolution change as a marker.
    // (impair.stats comes once a second, so the line may be a point or two behind the estimate.)
    await waitFor('the 300 kbps capacity line on the bitrate chart', () => page.evaluate(
      () => window.rtclab.chartsSeries().capacity.some((v) => v != null && Math.abs(v - 300) < 1)), 5000);
    if (found.adapt) {
      await waitFor('an encoder.adapt marker on the charts', () => page.evaluate(() => window.rtclab.chartsMarks().lines.some((m) => m.kind === 'adapt')), 3000);
    }
    await shotAfter(page, 'impair-cap', 5);
  });
});

test('a 3 s outage: the picture freezes, then decoding resumes', { timeout: 60_000 }, async (t) => {
  await session(t, 'impair-outage', async ({ demo, page, room }) => {
    const before = await inboundStats(page);
    await page.fill('#net-outage-s', '3');
    // Sample framesDecoded every 100 ms in the page from before the click: a gap is the freeze.
    await page.evaluate(() => {
      window.__frames = [];
      window.__framesTimer = setInterval(async () => {
        const pc = window.rtclab.pc;
        if (!pc) return;
        for (const s of (await pc.getStats()).values()) {
          if (s.type === 'inbound-rtp' && s.kind === 'video') window.__frames.push([performance.now(), s.framesDecoded]);
        }
      }, 100);
    });
    await page.click('#net-outage');
    const act = await waitFor('the outage request to finish', async () => {
      const a = await lastAction(page);
      return a && a.doneMs != null && a;
    }, 5000, 50);
    assert.equal(act.ok, true, `outage failed: ${act.error}`);
    const change = await changeArrival(page, act.clickMs, (ev) => ev.settings && ev.settings.outage === true);
    t.diagnostic(`[outage] click -> impair.change on the page ${ms(change.ms - act.clickMs)}`);

    // Frozen: framesDecoded stands still for a second or more (the 3 s outage, then the PLI and
    // the keyframe that end it); then it grows again. 15 s covers the outage and a slow repair.
    const result = await waitFor('a gap in framesDecoded, then frames again', () => page.evaluate((clickMs) => {
      const f = window.__frames.filter(([ms]) => ms >= clickMs - 200);
      let gap = null;
      for (let i = 1, still = 0; i < f.length; i++) {
        if (f[i][1] === f[still][1]) continue;
        if (f[i][0] - f[still][0] > 1000 && !gap) gap = { from: f[still][0], to: f[i][0], frames: f[i][1] };
        still = i;
      }
      const last = f.at(-1);
      return gap && last[1] > gap.frames + 10 ? { gap, last } : null;
    }, act.clickMs), 15_000, 250);
    await page.evaluate(() => clearInterval(window.__framesTimer));
    t.diagnostic(`[outage] frames stood still ${ms(result.gap.to - result.gap.from)} from ${ms(result.gap.from - act.clickMs)} after the click; framesDecoded back to growing (${result.last[1]})`);
    assert.ok(result.gap.to - result.gap.from < 12_000, 'the picture froze for more than 12 s');

    // The browser counted the freeze (freezeCount, W3C rule), and the page drew it.
    const after = await waitFor('freezeCount rising', async () => {
      const s = await inboundStats(page);
      return s.freezeCount > before.freezeCount && s;
    }, 3000);
    t.diagnostic(`[outage] freezeCount ${before.freezeCount} -> ${after.freezeCount}, totalFreezesDuration +${(after.totalFreezesDuration - before.totalFreezesDuration).toFixed(2)} s`);
    const bands = await waitFor('a freeze band on the charts', async () => {
      const m = await page.evaluate(() => window.rtclab.chartsMarks());
      return m.bands.some((b) => b.kind === 'freeze') && m.bands;
    }, 3000);
    t.diagnostic(`[outage] bands: ${bands.map((b) => `${b.kind} ${b.text}`).join(', ')}`);

    // The log says the outage came from the page's outage button, and that it ended.
    const lines = await fetchLog(demo.base, room);
    const outage = lines.filter((l) => l.kind === 'impair.change' && l.t >= change.ev.t - 0.01);
    assert.ok(outage.some((l) => l.settings && l.settings.outage === true), `impair.change lines: ${JSON.stringify(outage)}`);
    await shotAfter(page, 'impair-outage', 3);
  });
});

test('a bad value (loss 150 %): the page shows the server\'s error and the session goes on', { timeout: 60_000 }, async (t) => {
  await session(t, 'impair-bad', async ({ page }) => {
    await page.fill('#net-down-loss', '150');
    await page.click('#net-apply');
    await page.waitForSelector('#net-error:not([hidden])', { timeout: 5000 });
    const text = await page.textContent('#net-error');
    t.diagnostic(`[bad value] the page shows: ${text}`);
    assert.match(text, /loss_pct/, 'the error does not name the field');
    assert.match(text, /150/, 'the error does not quote the value');
    const act = await lastAction(page);
    assert.equal(act.ok, false);

    // The session goes on: frames keep coming; the link is still clean.
    const a = (await inbound(page)).framesDecoded;
    await sleep(2000);
    const b = (await inbound(page)).framesDecoded;
    assert.ok(b - a >= 20, `framesDecoded grew by only ${b - a} in 2 s after the refused change`);
    const state = await page.evaluate(() => window.rtclab.net.state);
    assert.ok(!state.downlink.loss_pct, `the refused loss is in force: ${JSON.stringify(state.downlink)}`);
    await screenshot(page, 'impair-bad-value');

    // The next good change clears the error.
    await page.fill('#net-down-loss', '1');
    await page.click('#net-apply');
    await page.waitForSelector('#net-error', { state: 'hidden', timeout: 5000 });
  });
});

test('two rooms at once: impairing one leaves the other clean', { timeout: 90_000 }, async (t) => {
  await session(t, 'impair-rooms', async ({ demo, pages, rooms }) => {
    const [a, b] = pages;
    const beforeB = await inboundStats(b);
    const beforeA = await inboundStats(a);
    await a.bringToFront();
    await a.fill('#net-down-loss', '10');
    await a.click('#net-apply');
    await waitFor('loss in room A (nackCount rising)', async () => (await inboundStats(a)).nackCount > beforeA.nackCount + 5, 8000, 250);
    await sleep(3000);
    const afterB = await inboundStats(b);
    const afterA = await inboundStats(a);
    t.diagnostic(`[rooms] A: nackCount ${beforeA.nackCount} -> ${afterA.nackCount}; B: packetsLost ${beforeB.packetsLost} -> ${afterB.packetsLost}, nackCount ${beforeB.nackCount} -> ${afterB.nackCount}`);
    // Room B's link is clean: at most a couple of packets lost to a busy machine, no more.
    assert.ok(afterB.packetsLost - beforeB.packetsLost <= 3, `room B lost ${afterB.packetsLost - beforeB.packetsLost} packets`);
    assert.ok(afterB.framesDecoded > beforeB.framesDecoded, 'room B stopped decoding');

    const logA = await fetchLog(demo.base, rooms[0]);
    const logB = await fetchLog(demo.base, rooms[1]);
    assert.ok(logA.some((l) => l.kind === 'impair.change' && l.source === 'page'), 'room A has no impair.change from the page');
    assert.ok(!logB.some((l) => l.kind === 'impair.change' && l.source === 'page'), `room B has impair.change lines: ${JSON.stringify(logB.filter((l) => l.kind === 'impair.change'))}`);
    const stateB = await impairState(demo.base, rooms[1]);
    assert.deepEqual(stateB.downlink, {}, `room B's downlink: ${JSON.stringify(stateB.downlink)}`);
    assert.equal(await b.inputValue('#net-down-loss'), '', 'room B\'s panel shows a loss');
    await screenshot(a, 'impair-rooms-a');
    await b.bringToFront();
    await screenshot(b, 'impair-rooms-b');
  }, { rooms: 2 });
});

// Not the network, but what a new user meets first: without web/node_modules the charts cannot
// load, and the page must say what to run instead of silently drawing nothing.
test('no uPlot (web/node_modules missing): the page says what to run', { timeout: 30_000 }, async (t) => {
  const room = uniqueRoom('no-uplot');
  const demo = await startDemo({ room, codec: 'h264' });
  const browser = await launchBrowser({ width: 1280, height: 720 });
  try {
    const { page } = browser;
    // What the demo's static server answers for a file that is not there.
    await page.route('**/node_modules/uplot/**', (route) => route.fulfill({ status: 404, body: 'not found' }));
    await page.goto(`${demo.base}/?room=${room}&codec=h264&autostart=1`, { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('#charts-missing:not([hidden])', { timeout: 5000 });
    const text = await page.textContent('#charts-missing');
    t.diagnostic(`[no uPlot] ${text}`);
    assert.match(text, /\.\/lab demo/);
    assert.match(text, /npm ci --prefix web/);
    assert.equal(await page.evaluate(() => window.rtclab.chartsLoaded), false);
    // The rest of the page works: the session starts and the video decodes.
    await waitFor('the page to decode video', async () => (await inbound(page))?.framesDecoded > 0, 15_000);
    await screenshot(page, 'no-uplot');
  } finally {
    await browser.close();
    await demo.stop();
    fs.rmSync(demo.out, { recursive: true, force: true });
  }
});
