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

// The run page's live charts: one chart (chart.js) per scalar metric, or several
// metrics on one, fetched downsampled (M4) for the range on screen, then extended
// from the run's Server-Sent Events stream without reloading the page. Without
// JavaScript the server-rendered SVG stays in place. Row and table metrics get a
// y-over-x uPlot chart whose columns the reader picks.
(function () {
  "use strict";
  const root = document.getElementById("run");
  if (!root || "starting" in root.dataset || typeof RunstreamChart === "undefined") return;
  const runId = root.dataset.runId;
  const t0 = Number(root.dataset.t0) || 0;
  const charts = {};
  const xyCharts = {};
  // For tests and for the curious: the charts by metric and how many updates arrived.
  window.runstream = { charts: charts, xy: xyCharts, updates: 0, ready: 0 };
  const num = RunstreamChart.num;
  const bar = document.getElementById("chart-controls");
  const options = bar ? RunstreamChart.controls(bar, () => Object.values(charts)) : {};

  // Metrics drawn with another's chart: ?overlay=["loss","val/loss"] (repeatable), kept in the URL.
  const overlays = {};
  for (const raw of new URL(window.location.href).searchParams.getAll("overlay")) {
    try {
      const [base, ...more] = JSON.parse(raw);
      if (typeof base === "string") overlays[base] = more.filter((m) => typeof m === "string");
    } catch (e) {
      // a hand-edited parameter: ignored
    }
  }
  function rememberOverlays() {
    const u = new URL(window.location.href);
    u.searchParams.delete("overlay");
    for (const [base, more] of Object.entries(overlays)) {
      if (more.length) u.searchParams.append("overlay", JSON.stringify([base, ...more]));
    }
    history.replaceState(null, "", u.toString());
  }

  function scalarNames() {
    return Array.from(document.querySelectorAll("[data-chart]")).map((el) => el.dataset.chart);
  }

  function makeChart(name, el) {
    const chart = new RunstreamChart.Chart(el.querySelector(".rs-plot") || el, {
      height: 220,
      source: async (view, opts, maxPoints) => {
        const names = [name, ...(overlays[name] || [])];
        const bodies = await Promise.all(
          names.map((n) => RunstreamChart.fetchSeries(runId, n, view, opts, maxPoints, t0)),
        );
        return bodies
          .map((b, i) => b && { key: names[i], label: names[i], t0: t0, downsampled: b.downsampled, ...b })
          .filter(Boolean);
      },
    });
    chart.name = name;
    Object.assign(chart.options, options);
    charts[name] = chart;
    addPicker(name, el, chart);
    return chart;
  }

  // "+ metric": draw another scalar metric of the run on this chart.
  function addPicker(name, el, chart) {
    const picker = document.createElement("select");
    picker.className = "rs-overlay";
    picker.setAttribute("aria-label", "add a metric to this chart");
    picker.append(new Option("+ metric", ""));
    for (const other of scalarNames()) if (other !== name) picker.append(new Option(other, other));
    picker.addEventListener("change", () => {
      const other = picker.value;
      picker.value = "";
      if (!other) return;
      const list = (overlays[name] = overlays[name] || []);
      if (!list.includes(other)) list.push(other);
      rememberOverlays();
      chart.load();
    });
    el.before(picker);
  }

  // A chart's first load; while it runs, live points for it are left to it (see append).
  function loadChart(el) {
    el.dataset.loading = "1";
    return makeChart(el.dataset.chart, el)
      .load()
      .finally(() => delete el.dataset.loading);
  }

  async function load(el) {
    try {
      await loadChart(el);
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
    const slash = name.indexOf("/");
    const group = slash > 0 ? name.slice(0, slash) : "";
    const holder = document.querySelector('details.metric-group[data-group="' + CSS.escape(group) + '"] > div');
    const metrics = holder || document.getElementById("metrics");
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
    let drawn = false;
    for (const chart of Object.values(charts)) drawn = chart.append(name, cols) || drawn;
    if (drawn || charts[name]) return;
    const el = document.querySelector('[data-chart="' + CSS.escape(name) + '"]') || section(name);
    if (el.dataset.loading) return; // its history is still loading and will include these points
    const chart = makeChart(name, el);
    chart.setSeries([{ key: name, label: name, t0: t0, ...cols }]);
  }

  // Rows and tables: y over x, both picked from the numeric columns.
  function xyChart(el) {
    if (typeof uPlot === "undefined") return;
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

  // The charts load once the stream is open (subscribed on the server), so nothing stored between a
  // chart's read and the subscription is missed: later points arrive as events, merged into loads
  // still in flight. A reconnected stream reloads every chart for what it missed while away.
  const els = Array.from(document.querySelectorAll("[data-chart]"));
  els.forEach((el) => {
    el.dataset.loading = "1"; // points for it before its load are in the load
  });
  let started = false;
  function startLoads() {
    if (started) return;
    started = true;
    els.forEach(load);
  }

  const stream = new EventSource("/api/runs/" + runId + "/stream");
  stream.addEventListener("open", () => {
    if (started) Object.values(charts).forEach((chart) => chart.load());
    else startLoads();
  });
  // No stream (a proxy that refuses it, a service going down): draw what is stored all the same.
  stream.addEventListener("error", startLoads);
  setTimeout(startLoads, 3000);
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
    if (ended && run.ended_at) {
      ended.textContent = new Date(run.ended_at).toLocaleString();
      root.dataset.ended = run.ended_at;
    }
    descriptions = run.descriptions || {};
    // Metrics that appeared after the page was rendered and before the stream opened.
    for (const name of run.scalar_metrics || []) {
      if (charts[name] || document.querySelector('[data-chart="' + CSS.escape(name) + '"]')) continue;
      loadChart(section(name));
    }
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

// The page around the charts: times in the reader's local time, the duration of
// a live run ticking, and the metric search (by name, across every group).
(function () {
  "use strict";
  const root = document.getElementById("run");
  if (!root) return;
  document.querySelectorAll("time[datetime]").forEach((el) => {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) el.textContent = when.toLocaleString();
  });
  const duration = document.getElementById("run-duration");
  function tick() {
    const start = Date.parse(duration.dataset.start);
    const ended = root.dataset.ended || duration.dataset.end;
    if (Number.isNaN(start)) return;
    const end = ended ? Date.parse(ended) : Date.now();
    const seconds = Math.max(0, Math.floor((end - start) / 1000));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    duration.textContent = h + ":" + String(m).padStart(2, "0") + ":" + String(seconds % 60).padStart(2, "0");
    if (!ended) setTimeout(tick, 1000);
  }
  if (duration) tick();
  const search = document.getElementById("metric-search");
  if (!search) return;
  search.addEventListener("input", () => {
    const text = search.value.trim().toLowerCase();
    document.querySelectorAll("section.metric[data-metric]").forEach((sec) => {
      sec.hidden = text !== "" && !sec.dataset.metric.toLowerCase().includes(text);
    });
    document.querySelectorAll("details.metric-group").forEach((group) => {
      group.hidden = !group.querySelector("section.metric:not([hidden])");
    });
  });
})();

// Images logged under one name several times: one at a time, with a slider over the logging order.
(function () {
  "use strict";
  document.querySelectorAll(".image-steps").forEach((box) => {
    const items = Array.from(box.children);
    if (items.length < 2) return;
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = "0";
    slider.max = String(items.length - 1);
    slider.value = String(items.length - 1);
    slider.setAttribute("aria-label", "image");
    const label = document.createElement("span");
    function show() {
      const at = Number(slider.value);
      items.forEach((item, i) => (item.hidden = i !== at));
      label.textContent = " " + (at + 1) + " of " + items.length;
    }
    slider.addEventListener("input", show);
    const bar = document.createElement("p");
    bar.append(slider, label);
    box.before(bar);
    show();
  });
})();
