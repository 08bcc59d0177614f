/* Tiny hand-written SVG/canvas charts for the explorer: line, histogram, scatter, heat map.
   No dependencies. Every function takes a container element and redraws it completely. */
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#0c8599", "#c92a2a", "#5c940d", "#d6336c"];

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }
  function text(parent, x, y, str, attrs) {
    const t = el("text", Object.assign({ x, y }, attrs || {}), parent);
    t.textContent = str;
    return t;
  }
  // "nice" tick values covering [lo, hi]
  function ticks(lo, hi, n) {
    if (!isFinite(lo) || !isFinite(hi)) return [0, 1];
    if (hi === lo) { hi = lo + 1; }
    const raw = (hi - lo) / Math.max(1, n);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }
  function fmtTick(v) {
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
    if (a === 0) return "0";
    if (a < 0.01) return v.toExponential(0);
    return String(+v.toFixed(3));
  }
  function frame(container, opts) {
    const W = opts.width || Math.max(280, Math.round(container.clientWidth || 520)), H = opts.height || 240;
    const m = Object.assign({ top: 26, right: 16, bottom: 36, left: 48 }, opts.margin || {});
    container.innerHTML = "";
    container.classList.add("chart");
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, container);
    if (opts.title) text(svg, m.left, 15, opts.title, { class: "title" });
    return { svg, W, H, m, iw: W - m.left - m.right, ih: H - m.top - m.bottom };
  }
  function axes(f, xs, ys, sx, sy, opts) {
    const g = el("g", {}, f.svg);
    for (const v of ys) {
      const y = sy(v);
      el("line", { x1: f.m.left, x2: f.m.left + f.iw, y1: y, y2: y, class: "gridline" }, g);
      text(g, f.m.left - 6, y + 3.5, (opts.yFormat || fmtTick)(v), { "text-anchor": "end" });
    }
    for (const v of xs) {
      const x = sx(v);
      el("line", { x1: x, x2: x, y1: f.m.top + f.ih, y2: f.m.top + f.ih + 4, class: "axis" }, g);
      text(g, x, f.m.top + f.ih + 16, (opts.xFormat || fmtTick)(v), { "text-anchor": "middle" });
    }
    el("line", { x1: f.m.left, x2: f.m.left + f.iw, y1: f.m.top + f.ih, y2: f.m.top + f.ih, class: "axis" }, g);
    if (opts.xLabel) text(g, f.m.left + f.iw / 2, f.H - 4, opts.xLabel, { "text-anchor": "middle" });
    if (opts.yLabel) {
      const t = text(g, 12, f.m.top + f.ih / 2, opts.yLabel, { "text-anchor": "middle" });
      t.setAttribute("transform", `rotate(-90 12 ${f.m.top + f.ih / 2})`);
    }
  }

  /* series: [{name, color, points: [[x, y], ...], dots: bool, dash: bool}] */
  function line(container, series, opts) {
    opts = opts || {};
    const f = frame(container, opts);
    const all = series.flatMap((s) => s.points);
    let x0 = opts.xMin ?? Math.min(...all.map((p) => p[0]), 0);
    let x1 = opts.xMax ?? Math.max(...all.map((p) => p[0]), 1);
    let y0 = opts.yMin ?? Math.min(...all.map((p) => p[1]));
    let y1 = opts.yMax ?? Math.max(...all.map((p) => p[1]));
    if (!all.length) { y0 = opts.yMin ?? 0; y1 = opts.yMax ?? 1; }
    if (y1 === y0) { y1 = y0 + 1; }
    if (x1 === x0) { x1 = x0 + 1; }
    const pad = (y1 - y0) * 0.06;
    if (opts.yMin === undefined) y0 -= pad;
    if (opts.yMax === undefined) y1 += pad;
    const sx = (v) => f.m.left + ((v - x0) / (x1 - x0)) * f.iw;
    const sy = (v) => f.m.top + f.ih - ((v - y0) / (y1 - y0)) * f.ih;
    axes(f, ticks(x0, x1, 6), ticks(y0, y1, 4).filter((v) => v >= y0 && v <= y1), sx, sy, opts);
    series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      if (s.points.length > 1) {
        const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
        el("path", { d, fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round",
          "stroke-dasharray": s.dash ? "5 4" : "none" }, f.svg);
      }
      if (s.dots || s.points.length === 1) {
        for (const p of s.points) el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3.5, fill: color }, f.svg);
      }
    });
    if (!all.length && opts.empty) {
      text(f.svg, f.m.left + f.iw / 2, f.m.top + f.ih / 2, opts.empty, { "text-anchor": "middle" });
    }
    return f.svg;
  }

  /* edges: n+1 bin edges; series: [{name, counts, color}] drawn as overlaid step areas */
  function histogram(container, edges, series, opts) {
    opts = opts || {};
    const f = frame(container, Object.assign({ height: 200 }, opts));
    const x0 = edges[0], x1 = edges[edges.length - 1];
    if (opts.normalize) series = series.map((s) => { const m = Math.max(1, ...s.counts); return Object.assign({}, s, { counts: s.counts.map((c) => c / m) }); });
    const ymax = opts.normalize ? 1 : Math.max(1, ...series.flatMap((s) => s.counts));
    const sx = (v) => f.m.left + ((v - x0) / (x1 - x0 || 1)) * f.iw;
    const sy = (v) => f.m.top + f.ih - (v / ymax) * f.ih;
    axes(f, ticks(x0, x1, 4), ticks(0, ymax, 3).filter((v) => v <= ymax), sx, sy, opts);
    series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      let d = `M${sx(edges[0])},${sy(0)}`;
      s.counts.forEach((c, j) => { d += `L${sx(edges[j])},${sy(c)}L${sx(edges[j + 1])},${sy(c)}`; });
      d += `L${sx(x1)},${sy(0)}Z`;
      el("path", { d, fill: color, "fill-opacity": s.fillOpacity ?? 0.35, stroke: color, "stroke-width": 1.4 }, f.svg);
    });
    return f.svg;
  }

  /* points: [{x, y, label, color, r}], links: [[i, j]] drawn first (lineage) */
  function scatter(container, points, opts) {
    opts = opts || {};
    const f = frame(container, opts);
    const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
    let x0 = opts.xMin ?? Math.min(...xs), x1 = opts.xMax ?? Math.max(...xs);
    let y0 = opts.yMin ?? Math.min(...ys), y1 = opts.yMax ?? Math.max(...ys);
    if (!points.length) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    if (y1 - y0 < 1e-9) { y0 -= 0.01; y1 += 0.01; }
    if (x1 - x0 < 1e-9) { x0 -= 0.05; x1 += 0.05; }
    const py = (y1 - y0) * 0.1, px = (x1 - x0) * 0.05;
    if (opts.yMin === undefined) y0 -= py;
    if (opts.yMax === undefined) y1 += py;
    if (opts.xMin === undefined) x0 -= px;
    if (opts.xMax === undefined) x1 += px;
    const sx = (v) => f.m.left + ((v - x0) / (x1 - x0)) * f.iw;
    const sy = (v) => f.m.top + f.ih - ((v - y0) / (y1 - y0)) * f.ih;
    axes(f, ticks(x0, x1, 6).filter((v) => v >= x0 && v <= x1), ticks(y0, y1, 4).filter((v) => v >= y0 && v <= y1), sx, sy, opts);
    for (const [a, b] of opts.links || []) {
      el("line", { x1: sx(points[a].x), y1: sy(points[a].y), x2: sx(points[b].x), y2: sy(points[b].y),
        stroke: "#adb5bd", "stroke-width": 1.5, "stroke-dasharray": "4 3" }, f.svg);
    }
    points.forEach((p, i) => {
      const c = el("circle", { cx: sx(p.x), cy: sy(p.y), r: p.r || 5, fill: p.color || COLORS[i % COLORS.length],
        stroke: "#fff", "stroke-width": 1.5 }, f.svg);
      const t = el("title", {}, c); t.textContent = p.label || "";
      if (p.label) {
        const right = sx(p.x) > f.m.left + f.iw * 0.75;  // keep labels inside the plot
        text(f.svg, sx(p.x) + (right ? -8 : 8), sy(p.y) - 7, p.label, { "font-size": 11, "text-anchor": right ? "end" : "start" });
      }
    });
    return f.svg;
  }

  /* matrix: rows of numbers in [0, 1] drawn on a canvas, `scale` css pixels per cell */
  function heatmap(canvas, matrix, opts) {
    opts = opts || {};
    const h = matrix.length, w = matrix[0].length, scale = opts.scale || 6;
    canvas.width = w; canvas.height = h;
    canvas.style.width = w * scale + "px"; canvas.style.height = h * scale + "px";
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(w, h);
    const ramp = opts.ramp || viridis;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const [r, g, b] = ramp(Math.max(0, Math.min(1, matrix[y][x])));
      const k = (y * w + x) * 4;
      img.data[k] = r; img.data[k + 1] = g; img.data[k + 2] = b; img.data[k + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  // a compact viridis approximation: dark purple -> teal -> yellow
  const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function viridis(t) {
    const p = t * (STOPS.length - 1), i = Math.min(STOPS.length - 2, Math.floor(p)), f = p - i;
    return STOPS[i].map((c, k) => Math.round(c + (STOPS[i + 1][k] - c) * f));
  }
  function gray(t) { const v = Math.round(t * 255); return [v, v, v]; }

  window.Charts = { line, histogram, scatter, heatmap, viridis, gray, COLORS, fmtTick };
})();
