// A run ingest has stored nothing of yet (its page opened right after
// start_logging()): the server renders a "starting" page; follow the run's
// stream and reload at its first event, when the whole page can be rendered.
(function () {
  "use strict";
  const root = document.getElementById("run");
  if (!root || !("starting" in root.dataset)) return;
  const stream = new EventSource("/api/runs/" + root.dataset.runId + "/stream");
  function arrived() {
    stream.close();
    window.location.reload();
  }
  stream.addEventListener("run", arrived);
  stream.addEventListener("points", arrived);
})();

// The run page's live charts: one uPlot chart per scalar metric, loaded
// downsampled to the chart's pixel width, then extended from the run's
// Server-Sent Events stream without reloading the page. Without JavaScript the
// server-rendered SVG stays in place.
(function () {
  "use strict";
  const root = document.getElementById("run");
  if (!root || typeof uPlot === "undefined") return;
  const runId = root.dataset.runId;
  const charts = {};
  // For tests and for the curious: the charts and how many updates arrived.
  const xyCharts = {};
  window.runstream = { charts: charts, xy: xyCharts, updates: 0, ready: 0 };

  // Non-finite floats arrive as {"$float": ...}; a chart shows them as gaps.
  function num(v) {
    if (v !== null && typeof v === "object") return null;
    if (typeof v === "boolean") return v ? 1 : 0;
    return typeof v === "number" ? v : null;
  }

  function monotonic(xs) {
    for (let i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1]) return false;
    return true;
  }

  function draw(name, el, steps, times, values) {
    // uPlot wants ascending x: steps when they are, else seconds into the run.
    const byStep = monotonic(steps);
    const t0 = times.length ? times[0] : 0;
    const chart = {
      byStep: byStep,
      t0: t0,
      xs: byStep ? steps.slice() : times.map((t) => t - t0),
      ys: values.map(num),
    };
    el.textContent = "";
    const width = Math.max(300, Math.min(el.clientWidth || 640, 1000));
    chart.u = new uPlot(
      {
        width: width,
        height: 200,
        scales: { x: { time: false } },
        axes: [{ label: byStep ? "step" : "seconds" }, {}],
        series: [{ label: byStep ? "step" : "s" }, { label: name, stroke: "#2450b2", width: 1.5, spanGaps: false }],
        legend: { live: true },
      },
      [chart.xs, chart.ys],
      el,
    );
    charts[name] = chart;
    return chart;
  }

  async function load(el) {
    const name = el.dataset.chart;
    const width = Math.max(2, Math.floor(el.clientWidth || 640));
    const url = "/api/runs/" + runId + "/series?name=" + encodeURIComponent(name) + "&max_points=" + width * 2;
    try {
      const resp = await fetch(url, { credentials: "same-origin" });
      if (!resp.ok) return;
      const body = await resp.json();
      draw(name, el, body.steps, body.times, body.values);
    } finally {
      window.runstream.ready += 1;
    }
  }

  // What the live "run" event says each metric is (the SDK's descriptions).
  let descriptions = {};

  function describe(sec) {
    const text = descriptions[sec.dataset.metric];
    if (typeof text !== "string" || sec.querySelector(".description")) return;
    const note = document.createElement("p");
    note.className = "description";
    note.textContent = text;
    sec.querySelector("h3").after(note);
  }

  function section(name) {
    const metrics = document.getElementById("metrics");
    const sec = document.createElement("section");
    sec.className = "metric";
    sec.dataset.metric = name;
    const title = document.createElement("h3");
    title.textContent = name;
    const el = document.createElement("div");
    el.className = "chart";
    el.dataset.chart = name;
    sec.append(title, el);
    describe(sec);
    metrics.append(sec);
    const empty = document.getElementById("no-metrics");
    if (empty) empty.remove();
    return el;
  }

  function append(name, cols) {
    let chart = charts[name];
    if (!chart) {
      const el = document.querySelector('[data-chart="' + CSS.escape(name) + '"]') || section(name);
      if (el.dataset.loading) return; // its history is still loading and will include these points
      chart = draw(name, el, cols.steps, cols.times, cols.values);
      return;
    }
    const xs = chart.byStep ? cols.steps : cols.times.map((t) => t - chart.t0);
    for (let i = 0; i < xs.length; i++) {
      chart.xs.push(xs[i]);
      chart.ys.push(num(cols.values[i]));
    }
    chart.u.setData([chart.xs, chart.ys]);
  }

  // Rows and tables: y over x, both picked from the numeric columns.
  function xyChart(el) {
    const name = el.dataset.xy;
    const columns = JSON.parse(el.dataset.columns);
    const keys = Object.keys(columns);
    const picks = document.createElement("p");
    const xSel = document.createElement("select");
    const ySel = document.createElement("select");
    xSel.setAttribute("aria-label", "x column");
    ySel.setAttribute("aria-label", "y column");
    for (const k of keys) {
      xSel.append(new Option(k, k));
      ySel.append(new Option(k, k));
    }
    xSel.value = keys[0];
    ySel.value = keys[1];
    picks.append("x ", xSel, " y ", ySel);
    const target = document.createElement("div");
    el.textContent = "";
    el.append(picks, target);
    const state = { u: null, x: keys[0], y: keys[1] };
    function render() {
      state.x = xSel.value;
      state.y = ySel.value;
      const pairs = columns[state.x]
        .map((x, i) => [num(x), num(columns[state.y][i])])
        .filter((p) => p[0] !== null)
        .sort((a, b) => a[0] - b[0]);
      const data = [pairs.map((p) => p[0]), pairs.map((p) => p[1])];
      if (state.u) state.u.destroy();
      const width = Math.max(300, Math.min(target.clientWidth || 640, 1000));
      state.u = new uPlot(
        {
          width: width,
          height: 220,
          scales: { x: { time: false } },
          axes: [{ label: state.x }, { label: state.y }],
          series: [{ label: state.x }, { label: state.y, stroke: "#d1495b", width: 1.5 }],
        },
        data,
        target,
      );
    }
    xSel.addEventListener("change", render);
    ySel.addEventListener("change", render);
    render();
    xyCharts[name] = state;
  }
  document.querySelectorAll("[data-xy]").forEach(xyChart);

  const els = Array.from(document.querySelectorAll("[data-chart]"));
  els.forEach((el) => {
    el.dataset.loading = "1";
    load(el).finally(() => delete el.dataset.loading);
  });

  const stream = new EventSource("/api/runs/" + runId + "/stream");
  stream.addEventListener("points", (ev) => {
    const data = JSON.parse(ev.data);
    for (const [name, cols] of Object.entries(data.metrics)) append(name, cols);
    window.runstream.updates += 1;
  });
  stream.addEventListener("run", (ev) => {
    const run = JSON.parse(ev.data);
    const status = document.getElementById("run-status");
    if (status) {
      status.textContent = run.status;
      status.className = "status " + run.status;
    }
    const ended = document.getElementById("run-ended");
    if (ended && run.ended_at) ended.textContent = run.ended_at;
    descriptions = run.descriptions || {};
    document.querySelectorAll("section.metric[data-metric]").forEach(describe);
  });
})();

// The driver log: scrolled to its end on load and, on a live run, followed by
// polling the logs API from where the page's tail ends until the service says
// the run ended and the whole log is shown (`done`). Independent of the charts,
// so it works even where uPlot did not load.
(function () {
  "use strict";
  const root = document.getElementById("run");
  const pre = document.getElementById("driver-log");
  if (!root || !pre) return;
  pre.scrollTop = pre.scrollHeight;
  if (!("follow" in pre.dataset)) return;
  const POLL_MS = 2000;
  // Characters kept on the page: a log can grow far beyond what a tab should hold.
  const MAX_SHOWN = 1 << 20;
  const url = "/api/runs/" + root.dataset.runId + "/logs/driver?offset=";
  const section = document.getElementById("driver-log-section");

  function clippedNote(size) {
    let note = document.getElementById("driver-log-clipped");
    if (!note) {
      note = document.createElement("p");
      note.id = "driver-log-clipped";
      note.className = "muted";
      pre.before(note);
    }
    note.textContent = "showing the end of the log (" + size + " bytes in all)";
  }

  function show(text, size) {
    if (!text) return;
    // Keep to the end only if the reader was there, not pulling them away from what they scrolled to.
    const atEnd = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 4;
    pre.append(text); // a text node: the log is never parsed as HTML
    const shown = pre.textContent;
    if (shown.length > MAX_SHOWN) {
      // Drop the oldest text, from a line start so the first line shown is whole.
      const cut = shown.indexOf("\n", shown.length - MAX_SHOWN);
      pre.textContent = shown.slice(cut >= 0 && cut < shown.length - 1 ? cut + 1 : shown.length - MAX_SHOWN);
    }
    if (shown.length > MAX_SHOWN || document.getElementById("driver-log-clipped")) clippedNote(size);
    if (atEnd) pre.scrollTop = pre.scrollHeight;
    section.hidden = false;
  }

  async function poll() {
    if (document.hidden) {
      // Nobody is looking: no requests until the page is shown again.
      document.addEventListener("visibilitychange", poll, { once: true });
      return;
    }
    const offset = Number(pre.dataset.nextOffset);
    let body = null;
    try {
      const resp = await fetch(url + offset, { credentials: "same-origin" });
      if (resp.ok) body = await resp.json();
    } catch (e) {
      // The service is away for a moment: the next poll tries again.
    }
    if (body) {
      show(body.text, body.size);
      pre.dataset.nextOffset = body.next_offset;
      if (body.done) {
        delete pre.dataset.follow; // the run ended and all of its log is shown
        return;
      }
    }
    // More than one read's worth was waiting: go on at once. A read that did not
    // move (only part of a character so far) waits like any other.
    const behind = body && body.next_offset > offset && body.next_offset < body.size;
    setTimeout(poll, behind ? 0 : POLL_MS);
  }
  setTimeout(poll, POLL_MS);
})();
