"""The charts in real Chromium, asserted on what they draw: M4 points, zoom, live updates, controls, compare, CSV.

One module-scoped set of runs (seeded straight into PostgreSQL as ingest
writes it) serves every test; the session's one browser opens a page per
test. Screenshots of the run, experiment and compare pages go to
``test-results/``.
"""

from __future__ import annotations

import csv
import io
import math
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from tests.fuzzing import SEED
from tests.test_query_seed import append_points, bump_session, get, seed_entries, seed_run, seed_scalars

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-results"
WAIT_MS = 30_000  # generous: the machine is shared, and a wait ends as soon as its condition holds
T0 = 1_700_000_000.0
N = 50_000
SPIKE, DIP = 12_345, 40_404


@dataclass(frozen=True)
class Seeded:
    experiment: str
    long: uuid.UUID
    diverged: uuid.UUID
    short: uuid.UUID
    loss: list[float]


@pytest_asyncio.fixture(scope="module")
async def seeded(db: asyncpg.Pool) -> AsyncIterator[Seeded]:
    rng = np.random.default_rng(SEED)
    experiment = f"charts-{uuid.uuid4().hex[:6]}"
    started = datetime.fromtimestamp(T0, UTC)

    async def run(name: str, status: str, opt: str, lr: str) -> uuid.UUID:
        tags, properties = {"opt": opt}, {"lr": lr}
        return await seed_run(
            db,
            experiment=experiment,
            display_name=name,
            status=status,
            started_at=started,
            tags=tags,
            properties=properties,
        )

    long = await run("long", "Running", "adam", "0.1")
    loss = (2 / np.sqrt(np.arange(N) + 1) + rng.normal(0, 0.02, N)).tolist()
    loss[SPIKE], loss[DIP] = 9.0, -1.0
    await seed_scalars(db, long, "train/loss", "float", loss, times=[T0 + 5 + i * 0.01 for i in range(N)])
    await seed_scalars(
        db, long, "val/loss", "float", [1 / (i + 1) for i in range(500)], times=[T0 + i for i in range(500)]
    )
    await seed_scalars(db, long, "lr", "float", [0.003])
    await seed_entries(db, long, "samples", "image", ["epoch1.png", "epoch2.png", "epoch3.png"])

    diverged = await run("diverged", "Failed", "adam", "1.0")
    await seed_scalars(db, diverged, "train/loss", "float", [1.0] * 19_000 + [423.0] * 100)
    short = await run("short", "Completed", "sgd", "0.01")
    await seed_scalars(db, short, "train/loss", "float", [0.5 + 0.1 * math.sin(i / 50) for i in range(3_000)])
    yield Seeded(experiment, long, diverged, short, loss)


async def _open(browser: Browser, url: str, ready: str) -> tuple[Page, list[Any]]:
    page = await browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[Any] = []
    page.on("pageerror", lambda exc: errors.append(exc))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(url)
    await page.wait_for_function(ready, timeout=WAIT_MS)
    return page, errors


def _chart(name: str) -> str:
    return f"window.runstream.charts[{name!r}]"


async def _drawn(page: Page, name: str, index: int = 0) -> dict[str, Any]:
    drawn: dict[str, Any] = await page.evaluate(f"() => {_chart(name)}.drawn()[{index}]")
    return drawn


async def _loaded(page: Page, name: str, before: int) -> None:
    await page.wait_for_function(f"() => {_chart(name)}.loads > {before}", timeout=WAIT_MS)


async def test_run_chart_draws_m4_zooms_and_keeps_the_zoom_live(
    query_service: str, db: asyncpg.Pool, browser: Browser, seeded: Seeded
) -> None:
    page, errors = await _open(
        browser, f"{query_service}/runs/{seeded.long}", "() => window.runstream && window.runstream.ready === 3"
    )
    loss = _chart("train/loss")
    # 50,000 steps drawn from M4: 90-100% of the points asked for, every bucket's extremes among them.
    max_points = await page.evaluate(f"() => {loss}.maxPoints()")
    drawn = await _drawn(page, "train/loss")
    assert max_points >= 2000 and 0.9 * max_points <= len(drawn["xs"]) <= max_points
    assert drawn["xs"][0] == 0 and drawn["xs"][-1] == N - 1
    assert max(drawn["ys"]) == 9.0 and drawn["xs"][drawn["ys"].index(9.0)] == SPIKE
    assert min(drawn["ys"]) == -1.0 and drawn["xs"][drawn["ys"].index(-1.0)] == DIP
    assert all(seeded.loss[x] == y for x, y in zip(drawn["xs"], drawn["ys"], strict=True))
    # Before any hover the legend shows each series' last value, not a placeholder.
    assert await page.evaluate(f"() => {loss}.legendValues") == [seeded.loss[-1]]
    # A metric logged once: drawn around its value, not on a 0-100 axis.
    low, high = await page.evaluate(f"() => {_chart('lr')}._frame.prep.y")
    assert low < 0.003 < high and high - low < 0.01

    # A drag zooms, and the range is fetched again at full resolution.
    box = await page.locator('[data-chart="train/loss"] canvas').bounding_box()
    assert box is not None
    loads = await page.evaluate(f"() => {loss}.loads")
    await page.mouse.move(box["x"] + 300, box["y"] + 100)
    await page.mouse.down()
    await page.mouse.move(box["x"] + 340, box["y"] + 100, steps=4)
    await page.mouse.up()
    await _loaded(page, "train/loss", loads)
    view = await page.evaluate(f"() => {loss}.view")
    drawn = await _drawn(page, "train/loss")
    assert view[0] <= drawn["xs"][0] and drawn["xs"][-1] <= view[1]
    assert drawn["xs"] == list(range(math.ceil(view[0]), math.floor(view[1]) + 1))  # every point of the range

    loads = await page.evaluate(f"() => {loss}.loads")
    await page.evaluate(f"() => {loss}.zoom(20000, 21999)")
    await _loaded(page, "train/loss", loads)
    assert (await _drawn(page, "train/loss"))["xs"] == list(range(20_000, 22_000))

    # Five live updates arrive: the zoomed view does not move, the points in it stay every point.
    session = uuid.uuid4()
    for k in range(5):
        steps = range(N + 10 * k, N + 10 * (k + 1))
        await append_points(db, seeded.long, "train/loss", [(s, T0 + 5 + s * 0.01, s, 0.1) for s in steps])
        await bump_session(db, seeded.long, session, k + 1)
        await page.wait_for_function(f"() => {loss}.updates >= {k + 1}", timeout=WAIT_MS)
        assert await page.evaluate(f"() => {loss}.view") == [20000, 21999]
    assert (await _drawn(page, "train/loss"))["xs"] == list(range(20_000, 22_000))
    assert await page.evaluate(f"() => {loss}.series[0].steps.slice(-1)[0]") == N + 49

    # Hover: the legend gives every series' value at the step under the pointer.
    await page.select_option('section[data-metric="train/loss"] select.rs-overlay', "val/loss")
    await page.wait_for_function(f"() => {loss}.series.length === 2", timeout=WAIT_MS)
    assert "overlay=" in page.url
    await page.evaluate(f"() => {loss}.resetZoom()")
    await page.wait_for_function(f"() => {loss}.view === null && {loss}.drawn()[0].xs.length > 3000", timeout=WAIT_MS)
    await page.mouse.move(box["x"] + 62, box["y"] + 100)  # the plot's left edge: step 0
    assert await page.evaluate(f"() => {loss}.legendValues") == [seeded.loss[0], 1.0]

    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "run-page-charts.png"), full_page=False)
    assert errors == []
    await page.close()


async def test_chart_controls_are_kept_in_the_url(query_service: str, browser: Browser, seeded: Seeded) -> None:
    page, errors = await _open(
        browser, f"{query_service}/runs/{seeded.long}?y=log", "() => window.runstream && window.runstream.ready === 3"
    )
    val = _chart("val/loss")
    # The summary line: status, a duration that ticks while the run is live, last values to 6 digits.
    summary = await page.text_content("#run-summary") or ""
    assert summary.startswith("Running") and f"val/loss {1 / 500:.6g}" in summary and "lr 0.003" in summary
    for shown in await page.locator("#run-summary .last b").all_text_contents():
        digits = shown.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
        assert len(digits) <= 6, shown
    before = await page.text_content("#run-duration")
    await page.wait_for_function("(t) => document.getElementById('run-duration').textContent !== t", arg=before)
    # The metric search hides the sections (and groups) that do not match.
    await page.fill("#metric-search", "val/")
    visible = await page.eval_on_selector_all(
        "section.metric:not([hidden])", "(els) => els.map((e) => e.dataset.metric)"
    )
    assert visible == ["val/loss"]
    assert await page.locator('details.metric-group[data-group="train"]').is_hidden()
    await page.fill("#metric-search", "")

    # From the URL: log y, drawn as log10 of the values.
    assert await page.evaluate(f"() => {val}.options.log") is True
    drawn = await _drawn(page, "val/loss")
    assert drawn["ys"][:3] == pytest.approx([math.log10(1.0), math.log10(1 / 2), math.log10(1 / 3)], rel=1e-12)

    # Smoothing: TensorBoard's debiased EMA of the drawn values, the raw ones kept.
    await page.evaluate(
        """() => { const s = document.querySelector('[data-control="smooth"]');
                   s.value = '0.6'; s.dispatchEvent(new Event('input')); }"""
    )
    assert "smooth=0.6" in page.url
    drawn = await _drawn(page, "val/loss")
    last, want = 0.0, []
    for i, y in enumerate(drawn["ys"][:20]):
        last = last * 0.6 + 0.4 * y
        want.append(last / (1 - 0.6 ** (i + 1)))
    assert drawn["smoothed"][:20] == pytest.approx(want, rel=1e-12)

    # Relative time: seconds since the run started.
    loads = await page.evaluate(f"() => {val}.loads")
    await page.select_option('[data-control="x"]', "relative")
    await _loaded(page, "val/loss", loads)
    assert "x=relative" in page.url
    assert (await _drawn(page, "val/loss"))["xs"][:3] == [0.0, 1.0, 2.0]

    # A reload keeps every control.
    await page.reload()
    await page.wait_for_function("() => window.runstream && window.runstream.ready === 3", timeout=WAIT_MS)
    assert await page.evaluate(f"() => {val}.options") == {"x": "relative", "log": True, "clip": False, "smooth": 0.6}
    assert await page.input_value('[data-control="x"]') == "relative"

    # An image logged three times: the last shown, a slider steps back through them.
    shown = page.locator('section[data-metric="samples"] .image-steps > :not([hidden])')
    assert await shown.count() == 1 and "epoch3.png" in (await shown.text_content() or "")
    await page.fill('section[data-metric="samples"] input[aria-label="image"]', "0")
    assert "epoch1.png" in (await shown.text_content() or "")

    # Down to a phone: nothing wider than the screen, the charts redrawn to fit.
    await page.set_viewport_size({"width": 390, "height": 800})
    await page.wait_for_function(
        "() => Object.values(window.runstream.charts).every((c) => c.canvas.style.width === c.width() + 'px')"
    )
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "run-page-phone.png"))
    assert errors == []
    await page.close()


async def test_compare_page_runs_metrics_outliers_and_csv(query_service: str, browser: Browser, seeded: Seeded) -> None:
    runs = "&".join(f"run={r}" for r in (seeded.long, seeded.diverged, seeded.short))
    page, errors = await _open(
        browser, f"{query_service}/compare?{runs}", "() => window.runstream && window.runstream.ready === 1"
    )
    # By default the most logged metric, a line per run.
    assert await page.evaluate("() => Object.keys(window.runstream.charts)") == ["train/loss"]
    loss = _chart("train/loss")
    assert await page.evaluate(f"() => {loss}.series.map((s) => s.label)") == ["long", "diverged", "short"]
    high = (await page.evaluate(f"() => {loss}._frame.prep.y"))[1]
    assert high > 423
    # Outliers ignored: the diverged run's 423 no longer sets the y range.
    await page.check('[data-control="outliers"]')
    assert "outliers=ignore" in page.url
    assert (await page.evaluate(f"() => {loss}._frame.prep.y"))[1] < 20

    # Another metric, on its own chart; the URL keeps it.
    await page.check('input[name="metric"][value="val/loss"]')
    await page.wait_for_function("() => window.runstream.ready === 2", timeout=WAIT_MS)
    assert "name=val%2Floss" in page.url

    # The CSV of a chart's series: the values as the API has them, exactly.
    href = await page.get_attribute('section[data-metric="train/loss"] a.csv', "href")
    assert href is not None
    text = await page.evaluate("async (u) => (await fetch(u)).text()", href)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["run_id", "step", "time", "value"]
    _, body = await get(f"{query_service}{href.replace('format=csv', 'format=json')}")
    want = [
        (s["run_id"], step, value) for s in body["series"] for step, value in zip(s["steps"], s["values"], strict=True)
    ]
    assert [(r[0], int(r[1]), float(r[3])) for r in rows[1:]] == want
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "compare-page.png"), full_page=True)

    # Removing a run reloads the page without it.
    await page.click(f'button[data-remove="{seeded.short}"]')
    await page.wait_for_function(
        "() => window.runstream && window.runstream.runs.length === 2 && window.runstream.ready === 2", timeout=WAIT_MS
    )
    assert str(seeded.short) not in page.url

    # Nothing chosen: a page that says what to do, not a bare 400.
    response = await page.goto(f"{query_service}/compare")
    assert response is not None and response.status == 200
    assert "check the runs to compare" in (await page.text_content("body") or "")
    assert errors == []
    await page.close()


async def test_compare_takes_up_to_100_runs(query_service: str, db: asyncpg.Pool, seeded: Seeded) -> None:
    many = "&".join(f"run={uuid.uuid4()}" for _ in range(100))
    status, body = await get(f"{query_service}/api/series?name=train/loss&max_points=10&{many}")
    assert status == 200 and len(body["series"]) == 100
    status, body = await get(f"{query_service}/api/series?name=train/loss&{many}&run={uuid.uuid4()}")
    assert (status, body["error"]["parameter"]) == (400, "run")


async def test_experiment_page_searches_groups_sorts_and_scatters(
    query_service: str, browser: Browser, seeded: Seeded
) -> None:
    here = f"{query_service}/experiments/{seeded.experiment}"
    page, errors = await _open(browser, f"{here}?name=o", "() => window.runstream && window.runstream.table")
    names = await page.locator("tr[data-run] td:nth-child(2)").all_text_contents()
    assert sorted(names) == ["long", "short"]  # "diverged" has no "o"
    await page.goto(here)
    await page.wait_for_function("() => window.runstream && window.runstream.table", timeout=WAIT_MS)
    # A running run's duration is not blank: it ticks.
    cell = f'tr[data-run="{seeded.long}"] [data-duration]'
    first = await page.text_content(cell)
    assert first and re.fullmatch(r"\d+:\d\d:\d\d", first)
    await page.wait_for_function(f"(t) => document.querySelector('{cell}').textContent !== t", arg=first)
    _, body = await get(f"{query_service}/api/runs?experiment={seeded.experiment}&include=metrics")
    last = {r["display_name"]: r["metrics"]["train/loss"] for r in body["runs"]}

    # Each tag and property is a column of its own; grouping by one gives each metric's mean, min and max.
    await page.select_option("#group-by", label="tag opt")
    groups = await page.evaluate("() => window.runstream.table.groups")
    adam = [last["long"], last["diverged"]]
    assert groups["adam"]["train/loss"] == {"mean": sum(adam) / 2, "min": min(adam), "max": max(adam)}
    assert groups["sgd"]["train/loss"] == {"mean": last["short"], "min": last["short"], "max": last["short"]}

    # Sorting by any column, here a property, largest first.
    await page.click("#compare-form thead th:has-text('property lr')")
    assert await page.locator("tr[data-run] td:nth-child(2)").all_text_contents() == ["diverged", "long", "short"]

    # The scatter: a property against a metric, one dot per run.
    points = await page.evaluate("() => window.runstream.table.scatter.map((p) => [p.label, p.x, p.y])")
    assert sorted(points) == sorted(
        [[n, float(lr), last[n]] for n, lr in (("long", 0.1), ("diverged", 1.0), ("short", 0.01))]
    )

    # Parallel coordinates: an axis per numeric column, a line per run.
    parallel = await page.evaluate("() => window.runstream.table.parallel")
    assert parallel["axes"] == ["property lr", "train/loss"]  # lr and val/loss: one run each, no axis
    lines = {line["label"]: line["values"] for line in parallel["lines"]}
    assert lines["diverged"] == [1.0, last["diverged"]] and lines["short"] == [0.01, last["short"]]

    # Columns can be hidden, and stay hidden in the URL.
    await page.click("#columns summary")
    await page.uncheck('#columns input[data-column="tag opt"]')
    assert "hide=tag+opt" in page.url
    assert await page.locator("#compare-form thead th:has-text('tag opt')").is_hidden()

    # The runs table as CSV.
    href = await page.get_attribute("#runs-csv", "href")
    assert href is not None
    text = await page.evaluate("async (u) => (await fetch(u)).text()", href)
    header = next(csv.reader(io.StringIO(text)))
    assert {"tag.opt", "property.lr", "metric.train/loss"} <= set(header)
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "experiment-page.png"), full_page=True)
    assert errors == []
    await page.close()
