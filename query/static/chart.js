// runstream's line chart: a small canvas chart for the run and compare pages (no library, no CDN).
//
// A chart draws several series over one x-axis: steps, seconds since each run
// started (relative), or wall-clock time. Its points come from a `source`
// function the page gives it, which fetches them from the series API
// downsampled with M4 (each bucket's first, last, min and max point) for the
// range on screen; a drag zooms, and the zoomed range is fetched again at full
// resolution, so what is drawn is always every point or M4 of every point.
// Where several points share a pixel column they are drawn as a band from
// their least to their greatest value with the line through their mean, not a
// sawtooth. Live points are appended; a zoomed view never moves for them.
//
// Options (shared by every chart of a page, kept in the page's URL by
// RunstreamChart.controls): x (step | relative | wall), log (y), clip (the y
// range ignores outliers: the 1st..99th percentile of the points in view) and
// smooth (TensorBoard's debiased EMA weight; the raw curve stays faint behind).
//
// For tests and the curious, the canvas holds its chart (`canvas.chart`), and
// chart.drawn() gives what was last drawn, per series.
(function () {
  "use strict";

  const PALETTE = ["#2450b2", "#d1495b", "#00798c", "#edae49", "#66a182", "#8d6cab", "#30638e", "#b5651d"];
  const PAD = { left: 62, right: 24, top: 10, bottom: 28 };
  const SIG = 5;

  function num(v) {
    if (v !== null && typeof v === "object") {
      const f = Number(v.$float); // "NaN", "Infinity", "-Infinity"
      return Number.isNaN(f) ? null : f;
    }
    if (typeof v === "boolean") return v ? 1 : 0;
    return typeof v === "number" ? v : null;
  }

  // A number to SIG significant digits, without exponent noise for ordinary sizes.
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-4 || a >= 1e9)) return v.toExponential(SIG - 1).replace(/\.?0+e/, "e");
    return String(Number(v.toPrecision(SIG)));
  }

  function fmtTime(seconds) {
    return new Date(seconds * 1000).toLocaleString();
  }

  function fmtDuration(seconds) {
    const s = Math.abs(seconds);
    if (s < 120) return fmt(seconds) + " s";
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const r = Math.floor(s % 60);
    return (seconds < 0 ? "-" : "") + (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(r).padStart(2, "0");
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return out;
  }

  // Ticks of a log axis (y0, y1 are log10 of values): powers of ten over a decade or more, else round values.
  function logTicks(y0, y1) {
    if (y1 - y0 < 1) return niceTicks(Math.pow(10, y0), Math.pow(10, y1), 4).filter((v) => v > 0).map(Math.log10);
    const every = Math.max(1, Math.ceil((Math.floor(y1) - Math.ceil(y0)) / 6));
    const out = [];
    for (let t = Math.ceil(y0); t <= y1; t += every) out.push(t);
    return out;
  }

  function percentile(sorted, p) {
    if (!sorted.length) return null;
    const i = Math.min(sorted.length - 1, Math.max(0, Math.round(p * (sorted.length - 1))));
    return sorted[i];
  }

  // TensorBoard's smoothing: an EMA whose start is debiased (divided by 1 - w^n); gaps pass through.
  function smooth(ys, weight) {
    if (!(weight > 0)) return ys;
    const out = new Array(ys.length);
    let last = 0;
    let n = 0;
    for (let i = 0; i < ys.length; i++) {
      const y = ys[i];
      if (y === null || !Number.isFinite(y)) {
        out[i] = y;
        continue;
      }
      last = last * weight + (1 - weight) * y;
      n += 1;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

  function lowerBound(xs, x) {
    let lo = 0;
    let hi = xs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function Chart(el, settings) {
    this.el = el;
    this.settings = settings; // { source(view, options, maxPoints) -> Promise<[series]>, height, title }
    this.options = { x: "step", log: false, clip: false, smooth: 0 };
    this.series = [];
    this.view = null; // [x0, x1] while zoomed
    this.hover = null;
    this.loads = 0;
    this.updates = 0;
    el.textContent = "";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "rs-chart";
    this.canvas.chart = this;
    this.legend = document.createElement("div");
    this.legend.className = "rs-legend";
    el.append(this.canvas, this.legend);
    this._events();
    // A narrower window (a phone turned, a sidebar opened): redraw to the new width, once it settles.
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => this.draw(), 100);
    });
  }

  Chart.prototype.width = function () {
    return Math.max(300, Math.min(Math.floor(this.el.clientWidth || 640), 1600));
  };

  // M4 keeps up to four points per bucket: four per pixel column draws every point's line.
  Chart.prototype.maxPoints = function () {
    return Math.min(100000, this.width() * 4);
  };

  // Fetch what the view needs and draw it. A later load wins over an earlier one still in flight.
  Chart.prototype.load = async function () {
    const ticket = (this._ticket = (this._ticket || 0) + 1);
    // Live points that arrive while the answer is on its way are kept, and added again after it.
    this._arrived = this._arrived || [];
    let series;
    try {
      series = await this.settings.source(this.view, this.options, this.maxPoints());
    } catch (err) {
      if (ticket === this._ticket) this._arrived = null;
      throw err;
    }
    if (ticket !== this._ticket) return;
    const arrived = this._arrived;
    this._arrived = null;
    this.setSeries(series);
    for (const [key, cols] of arrived) this._appendNewer(key, cols);
    this.loads += 1;
    // When the last load was drawn, in ms since the page's navigation began (the bench figure reads it).
    this.drawnAt = performance.now();
  };

  // series: [{key, label, steps, times, values, t0, color?}]
  Chart.prototype.setSeries = function (list) {
    this.series = list.map((s, i) => ({
      key: s.key,
      label: s.label,
      color: s.color || PALETTE[i % PALETTE.length],
      t0: s.t0 || 0,
      steps: Array.from(s.steps),
      times: Array.from(s.times),
      ys: Array.from(s.values, num),
      downsampled: !!s.downsampled,
    }));
    this.draw();
  };

  // Live points: appended; the view stays where it is (the x range grows only when not zoomed).
  Chart.prototype.append = function (key, cols) {
    if (this._arrived) this._arrived.push([key, cols]);
    const s = this.series.find((x) => x.key === key);
    if (!s) return false;
    for (let i = 0; i < cols.steps.length; i++) {
      s.steps.push(cols.steps[i]);
      s.times.push(cols.times[i]);
      s.ys.push(num(cols.values[i]));
    }
    this.updates += 1;
    this.draw();
    return true;
  };

  // After a load: the live points it may not hold, those past its last (time) point.
  Chart.prototype._appendNewer = function (key, cols) {
    const s = this.series.find((x) => x.key === key);
    if (!s) return;
    const after = s.times.length ? s.times[s.times.length - 1] : -Infinity;
    const keep = cols.times.map((t, i) => i).filter((i) => cols.times[i] > after);
    if (!keep.length) return;
    for (const i of keep) {
      s.steps.push(cols.steps[i]);
      s.times.push(cols.times[i]);
      s.ys.push(num(cols.values[i]));
    }
    this.draw();
  };

  Chart.prototype.setOptions = function (options) {
    const refetch = options.x !== undefined && options.x !== this.options.x;
    Object.assign(this.options, options);
    if (refetch) {
      this.view = null;
      return this.load();
    }
    this.draw();
    return Promise.resolve();
  };

  Chart.prototype.zoom = function (x0, x1) {
    this.view = [Math.min(x0, x1), Math.max(x0, x1)];
    return this.load();
  };

  Chart.prototype.resetZoom = function () {
    this.view = null;
    return this.load();
  };

  Chart.prototype.xsOf = function (s) {
    if (this.options.x === "step") return s.steps;
    const t0 = this.options.x === "relative" ? s.t0 : 0;
    return s.times.map((t) => t - t0);
  };

  // What is drawn, per series: the points in view (x ascending), raw and smoothed.
  Chart.prototype.drawn = function () {
    return this._drawn || [];
  };

  Chart.prototype._prepare = function () {
    const log = this.options.log;
    const out = [];
    let xlo = Infinity;
    let xhi = -Infinity;
    for (const s of this.series) {
      let xs = this.xsOf(s);
      let ys = s.ys;
      // The x order: live points may arrive out of order (a resumed run); sort only then.
      let sorted = true;
      for (let i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1]) { sorted = false; break; }
      if (!sorted) {
        const idx = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b] || a - b);
        xs = idx.map((i) => xs[i]);
        ys = idx.map((i) => ys[i]);
      }
      let lo = 0;
      let hi = xs.length;
      if (this.view) {
        lo = lowerBound(xs, this.view[0]);
        hi = lowerBound(xs, this.view[1] + 1e-9 * Math.abs(this.view[1] || 1));
      }
      xs = xs.slice(lo, hi);
      ys = ys.slice(lo, hi).map((y) => (y === null || (log && !(y > 0)) ? null : log ? Math.log10(y) : y));
      if (xs.length) {
        xlo = Math.min(xlo, xs[0]);
        xhi = Math.max(xhi, xs[xs.length - 1]);
      }
      out.push({ key: s.key, label: s.label, color: s.color, xs: xs, ys: ys, smoothed: smooth(ys, this.options.smooth) });
    }
    if (this.view) [xlo, xhi] = this.view;
    if (!(xhi > xlo)) {
      // One x: a little room either side, not an axis from 0.
      const c = Number.isFinite(xlo) ? xlo : 0;
      const pad = Math.abs(c) * 0.05 || 1;
      [xlo, xhi] = [c - pad, c + pad];
    }
    return { series: out, x: [xlo, xhi], y: this._yRange(out) };
  };

  Chart.prototype._yRange = function (series) {
    let count = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of series) {
      for (const y of s.ys) {
        if (y === null || !Number.isFinite(y)) continue;
        count += 1;
        if (y < lo) lo = y;
        if (y > hi) hi = y;
      }
    }
    if (!count) return [0, 1];
    if (this.options.clip && count > 20) {
      // Only the clip needs the values in order: a sort of every point drawn is most of a redraw.
      const values = new Float64Array(count);
      let i = 0;
      for (const s of series) for (const y of s.ys) if (y !== null && Number.isFinite(y)) values[i++] = y;
      values.sort();
      lo = percentile(values, 0.01);
      hi = percentile(values, 0.99);
    }
    if (!(hi > lo)) {
      // One value: around it, not from 0.
      const pad = Math.abs(lo) * 0.1 || 1;
      return [lo - pad, hi + pad];
    }
    const pad = (hi - lo) * 0.04;
    return [lo - pad, hi + pad];
  };

  Chart.prototype.draw = function () {
    const width = this.width();
    const height = this.settings.height || 240;
    const ratio = window.devicePixelRatio || 1;
    const canvas = this.canvas;
    if (canvas.width !== width * ratio || canvas.height !== height * ratio) {
      canvas.width = width * ratio;
      canvas.height = height * ratio;
      canvas.style.width = width + "px";
      canvas.style.height = height + "px";
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const prep = this._prepare();
    this._frame = { prep: prep, width: width, height: height };
    this._drawn = prep.series.map((s) => ({ key: s.key, label: s.label, xs: s.xs, ys: s.ys, smoothed: s.smoothed }));
    const plotW = width - PAD.left - PAD.right;
    const plotH = height - PAD.top - PAD.bottom;
    const [x0, x1] = prep.x;
    const [y0, y1] = prep.y;
    const px = (x) => PAD.left + ((x - x0) / (x1 - x0)) * plotW;
    const py = (y) => PAD.top + plotH - ((y - y0) / (y1 - y0)) * plotH;
    this._scale = { px: px, x0: x0, x1: x1, plotW: plotW };
    this._axes(ctx, prep, px, py, width, height);
    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD.left, PAD.top, plotW, plotH);
    ctx.clip();
    const smoothing = this.options.smooth > 0;
    for (const s of prep.series) {
      this._band(ctx, s.xs, s.ys, s.color, px, py, smoothing ? 0.12 : 0.25, smoothing ? 0.3 : 1);
      if (smoothing) this._band(ctx, s.xs, s.smoothed, s.color, px, py, 0, 1);
    }
    if (this.hover !== null) {
      ctx.strokeStyle = "#889";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(px(this.hover) + 0.5, PAD.top);
      ctx.lineTo(px(this.hover) + 0.5, PAD.top + plotH);
      ctx.stroke();
    }
    if (this._drag) {
      ctx.fillStyle = "rgba(36,80,178,0.12)";
      const a = Math.min(this._drag[0], this._drag[1]);
      ctx.fillRect(a, PAD.top, Math.abs(this._drag[1] - this._drag[0]), plotH);
    }
    ctx.restore();
    this._legend(prep);
  };

  // Points sharing a pixel column: a band from their least to their greatest value, the line through their mean.
  Chart.prototype._band = function (ctx, xs, ys, color, px, py, bandAlpha, lineAlpha) {
    const cols = [];
    let cur = null;
    for (let i = 0; i < xs.length; i++) {
      const y = ys[i];
      const c = Math.round(px(xs[i]));
      if (y === null || !Number.isFinite(y)) {
        cur = null;
        cols.push(null); // a gap
        continue;
      }
      if (cur && cur.c === c) {
        cur.lo = Math.min(cur.lo, y);
        cur.hi = Math.max(cur.hi, y);
        cur.sum += y;
        cur.n += 1;
      } else {
        cur = { c: c, x: px(xs[i]), lo: y, hi: y, sum: y, n: 1 };
        cols.push(cur);
      }
    }
    // Runs of columns without gaps.
    const runs = [];
    let run = [];
    for (const col of cols) {
      if (col === null) {
        if (run.length) runs.push(run);
        run = [];
      } else run.push(col);
    }
    if (run.length) runs.push(run);
    ctx.globalAlpha = bandAlpha;
    ctx.fillStyle = color;
    for (const r of runs) {
      if (!r.some((c) => c.hi > c.lo)) continue;
      ctx.beginPath();
      r.forEach((c, i) => (i ? ctx.lineTo(c.x, py(c.hi)) : ctx.moveTo(c.x, py(c.hi))));
      for (let i = r.length - 1; i >= 0; i--) ctx.lineTo(r[i].x, py(r[i].lo));
      ctx.closePath();
      ctx.fill();
    }
    ctx.globalAlpha = lineAlpha;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    for (const r of runs) {
      if (r.length === 1) {
        ctx.fillStyle = color;
        ctx.beginPath();
        ctx.arc(r[0].x, py(r[0].sum / r[0].n), 2.5, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      ctx.beginPath();
      r.forEach((c, i) => (i ? ctx.lineTo(c.x, py(c.sum / c.n)) : ctx.moveTo(c.x, py(c.sum / c.n))));
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  };

  Chart.prototype._xLabel = function (x) {
    if (this.options.x === "wall") return fmtTime(x);
    if (this.options.x === "relative") return fmtDuration(x);
    return fmt(x);
  };

  Chart.prototype._axes = function (ctx, prep, px, py, width, height) {
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#556";
    ctx.strokeStyle = "#e4e6ee";
    ctx.lineWidth = 1;
    const [y0, y1] = prep.y;
    const log = this.options.log;
    for (const t of log ? logTicks(y0, y1) : niceTicks(y0, y1, 5)) {
      const y = Math.round(py(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(PAD.left, y);
      ctx.lineTo(width - PAD.right, y);
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      ctx.fillText(log ? fmt(Math.pow(10, t)) : fmt(t), PAD.left - 6, y);
    }
    const [x0, x1] = prep.x;
    const wall = this.options.x === "wall";
    for (const t of niceTicks(x0, x1, wall ? 4 : 7)) {
      const x = Math.round(px(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, PAD.top);
      ctx.lineTo(x, height - PAD.bottom);
      ctx.stroke();
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      const label = wall ? new Date(t * 1000).toLocaleTimeString() : this._xLabel(t);
      ctx.fillText(label, x, height - PAD.bottom + 6);
    }
    ctx.strokeStyle = "#aab";
    ctx.strokeRect(PAD.left + 0.5, PAD.top + 0.5, width - PAD.left - PAD.right, height - PAD.top - PAD.bottom);
  };

  // The legend: every series' value at the hovered x, or its last value when nothing is hovered.
  Chart.prototype._legend = function (prep) {
    const log = this.options.log;
    const smoothing = this.options.smooth > 0;
    const parts = [];
    let at = null;
    for (const s of prep.series) {
      let i = s.xs.length - 1;
      if (this.hover !== null && s.xs.length) {
        i = lowerBound(s.xs, this.hover);
        if (i >= s.xs.length || (i > 0 && this.hover - s.xs[i - 1] < s.xs[i] - this.hover)) i -= 1;
      }
      let value = null;
      if (i >= 0) {
        const y = smoothing ? s.smoothed[i] : s.ys[i];
        value = y === null ? null : log ? Math.pow(10, y) : y;
        if (at === null) at = s.xs[i];
      }
      parts.push([s.color, s.label, value]);
    }
    this.legend.textContent = "";
    const head = document.createElement("span");
    head.className = "rs-x";
    const xName = { step: "step", relative: "time", wall: "time" }[this.options.x];
    head.textContent = at === null ? "no points" : xName + " " + this._xLabel(at);
    this.legend.append(head);
    for (const [color, label, value] of parts) {
      const item = document.createElement("span");
      item.className = "rs-item";
      const swatch = document.createElement("i");
      swatch.style.background = color;
      item.append(swatch, label + " ", Object.assign(document.createElement("b"), { textContent: fmt(value) }));
      this.legend.append(item);
    }
    this.legendValues = parts.map((p) => p[2]);
  };

  Chart.prototype._events = function () {
    const canvas = this.canvas;
    const toX = (ev) => {
      const r = canvas.getBoundingClientRect();
      return ev.clientX - r.left;
    };
    const dataX = (pxX) => {
      const s = this._scale;
      return s.x0 + ((pxX - PAD.left) / s.plotW) * (s.x1 - s.x0);
    };
    canvas.addEventListener("mousedown", (ev) => {
      this._drag = [toX(ev), toX(ev)];
    });
    canvas.addEventListener("mousemove", (ev) => {
      if (!this._scale) return;
      if (this._drag) this._drag[1] = toX(ev);
      this.hover = dataX(toX(ev));
      this.draw();
    });
    canvas.addEventListener("mouseleave", () => {
      this.hover = null;
      this.draw();
    });
    window.addEventListener("mouseup", () => {
      const drag = this._drag;
      this._drag = null;
      if (!drag) return;
      if (Math.abs(drag[1] - drag[0]) < 5) {
        this.draw();
        return;
      }
      this.zoom(dataX(drag[0]), dataX(drag[1]));
    });
    canvas.addEventListener("dblclick", () => this.resetZoom());
  };

  // The series API's range parameters for a view of one run's series (t0: its start, for relative time).
  function rangeParams(view, options, t0) {
    if (!view) return {};
    if (options.x === "step") return { start_step: String(Math.floor(view[0])), end_step: String(Math.ceil(view[1])) };
    const shift = options.x === "relative" ? t0 : 0;
    return { start_time: String(view[0] + shift), end_time: String(view[1] + shift) };
  }

  // One run's metric, downsampled for a view: the answer's columns, or null when the run lacks it.
  async function fetchSeries(runId, name, view, options, maxPoints, t0) {
    const params = new URLSearchParams({
      name: name,
      max_points: String(maxPoints),
      x_axis: options.x === "step" ? "step" : "time",
      ...rangeParams(view, options, t0),
    });
    const resp = await fetch("/api/runs/" + runId + "/series?" + params.toString(), { credentials: "same-origin" });
    if (resp.status === 404) return null;
    if (!resp.ok) throw new Error("series " + name + ": " + resp.status);
    return resp.json();
  }

  // One metric of several runs in one request (runs without it come back empty); runs: [{id, t0}].
  // Relative time shifts each run's range by its own start, so a zoom there asks run by run (runs
  // known to have the metric: `having`).
  async function fetchCompared(runs, name, view, options, maxPoints, having) {
    if (view && options.x === "relative") {
      const bodies = await Promise.all(
        runs.map((r) => (having.has(r.id) ? fetchSeries(r.id, name, view, options, maxPoints, r.t0 || 0) : null)),
      );
      return bodies.map((b) => b || { steps: [], times: [], values: [] });
    }
    const params = new URLSearchParams({
      name: name,
      max_points: String(maxPoints),
      x_axis: options.x === "step" ? "step" : "time",
      ...rangeParams(view, options, 0),
    });
    runs.forEach((r) => params.append("run", r.id));
    const resp = await fetch("/api/series?" + params.toString(), { credentials: "same-origin" });
    if (!resp.ok) throw new Error("series " + name + ": " + resp.status);
    return (await resp.json()).series;
  }

  // Controls shared by a page's charts, kept in its URL: x-axis, log y, outliers ignored, smoothing.
  function controls(bar, charts) {
    const url = new URL(window.location.href);
    const q = url.searchParams;
    const options = {
      x: ["step", "relative", "wall"].includes(q.get("x")) ? q.get("x") : "step",
      log: q.get("y") === "log",
      clip: q.get("outliers") === "ignore",
      smooth: Math.min(0.99, Math.max(0, Number(q.get("smooth")) || 0)),
    };
    bar.classList.add("rs-controls");
    bar.innerHTML =
      '<label>x <select data-control="x"><option value="step">step</option>' +
      '<option value="relative">relative time</option><option value="wall">wall time</option></select></label> ' +
      '<label>y <select data-control="y"><option value="linear">linear</option><option value="log">log</option></select></label> ' +
      '<label><input type="checkbox" data-control="outliers"> ignore outliers</label> ' +
      '<label>smoothing <input type="range" min="0" max="0.99" step="0.01" data-control="smooth"> <output></output></label>';
    const x = bar.querySelector('[data-control="x"]');
    const y = bar.querySelector('[data-control="y"]');
    const outliers = bar.querySelector('[data-control="outliers"]');
    const smoothing = bar.querySelector('[data-control="smooth"]');
    const shown = bar.querySelector("output");
    x.value = options.x;
    y.value = options.log ? "log" : "linear";
    outliers.checked = options.clip;
    smoothing.value = String(options.smooth);
    shown.textContent = options.smooth.toFixed(2);
    function remember() {
      const u = new URL(window.location.href);
      const set = (k, v, dflt) => (v === dflt ? u.searchParams.delete(k) : u.searchParams.set(k, v));
      set("x", options.x, "step");
      set("y", options.log ? "log" : "linear", "linear");
      set("outliers", options.clip ? "ignore" : "", "");
      set("smooth", options.smooth ? String(options.smooth) : "", "");
      history.replaceState(null, "", u.toString());
    }
    function apply(change) {
      Object.assign(options, change);
      shown.textContent = options.smooth.toFixed(2);
      remember();
      return Promise.all(charts().map((c) => c.setOptions(change)));
    }
    x.addEventListener("change", () => apply({ x: x.value }));
    y.addEventListener("change", () => apply({ log: y.value === "log" }));
    outliers.addEventListener("change", () => apply({ clip: outliers.checked }));
    smoothing.addEventListener("input", () => apply({ smooth: Number(smoothing.value) }));
    return options;
  }

  window.RunstreamChart = {
    Chart: Chart,
    fetchSeries: fetchSeries,
    fetchCompared: fetchCompared,
    controls: controls,
    num: num,
    fmt: fmt,
    smooth: smooth,
  };
})();
