"""The whole path into the browser: the SDK logs, ingest stores, the open run page's chart and log change.

Also measures the live-update delay from ``run.log`` + ``flush`` to the new
point drawn in Chromium, written to ``test-results/live-delay.txt``.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from producer import Experiment, Workspace
from runstream.config import Settings
from tests.support import eventually

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "test-results"
WAIT_MS = 30_000

pytestmark = pytest.mark.usefixtures("ingest_worker")


async def _points(url: str) -> int:
    async with aiohttp.ClientSession() as client, client.get(url) as resp:
        if resp.status != 200:
            return -1
        return len((await resp.json())["steps"])


async def test_sdk_points_reach_the_open_chart(settings: Settings, query_service: str, browser: Browser) -> None:
    run = Experiment(Workspace.from_settings(settings), "browser-live").start_logging(display_name="live")
    for step in range(100):
        run.log("loss", 1 / (step + 1), step=step)
    await asyncio.to_thread(run.flush, 30)
    series = f"{query_service}/api/runs/{run.id}/series?name=loss"
    await eventually(lambda: _points(series), lambda n: n == 100, timeout_seconds=60, what="100 points stored")

    page = await browser.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda exc: errors.append(exc))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(run.get_portal_url())
    await page.wait_for_function("() => window.runstream && window.runstream.ready === 1", timeout=WAIT_MS)
    assert await page.evaluate("() => window.runstream.charts.loss.series[0].steps.length") == 100

    delays = []
    for i in range(5):
        started = time.monotonic()
        run.log("loss", 0.001 * i, step=100 + i)
        await asyncio.to_thread(run.flush, 30)
        await page.wait_for_function(
            f"() => window.runstream.charts.loss.series[0].steps.length === {101 + i}", timeout=WAIT_MS
        )
        delays.append(time.monotonic() - started)
    ys = await page.evaluate("() => window.runstream.charts.loss.series[0].ys.slice(-5)")
    assert ys == [0.0, 0.001, 0.002, 0.003, 0.004]

    # A metric first logged while the page is open gets its section, and its description with it.
    run.log("accuracy", 0.5, description="held-out <i>accuracy</i>")
    await asyncio.to_thread(run.flush, 30)
    note = page.locator('section[data-metric="accuracy"] p.description')
    await expect(note).to_have_text("held-out <i>accuracy</i>", timeout=WAIT_MS)
    assert await note.locator("i").count() == 0

    await asyncio.to_thread(run.complete)
    await page.wait_for_function(
        "() => document.getElementById('run-status').textContent === 'Completed'", timeout=WAIT_MS
    )
    assert errors == []
    await page.close()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "live-delay.txt").write_text(
        "run.log + flush -> point drawn on the open run page (s): "
        + ", ".join(f"{d:.2f}" for d in delays)
        + f"; median {statistics.median(delays):.2f}\n"
    )


async def _run_status(url: str) -> str | None:
    async with aiohttp.ClientSession() as client, client.get(url) as resp:
        return (await resp.json())["status"] if resp.status == 200 else None


async def _append(url: str, offset: int, part: bytes) -> int:
    async with aiohttp.ClientSession() as client, client.put(f"{url}?offset={offset}", data=io.BytesIO(part)) as resp:
        assert resp.status == 201, await resp.text()
        next_offset: int = (await resp.json())["next_offset"]
        return next_offset


async def test_the_open_run_page_follows_the_driver_log(
    settings: Settings, query_service: str, browser: Browser
) -> None:
    run = Experiment(Workspace.from_settings(settings), "browser-live").start_logging(display_name="log")
    await asyncio.to_thread(run.flush, 30)
    details = f"{query_service}/api/runs/{run.id}"
    await eventually(lambda: _run_status(details), lambda s: s == "Running", what="the run stored as Running")
    log = f"{details}/logs/driver"

    page = await browser.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda exc: errors.append(exc))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    await page.goto(run.get_portal_url())
    section, pre = page.locator("#driver-log-section"), page.locator("#driver-log")
    await expect(section).to_be_hidden()  # no log yet

    async def shows(text: str) -> None:
        # Exactly the text, whitespace and all; markup in the log stays text.
        await page.wait_for_function(
            "t => document.getElementById('driver-log').textContent === t", arg=text, timeout=WAIT_MS
        )

    offset = await _append(log, 0, b"epoch 1 <b>loss</b> 0.5\n")
    await shows("epoch 1 <b>loss</b> 0.5\n")
    await expect(section).to_be_visible()
    offset = await _append(log, offset, "epoch 2 — 0.25\n".encode())
    await shows("epoch 1 <b>loss</b> 0.5\nepoch 2 — 0.25\n")
    assert await pre.locator("b").count() == 0

    # A log longer than the page keeps (1 Mi characters) loses its oldest lines, whole, and says so.
    line = "a line of a long log ".ljust(99, "x") + "\n"
    offset = await _append(log, offset, (line * 11_000).encode())
    await page.wait_for_function(
        """() => { const t = document.getElementById('driver-log').textContent;
                   return t.length <= 1048576 && t.length > 1048576 - 100 && t.endsWith('x\\n'); }""",
        timeout=WAIT_MS,
    )
    shown = await pre.text_content()
    assert shown is not None and shown.startswith(line) and set(shown.split("\n")[:-1]) == {line[:-1]}
    await expect(page.locator("#driver-log-clipped")).to_have_text(
        f"showing the end of the log ({offset} bytes in all)"
    )

    # The SDK appends the last part before the final status; once the service says so, following stops.
    offset = await _append(log, offset, b"done\n")
    await asyncio.to_thread(run.complete)
    await page.wait_for_function(
        "() => document.getElementById('driver-log').textContent.endsWith('x\\ndone\\n')", timeout=WAIT_MS
    )
    await expect(page.locator("#driver-log-clipped")).to_have_text(
        f"showing the end of the log ({offset} bytes in all)"
    )
    await page.wait_for_selector("#driver-log:not([data-follow])", state="attached", timeout=WAIT_MS)
    assert errors == []
    await page.close()
