// The demo's embedded STUN/TURN server and the page's "relay only" switch: `rtclab demo` hands the
// page a TURN server with credentials of its own in `joined`; with `?relay=1` the page's
// connection is relay-only, its video decodes, its selected pair has a relay local candidate from
// that server, and the candidate table shows the server URL and the relay transport.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDemo, launchBrowser, screenshot, uniqueRoom, waitFor, inbound } from './harness.mjs';

test('relay only: the page relays through the demo\'s TURN server', { timeout: 30_000 }, async (t) => {
  const room = uniqueRoom('relay');
  const demo = await startDemo({ room });
  t.after(() => demo.stop());
  assert.match(demo.output(), /STUN\/TURN server on udp 127\.0\.0\.1:\d+/, 'the demo starts its TURN server');
  const b = await launchBrowser();
  t.after(() => b.close());
  await b.page.goto(`${demo.url}&autostart=1&relay=1`);
  assert.equal(await b.page.isChecked('#relay'), true, '?relay=1 sets the switch');

  // A relayed connect takes ~3 s here (webrtc-rs on the other side); 15 s is generous.
  const frames = await waitFor('30 decoded frames', async () => {
    const s = await inbound(b.page);
    return s && s.framesDecoded >= 30 ? s.framesDecoded : null;
  }, 15_000);

  const path = await b.page.evaluate(async () => {
    const pc = window.rtclab.pc;
    const stats = [...(await pc.getStats()).values()];
    const transport = stats.find((s) => s.type === 'transport');
    const pair = stats.find((s) => s.id === transport.selectedCandidatePairId);
    const local = stats.find((s) => s.id === pair.localCandidateId);
    return {
      policy: pc.getConfiguration().iceTransportPolicy,
      gathered: stats.filter((s) => s.type === 'local-candidate').map((s) => s.candidateType),
      local: { type: local.candidateType, url: local.url, relayProtocol: local.relayProtocol },
    };
  });
  assert.equal(path.policy, 'relay');
  assert.ok(path.gathered.length > 0 && path.gathered.every((x) => x === 'relay'), `relay-only gathers relays only: ${path.gathered}`);
  assert.equal(path.local.type, 'relay');
  assert.match(path.local.url || '', /^turn:127\.0\.0\.1:\d+\?transport=udp$/);
  assert.equal(path.local.relayProtocol, 'udp');

  // The candidate table shows the server and the relay transport (filled once a second).
  const row = await waitFor('a relay row in the candidate table', async () => {
    const rows = await b.page.$$eval('#candidates-body tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    return rows.find((r) => r[0] === 'local' && r[1] === 'relay');
  }, 5_000);
  assert.match(row[7], /^turn:/, `server column: ${row}`);
  assert.equal(row[8], 'udp', `relay-via column: ${row}`);
  t.diagnostic(`relay-only page: ${frames} frames decoded via ${path.local.url}`);
  await screenshot(b.page, 'relay-only');
});
