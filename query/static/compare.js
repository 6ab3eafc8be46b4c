// The compare page: one chart (chart.js) per chosen metric, a line per run.
// Runs and metrics are added and removed on the page and kept in the URL
// (run=, name=); each chart offers the CSV of what it shows. While any run is
// live the charts are fetched again every few seconds (the service answers from
// its cache until a run's data changes); a zoomed chart keeps its range.
(function () {
  "use strict";
  const root = document.getElementById("compare");
  if (!root || typeof RunstreamChart === "undefined") return;
  const data = JSON.parse(root.dataset.compare);
  const runs = data.runs;
  const chosen = data.chosen.slice();
  const charts = {};
  const LIVE_MS = 5000;
  const TERMINAL = ["Completed", "Failed", "Canceled"];
  // For tests and the curious: the charts by metric, and how many loads finished.
  window.runstream = { charts: charts, ready: 0, runs: runs };
  const options = RunstreamChart.controls(document.getElementById("chart-controls"), () => Object.values(charts));

  function remember() {
    const u = new URL(window.location.href);
    u.searchParams.delete("run");
    u.searchParams.delete("name");
    runs.forEach((r) => u.searchParams.append("run", r.id));
    chosen.forEach((n) => u.searchParams.append("name", n));
    history.replaceState(null, "", u.toString());
  }

  // What a chart shows as CSV: its metric of every run, over the range in view, as downsampled.
  function csvLink(name, chart) {
    const params = new URLSearchParams({ name: name, format: "csv", max_points: String(chart.maxPoints()) });
    runs.forEach((r) => params.append("run", r.id));
    if (chart.view && options.x === "step") {
      params.set("start_step", String(Math.floor(chart.view[0])));
      params.set("end_step", String(Math.ceil(chart.view[1])));
    }
    return "/api/series?" + params.toString();
  }

  function addChart(name) {
    const sec = document.createElement("section");
    sec.className = "metric";
    sec.dataset.metric = name;
    const title = document.createElement("h3");
    title.textContent = name + " ";
    const csv = document.createElement("a");
    csv.textContent = "CSV";
    csv.className = "csv";
    title.append(csv);
    const el = document.createElement("div");
    el.className = "chart";
    sec.append(title, el);
    document.getElementById("compare-charts").append(sec);
    const chart = new RunstreamChart.Chart(el, {
      height: 320,
      source: async (view, opts, maxPoints) => {
        const having = new Set(chart.series.filter((s) => s.steps.length).map((s) => s.key));
        const bodies = await RunstreamChart.fetchCompared(runs, name, view, opts, maxPoints, having);
        return runs.map((r, i) => ({ ...bodies[i], key: r.id, label: r.label, t0: r.t0 || 0 }));
      },
    });
    Object.assign(chart.options, options);
    charts[name] = chart;
    const refresh = () => (csv.href = csvLink(name, chart));
    chart.load().then(() => {
      refresh();
      window.runstream.ready += 1;
    });
    chart.canvas.addEventListener("mouseup", () => setTimeout(refresh, 0));
    sec.addEventListener("dblclick", () => setTimeout(refresh, 0));
    chart.refreshLink = refresh;
  }

  function removeChart(name) {
    delete charts[name];
    const sec = document.querySelector('#compare-charts section[data-metric="' + CSS.escape(name) + '"]');
    if (sec) sec.remove();
  }

  // Runs: each with a remove button; more from the first run's experiment. Changing runs reloads the page.
  function runPicker() {
    const box = document.getElementById("compare-runs");
    box.append("Runs: ");
    for (const r of runs) {
      const item = document.createElement("label");
      const link = document.createElement("a");
      link.href = "/runs/" + r.id;
      link.textContent = r.label;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.title = "remove " + r.label;
      remove.dataset.remove = r.id;
      remove.disabled = runs.length === 1;
      remove.addEventListener("click", () => {
        runs.splice(runs.indexOf(r), 1);
        remember();
        window.location.reload();
      });
      item.append(link, " ", remove);
      box.append(item);
    }
    const experiment = runs.map((r) => r.experiment).find(Boolean);
    if (!experiment) return;
    const add = document.createElement("select");
    add.id = "add-run";
    add.setAttribute("aria-label", "add a run");
    add.append(new Option("+ run", ""));
    box.append(add);
    const params = new URLSearchParams({ experiment: experiment, limit: "200" });
    fetch("/api/runs?" + params.toString(), { credentials: "same-origin" })
      .then((resp) => (resp.ok ? resp.json() : { runs: [] }))
      .then((body) => {
        const present = new Set(runs.map((r) => r.id));
        for (const r of body.runs) {
          if (!present.has(r.id)) add.append(new Option(r.display_name || r.id.slice(0, 8), r.id));
        }
      });
    add.addEventListener("change", () => {
      if (!add.value) return;
      runs.push({ id: add.value });
      remember();
      window.location.reload();
    });
  }

  // Metrics: a checkbox each (most logged first), with a filter when there are many.
  function metricPicker() {
    const box = document.getElementById("compare-metrics");
    if (!data.metrics.length) return;
    box.append("Metrics: ");
    if (data.metrics.length > 12) {
      const filter = document.createElement("input");
      filter.type = "search";
      filter.placeholder = "filter metrics";
      filter.addEventListener("input", () => {
        const text = filter.value.toLowerCase();
        box.querySelectorAll("label[data-metric]").forEach((l) => {
          l.hidden = text !== "" && !l.dataset.metric.toLowerCase().includes(text);
        });
      });
      box.append(filter, " ");
    }
    for (const [name, points] of data.metrics) {
      const label = document.createElement("label");
      label.dataset.metric = name;
      label.title = points + " points";
      const box1 = document.createElement("input");
      box1.type = "checkbox";
      box1.name = "metric";
      box1.value = name;
      box1.checked = chosen.includes(name);
      box1.addEventListener("change", () => {
        if (box1.checked) {
          chosen.push(name);
          addChart(name);
        } else {
          chosen.splice(chosen.indexOf(name), 1);
          removeChart(name);
        }
        remember();
      });
      label.append(box1, " " + name);
      box.append(label);
    }
  }

  runPicker();
  metricPicker();
  chosen.forEach(addChart);
  remember();

  // Live: fetch again while any run may still log.
  if (runs.some((r) => !TERMINAL.includes(r.status))) {
    setInterval(() => {
      if (document.hidden) return;
      Object.values(charts).forEach((c) => c.load());
    }, LIVE_MS);
  }
})();
