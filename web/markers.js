// Marks on the charts at session-log times: vertical lines with a short label (every impairment
// change, every resolution change), small ticks (keyframes) and shaded bands (freezes). Cause and
// effect then line up across the charts: the loss starts at the red line, NACKs rise after it.
//
// A uPlot plugin: the bands are drawn under the series (hook drawClear), the lines and labels over
// them (hook draw), both in canvas pixels, clipped to the plot area.

/** What each kind of mark looks like. */
export const MARK_STYLE = {
  impair: { color: '#b91c1c', dash: [5, 3], width: 1.5, label: true },
  adapt: { color: '#7c3aed', dash: [], width: 1.5, label: true },
  key: { color: '#7c3aed', tick: true },
  freeze: { fill: 'rgba(220, 38, 38, 0.13)', text: '#991b1b' },
  stall: { fill: 'rgba(220, 38, 38, 0.08)', text: '#991b1b' },
  camfreeze: { fill: 'rgba(217, 119, 6, 0.15)', text: '#92400e' },
};

/**
 * The marks shared by every chart: `lines` [{t, kind, text}], `bands` [{from, to, kind, text}].
 * Times are session seconds (the log's `t`), the charts' x.
 */
export function createMarks() {
  const marks = { lines: [], bands: [] };
  return {
    marks,
    clear() { marks.lines.length = 0; marks.bands.length = 0; },
    /**
     * Adds a line; one within `mergeS` of a line of the same kind is merged into it (one
     * "apply" changes both directions at once: one line, "↓ loss 10 % | ↑ clean").
     */
    line(t, kind, text, mergeS = 0.3) {
      const near = marks.lines.find((m) => m.kind === kind && Math.abs(m.t - t) <= mergeS);
      if (near) {
        if (text && !near.parts.includes(text)) near.parts.push(text);
        near.text = mergeParts(near.parts);
        return near;
      }
      const m = { t, kind, parts: text ? [text] : [], text };
      marks.lines.push(m);
      return m;
    },
    band(from, to, kind, text) {
      const b = { from, to, kind, text };
      marks.bands.push(b);
      return b;
    },
    /** Forgets marks older than `t` (the charts show a minute). */
    trim(t) {
      const keepL = marks.lines.filter((m) => m.t >= t);
      const keepB = marks.bands.filter((b) => b.to >= t);
      marks.lines.splice(0, marks.lines.length, ...keepL);
      marks.bands.splice(0, marks.bands.length, ...keepB);
    },
  };
}

/** `text`, cut with an ellipsis to at most `max` canvas pixels. */
function fit(ctx, text, max) {
  if (ctx.measureText(text).width <= max) return text;
  let n = text.length;
  while (n > 1 && ctx.measureText(text.slice(0, n) + '…').width > max) n--;
  return text.slice(0, n) + '…';
}

/** "↓ outage" and "↑ outage" read better as "↓↑ outage". */
function mergeParts(parts) {
  if (parts.length === 2) {
    const [a, b] = parts.map((p) => /^([↓↑]) (.*)$/.exec(p));
    if (a && b && a[2] === b[2] && a[1] !== b[1]) return `↓↑ ${a[2]}`;
  }
  return parts.join(' | ');
}

/**
 * The plugin. `kinds`: which marks this chart shows (e.g. ['impair', 'freeze']); `bandText`:
 * whether bands carry their label here (one chart says "freeze 3.1 s", the others just shade).
 */
export function marksPlugin(store, { kinds, bandText = false } = {}) {
  const show = new Set(kinds);
  const px = () => window.devicePixelRatio || 1;

  function xPos(u, t) {
    return u.valToPos(t, 'x', true);
  }

  function drawBands(u) {
    const { ctx, bbox } = u;
    const [x0, x1] = [bbox.left, bbox.left + bbox.width];
    const p = px();
    ctx.save();
    ctx.font = `${10 * p}px system-ui, sans-serif`;
    ctx.textBaseline = 'bottom';
    ctx.textAlign = 'left';  // uPlot leaves the last axis' alignment set
    // Labels at the bottom on two rows; one that would overlap another is left out.
    const rows = [-Infinity, -Infinity];
    const bands = store.marks.bands.filter((b) => show.has(b.kind)).sort((a, b) => a.from - b.from);
    for (const b of bands) {
      const st = MARK_STYLE[b.kind];
      const a = Math.max(x0, xPos(u, b.from));
      const z = Math.min(x1, xPos(u, b.to));
      if (!(z > a - 1)) continue;
      ctx.fillStyle = st.fill;
      ctx.fillRect(a, bbox.top, Math.max(z - a, 2 * p), bbox.height);
      if (bandText && b.text) {
        const w = ctx.measureText(b.text).width + 4 * p;
        const left = Math.min(a + 2 * p, x1 - w);
        const row = rows.findIndex((end) => left > end);
        if (row < 0) continue;
        rows[row] = left + w;
        ctx.fillStyle = st.text;
        ctx.fillText(b.text, left + 2 * p, bbox.top + bbox.height - 3 * p - row * 12 * p);
      }
    }
    ctx.restore();
  }

  function drawLines(u) {
    const { ctx, bbox } = u;
    const [x0, x1] = [bbox.left, bbox.left + bbox.width];
    const p = px();
    ctx.save();
    ctx.beginPath();
    ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
    ctx.clip();
    ctx.font = `${10 * p}px system-ui, sans-serif`;
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';  // uPlot leaves the last axis' alignment set
    // Labels go on up to three rows at the top, each row a list of the spans it holds; a label
    // that fits on none is left out (the line stays; the log lists every change).
    const rows = [[], [], []];
    const free = (row, a, z) => row.every(([b, y]) => z + 2 * p < b || a > y + 2 * p);
    const lines = store.marks.lines.filter((m) => show.has(m.kind)).sort((a, b) => a.t - b.t);
    for (const m of lines) {
      const st = MARK_STYLE[m.kind];
      const x = Math.round(xPos(u, m.t)) + 0.5;
      if (x < x0 - 1 || x > x1 + 1) continue;
      if (st.tick) {
        // A small triangle on the x axis: frequent, so no label.
        ctx.fillStyle = st.color;
        const s = 4 * p;
        const y = bbox.top + bbox.height;
        ctx.beginPath();
        ctx.moveTo(x, y - 2 * s);
        ctx.lineTo(x - s, y);
        ctx.lineTo(x + s, y);
        ctx.closePath();
        ctx.fill();
        continue;
      }
      ctx.strokeStyle = st.color;
      ctx.lineWidth = st.width * p;
      ctx.setLineDash(st.dash.map((d) => d * p));
      ctx.beginPath();
      ctx.moveTo(x, bbox.top);
      ctx.lineTo(x, bbox.top + bbox.height);
      ctx.stroke();
      ctx.setLineDash([]);
      if (!st.label || !m.text) continue;
      // At most 60 % of the plot's width, shortened with an ellipsis.
      const text = fit(ctx, m.text, bbox.width * 0.6 - 6 * p);
      const w = ctx.measureText(text).width + 6 * p;
      // Right of the line, or left of it when the right edge is too close; never outside.
      let left = x + w + 2 * p > x1 ? x - w - 2 * p : x + 2 * p;
      left = Math.max(x0, Math.min(left, x1 - w));
      const row = rows.findIndex((r) => free(r, left, left + w));
      if (row < 0) continue;
      rows[row].push([left, left + w]);
      const y = bbox.top + 2 * p + row * 13 * p;
      // A white halo instead of a box: the series under the label stay visible.
      ctx.strokeStyle = 'rgba(255, 255, 255, 0.9)';
      ctx.lineWidth = 3 * p;
      ctx.lineJoin = 'round';
      ctx.strokeText(text, left + 3 * p, y);
      ctx.fillStyle = st.color;
      ctx.fillText(text, left + 3 * p, y);
    }
    ctx.restore();
  }

  return { hooks: { drawClear: [drawBands], draw: [drawLines] } };
}
