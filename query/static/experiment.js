// The experiment page: run statuses, ends and durations update from the
// experiment's event stream; runs that start meanwhile are announced (each run
// counted once, however many events it sends).
(function () {
  "use strict";
  const root = document.getElementById("experiment");
  if (!root) return;
  const name = root.dataset.experiment;
  window.runstream = window.runstream || {};
  window.runstream.updates = 0;
  const fresh = new Set();

  function hms(ms) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    return h + ":" + String(m).padStart(2, "0") + ":" + String(seconds % 60).padStart(2, "0");
  }

  function duration(run) {
    const start = run.started_at || run.created_at;
    if (!start || !run.ended_at) return "";
    return hms(Date.parse(run.ended_at) - Date.parse(start));
  }

  // A run without an end: its duration so far, ticking.
  const TERMINAL = ["Completed", "Failed", "Canceled"];
  function tick() {
    document.querySelectorAll("tr[data-run]").forEach((row) => {
      const cell = row.querySelector("[data-duration]");
      const status = row.querySelector(".status");
      if (!cell || cell.dataset.ended || !cell.dataset.start || TERMINAL.includes(status.textContent)) return;
      cell.textContent = hms(Date.now() - Date.parse(cell.dataset.start));
    });
  }
  tick();
  setInterval(tick, 1000);

  document.querySelectorAll("time[datetime]").forEach((el) => {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) el.textContent = when.toLocaleString();
  });

  // Runs' new states onto their rows; a run without a row is new since the page was drawn (announced).
  function apply(runs, announce) {
    for (const run of runs) {
      const row = document.querySelector('tr[data-run="' + CSS.escape(run.id) + '"]');
      if (!row) {
        if (announce) fresh.add(run.id);
        continue;
      }
      const status = row.querySelector(".status");
      status.textContent = run.status;
      status.className = "status " + run.status;
      const cell = row.querySelector("[data-duration]");
      cell.dataset.ended = run.ended_at || "";
      cell.textContent = duration(run) || cell.textContent;
    }
    if (fresh.size) {
      const note = document.getElementById("new-runs");
      note.hidden = false;
      note.dataset.count = String(fresh.size);
      note.querySelector("span").textContent = note.dataset.count;
    }
  }

  const stream = new EventSource("/api/stream?experiment=" + encodeURIComponent(name));
  stream.addEventListener("runs", (ev) => {
    apply(JSON.parse(ev.data).runs, true);
    window.runstream.updates += 1;
  });
  // The stream sends changes from the moment it opens: what changed between the page being
  // drawn and that moment (or while a dropped stream reconnected) is read once, on every open,
  // for the newest runs, the ones the stream watches.
  const watched = new URLSearchParams({ experiment: name, limit: root.dataset.liveRuns });
  stream.addEventListener("open", () => {
    fetch("/api/runs?" + watched.toString(), { credentials: "same-origin" })
      .then((resp) => (resp.ok ? resp.json() : null))
      .then((body) => {
        if (body) apply(body.runs, false);
        window.runstream.reconciled = (window.runstream.reconciled || 0) + 1;
      })
      .catch(() => {});
  });
})();

// The runs table as a tool: a column chooser (hidden columns kept in the URL,
// ?hide=), sorting by any column, grouping by a tag or property with the mean,
// min and max of each metric, and a scatter chart of one column against a metric.
(function () {
  "use strict";
  const root = document.getElementById("experiment");
  const table = root && root.querySelector(".table-wrap table");
  if (!root || !table || !root.dataset.table) return;
  const data = JSON.parse(root.dataset.table);
  const FIXED = 5; // checkbox, run, status, started, duration
  const fmt = (v) => (typeof v === "number" ? String(Number(v.toPrecision(5))) : v === null ? "" : String(v));
  const number = (v) => {
    if (v !== null && typeof v === "object") return Number(v.$float);
    if (typeof v === "boolean") return v ? 1 : 0;
    const n = typeof v === "number" ? v : v === null || v === "" ? NaN : Number(v);
    return n;
  };
  const state = { hidden: new Set(new URL(window.location.href).searchParams.getAll("hide")) };
  window.runstream.table = state;

  // Column chooser.
  function applyHidden() {
    data.columns.forEach((c, i) => {
      const hide = state.hidden.has(c.label);
      table.querySelectorAll("tr").forEach((tr) => {
        const cell = tr.children[FIXED + i];
        if (cell) cell.hidden = hide;
      });
    });
    const u = new URL(window.location.href);
    u.searchParams.delete("hide");
    state.hidden.forEach((label) => u.searchParams.append("hide", label));
    history.replaceState(null, "", u.toString());
  }
  const chooser = document.getElementById("columns");
  const details = document.createElement("details");
  details.innerHTML = "<summary>columns</summary>";
  data.columns.forEach((c) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = !state.hidden.has(c.label);
    box.dataset.column = c.label;
    box.addEventListener("change", () => {
      if (box.checked) state.hidden.delete(c.label);
      else state.hidden.add(c.label);
      applyHidden();
    });
    label.append(box, " " + c.label);
    details.append(label);
  });
  chooser.append(details);
  applyHidden();

  // Sort by any column: click its header (metric headers also link to the service's sort).
  const body = table.querySelector("tbody");
  const heads = Array.from(table.querySelectorAll("thead th"));
  heads.forEach((th, i) => {
    if (i === 0 || th.querySelector("a")) return;
    th.style.cursor = "pointer";
    th.title = "sort";
    th.addEventListener("click", () => {
      const down = th.dataset.sorted !== "down";
      heads.forEach((h) => delete h.dataset.sorted);
      th.dataset.sorted = down ? "down" : "up";
      const rows = Array.from(body.querySelectorAll("tr"));
      const key = (tr) => {
        const text = tr.children[i].textContent.trim();
        const n = Number(text);
        return text !== "" && !Number.isNaN(n) ? n : text;
      };
      rows.sort((a, b) => {
        const x = key(a);
        const y = key(b);
        const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : typeof x === "number" ? -1 : 1;
        return down ? -order : order;
      });
      rows.forEach((r) => body.append(r));
      state.sorted = [th.textContent, down ? "down" : "up"];
    });
  });

  // Group by a tag or property: mean, min and max of each metric per group.
  const metrics = data.columns.map((c, i) => [c, i]).filter(([c]) => c.kind === "metrics");
  const keys = data.columns.map((c, i) => [c, i]).filter(([c]) => c.kind !== "metrics");
  const group = document.getElementById("group");
  if (keys.length && metrics.length) {
    const pick = document.createElement("select");
    pick.id = "group-by";
    pick.append(new Option("group by…", ""));
    keys.forEach(([c, i]) => pick.append(new Option(c.label, String(i))));
    const out = document.createElement("div");
    out.className = "table-wrap";
    group.append(pick, out);
    pick.addEventListener("change", () => {
      out.textContent = "";
      state.groups = null;
      if (!pick.value) return;
      const at = Number(pick.value);
      const groups = new Map();
      for (const run of data.runs) {
        const g = run.values[at] === null ? "(none)" : String(run.values[at]);
        if (!groups.has(g)) groups.set(g, []);
        groups.get(g).push(run);
      }
      const t = document.createElement("table");
      const head = t.createTHead().insertRow();
      [data.columns[at].label, "runs", ...metrics.map(([c]) => c.label + " mean (min–max)")].forEach((h) => {
        head.append(Object.assign(document.createElement("th"), { textContent: h }));
      });
      state.groups = {};
      const tb = t.createTBody();
      for (const [g, runs] of groups) {
        const row = tb.insertRow();
        row.dataset.group = g;
        row.insertCell().textContent = g;
        row.insertCell().textContent = String(runs.length);
        state.groups[g] = {};
        for (const [c, i] of metrics) {
          const xs = runs.map((r) => number(r.values[i])).filter((x) => Number.isFinite(x));
          const cell = row.insertCell();
          if (!xs.length) continue;
          const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
          const stats = { mean: mean, min: Math.min(...xs), max: Math.max(...xs) };
          state.groups[g][c.label] = stats;
          cell.textContent = fmt(stats.mean) + " (" + fmt(stats.min) + "–" + fmt(stats.max) + ")";
        }
      }
      out.append(t);
    });
  }

  // Scatter: any column (a property, a tag with numbers, a metric) against a metric, one dot per run.
  const scatter = document.getElementById("scatter");
  if (metrics.length) {
    const xSel = document.createElement("select");
    const ySel = document.createElement("select");
    xSel.id = "scatter-x";
    ySel.id = "scatter-y";
    data.columns.forEach((c, i) => xSel.append(new Option(c.label, String(i))));
    metrics.forEach(([c, i]) => ySel.append(new Option(c.label, String(i))));
    xSel.value = String((keys.find(([c]) => c.kind === "properties") || metrics[0])[1]);
    // By default the metric most runs have.
    const have = ([, i]) => data.runs.filter((r) => Number.isFinite(number(r.values[i]))).length;
    ySel.value = String(metrics.reduce((best, m) => (have(m) > have(best) ? m : best))[1]);
    const canvas = document.createElement("canvas");
    canvas.className = "rs-chart";
    const picks = document.createElement("p");
    picks.className = "rs-picker";
    picks.append("scatter: x ", xSel, " y ", ySel);
    scatter.append(picks, canvas);
    function draw() {
      const xi = Number(xSel.value);
      const yi = Number(ySel.value);
      const points = data.runs
        .map((r) => ({ id: r.id, label: r.label, x: number(r.values[xi]), y: number(r.values[yi]) }))
        .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
      state.scatter = points;
      const W = Math.min(640, Math.max(300, scatter.clientWidth || 640));
      const H = 260;
      const P = 64;
      canvas.width = W;
      canvas.height = H;
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, W, H);
      ctx.strokeStyle = "#aab";
      ctx.strokeRect(P + 0.5, 8.5, W - P - 10, H - P - 8);
      ctx.font = "11px system-ui, sans-serif";
      ctx.fillStyle = "#556";
      if (!points.length) {
        ctx.fillText("no run has both values", P + 10, 30);
        return;
      }
      const xs = points.map((p) => p.x);
      const ys = points.map((p) => p.y);
      const span = (lo, hi) => (hi > lo ? [lo, hi] : [lo - (Math.abs(lo) * 0.1 || 1), hi + (Math.abs(hi) * 0.1 || 1)]);
      const [x0, x1] = span(Math.min(...xs), Math.max(...xs));
      const [y0, y1] = span(Math.min(...ys), Math.max(...ys));
      const px = (x) => P + 6 + ((x - x0) / (x1 - x0)) * (W - P - 22);
      const py = (y) => H - P - 6 - ((y - y0) / (y1 - y0)) * (H - P - 20);
      ctx.textAlign = "center";
      ctx.fillText(fmt(x0), px(x0), H - P + 14);
      ctx.fillText(fmt(x1), px(x1), H - P + 14);
      ctx.fillText(xSel.selectedOptions[0].text, W / 2, H - 12);
      ctx.textAlign = "right";
      ctx.fillText(fmt(y0), P - 4, py(y0));
      ctx.fillText(fmt(y1), P - 4, py(y1) + 8);
      ctx.fillStyle = "#2450b2";
      for (const p of points) {
        ctx.beginPath();
        ctx.arc(px(p.x), py(p.y), 4, 0, 2 * Math.PI);
        ctx.fill();
      }
    }
    xSel.addEventListener("change", draw);
    ySel.addEventListener("change", draw);
    draw();
  }

  // Parallel coordinates: an axis per numeric column (properties, tags with numbers, metrics), a line per run.
  const numeric = data.columns
    .map((c, i) => [c, i])
    .filter(([, i]) => data.runs.filter((r) => Number.isFinite(number(r.values[i]))).length >= 2);
  if (numeric.length >= 2) {
    const box = document.createElement("div");
    box.id = "parallel";
    const canvas = document.createElement("canvas");
    canvas.className = "rs-chart";
    box.append(Object.assign(document.createElement("p"), { textContent: "parallel coordinates" }), canvas);
    scatter.after(box);
    const W = Math.min(900, Math.max(320, root.clientWidth || 900));
    const H = 240;
    const P = 30;
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext("2d");
    const axisX = (k) => P + (k * (W - 2 * P)) / (numeric.length - 1);
    const ranges = numeric.map(([, i]) => {
      const xs = data.runs.map((r) => number(r.values[i])).filter(Number.isFinite);
      return [Math.min(...xs), Math.max(...xs)];
    });
    const axisY = (k, v) => {
      const [lo, hi] = ranges[k];
      return H - P - (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (H - 2 * P);
    };
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "center";
    numeric.forEach(([c], k) => {
      ctx.strokeStyle = "#aab";
      ctx.beginPath();
      ctx.moveTo(axisX(k) + 0.5, P);
      ctx.lineTo(axisX(k) + 0.5, H - P);
      ctx.stroke();
      ctx.fillStyle = "#334";
      ctx.fillText(c.label, axisX(k), P - 12);
      ctx.fillStyle = "#778";
      ctx.fillText(fmt(ranges[k][1]), axisX(k), P - 1);
      ctx.fillText(fmt(ranges[k][0]), axisX(k), H - P + 12);
    });
    const lines = data.runs.map((r) => ({
      label: r.label,
      values: numeric.map(([, i]) => number(r.values[i])),
    }));
    ctx.strokeStyle = "rgba(36,80,178,0.6)";
    for (const line of lines) {
      ctx.beginPath();
      let drawing = false;
      line.values.forEach((v, k) => {
        if (!Number.isFinite(v)) {
          drawing = false; // a run without this column: a gap
          return;
        }
        if (drawing) ctx.lineTo(axisX(k), axisY(k, v));
        else ctx.moveTo(axisX(k), axisY(k, v));
        drawing = true;
      });
      ctx.stroke();
    }
    state.parallel = { axes: numeric.map(([c]) => c.label), lines: lines };
  }
})();
