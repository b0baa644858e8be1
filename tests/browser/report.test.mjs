// report.html renders in a real browser: a short clean run's report opens in headless Chromium
// without a script error, and its session-flow sequence diagram is drawn with every participant
// (issue 14 #1). The page is self-contained: it is opened from disk, with no server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO, RTCLAB_BIN, launchBrowser, screenshot } from './harness.mjs';

test('report.html: the sequence diagram renders with sender, signaling and receiver', { timeout: 60_000 }, async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'rtclab-report-'));
  t.after(() => fs.rmSync(out, { recursive: true, force: true }));
  // 3 s is enough for the whole startup (signaling, ICE, DTLS, first frame: ~0.6 s on loopback).
  const run = spawnSync(RTCLAB_BIN, ['run', path.join(REPO, 'scenarios', 'clean.toml'),
    '--duration', '3', '--out', out], { encoding: 'utf8', timeout: 40_000 });
  assert.equal(run.status, 0, `rtclab run failed: ${run.stderr}`);

  const b = await launchBrowser({ width: 1400, height: 900 });
  t.after(() => b.close());
  await b.page.goto(pathToFileURL(path.join(out, 'report.html')).href);
  const diagram = b.page.locator('svg[aria-label="Sequence diagram of the session"]');
  await diagram.waitFor();
  const shown = await diagram.evaluate((svg) => {
    const r = svg.getBoundingClientRect();
    return {
      width: r.width,
      height: r.height,
      texts: [...svg.querySelectorAll('text')].map((x) => x.textContent),
    };
  });
  assert.ok(shown.width > 300 && shown.height > 200, `diagram drawn at ${shown.width}x${shown.height}`);
  for (const who of ['sender', 'signaling', 'receiver']) {
    assert.ok(shown.texts.some((x) => x.toLowerCase().includes(who)), `no ${who} in ${shown.texts.slice(0, 6)}`);
  }
  for (const step of ['ICE connected', 'DTLS connected', 'first RTP']) {
    assert.ok(shown.texts.some((x) => x.includes(step)), `no "${step}" step`);
  }
  const body = await b.page.locator('body').innerText();
  assert.match(body, /startup delay \d+ ms: signaling \d+ ms, ICE \d+ ms, DTLS \d+ ms, first frame \d+ ms/);
  const errors = b.consoleLines.filter((l) => l.startsWith('error') || l.startsWith('pageerror'));
  assert.deepEqual(errors, [], 'the report page logged errors');
  await diagram.scrollIntoViewIfNeeded();
  await screenshot(b.page, 'report-session-flow');
});
