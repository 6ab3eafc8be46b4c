"""10. Charts in Chromium: a compare chart of many long runs drawn from navigation, and a zoom's refetch and redraw.

Seeded through the SDK (``chart_runs`` runs of ``chart_points`` points of
one metric) and timed once everything is committed, in Debian's Chromium
driven by Playwright (``/usr/bin/chromium``, never a downloaded browser):

* navigation to ``/compare?run=...&name=loss`` until the chart has drawn
  every run, as ``performance.now()`` in the page (milliseconds since the
  navigation started) when the chart's first load finished drawing;
* a drag-sized zoom (a tenth of the steps, a different window each time):
  from ``chart.zoom(a, b)`` until its refetch is drawn, timed in the page.

Each repetition opens a fresh page a few pixels narrower than the last, so
the chart asks for a different number of points and the service's answer
cache never answers (figure 5 does the same with ``max_points``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

import asyncpg

from bench.context import Context
from bench.points import wait_committed
from bench.proc import next_message
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats
from bench.workers.rs_seed import seed_compared

TITLE = "10. charts in Chromium"
CHROMIUM = "/usr/bin/chromium"


async def _seed(ctx: Context, sandbox: Sandbox) -> list[str]:
    s = ctx.sizes
    mp = multiprocessing.get_context("spawn")
    queue = mp.Queue()
    proc = mp.Process(
        target=seed_compared, args=(sandbox.settings.as_env(), s.chart_runs, s.chart_points, queue), daemon=True
    )
    proc.start()
    seeded = await next_message(queue, [proc], "seeding process")
    await asyncio.to_thread(proc.join, 60)
    conn = await asyncpg.connect(sandbox.settings.database_url)
    try:
        _, found = await wait_committed(
            conn,
            cluster=sandbox.settings,
            topic=sandbox.settings.topic,
            run_ids=seeded["run_ids"],
            expected_points=seeded["points"],
            timeout_seconds=1200,
        )
        if found < seeded["points"]:
            raise RuntimeError(f"only {found} of {seeded['points']} seeded points were stored")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return list(seeded["run_ids"])


_DRAWN = """() => { const c = window.runstream && window.runstream.charts.loss;
                    return c && c.loads > 0 && c.drawn().every((s) => s.xs.length > 0); }"""

_ZOOM = """async ([a, b]) => { const c = window.runstream.charts.loss; const t = performance.now();
                               await c.zoom(a, b); return [performance.now() - t, c.drawn()[0].xs.length]; }"""


async def _measure(ctx: Context, url: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    out: dict[str, Any] = {"drawn": [], "zoom": [], "points_drawn": [], "zoom_points": []}
    steps = ctx.sizes.chart_points
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            # One untimed warm-up, then one fresh page per repetition, each a little narrower (a cold answer);
            # last, the last page again: the service answers from its cache, which leaves the browser's share.
            reps = ctx.sizes.reps
            for rep in [*range(-1, reps), reps - 1]:
                page = await browser.new_page(viewport={"width": 1000 - 8 * (rep + 1), "height": 800})
                await page.goto(url)
                await page.wait_for_function(_DRAWN, timeout=60_000)
                drawn_ms = await page.evaluate("() => window.runstream.charts.loss.drawnAt")
                points = await page.evaluate("() => window.runstream.charts.loss.drawn().map((s) => s.xs.length)")
                start = steps // 3 + rep * steps // 50
                zoom_ms, zoom_points = await page.evaluate(_ZOOM, [start, start + steps // 10])
                await page.close()
                if rep < 0:
                    continue
                if len(out["drawn"]) == reps:
                    out["cached"] = {"drawn_seconds": drawn_ms / 1000, "zoom_seconds": zoom_ms / 1000}
                    continue
                out["drawn"].append(drawn_ms / 1000)
                out["zoom"].append(zoom_ms / 1000)
                out["points_drawn"].append(sum(points))
                out["zoom_points"].append(zoom_points)
        finally:
            await browser.close()
    return out


async def run(ctx: Context) -> list[Row]:
    s = ctx.sizes
    quick = " (QUICK size)" if ctx.quick else ""
    drawn = Row(
        key="chart_compare_drawn",
        figure=f"10. compare chart, {s.chart_runs} runs × {s.chart_points:,} points, navigation → drawn{quick}",
        unit="s",
        bars=[Bar("max", 1.0, "≤ 1 s")],
    )
    zoom = Row(
        key="chart_zoom",
        figure=f"10. the same chart: zoom to a tenth, refetch + redraw{quick}",
        unit="s",
        bars=[Bar("max", 0.15, "≤ 150 ms")],
    )
    rows = [drawn, zoom]
    if gone := ctx.lacks("producer", "ingest", "query"):
        for row in rows:
            row.missing = gone
        return rows
    async with Sandbox(ctx.infra, "charts") as sandbox:
        await sandbox.start_ingest(1)
        base = await sandbox.start_query()
        ctx.progress(f"  seeding {s.chart_runs} runs × {s.chart_points:,} points through the SDK")
        run_ids = await _seed(ctx, sandbox)
        ctx.progress("  timing the compare page in Chromium")
        url = f"{base}/compare?name=loss&" + "&".join(f"run={r}" for r in run_ids)
        measured = await _measure(ctx, url)
        sandbox.check_alive()
    drawn.runstream = Stats.of(measured["drawn"])
    drawn.details = {"points_drawn": measured["points_drawn"], "cached": measured.get("cached")}
    zoom.runstream = Stats.of(measured["zoom"])
    zoom.details = {"points_drawn_first_run": measured["zoom_points"]}
    drawn.note = (
        "performance.now() in the page when the compare chart's first load has drawn every run (ms since "
        "navigation started): the page, chart.js, one /api/series answer of M4 per run (4 points per pixel "
        "column), the drawing. A fresh page per repetition, a different width each, so the answer is never cached."
    )
    zoom.note = "chart.zoom(a, b) on a tenth of the steps until its refetch is drawn, timed in the page."
    return rows
