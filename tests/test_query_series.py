"""Scalar series as columns: ranges, keyset pages, downsampling that keeps extremes, several runs."""

from __future__ import annotations

import csv
import io
import math
import uuid
from fractions import Fraction
from typing import Any

import asyncpg
import numpy as np
import pytest

from query._db import create_pool
from query._m4 import m4
from query._series import SeriesRange, SeriesReader
from runstream.config import Settings
from tests.fuzzing import SEED
from tests.test_query_seed import (
    append_points,
    bump_session,
    get,
    get_text,
    seed_entries,
    seed_run,
    seed_scalars,
)

T0 = 1_700_000_000.0


async def test_full_series_columns_and_ranges(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    values = [0.5, 1.5, math.nan, 2.5, math.inf, 3.5]
    await seed_scalars(db, run_id, "loss", "float", values, times=[T0 + i for i in range(6)])
    base = f"{query_service}/api/runs/{run_id}/series?name=loss"
    status, body = await get(base)
    assert status == 200
    assert body == {
        "run_id": str(run_id),
        "name": "loss",
        "value_type": "float",
        "steps": [0, 1, 2, 3, 4, 5],
        "times": [T0 + i for i in range(6)],
        "values": [0.5, 1.5, {"$float": "NaN"}, 2.5, {"$float": "Infinity"}, 3.5],
        "downsampled": False,
        "buckets": None,
        "next_cursor": None,
    }
    status, body = await get(f"{base}&start_step=1&end_step=3")
    assert body["steps"] == [1, 2, 3]
    status, body = await get(f"{base}&start_time={T0 + 4}")
    assert body["steps"] == [4, 5] and body["values"] == [{"$float": "Infinity"}, 3.5]
    status, body = await get(f"{base}&start_step=100")
    assert (status, body["steps"], body["values"]) == (200, [], [])


async def test_keyset_pages_cover_every_point_once(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    n = 25
    # Four points share each clock tick; the ordinal keeps their order across page boundaries,
    # which fall inside a tick for pages of 3 and between ticks for pages of 4.
    times = [T0 + i // 4 for i in range(n)]
    await seed_scalars(db, run_id, "acc", "int", list(range(n)), times=times, insert_order=list(reversed(range(n))))
    for limit, want_pages in ((3, 9), (4, 7), (1, 25), (25, 1)):
        url = f"{query_service}/api/runs/{run_id}/series?name=acc&limit={limit}"
        steps: list[int] = []
        values: list[int] = []
        pages = 0
        while url:
            status, body = await get(url)
            assert status == 200 and len(body["steps"]) <= limit
            steps += body["steps"]
            values += body["values"]
            pages += 1
            cursor = body["next_cursor"]
            url = f"{query_service}/api/runs/{run_id}/series?name=acc&limit={limit}&cursor={cursor}" if cursor else ""
        assert pages == want_pages, limit
        assert steps == list(range(n)) and values == list(range(n)), limit
        assert all(type(v) is int for v in values)


async def test_downsampling_keeps_extremes(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    n = 20_000
    values = [math.sin(i / 500) for i in range(n)]
    values[12_345] = 50.0  # a spike
    values[777] = -40.0  # a dip
    await seed_scalars(db, run_id, "signal", "float", values, times=[T0 + i * 0.01 for i in range(n)])
    status, body = await get(f"{query_service}/api/runs/{run_id}/series?name=signal&max_points=200")
    assert status == 200 and body["downsampled"] is True
    assert 180 <= len(body["values"]) <= 200
    assert len(body["steps"]) == len(body["times"]) == len(body["values"])
    assert body["steps"] == sorted(body["steps"])  # in time order
    # Every kept point is a real point: its value is the one logged at its step.
    assert all(values[s] == v for s, v in zip(body["steps"], body["values"], strict=True))
    assert max(body["values"]) == 50.0 and body["steps"][body["values"].index(50.0)] == 12_345
    assert min(body["values"]) == -40.0 and body["steps"][body["values"].index(-40.0)] == 777
    # Buckets span the whole range: the first and last kept points are near its ends.
    assert body["steps"][0] < n // 100 and body["steps"][-1] >= n - n // 100

    # A range that holds no more than max_points comes back whole.
    status, body = await get(f"{query_service}/api/runs/{run_id}/series?name=signal&max_points=200&end_step=149")
    assert body["downsampled"] is False and body["steps"] == list(range(150))


async def test_downsampled_answers_follow_new_data(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    session = uuid.uuid4()
    await seed_scalars(db, run_id, "live", "float", [float(i % 7) for i in range(1000)])
    await bump_session(db, run_id, session, 1)
    url = f"{query_service}/api/runs/{run_id}/series?name=live&max_points=50"
    status, first = await get(url)
    assert status == 200 and max(first["values"]) == 6.0
    assert await get(url) == (200, first)  # from the cache, identical
    # Ingest stores another batch: new points and the session's seq in one transaction.
    await append_points(db, run_id, "live", [(1000, T0 + 1000, 1000, 99.0)])
    await bump_session(db, run_id, session, 2)
    status, second = await get(url)
    assert max(second["values"]) == 99.0 and second["steps"][-1] == 1000


async def test_compare_runs(query_service: str, db: asyncpg.Pool) -> None:
    a = await seed_run(db)
    b = await seed_run(db)
    missing = uuid.uuid4()
    await seed_scalars(db, a, "loss", "float", [3.0, 2.0])
    await seed_scalars(db, b, "loss", "float", [4.0, 1.0, 0.5])
    status, body = await get(f"{query_service}/api/series?name=loss&run={a}&run={b}&run={missing}&max_points=10")
    assert status == 200
    assert body["name"] == "loss"
    assert [(s["run_id"], s["values"]) for s in body["series"]] == [
        (str(a), [3.0, 2.0]),
        (str(b), [4.0, 1.0, 0.5]),
        (str(missing), []),
    ]


async def test_series_bad_input(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    await seed_scalars(db, run_id, "phase", "str", ["a", "b"])
    await seed_scalars(db, run_id, "x", "float", [1.0])
    await seed_entries(db, run_id, "row", "row", [{"a": 1}])
    base = f"{query_service}/api/runs/{run_id}/series"
    cases = [
        ("", 400, "bad_request", "name"),
        ("?name=", 400, "bad_metric_name", "name"),
        ("?name=x&max_points=1", 400, "bad_request", "max_points"),
        ("?name=x&max_points=abc", 400, "bad_request", "max_points"),
        ("?name=x&max_points=1000000000", 400, "bad_request", "max_points"),
        ("?name=x&limit=0", 400, "bad_request", "limit"),
        ("?name=x&cursor=%%%", 400, "bad_cursor", "cursor"),
        ("?name=x&cursor=WzEsMl0&max_points=10", 400, "bad_request", "cursor"),
        ("?name=x&start_step=1.5", 400, "bad_request", "start_step"),
        ("?name=x&end_step=99999999999999999999", 400, "bad_request", "end_step"),
        ("?name=x&start_time=nan", 400, "bad_request", "start_time"),
        ("?name=x&end_time=inf", 400, "bad_request", "end_time"),
        ("?name=x&end_time=soon", 400, "bad_request", "end_time"),
        ("?name=phase&max_points=10", 400, "bad_request", "max_points"),
        ("?name=x&max_points=10&x_axis=epoch", 400, "bad_request", "x_axis"),
        ("?name=x&format=xml", 400, "bad_request", "format"),
        ("?name=row", 400, "not_scalar", "name"),
        ("?name=nothing", 404, "metric_not_found", "name"),
    ]
    for query_string, want_status, code, parameter in cases:
        status, body = await get(base + query_string)
        assert (status, body["error"]["code"], body["error"]["parameter"]) == (want_status, code, parameter), (
            query_string
        )
    status, body = await get(f"{query_service}/api/runs/{uuid.uuid4()}/series?name=x")
    assert (status, body["error"]["code"]) == (404, "run_not_found")
    for query_string, parameter in (("name=x", "run"), ("name=x&run=nope", "run"), (f"run={run_id}", "name")):
        status, body = await get(f"{query_service}/api/series?{query_string}")
        assert (status, body["error"]["parameter"]) == (400, parameter), query_string
    status, body = await get(f"{base}?name=phase")
    assert body["values"] == ["a", "b"] and body["value_type"] == "str"


def _plain(columns: dict[str, Any]) -> dict[str, Any]:
    """A series answer with its numpy columns as lists, to compare."""
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in columns.items()}


async def test_downsample_cache_stays_within_its_budget(settings: Settings, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    for name in ("a", "b", "c"):
        await seed_scalars(db, run_id, name, "float", [float(i % 13) for i in range(1000)])
    pool = await create_pool(settings.database_url)
    try:
        reader = SeriesReader(pool, cache_points=100)
        ids = {r["name"]: r["id"] for r in await db.fetch("SELECT id, name FROM series WHERE run_id = $1", run_id)}
        first = await reader.downsample_cached(run_id, ids["a"], "float", SeriesRange(), max_points=60)
        size = len(first["steps"])  # the three series are alike: the same size each
        assert 54 <= size <= 60 and reader.cached_points == size
        assert await reader.downsample_cached(run_id, ids["a"], "float", SeriesRange(), max_points=60) is first
        await reader.downsample_cached(run_id, ids["b"], "float", SeriesRange(), max_points=60)
        assert reader.cached_points == size  # "a" made room for "b"
        third = await reader.downsample_cached(run_id, ids["c"], "float", SeriesRange(), max_points=40)
        assert reader.cached_points == size + len(third["steps"]) <= 100
        again = await reader.downsample_cached(run_id, ids["a"], "float", SeriesRange(), max_points=60)
        assert _plain(again) == _plain(first) and again is not first  # recomputed, equal
    finally:
        await pool.close()


async def test_decoded_series_answer_like_postgresql_until_new_data(settings: Settings, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    values = [float(i % 11) - 5 * (i == 1234) for i in range(3000)]
    for name in ("a", "b"):
        await seed_scalars(db, run_id, name, "float", values, times=[T0 + i for i in range(3000)], chunk_points=400)
    ids = {r["name"]: r["id"] for r in await db.fetch("SELECT id, name FROM series WHERE run_id = $1", run_id)}
    pool = await create_pool(settings.database_url)
    try:
        reader, fresh = SeriesReader(pool, decoded_points=4000), SeriesReader(pool, decoded_points=0)
        for rng, max_points, x_axis in (
            (SeriesRange(), 100, "step"),
            (SeriesRange(), 70, "time"),
            (SeriesRange(start_step=1000, end_step=1999), 50, "step"),
        ):
            held = await reader.downsample_cached(run_id, ids["a"], "float", rng, max_points=max_points, x_axis=x_axis)
            read = await fresh.downsample_cached(run_id, ids["a"], "float", rng, max_points=max_points, x_axis=x_axis)
            assert _plain(held) == _plain(read)
        page = {"limit": 1000, "after": None, "point_count": 3000}
        held = await reader.page(run_id, ids["a"], "float", SeriesRange(), **page)
        assert _plain(held) == _plain(await fresh.page(run_id, ids["a"], "float", SeriesRange(), **page))
        assert reader.decoded.points == 3000 and reader.decoded.hits == 3 and fresh.decoded.points == 0
        # "b" does not fit beside "a": "a" makes room.
        await reader.downsample_cached(run_id, ids["b"], "float", SeriesRange(), max_points=100)
        assert reader.decoded.points == 3000 and reader.decoded.hits == 3
        # New points change the run's data version: what was held is not served.
        await reader.downsample_cached(run_id, ids["a"], "float", SeriesRange(), max_points=100)
        await append_points(db, run_id, "a", [(3000, T0 + 3000, 3000, 99.0)])
        after = await reader.downsample_cached(run_id, ids["a"], "float", SeriesRange(), max_points=100)
        assert after["steps"][-1] == 3000 and max(after["values"]) == 99.0
    finally:
        await pool.close()


async def test_data_versions_of_many_runs_are_each_runs_own(settings: Settings, db: asyncpg.Pool) -> None:
    """A compare chart reads its runs' data versions in one query: each as the run's own query says."""
    runs = [await seed_run(db) for _ in range(3)]
    await seed_scalars(db, runs[0], "a", "float", [1.0, 2.0, 3.0])
    await seed_scalars(db, runs[0], "b", "float", [1.0])
    await seed_scalars(db, runs[1], "a", "float", [float(i) for i in range(10)])
    pool = await create_pool(settings.database_url)
    try:
        reader = SeriesReader(pool)
        unknown = uuid.uuid4()
        versions = await reader.data_versions([*runs, unknown])
        assert versions == {run_id: await reader.data_version(run_id) for run_id in [*runs, unknown]}
        assert versions[runs[0]] == (2, 4) and versions[runs[1]] == (1, 10) and versions[runs[2]] == (0, 0)
        await append_points(db, runs[1], "a", [(10, T0 + 10, 10, 10.0)])
        assert (await reader.data_versions([runs[1]]))[runs[1]] == (1, 11)
    finally:
        await pool.close()


def _m4_reference(xs: list[float], values: list[float], buckets: dict[str, Any]) -> list[int]:
    """The positions M4 keeps, bucket by bucket in plain Python with exact arithmetic: the oracle for numpy's.

    Bucket k holds ``start + k * width <= x < start + (k + 1) * width``; each keeps its first and last
    point, its lowest (the earliest of equals) and its highest (the latest; NaN above every number).
    """
    start, width = Fraction(buckets["start"]), Fraction(buckets["width"])
    by_bucket: dict[int, list[int]] = {}
    for i, x in enumerate(xs):
        by_bucket.setdefault(math.floor((Fraction(x) - start) / width), []).append(i)

    def rank(i: int) -> tuple[bool, float]:
        return (math.isnan(values[i]), 0.0 if math.isnan(values[i]) else values[i])

    kept: set[int] = set()
    for members in by_bucket.values():
        low = min(rank(i) for i in members)
        high = max(rank(i) for i in members)
        kept |= {members[0], members[-1]}
        kept.add(next(i for i in members if rank(i) == low))
        kept.add(next(i for i in reversed(members) if rank(i) == high))
    return sorted(kept)


@pytest.mark.parametrize(("first", "n", "max_points"), [(0, 50_000, 2_000), (7, 4_099, 64), (-3, 999, 10)])
def test_m4_over_steps_one_by_one_matches_the_reference(first: int, n: int, max_points: int) -> None:
    """Steps 0, 1, 2, ... take a shortcut (edges guessed, extremes by rows); ties, ±0 and ±Inf included."""
    rng = np.random.default_rng(SEED)
    values = rng.integers(-3, 4, n).astype(np.float64)
    values[rng.integers(0, n, 9)] = np.inf
    values[rng.integers(0, n, 9)] = -np.inf
    values[values == 0] = np.where(rng.random(int((values == 0).sum())) < 0.5, -0.0, 0.0)
    steps = np.arange(first, first + n, dtype=np.int64)
    kept, buckets = m4(steps, values, max_points, integral=True)
    assert 0.9 * max_points <= len(kept) <= max_points
    assert buckets.filled == 0
    assert kept.tolist() == _m4_reference(
        steps.tolist(), values.tolist(), {"start": buckets.start, "width": buckets.width}
    )


def _m4_or_filled(xs: list[float], values: list[float], kept: list[int], buckets: dict[str, Any]) -> None:
    """``kept`` is exactly the buckets' M4 points, or (``filled`` > 0) holds them all and ``filled`` more."""
    reference = _m4_reference(xs, values, buckets)
    assert kept == sorted(set(kept)), "positions ascending, none twice"
    assert set(reference) <= set(kept)
    assert len(kept) - len(reference) == buckets["filled"]


@pytest.mark.parametrize("shape", ["steps", "resumed_later"])
def test_max_points_keeps_its_promise_where_no_grid_of_buckets_can(shape: str) -> None:
    """90-100% of every max_points, with each bucket's M4 points kept: a tiny max_points (merges move in fours),
    or points crowded into a sliver of the axis (a run resumed 3 hours later, on the time axis), get further
    points, counted as ``filled``. Before the fill, 2,000 steps at max_points 18 kept 16, and 1,000 points
    with 5 logged after the pause kept 9 of 20."""
    rng = np.random.default_rng(SEED)
    if shape == "steps":
        n, integral = 2_000, True
        x = np.arange(n, dtype=np.int64)
    else:
        n, integral = 1_000, False
        x = T0 + np.concatenate([np.arange(n - 5) * 0.001, 3 * 3600 + np.arange(5.0)])
    values = rng.normal(0, 1, n)
    filled = 0
    for max_points in [*range(2, 41), 57, 100, 150, 199, 400]:
        kept, buckets = m4(x, values, max_points, integral=integral)
        assert math.ceil(0.9 * max_points) <= len(kept) <= max_points, (max_points, len(kept))
        filled += buckets.filled
        if max_points >= 4:  # fewer cannot hold one bucket's four points
            grid = {"start": buckets.start, "width": buckets.width, "filled": buckets.filled}
            _m4_or_filled(x.tolist(), values.tolist(), kept.tolist(), grid)
    assert filled > 0  # the case this test is about did occur


def _tagged(value: Any) -> float:
    return float(value["$float"]) if isinstance(value, dict) else float(value)


async def test_m4_keeps_each_buckets_first_last_min_and_max(query_service: str, db: asyncpg.Pool) -> None:
    """50,000 steps at max_points=2000: 1,800 to 2,000 points, exactly M4's, over steps or over times."""
    run_id = await seed_run(db)
    n = 50_000
    rng = np.random.default_rng(SEED)
    values = (1 / np.sqrt(np.arange(n) + 1) + rng.normal(0, 0.05, n)).tolist()
    values[31_337] = math.nan
    # Logged at an uneven pace: bursts, and one pause of 45 s in the middle.
    times = (T0 + np.cumsum(rng.exponential(0.01, n)) + np.where(np.arange(n) >= n // 2, 45.0, 0.0)).tolist()
    await seed_scalars(db, run_id, "loss", "float", values, times=times)
    base = f"{query_service}/api/runs/{run_id}/series?name=loss&max_points=2000"
    _, whole = await get(f"{query_service}/api/runs/{run_id}/series?name=loss&limit={n}")
    times = whole["times"]  # as stored: to the microsecond
    for axis, xs in (("step", [float(i) for i in range(n)]), ("time", times)):
        status, body = await get(f"{base}&x_axis={axis}")
        assert status == 200 and body["downsampled"] is True, axis
        assert 1800 <= len(body["steps"]) <= 2000, (axis, len(body["steps"]))
        assert body["buckets"]["x_axis"] == axis and body["buckets"]["filled"] == 0
        kept = _m4_reference(xs, values, body["buckets"])
        assert body["steps"] == kept, axis
        assert [_tagged(v) for v in body["values"]] == pytest.approx([values[i] for i in kept], nan_ok=True)

    # A zoom: the visible range comes back at full resolution, then downsampled again when it is wide.
    status, body = await get(f"{base}&start_step=20000&end_step=21999")
    assert body["downsampled"] is False and body["steps"] == list(range(20_000, 22_000))
    status, body = await get(f"{base}&x_axis=time&start_time={times[1000]}&end_time={times[40_000]}")
    assert body["downsampled"] is True and 1800 <= len(body["steps"]) <= 2000
    assert body["steps"][0] == 1000 and body["steps"][-1] == 40_000
    # A tiny max_points still gets 90% of it (here all 7): M4's points over the pause, and more.
    status, body = await get(f"{query_service}/api/runs/{run_id}/series?name=loss&max_points=7&x_axis=time")
    assert status == 200 and len(body["steps"]) == 7
    _m4_or_filled(times, values, body["steps"], body["buckets"])


async def test_overlapping_chunks_read_in_time_and_ordinal_order(
    query_service: str, db: asyncpg.Pool, settings: Settings
) -> None:
    """Two producer sessions' chunks overlap in time, one session's times run backwards: reads still agree."""
    run_id = await seed_run(db)
    n = 3_000
    times = [T0 + (i // 3) * 0.01 for i in range(n)]  # three points per clock tick, told apart by ordinal
    values = [math.sin(i / 40) for i in range(n)]
    values[100], values[1_001], values[2_002], values[2_999] = math.nan, math.inf, -math.inf, 9.0
    # Even points in order, odd points backwards, 25 to a chunk: 120 chunks, most overlapping others.
    order = list(range(0, n, 2)) + list(reversed(range(1, n, 2)))
    await seed_scalars(db, run_id, "x", "float", values, times=times, insert_order=order, chunk_points=25)
    base = f"{query_service}/api/runs/{run_id}/series?name=x"

    for limit in (7, 1_000, n):
        steps: list[int] = []
        url = f"{base}&limit={limit}"
        while url:
            status, body = await get(url)
            assert status == 200
            steps += body["steps"]
            url = f"{base}&limit={limit}&cursor={body['next_cursor']}" if body["next_cursor"] else ""
        assert steps == list(range(n)), limit

    status, body = await get(f"{base}&start_step=1234&end_step=1300&start_time={times[1240]}&end_time={times[1290]}")
    assert body["steps"] == [i for i in range(1234, 1301) if times[1240] <= times[i] <= times[1290]]

    status, body = await get(f"{base}&max_points=100")
    kept = _m4_reference([float(i) for i in range(n)], values, body["buckets"])
    assert body["downsampled"] is True and 90 <= len(kept) <= 100 and body["steps"] == kept
    assert {"$float": "NaN"} in body["values"] and {"$float": "-Infinity"} in body["values"]

    status, body = await get(f"{query_service}/api/runs/{run_id}/metrics?name=x")
    assert len(body["x"]) == n and body["x"][:3] == values[:3] and body["x"][-1] == 9.0

    pool = await create_pool(settings.database_url)
    try:
        series_id = await db.fetchval("SELECT id FROM series WHERE run_id = $1 AND name = 'x'", run_id)
        assert await SeriesReader(pool).tail(series_id, "float", 40) == values[-40:]
    finally:
        await pool.close()


async def test_series_and_runs_as_csv_round_trip_exactly(query_service: str, db: asyncpg.Pool) -> None:
    experiment = f"csv-{uuid.uuid4().hex[:6]}"
    a = await seed_run(
        db, experiment=experiment, display_name='a, "quoted"', tags={"lr": "0.1"}, properties={"seed": "7"}
    )
    b = await seed_run(db, experiment=experiment, display_name="b", tags={"opt": "adam"})
    values = [0.1, 1 / 3, math.nan, math.inf, -math.inf, 1e-300, 2.0**60 + 0.5, -0.0]
    times = [T0 + i / 7 for i in range(len(values))]
    await seed_scalars(db, a, "loss", "float", values, times=times)
    await seed_scalars(db, b, "loss", "float", [2.5])
    await seed_scalars(db, a, "epoch", "int", [1, 2**62])

    def table(text: str) -> list[list[str]]:
        return list(csv.reader(io.StringIO(text)))

    for url, headers in (
        (f"{query_service}/api/runs/{a}/series?name=loss&format=csv", None),
        (f"{query_service}/api/runs/{a}/series?name=loss", {"Accept": "text/csv"}),
    ):
        status, content_type, text = await get_text(url, headers=headers)
        assert (status, content_type) == (200, "text/csv")
        rows = table(text)
        assert rows[0] == ["step", "time", "value"]
        assert [int(r[0]) for r in rows[1:]] == list(range(len(values)))
        # Times as stored (to the microsecond) and as the JSON answer has them, to the bit.
        _, body = await get(f"{query_service}/api/runs/{a}/series?name=loss")
        assert [float(r[1]) for r in rows[1:]] == body["times"] == pytest.approx(times, abs=1e-6)
        assert [r[2] for r in rows[1:]][2:5] == ["NaN", "Infinity", "-Infinity"]
        got = [float(r[2]) for r in rows[1:]]
        assert [x.hex() for x in got if not math.isnan(x)] == [x.hex() for x in values if not math.isnan(x)]
    status, _, text = await get_text(f"{query_service}/api/runs/{a}/series?name=epoch&format=csv")
    assert [r[2] for r in table(text)[1:]] == ["1", str(2**62)]

    status, _, text = await get_text(f"{query_service}/api/series?name=loss&run={a}&run={b}&max_points=10&format=csv")
    rows = table(text)
    assert rows[0] == ["run_id", "step", "time", "value"] and len(rows) == 1 + len(values) + 1
    assert rows[-1][:2] == [str(b), "0"] and rows[-1][3] == "2.5"

    status, content_type, text = await get_text(
        f"{query_service}/api/runs?experiment={experiment}&include=metrics&format=csv"
    )
    assert (status, content_type) == (200, "text/csv")
    rows = table(text)
    header = rows[0]
    assert header[:4] == ["id", "display_name", "experiment", "status"]
    assert header[8:] == ["tag.lr", "tag.opt", "property.seed", "metric.epoch", "metric.loss"]
    by_id = {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert by_id[str(a)]["display_name"] == 'a, "quoted"' and by_id[str(a)]["tag.lr"] == "0.1"
    assert by_id[str(a)]["metric.loss"] == "-0.0" and by_id[str(a)]["metric.epoch"] == str(2**62)
    assert by_id[str(b)]["tag.lr"] == "" and by_id[str(b)]["metric.loss"] == "2.5"
    for query_string, parameter in (("status=Bogus", "status"), ("format=yaml", "format"), ("colour=red", "colour")):
        status, body = await get(f"{query_service}/api/runs?experiment={experiment}&{query_string}")
        assert (status, body["error"]["parameter"]) == (400, parameter), query_string
