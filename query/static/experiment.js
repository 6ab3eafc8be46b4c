// The experiment page: run statuses, ends and durations update from the
// experiment's event stream; runs that start meanwhile are announced.
(function () {
  "use strict";
  const root = document.getElementById("experiment");
  if (!root) return;
  const name = root.dataset.experiment;
  window.runstream = { updates: 0 };

  function duration(run) {
    const start = run.started_at || run.created_at;
    if (!start || !run.ended_at) return "";
    const seconds = Math.floor((Date.parse(run.ended_at) - Date.parse(start)) / 1000);
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    return h + ":" + String(m).padStart(2, "0") + ":" + String(s).padStart(2, "0");
  }

  const stream = new EventSource("/api/stream?experiment=" + encodeURIComponent(name));
  stream.addEventListener("runs", (ev) => {
    const data = JSON.parse(ev.data);
    let fresh = 0;
    for (const run of data.runs) {
      const row = document.querySelector('tr[data-run="' + CSS.escape(run.id) + '"]');
      if (!row) {
        fresh += 1;
        continue;
      }
      const status = row.querySelector(".status");
      status.textContent = run.status;
      status.className = "status " + run.status;
      row.querySelector("[data-duration]").textContent = duration(run);
    }
    if (fresh) {
      const note = document.getElementById("new-runs");
      note.hidden = false;
      note.dataset.count = String(Number(note.dataset.count || 0) + fresh);
      note.querySelector("span").textContent = note.dataset.count;
    }
    window.runstream.updates += 1;
  });
})();
