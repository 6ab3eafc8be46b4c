// The compare page: one metric from several runs on one chart, aligned on step.
(function () {
  "use strict";
  const root = document.getElementById("compare");
  if (!root || typeof uPlot === "undefined") return;
  const runs = JSON.parse(root.dataset.runs);
  const labels = JSON.parse(root.dataset.labels);
  const name = root.dataset.metric;
  const el = document.getElementById("compare-chart");
  const palette = ["#2450b2", "#d1495b", "#00798c", "#edae49", "#66a182", "#8d6cab", "#30638e", "#b5651d"];
  window.runstream = { ready: 0, chart: null };

  function num(v) {
    if (v !== null && typeof v === "object") return null;
    if (typeof v === "boolean") return v ? 1 : 0;
    return typeof v === "number" ? v : null;
  }

  async function load() {
    const width = Math.max(300, Math.min(el.clientWidth || 800, 1100));
    const params = new URLSearchParams({ name: name, max_points: String(width * 2) });
    runs.forEach((r) => params.append("run", r));
    const resp = await fetch("/api/series?" + params.toString(), { credentials: "same-origin" });
    if (!resp.ok) {
      el.textContent = "Could not load the series (" + resp.status + ").";
      return;
    }
    const body = await resp.json();
    // One [steps, values] table per run; uPlot.join aligns them on the union of steps.
    const tables = body.series.map((s) => {
      const pairs = s.steps.map((x, i) => [x, num(s.values[i])]).sort((a, b) => a[0] - b[0]);
      const xs = [];
      const ys = [];
      for (const [x, y] of pairs) {
        if (xs.length && xs[xs.length - 1] === x) {
          ys[ys.length - 1] = y; // repeated step: keep the later value
        } else {
          xs.push(x);
          ys.push(y);
        }
      }
      return [xs, ys];
    });
    const data = tables.length ? uPlot.join(tables) : [[]];
    const series = [{ label: "step" }].concat(
      body.series.map((s, i) => ({
        label: labels[i] || s.run_id,
        stroke: palette[i % palette.length],
        width: 1.5,
        spanGaps: true,
      })),
    );
    el.textContent = "";
    window.runstream.chart = new uPlot(
      { width: width, height: 320, scales: { x: { time: false } }, axes: [{ label: "step" }, {}], series: series },
      data,
      el,
    );
    window.runstream.ready = 1;
  }
  load();
})();
