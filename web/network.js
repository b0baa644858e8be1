// The network panel: break the session's network live. The Rust sender's UDP sockets go through
// rtclab's impairment engine (netem/), one per room; this panel reads and changes it over HTTP:
//
//   GET  /api/scenarios        the shipped scenarios and presets (for the two <select>s)
//   GET  /api/impair?room=R    the settings in force both ways, and the scenario playing
//   POST /api/impair?room=R    {action: set | replace | outage | play | reset, ...}
//
// Every change the server makes comes back as an `impair.change` line of the session log; the
// panel re-reads the state then, so it always shows what is in force (a scenario's steps too).
// The server checks every value (the scenario files' parser and its messages); the panel does not
// second-guess it and shows its error text as it is.

import { arrow, num, settingsText } from './format.js';

const $ = (id) => document.getElementById(id);

/** The panel's inputs: id suffix, the scenario file's key, kind. Both directions have each. */
const FIELDS = [
  { id: 'loss', key: 'loss_pct' },
  { id: 'burst-p', key: 'burst.p_pct' },
  { id: 'burst-r', key: 'burst.r_pct' },
  { id: 'delay', key: 'delay_ms' },
  { id: 'jitter', key: 'jitter_ms' },
  { id: 'rate', key: 'rate_kbps' },
  { id: 'queue', key: 'queue_ms' },
  { id: 'reorder', key: 'reorder', bool: true },
  { id: 'dup', key: 'duplicate_pct' },
];
const DIRS = { downlink: 'down', uplink: 'up' };
/** Keys the panel has no input for: kept as they are when "Apply" replaces a direction. */
const KEPT = ['drop_every_nth', 'jitter_distribution', 'queue_bytes', 'overhead_bytes'];

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  /** No session to control: none in the room (404), or it has ended (the server says so). */
  get sessionGone() {
    return this.status === 404 || /has ended/.test(this.message);
  }
}

/**
 * `clock.now()`: session seconds now (the log's `t`), or null before the first log line;
 * `clock.observe(t, lagS)`: session time `t` was current `lagS` seconds ago. `onState(state)`:
 * every state read.
 */
export function createNetworkPanel({ room, clock, onState = () => {} }) {
  const net = {
    room: null,          // the room whose session the panel controls, null = none
    state: null,         // last GET/POST answer
    scenarios: [],       // from /api/scenarios
    apiMissing: false,   // this rtclab has no /api/impair (an older build)
    dirty: new Set(),    // inputs edited since the last state shown (not overwritten by a refresh)
    changes: [],         // impair.change lines as they arrived: {ms: performance.now(), ev}
    actions: [],         // control clicks: {action, clickMs, doneMs, ok, error}
    attachTimer: null,
    refreshTimer: null,
    nowTimer: null,
  };

  // ---- HTTP ---------------------------------------------------------------------------------

  async function api(method, body) {
    const url = `/api/impair?room=${encodeURIComponent(net.room ?? room())}`;
    const sentAt = performance.now();
    const res = await fetch(url, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(5000),
    });
    let data = null;
    try { data = await res.json(); } catch { /* not JSON: say the status */ }
    if (!res.ok) throw new ApiError(res.status, (data && data.error) || `HTTP ${res.status} ${res.statusText}`);
    // The state's t is the session clock when the server answered: somewhere in the request.
    if (data && typeof data.t === 'number') clock.observe(data.t, (performance.now() - sentAt) / 2000);
    return data;
  }

  async function loadScenarios() {
    try {
      const res = await fetch('/api/scenarios', { signal: AbortSignal.timeout(5000) });
      if (res.status === 404) {
        net.apiMissing = true;
        status('this rtclab build has no live impairment API (GET /api/scenarios: 404): rebuild it', 'bad');
        return;
      }
      const data = await res.json();
      net.scenarios = Array.isArray(data.scenarios) ? data.scenarios : [];
    } catch (err) {
      status(`could not read the scenario list: ${err.message}`, 'bad');
      return;
    }
    const fill = (sel, kind, first) => {
      const opts = net.scenarios.filter((s) => s.kind === kind).map((s) => {
        const o = document.createElement('option');
        o.value = s.name;
        o.textContent = s.name;
        o.title = s.description || '';
        return o;
      });
      const head = document.createElement('option');
      head.value = '';
      head.textContent = first;
      sel.replaceChildren(head, ...opts);
    };
    fill($('net-preset'), 'preset', 'preset…');
    fill($('net-scenario'), 'scenario', 'scenario…');
  }

  // ---- session attach / detach ----------------------------------------------------------------

  /** A session exists (or is starting) in `name`: poll its state until the server has it. */
  function attach(name) {
    detach('waiting for the session…');
    showError(null);
    net.room = name;
    const deadline = performance.now() + 30_000;
    const poll = async () => {
      if (net.room !== name) return;
      try {
        show(await api('GET'));
        enable(true);
      } catch (err) {
        // 404 until the Rust sender's session exists (or a slow answer on a busy machine):
        // ask again for up to 30 s, then say why there is nothing to control.
        if (net.room !== name) return;
        if (performance.now() < deadline) {
          net.attachTimer = setTimeout(poll, 500);
          return;
        }
        status(`no impairment for this session: ${err.message}`, 'bad');
      }
    };
    poll();
  }

  function detach(why = 'no session: press Start, then break its network here') {
    clearTimeout(net.attachTimer);
    clearTimeout(net.refreshTimer);
    net.room = null;
    net.state = null;
    net.dirty.clear();
    enable(false);
    renderTimeline();
    if (!net.apiMissing) status(why);
  }

  function enable(on) {
    // One fieldset: nothing can be sent without a session whose state was read.
    $('net-fields').disabled = !on;
  }

  // ---- showing the state ----------------------------------------------------------------------

  function get(obj, path) {
    return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }

  function show(state) {
    if (!state) return;
    net.state = state;
    for (const [dir, short] of Object.entries(DIRS)) {
      const s = state[dir] || {};
      for (const f of FIELDS) {
        const el = $(`net-${short}-${f.id}`);
        if (net.dirty.has(el.id) && document.activeElement === el) continue;  // being typed in
        net.dirty.delete(el.id);
        el.classList.remove('dirty');
        const v = get(s, f.key);
        if (f.bool) el.checked = !!v;
        else el.value = v == null || v === false ? '' : String(num(v, 3));
      }
      // What is in force without an input of its own (a preset's or scenario's extras).
      const extra = [];
      if (s.outage) extra.push('outage now');
      if (s.drop_every_nth) extra.push(`drop every ${s.drop_every_nth}th`);
      if (s.jitter_ms && s.jitter_distribution === 'normal') extra.push('jitter normal');
      if (s.queue_bytes) extra.push(`queue ${s.queue_bytes} B`);
      if (s.overhead_bytes != null) extra.push(`overhead ${s.overhead_bytes} B`);
      if (s.burst && (s.burst.loss_in_bad_pct ?? 100) !== 100) extra.push(`loss in bad ${num(s.burst.loss_in_bad_pct)} %`);
      if (s.burst && s.burst.loss_in_good_pct) extra.push(`loss in good ${num(s.burst.loss_in_good_pct)} %`);
      $(`net-${short}-extra`).textContent = extra.join(' · ');
      $(`net-${short}-now`).textContent = settingsText(nonEmpty(s));
    }
    const p = state.playing;
    status(p ? `playing ${p.kind} ${p.name}` : 'in force now: the fields above (empty = off)', p ? 'play' : '');
    renderTimeline();
    onState(state);
  }

  function nonEmpty(s) {
    const out = {};
    for (const [k, v] of Object.entries(s || {})) if (v != null && v !== false) out[k] = v;
    return Object.keys(out).length ? out : null;
  }

  function status(text, cls = '') {
    const el = $('net-status');
    el.textContent = text;
    el.className = cls ? `muted ${cls}` : 'muted';
  }

  function showError(err) {
    const el = $('net-error');
    if (!err) {
      el.hidden = true;
      el.textContent = '';
      return;
    }
    el.textContent = err.status ? `${err.message} (HTTP ${err.status})` : err.message;
    el.hidden = false;
  }

  // ---- reading the inputs ---------------------------------------------------------------------

  /** A direction's settings as the panel shows them, for "replace". Empty or 0 = off (absent). */
  function read(dir) {
    const short = DIRS[dir];
    const cur = (net.state && net.state[dir]) || {};
    const out = {};
    const numOf = (id) => {
      const el = $(`net-${short}-${id}`);
      if (el.value.trim() === '') return null;
      const v = Number(el.value);
      // Not a number: send the text so the server's message names the field.
      return Number.isNaN(v) ? el.value : v;
    };
    const put = (key, v) => { if (v != null && v !== 0) out[key] = v; };
    put('loss_pct', numOf('loss'));
    const p = numOf('burst-p');
    const r = numOf('burst-r');
    if ((p != null && p !== 0) || (r != null && r !== 0)) {
      out.burst = { p_pct: p ?? 0, r_pct: r ?? 0 };
      // The parts the panel does not show stay what they were.
      if (cur.burst && cur.burst.loss_in_bad_pct != null) out.burst.loss_in_bad_pct = cur.burst.loss_in_bad_pct;
      if (cur.burst && cur.burst.loss_in_good_pct != null) out.burst.loss_in_good_pct = cur.burst.loss_in_good_pct;
    }
    put('delay_ms', numOf('delay'));
    put('jitter_ms', numOf('jitter'));
    put('rate_kbps', numOf('rate'));
    put('queue_ms', numOf('queue'));
    if ($(`net-${short}-reorder`).checked) out.reorder = true;
    put('duplicate_pct', numOf('dup'));
    for (const k of KEPT) {
      if (cur[k] == null) continue;
      if (k === 'queue_bytes' && out.queue_ms != null) continue;        // one queue bound
      if (k === 'jitter_distribution' && out.jitter_ms == null) continue;
      out[k] = cur[k];
    }
    return out;
  }

  // ---- actions --------------------------------------------------------------------------------

  /** Sends one action; shows the new state, or the server's error next to the panel. */
  async function act(body, label = body.action) {
    const rec = { action: label, clickMs: performance.now(), doneMs: null, ok: null, error: null };
    net.actions.push(rec);
    try {
      const state = await api('POST', { ...body, source: 'page' });
      rec.doneMs = performance.now();
      rec.ok = true;
      showError(null);
      net.dirty.clear();
      show(state);
      return state;
    } catch (err) {
      rec.doneMs = performance.now();
      rec.ok = false;
      rec.error = err.message;
      showError(err);
      if (err.sessionGone) detach(`the session ended: ${err.message}`);
      return null;
    }
  }

  const apply = () => act({ action: 'replace', downlink: read('downlink'), uplink: read('uplink') }, 'apply');
  const reset = () => act({ action: 'reset' });
  const outage = () => {
    const raw = $('net-outage-s').value.trim();
    const seconds = raw === '' ? 3 : Number(raw);
    return act({ action: 'outage', seconds: Number.isNaN(seconds) ? raw : seconds, direction: 'both' });
  };
  const play = (name) => act({ action: 'play', scenario: name }, `play ${name}`);

  // ---- the log's impair.change lines ----------------------------------------------------------

  function onLogEvent(ev) {
    if (ev.kind !== 'impair.change') return;
    net.changes.push({ ms: performance.now(), ev });
    if (net.changes.length > 500) net.changes.splice(0, net.changes.length - 500);
    // One action logs a line per direction: read the state once after both.
    if (!net.room || $('net-fields').disabled) return;
    clearTimeout(net.refreshTimer);
    net.refreshTimer = setTimeout(() => {
      api('GET').then(show).catch((err) => {
        if (err.sessionGone) detach(`the session ended: ${err.message}`);
      });
    }, 120);
  }

  // ---- the scenario timeline ------------------------------------------------------------------

  /** Steps of the playing scenario as bands (periods) and ticks (changes), and a moving "now". */
  function renderTimeline() {
    const box = $('net-timeline');
    const p = net.state && net.state.playing;
    clearInterval(net.nowTimer);
    if (!p) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    const steps = Array.isArray(p.steps) ? p.steps : [];
    const start = p.started_t ?? 0;
    const lastStep = Math.max(0, ...steps.map((s) => (s.until_t ?? s.at_t ?? start) - start));
    const span = Math.max(p.duration_s || 0, lastStep + 1, 1);
    const pct = (t) => `${Math.min(100, Math.max(0, ((t - start) / span) * 100))}%`;

    const head = document.createElement('div');
    head.className = 'tl-head';
    const title = document.createElement('b');
    title.textContent = `${p.kind || 'scenario'} ${p.name}`;
    const clockEl = document.createElement('span');
    clockEl.className = 'tl-clock';
    head.append(title, clockEl);

    const lanes = [];
    for (const dir of ['downlink', 'uplink']) {
      const own = steps.filter((s) => s.direction === dir);
      if (!own.length) continue;
      const lane = document.createElement('div');
      lane.className = 'tl-lane';
      lane.dataset.direction = dir;
      const name = document.createElement('span');
      name.className = 'tl-name';
      name.textContent = arrow(dir);
      name.title = dir === 'downlink' ? 'media path (downlink)' : 'feedback path (uplink)';
      const track = document.createElement('div');
      track.className = 'tl-track';
      own.forEach((s, i) => {
        const el = document.createElement('div');
        const text = settingsText(s.settings);
        el.className = s.until_t != null ? 'tl-band' : 'tl-tick';
        el.style.left = pct(s.at_t);
        if (s.until_t != null) el.style.width = `calc(${pct(s.until_t)} - ${pct(s.at_t)})`;
        el.title = `${num(s.at_t - start, 1)} s${s.until_t != null ? `–${num(s.until_t - start, 1)} s` : ''}: ${text}`;
        const label = document.createElement('span');
        label.className = `tl-label row${i % 2}`;
        label.textContent = text;
        el.append(label);
        if (s.settings && s.settings.outage) el.classList.add('outage');
        track.append(el);
      });
      const now = document.createElement('div');
      now.className = 'tl-now';
      track.append(now);
      lane.append(name, track);
      lanes.push(lane);
    }
    if (!lanes.length) {
      // A preset (or a scenario without a schedule): one constant link, no clock to show.
      const none = document.createElement('div');
      none.className = 'muted';
      none.textContent = 'no scheduled steps: these settings hold until you change them';
      box.replaceChildren(head, none);
      box.hidden = false;
      return;
    }
    box.replaceChildren(head, ...lanes);
    box.hidden = false;
    const tick = () => {
      const now = clock.now();
      if (now == null) return;
      const at = now - start;
      clockEl.textContent = at <= span ? `${num(at, 0)} s of ${num(span, 0)} s` : `done (${num(span, 0)} s)`;
      for (const el of box.querySelectorAll('.tl-now')) el.style.left = pct(now);
    };
    tick();
    net.nowTimer = setInterval(tick, 250);
  }

  // ---- wiring ---------------------------------------------------------------------------------

  function describe(sel) {
    const s = net.scenarios.find((x) => x.name === sel.value);
    $('net-desc').textContent = s ? `${s.name}: ${s.description || ''}` : '';
  }

  function init() {
    for (const short of Object.values(DIRS)) {
      for (const f of FIELDS) {
        const el = $(`net-${short}-${f.id}`);
        const mark = () => { net.dirty.add(el.id); el.classList.add('dirty'); };
        el.addEventListener('input', mark);
        el.addEventListener('change', mark);
        // Enter in a field applies, like a form.
        if (!f.bool) el.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); apply(); } });
      }
    }
    $('net-apply').onclick = () => apply();
    $('net-reset').onclick = () => reset();
    $('net-outage').onclick = () => outage();
    $('net-preset').onchange = () => {
      const sel = $('net-preset');
      describe(sel);
      if (sel.value) play(sel.value).then(() => { sel.value = ''; });
    };
    $('net-scenario').onchange = () => describe($('net-scenario'));
    $('net-play').onclick = () => {
      const name = $('net-scenario').value;
      if (!name) {
        showError(new Error('pick a scenario first'));
        return;
      }
      play(name);
    };
    detach();
    loadScenarios();
  }

  init();

  return {
    attach, detach, onLogEvent,
    refresh: () => api('GET').then(show),
    get state() { return net.state; },
    get scenarios() { return net.scenarios; },
    get changes() { return net.changes; },
    get actions() { return net.actions; },
    get enabled() { return !$('net-fields').disabled; },
    apply, reset, outage, play, read,
  };
}
