"""The whole path on real services: SDK -> Kafka -> ingest -> PostgreSQL -> query -> SDK."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from producer import Experiment, Workspace
from query._points import read_run_points
from runstream.config import Settings
from runstream.events import decode_json_value
from tests.support import eventually

ROOT = Path(__file__).resolve().parent.parent
SPECIAL = [math.nan, math.inf, -math.inf]

pytestmark = pytest.mark.usefixtures("ingest_worker", "query_service")


async def _get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, decode_json_value(await resp.json()) if resp.status == 200 else None


async def _wait_status(settings: Settings, run_id: str, status: str) -> None:
    await eventually(
        lambda: _get_json(f"{settings.query_url}/api/runs/{run_id}"),
        lambda r: r[0] == 200 and r[1]["status"] == status,
        timeout_seconds=90,
        what=f"run {run_id} {status}",
    )


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _expected(run_index: int, metric: str, n: int) -> list[float]:
    values = [run_index * 1000.0 + len(metric) + i / 7 for i in range(n)]
    values[:3] = SPECIAL  # every run carries NaN, +Inf and -Inf on every metric
    return values


async def test_ten_thousand_points_two_runs_round_trip(settings: Settings) -> None:
    workspace = Workspace.from_settings(settings)
    experiment = Experiment(workspace, "e2e-roundtrip")
    metrics = {"loss": 2000, "accuracy": 1500, "lr": 1500}  # 5,000 points per run
    runs = [experiment.start_logging(display_name=f"run {i}") for i in range(2)]
    for index, run in enumerate(runs):
        for metric, n in metrics.items():
            for step, value in enumerate(_expected(index, metric, n)):
                run.log(metric, value, step=step * 10)
        run.complete()

    for run in runs:
        await _wait_status(settings, run.id, "Completed")

    for index, run in enumerate(runs):
        got = await asyncio.to_thread(run.get_metrics)
        assert set(got) == set(metrics)
        for metric, n in metrics.items():
            expected = _expected(index, metric, n)
            assert len(got[metric]) == n
            assert all(_same(a, b) for a, b in zip(got[metric], expected, strict=True)), metric
        assert await asyncio.to_thread(run.get_status) == "Completed"


async def test_steps_are_stored_as_logged(settings: Settings, db: Any) -> None:
    workspace = Workspace.from_settings(settings)
    run = Experiment(workspace, "e2e-steps").start_logging()
    for step in (5, 3, 3, 9):
        run.log("loss", float(step), step=step)
    run.complete()
    await _wait_status(settings, run.id, "Completed")
    loss = (await read_run_points(db, run.id, name="loss"))["loss"]
    assert list(zip(loss.steps.tolist(), loss.values.tolist(), strict=True)) == [(5, 5.0), (3, 3.0), (3, 3.0), (9, 9.0)]


async def test_demo_script_prints_what_the_query_service_returns(settings: Settings) -> None:
    env = {**os.environ, **settings.as_env(), "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "ridge_sweep.py"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    lines = text.splitlines()
    run_id = lines[0].split()[1]
    assert lines[1] == "status: Completed"
    printed = json.loads(text.split("metrics:\n", 1)[1].split("\nfiles:", 1)[0])
    portal = next(line.split(": ", 1)[1] for line in lines if line.startswith("portal: "))

    status, served = await _get_json(f"{settings.query_url}/api/runs/{run_id}/metrics")
    assert status == 200
    assert printed == served
    assert len(printed["alpha"]) == len(printed["mse"]) == len(printed["alphas"]) == 7
    assert printed["mse vs alpha"]["alpha"] == printed["alpha"]
    assert "outputs/model.pkl" in text
    async with aiohttp.ClientSession() as session, session.get(portal) as resp:
        assert resp.status == 200
        assert "mse" in await resp.text()
