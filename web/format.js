// How the page shows numbers and session-log lines to a person: rounded by what the field
// measures (its name says: _ms, _bps, _pct, ...), never the raw float noise of a measurement
// (`rtt 4.384075999999999 ms`). Only the view is rounded; "Download log" serves the raw lines.

/** A number with at most `digits` decimals, trailing zeros dropped (1.50 -> "1.5", 3.00 -> "3"). */
export function num(x, digits = 1) {
  if (x == null || Number.isNaN(x)) return '–';
  if (!Number.isFinite(x)) return String(x);
  return String(Number(x.toFixed(digits)));
}

/** bit/s as kbps (or Mbps from 10 Mbps on), the unit the page's charts use. */
export function bps(x) {
  if (x == null) return '–';
  if (Math.abs(x) >= 10e6) return `${num(x / 1e6, 1)} Mbps`;
  return `${num(x / 1000, Math.abs(x) < 10e3 ? 1 : 0)} kbps`;
}

/** A plain number: integers as they are, other values with 3 significant decimals at most. */
function plain(x) {
  if (Number.isInteger(x)) return String(x);
  const a = Math.abs(x);
  return num(x, a >= 100 ? 1 : a >= 1 ? 2 : 3);
}

/** One field, formatted after its name's unit suffix: [shown name, shown value]. */
export function field(key, value) {
  if (typeof value !== 'number') return [key, value];
  const unit = [
    [/_bps$/, (v) => bps(v)],
    [/_kbps$/, (v) => `${num(v, 0)} kbps`],
    [/_ms$/, (v) => `${num(v, 1)} ms`],
    [/_s$/, (v) => `${num(v, 2)} s`],
    [/_pct$/, (v) => `${num(v, 1)} %`],
    [/_db$/, (v) => `${num(v, 2)} dB`],
    [/_bytes$/, (v) => `${v} B`],
  ].find(([re]) => re.test(key));
  if (!unit) return [key, plain(value)];
  return [key.replace(unit[0], ''), unit[1](value)];
}

/**
 * An object as `key value · key value`, nested objects in braces, long lists shortened; what the
 * log view shows for the kinds without a summary of their own.
 */
export function compactFields(obj, max = 240) {
  const text = fields(obj);
  return text.length > max ? text.slice(0, max) + '…' : text;
}

function fields(obj) {
  if (obj == null) return String(obj);
  if (Array.isArray(obj)) {
    const items = obj.slice(0, 8).map((x) => (typeof x === 'object' && x ? `{${fields(x)}}` : typeof x === 'number' ? plain(x) : String(x)));
    return `[${items.join(', ')}${obj.length > 8 ? `, … ${obj.length} in all` : ''}]`;
  }
  if (typeof obj !== 'object') return typeof obj === 'number' ? plain(obj) : String(obj);
  const parts = [];
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (v && typeof v === 'object') {
      parts.push(Array.isArray(v) ? `${k} ${fields(v)}` : `${k} {${fields(v)}}`);
    } else {
      const [name, shown] = field(k, v);
      parts.push(`${name} ${shown}`);
    }
  }
  return parts.join(' · ');
}

// ---------------------------------------------------------------------------------------------
// impairment settings in a few words (panel, timeline, chart markers and the log view)

const DIR_ARROW = { downlink: '↓', uplink: '↑' };
export const arrow = (direction) => DIR_ARROW[direction] ?? direction;

/**
 * Impairment settings (the scenario files' keys) as short words: "loss 10 % · rate 300 kbps".
 * `null`/empty settings are a clean link.
 */
export function settingsText(s) {
  if (s == null) return 'clean';
  const parts = [];
  const on = (v) => v != null && v !== false && v !== 0;
  if (s.outage) parts.push('outage');
  if (on(s.loss_pct)) parts.push(`loss ${num(s.loss_pct, 1)} %`);
  if (s.burst && on(s.burst.p_pct)) parts.push(`burst p ${num(s.burst.p_pct, 2)} % r ${num(s.burst.r_pct, 1)} %`);
  if (on(s.drop_every_nth)) parts.push(`drop every ${s.drop_every_nth}th`);
  if (on(s.delay_ms)) parts.push(`delay ${num(s.delay_ms, 1)} ms`);
  if (on(s.jitter_ms)) parts.push(`jitter ±${num(s.jitter_ms, 1)} ms${s.jitter_distribution === 'normal' ? ' (normal)' : ''}`);
  if (s.reorder) parts.push('reorder');
  if (on(s.duplicate_pct)) parts.push(`dup ${num(s.duplicate_pct, 1)} %`);
  if (on(s.rate_kbps)) parts.push(`rate ${num(s.rate_kbps, 0)} kbps`);
  if (on(s.queue_ms)) parts.push(`queue ${num(s.queue_ms, 0)} ms`);
  if (on(s.queue_bytes)) parts.push(`queue ${s.queue_bytes} B`);
  // A change that turns things off lists them with null (back to the default), false or 0.
  for (const [k, v] of Object.entries(s)) {
    if (v !== null && v !== false && v !== 0) continue;
    if (k === 'outage') parts.push('outage over');
    else if (k === 'reorder') parts.push('no reorder');
    else if (k === 'jitter_distribution') parts.push('jitter uniform');
    else parts.push(`${k.replace(/_(pct|ms|kbps|bytes)$/, '').replace(/_/g, ' ')} off`);
  }
  return parts.length ? parts.join(' · ') : 'clean';
}
