"""The run page in a real browser (Debian's Chromium driven by Playwright): charts, live updates, no JS errors."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from playwright.async_api import Browser, Route

from tests.test_query_seed import append_points, bump_session, seed_entries, seed_run, seed_scalars

ROOT = Path(__file__).resolve().parent.parent
# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SCREENSHOTS = ROOT / "test-results"
T0 = 1_700_000_000.0
WAIT_MS = 15_000


async def test_run_page_charts_update_live(query_service: str, db: asyncpg.Pool, browser: Browser) -> None:
    run_id = await seed_run(db, status="Running", display_name="browser run", tags={"lr": "0.1"})
    session = uuid.uuid4()
    await seed_scalars(db, run_id, "loss", "float", [1 / (i + 1) for i in range(50)])
    await seed_scalars(db, run_id, "accuracy", "float", [i / 100 for i in range(30)])
    await seed_entries(db, run_id, "alphas", "list", [[0.1, 0.2]])
    await seed_entries(
        db, run_id, "sweep", "row", [{"alpha": a, "mse": 1 / a, "r2": 1 - a} for a in (0.4, 0.1, 0.2, 0.3)]
    )
    await seed_entries(db, run_id, "plot", "image", ["plot.png"])
    async with aiohttp.ClientSession() as client:
        async with client.put(f"{query_service}/api/runs/{run_id}/files/plot.png", data=PNG) as resp:
            assert resp.status == 201
    await bump_session(db, run_id, session, 1)

    page = await browser.new_page(viewport={"width": 1200, "height": 1400})
    errors: list[Any] = []
    page.on("pageerror", lambda exc: errors.append(exc))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(f"{query_service}/runs/{run_id}")
    await page.wait_for_function("() => window.runstream && window.runstream.ready === 2", timeout=WAIT_MS)

    # One chart per scalar metric, each with one line.
    assert await page.locator(".chart canvas.rs-chart").count() == 2
    shape = await page.evaluate(
        "() => Object.fromEntries(Object.entries(window.runstream.charts)"
        ".map(([k, c]) => [k, [c.series.length, c.series[0].steps.length]]))"
    )
    assert shape == {"loss": [1, 50], "accuracy": [1, 30]}
    # The row series is a y-over-x chart, x sorted; picking other columns redraws it.
    # (jsonb keeps no column order, so pick both.)
    await page.select_option('[data-metric="sweep"] select[aria-label="x column"]', "alpha")
    await page.select_option('[data-metric="sweep"] select[aria-label="y column"]', "mse")
    assert await page.evaluate("() => window.runstream.xy.sweep.u.data") == [
        [0.1, 0.2, 0.3, 0.4],
        [10.0, 5.0, 1 / 0.3, 2.5],
    ]
    await page.select_option('[data-metric="sweep"] select[aria-label="y column"]', "r2")
    assert await page.evaluate("() => window.runstream.xy.sweep.u.data[1]") == [0.9, 0.8, 0.7, 0.6]
    # The logged image is shown from the run's files.
    assert await page.evaluate("() => document.querySelector('figure img').naturalWidth") == 1

    # New points and a new metric arrive while the page is open: the charts change without a reload.
    await page.evaluate("() => { window.__marker = 'same page'; }")
    await append_points(db, run_id, "loss", [(50 + i, T0 + 50 + i, 50 + i, 0.01) for i in range(5)])
    await seed_scalars(db, run_id, "lr", "float", [0.1, 0.05], times=[T0 + 60, T0 + 61])
    await bump_session(db, run_id, session, 2)
    await page.wait_for_function(
        "() => window.runstream.charts.loss && window.runstream.charts.loss.series[0].steps.length === 55"
        " && window.runstream.charts.lr && window.runstream.charts.lr.series[0].steps.length === 2",
        timeout=WAIT_MS,
    )
    assert await page.locator(".chart canvas.rs-chart").count() == 3
    await db.execute("UPDATE runs SET status = 'Completed', ended_at = now() WHERE id = $1", run_id)
    await page.wait_for_function(
        "() => document.getElementById('run-status').textContent === 'Completed'", timeout=WAIT_MS
    )
    assert await page.evaluate("() => window.__marker") == "same page"

    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "run-page.png"), full_page=True)
    assert errors == []
    await page.close()


async def test_compare_view_draws_one_line_per_run(query_service: str, db: asyncpg.Pool, browser: Browser) -> None:
    experiment = f"compare-{uuid.uuid4().hex[:6]}"
    a = await seed_run(db, experiment=experiment, display_name="lr=0.1")
    b = await seed_run(db, experiment=experiment, display_name="lr=0.01")
    c = await seed_run(db, experiment=experiment, display_name="no loss")
    await seed_scalars(db, a, "loss", "float", [1.0, 0.5, 0.25])
    await seed_scalars(db, b, "loss", "float", [1.0, 0.9, 0.8, 0.7])
    await seed_scalars(db, c, "acc", "float", [0.5])

    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[Any] = []
    page.on("pageerror", lambda exc: errors.append(exc))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    # Pick the runs on the experiment page, as a person would.
    await page.goto(f"{query_service}/experiments/{experiment}")
    await page.check(f'input[name="run"][value="{a}"]')
    await page.check(f'input[name="run"][value="{b}"]')
    await page.select_option('select[name="name"]', "loss")
    await page.click("#compare-form button")
    await page.wait_for_function("() => window.runstream && window.runstream.ready === 1", timeout=WAIT_MS)
    chart = "window.runstream.charts.loss"
    labels = await page.evaluate(f"() => {chart}.series.map((s) => s.label)")
    assert labels == ["lr=0.01", "lr=0.1"]  # the table's order: newest first
    drawn = await page.evaluate(f"() => {chart}.drawn().map((s) => [s.xs, s.ys])")
    assert drawn == [[[0, 1, 2, 3], [1.0, 0.9, 0.8, 0.7]], [[0, 1, 2], [1.0, 0.5, 0.25]]]
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "compare-page.png"), full_page=True)
    assert errors == []
    await page.close()


async def test_experiment_page_statuses_update_live(query_service: str, db: asyncpg.Pool, browser: Browser) -> None:
    experiment = f"live-page-{uuid.uuid4().hex[:6]}"
    run_id = await seed_run(db, experiment=experiment, status="Running", started_at=datetime.now(UTC))
    page = await browser.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda exc: errors.append(exc))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(f"{query_service}/experiments/{experiment}")
    row = f'tr[data-run="{run_id}"]'
    assert await page.text_content(f"{row} .status") == "Running"
    assert await page.is_hidden("#new-runs")
    await db.execute(
        "UPDATE runs SET status = 'Completed', ended_at = started_at + interval '1 hour 2 minutes 3 seconds'"
        " WHERE id = $1",
        run_id,
    )
    await page.wait_for_function(
        f"() => document.querySelector('{row} .status').textContent === 'Completed'", timeout=WAIT_MS
    )
    assert await page.text_content(f"{row} [data-duration]") == "1:02:03"
    await seed_run(db, experiment=experiment, status="Running")
    await page.wait_for_selector("#new-runs:not([hidden])", timeout=WAIT_MS)
    assert await page.text_content("#new-runs span") == "1"
    assert errors == []
    await page.close()


async def test_run_page_misses_nothing_stored_before_its_stream_opened(
    query_service: str, db: asyncpg.Pool, browser: Browser
) -> None:
    """Points of a drawn metric, and a new metric, stored after the page was rendered but before its event
    stream started (no event will ever announce them) are on the charts: they load once the stream is open,
    and its first event lists the run's metrics."""
    run_id = await seed_run(db, status="Running", display_name="gap run")
    session = uuid.uuid4()
    await seed_scalars(db, run_id, "loss", "float", [1 / (i + 1) for i in range(20)])
    await bump_session(db, run_id, session, 1)
    page = await browser.new_page()

    async def store_first(route: Route) -> None:
        # The page is rendered with one metric; more points and a new metric are stored, announced
        # to nobody yet listening; only then does the page's stream start.
        await append_points(db, run_id, "loss", [(20 + i, T0 + 20 + i, 20 + i, 0.01) for i in range(5)])
        await seed_scalars(db, run_id, "lr", "float", [0.1, 0.05, 0.025], times=[T0 + 60, T0 + 61, T0 + 62])
        await bump_session(db, run_id, session, 2)
        await route.continue_()

    await page.route(f"**/api/runs/{run_id}/stream", store_first)
    await page.goto(f"{query_service}/runs/{run_id}")
    await page.wait_for_function(
        "() => window.runstream.charts.loss && window.runstream.charts.loss.loads > 0"
        " && window.runstream.charts.lr && window.runstream.charts.lr.loads > 0",
        timeout=WAIT_MS,
    )
    steps = await page.evaluate(
        "() => [window.runstream.charts.loss.series[0].steps, window.runstream.charts.lr.series[0].steps]"
    )
    assert steps == [list(range(25)), [0, 1, 2]]
    await page.close()


async def test_experiment_page_catches_up_with_a_change_before_its_stream_opened(
    query_service: str, db: asyncpg.Pool, browser: Browser
) -> None:
    """A run that ends after the page is drawn but before its event stream starts is shown ended, not Running."""
    experiment = f"gap-page-{uuid.uuid4().hex[:6]}"
    run_id = await seed_run(db, experiment=experiment, status="Running", started_at=datetime.now(UTC))
    page = await browser.new_page()

    async def end_the_run_first(route: Route) -> None:
        # The page is drawn (Running); the run ends; only then does the stream start watching.
        await db.execute(
            "UPDATE runs SET status = 'Failed', ended_at = started_at + interval '5 seconds' WHERE id = $1", run_id
        )
        await route.continue_()

    await page.route("**/api/stream?*", end_the_run_first)
    await page.goto(f"{query_service}/experiments/{experiment}")
    row = f'tr[data-run="{run_id}"]'
    # Well before the stream's own 5 s check of a change nobody announced (this one is made by SQL).
    await page.wait_for_function("() => window.runstream.reconciled >= 1", timeout=WAIT_MS)
    assert await page.text_content(f"{row} .status") == "Failed"
    assert await page.text_content(f"{row} [data-duration]") == "0:00:05"
    assert await page.is_hidden("#new-runs")  # the run was on the page: nothing new to announce
    await page.close()
