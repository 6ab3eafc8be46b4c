"""The ledger: what the training processes logged against what PostgreSQL and the query service hold.

Every point's value is a function of (run, metric, step) (:func:`value_base` +
step, exact in a double), so the expected multiset of (metric, step, value)
of a run follows from its ledger: the run's metric count and how many steps
it logged. A run whose process completed it must hold exactly steps
``0 .. completed - 1`` of every metric, once each. A run whose process was
SIGKILLed must hold at least the steps its last ``durable`` mark promised,
and may hold more (points in flight at the kill), but always a gapless
prefix: anything missing below the highest stored step is lost data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np

from query._points import read_run_points
from tests.test_ingest_support import run_row

#: How often a training process flushes its runs and marks them durable in its ledger.
FLUSH_SECONDS = 0.5
#: The largest page the series endpoint serves (query/_web_series.py MAX_LIMIT).
_PAGE_LIMIT = 1_000_000


def metric_name(m: int) -> str:
    return f"m{m:02d}"


def value_base(run_id: str, m: int) -> float:
    """The value of (run, metric ``m``, step 0); step ``s`` logs ``value_base + s``.

    Twelve bits of the run id and four of the metric over 2**20 leave the step
    33 bits of an exact double, and a point stored under the wrong run or
    metric has the wrong value.
    """
    if not 0 <= m < 16:
        raise ValueError(f"metric index {m} must be in 0..15")
    return ((int(run_id[:3], 16) << 4) + m) / 2**20


@dataclass
class LoggedRun:
    """One run as its training process's ledger describes it."""

    id: str
    metrics: int
    durable: int = 0
    spooled: int = 0  # records the SDK had spooled by the last flush
    completed: int | None = None  # steps logged before complete(); None: the process died first
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def expected_status(self) -> str:
        return "Completed" if self.completed is not None else "Failed"


def read_ledgers(paths: Iterable[Path]) -> dict[str, LoggedRun]:
    runs: dict[str, LoggedRun] = {}
    for path in paths:
        # The last element is "" or a line a SIGKILL cut short: what it promised never held.
        for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
            entry = json.loads(line)
            if "run" not in entry:
                continue
            if "metrics" in entry:
                runs[entry["run"]] = LoggedRun(entry["run"], entry["metrics"])
            run = runs[entry["run"]]
            run.durable = max(run.durable, entry.get("durable", 0))
            run.spooled = max(run.spooled, entry.get("spooled", 0))
            if "completed" in entry:
                run.completed = entry["completed"]
                run.stats = entry["stats"]
    return runs


@dataclass
class Tally:
    """Points of one source checked against the ledger."""

    sent: int = 0
    stored: int = 0
    missing: int = 0
    duplicated: int = 0
    unexpected: int = 0  # a value that no (run, metric, step) of the ledger logged

    def add(self, run: LoggedRun, m: int, steps: np.ndarray, values: np.ndarray) -> None:
        wanted = values == value_base(run.id, m) + steps
        stored_max = int(steps.max()) + 1 if len(steps) else 0
        upper = run.completed if run.completed is not None else max(run.durable, stored_max)
        inside = wanted & (steps >= 0) & (steps < upper)
        copies = np.bincount(steps[inside], minlength=upper)
        self.sent += upper
        self.stored += len(steps)
        self.missing += int(np.count_nonzero(copies == 0))
        self.duplicated += int(np.maximum(copies - 1, 0).sum())
        self.unexpected += int(np.count_nonzero(~inside))

    @property
    def exact(self) -> bool:
        return self.missing == self.duplicated == self.unexpected == 0


async def stored_series(db: asyncpg.Pool, run: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one series as PostgreSQL holds it: the one place the suite reads points."""
    found = (await read_run_points(db, run, name=name)).get(name)
    return (found.steps, found.values) if found is not None else (np.array([], np.int64), np.array([]))


async def served_series(
    http: aiohttp.ClientSession, base_url: str, run: str, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one series as the query service serves it, every page at full resolution."""
    steps: list[int] = []
    values: list[float] = []
    params = {"name": name, "limit": str(_PAGE_LIMIT)}
    while True:
        async with http.get(f"{base_url}/api/runs/{run}/series", params=params) as resp:
            if resp.status == 404:
                break  # no such series: every point of it is missing
            resp.raise_for_status()
            page = await resp.json()
        steps += page["steps"]
        values += page["values"]
        if not page.get("next_cursor"):
            break
        params["cursor"] = page["next_cursor"]
    return np.array(steps, dtype=np.int64), np.array(values, dtype=np.float64)


@dataclass
class Verdict:
    """Both sources for every run of a scenario, and the runs whose status is wrong."""

    database: Tally = field(default_factory=Tally)
    query: Tally = field(default_factory=Tally)
    wrong_status: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict)


async def check(runs: dict[str, LoggedRun], db: asyncpg.Pool, query_url: str) -> Verdict:
    verdict = Verdict()
    async with aiohttp.ClientSession() as http:
        for run in runs.values():
            for m in range(run.metrics):
                name = metric_name(m)
                verdict.database.add(run, m, *await stored_series(db, run.id, name))
                verdict.query.add(run, m, *await served_series(http, query_url, run.id, name))
            row = await run_row(db, run.id)
            in_db = row["status"] if row is not None else None
            async with http.get(f"{query_url}/api/runs/{run.id}") as resp:
                served = (await resp.json()).get("status") if resp.status == 200 else None
            if not in_db == served == run.expected_status:
                verdict.wrong_status[run.id] = (run.expected_status, in_db, served)
    return verdict


async def stored_count(db: asyncpg.Pool, runs: Iterable[str]) -> int:
    """Points PostgreSQL holds for ``runs`` by ingest's per-series summary: cheap enough to poll."""
    return int(
        await db.fetchval("SELECT coalesce(sum(point_count), 0) FROM series WHERE run_id = ANY($1::uuid[])", list(runs))
    )


def expected_count(runs: Iterable[LoggedRun]) -> int:
    """Points the ledger promises (completed runs in full, killed ones up to their durable mark)."""
    return sum(r.metrics * (r.completed if r.completed is not None else r.durable) for r in runs)
