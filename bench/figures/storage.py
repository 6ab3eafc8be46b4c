"""13. Storage per point on a realistic corpus (issue 18: ≤ 4 B/point).

Figure 4 stores ``step * 0.5``, which says little about a codec; this one
stores what training loops log (:mod:`bench.corpus`):

- digits: ``corpus_runs`` seeded float32 MLP trainings on scikit-learn's
  digits, each step's loss, accuracy, lr, grad norm and throughput logged by
  one ``run.log_metrics`` (:mod:`bench.workers.rs_corpus`), into a sandbox
  with one ingest worker whose compaction merges a series' small chunks once
  they are ``corpus_compaction_age_seconds`` old. Once every point is
  committed and no series has small chunks left to merge, the point tables
  are rewritten (``VACUUM FULL``: the merged-away chunks' dead rows would
  otherwise count) and measured. Bytes per point = ``point_bytes`` / points;
  the size before the rewrite is kept in the JSON. Chunks of 1,000+ points
  that a flush writes are packed as they are and never merged, so how the
  flushes happen to cut a series moves the figure (4.9-7.2 B seen): it is the
  median of ``corpus_digits_reps`` fresh sandboxes.
- synthetic: the same five shapes at ``corpus_synthetic_points`` points per
  series, encoded as compaction encodes (chunks of ``CHUNK_POINTS``) and
  copied into ``point_chunks`` of a scratch database with the real
  migrations (:func:`bench.layout.copy_series`), read back and checked bit
  for bit, then measured the same way. Per metric: the growth of
  ``point_bytes`` as its series is stored.

Per metric for digits (whose series interleave on the same pages): the
stored column bytes of its chunks (:func:`bench.points.column_bytes`), so
without row headers, page space and indexes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from bench.context import Context
from bench.corpus import METRICS, Training, digits_csv, synthetic
from bench.layout import copy_series, today_partition
from bench.points import column_bytes, point_bytes, vacuum_full, wait_committed
from bench.proc import run_worker
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats
from ingest._compaction import CHUNK_POINTS
from runstream.chunks import DECODE_COLUMNS, RAW, SMALL_CHUNK_POINTS, decode_row
from runstream.schema import migrate

TITLE = "13. storage per point on a realistic corpus"
BAR = Bar("max", 4, "≤ 4 B")

#: What compaction has still to do: series with small chunks to merge, large raw chunks to pack.
_DUE = f"""SELECT (SELECT count(*) FROM series WHERE small_chunks >= 2)
    + (SELECT count(*) FROM point_chunks WHERE codec = {RAW} AND n >= {SMALL_CHUNK_POINTS} AND vals IS NOT NULL)"""  # noqa: S608 - constants only


async def _compacted(conn: asyncpg.Connection, timeout_seconds: float) -> float:
    """Wait until no series has small chunks left to merge (as the compactor counts them) and no large chunk
    waits to be packed; return the seconds."""
    started = time.monotonic()
    while due := await conn.fetchval(_DUE):
        if time.monotonic() - started > timeout_seconds:
            raise RuntimeError(f"{due} series or chunks still due for compaction after {timeout_seconds:.0f} s")
        await asyncio.sleep(0.25)
    return time.monotonic() - started


async def _per_metric(conn: asyncpg.Connection) -> dict[str, float]:
    """Stored column bytes per point of each metric name, over all runs."""
    names = {r["id"]: r["name"] for r in await conn.fetch("SELECT id, name FROM series")}
    totals: dict[str, list[int]] = {}
    for series_id, (size, points) in (await column_bytes(conn)).items():
        total = totals.setdefault(names.get(series_id, "?"), [0, 0])
        total[0] += size
        total[1] += points
    return {name: size / points for name, (size, points) in sorted(totals.items()) if points}


async def digits_once(ctx: Context, csv: Path, seed: int) -> dict[str, Any]:
    """One measurement: the corpus logged into a fresh sandbox, merged, rewritten and measured."""
    s = ctx.sizes
    async with Sandbox(ctx.infra, "corpus") as sandbox:
        sandbox.settings = dataclasses.replace(sandbox.settings, compaction_age_seconds=s.corpus_compaction_age_seconds)
        await sandbox.start_ingest(1)
        params = {"digits": str(csv), "runs": s.corpus_runs, "epochs": s.corpus_epochs, "seed": seed}
        logged = await asyncio.to_thread(run_worker, "rs_corpus", params, env=sandbox.env(), log_dir=ctx.log_dir)
        conn = await asyncpg.connect(sandbox.settings.database_url)
        try:
            _, found = await wait_committed(
                conn,
                cluster=sandbox.settings,
                topic=sandbox.settings.topic,
                run_ids=logged["run_ids"],
                expected_points=logged["points"],
                timeout_seconds=max(120.0, logged["points"] / 20_000),
            )
            if found != logged["points"]:
                raise RuntimeError(f"{found:,} points stored of {logged['points']:,} logged")
            settle = await _compacted(conn, 10 * s.corpus_compaction_age_seconds + 120)
            before = await point_bytes(conn)
            await vacuum_full(conn)
            stored = await point_bytes(conn)
            per_metric = await _per_metric(conn)
            counted = await conn.fetchrow(
                "SELECT count(*) AS chunks, count(*) FILTER (WHERE n < $1) AS small,"
                " coalesce(sum(n) FILTER (WHERE n < $1), 0) AS small_points FROM point_chunks",
                SMALL_CHUNK_POINTS,
            )
            chunks = dict(counted or {})
        finally:
            await conn.close()
        sandbox.check_alive()
    return {
        "points": found,
        "chunks": chunks["chunks"],
        # The compactor merges a series' small chunks once it has two: the last one of a run stays as written.
        "small_chunks": chunks["small"],
        "points_in_small_chunks": chunks["small_points"],
        "bytes_per_point": stored / found,
        "bytes_per_point_before_vacuum": before / found,
        "point_bytes": stored,
        "per_metric": per_metric,
        "log_seconds": logged["seconds"],
        "settle_seconds": settle,
        "last_metrics": logged["last"],
    }


def _same_bits(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a, np.float64).view(np.int64), np.asarray(b, np.float64).view(np.int64)))


async def synthetic_once(conn: asyncpg.Connection, day: int, points: int, seed: int) -> dict[str, Any]:
    """One measurement: the five curves stored into an emptied ``point_chunks``, checked and measured."""
    await conn.execute("TRUNCATE point_chunks")
    curves = synthetic(points, seed)
    ordinals = np.arange(points, dtype=np.int64)
    per_metric: dict[str, float] = {}
    size = await point_bytes(conn)
    for series_id, name in enumerate(METRICS):
        columns = (curves.steps, curves.times, ordinals, curves.values[name])
        await copy_series(conn, series_id, columns, CHUNK_POINTS, day, pack=True)
        grown = await point_bytes(conn)
        per_metric[name] = (grown - size) / points
        size = grown
    for series_id, name in enumerate(METRICS):
        rows = await conn.fetch(
            f"SELECT {', '.join(DECODE_COLUMNS)} FROM point_chunks WHERE series_id = $1 ORDER BY step_min",  # noqa: S608 - constant columns
            series_id,
        )
        back = np.concatenate([decode_row(r).values for r in rows])
        if not _same_bits(back, curves.values[name]):
            raise RuntimeError(f"synthetic {name}: the stored values do not read back bit for bit")
    return {
        "points": points * len(METRICS),
        "bytes_per_point": size / (points * len(METRICS)),
        "per_metric": per_metric,
    }


async def synthetic_reps(ctx: Context) -> list[dict[str, Any]]:
    """``reps`` measurements (seeds 0..reps-1) in one scratch database with ingest's migrations."""
    name = f"bench_corpus_{uuid.uuid4().hex[:8]}"
    dsn = await ctx.infra.create_database(name)
    try:
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            day = await today_partition(conn)
            results = []
            for rep in range(ctx.sizes.reps):
                results.append(await synthetic_once(conn, day, ctx.sizes.corpus_synthetic_points, rep))
                ctx.progress(f"    rep {rep + 1}: {results[-1]['bytes_per_point']:.2f} B/point")
            return results
        finally:
            await conn.close()
    finally:
        await ctx.infra.drop_database(name)


def _median_per_metric(results: list[dict[str, Any]]) -> dict[str, float]:
    return {m: statistics.median(r["per_metric"][m] for r in results) for m in results[0]["per_metric"]}


def _share_text(results: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['points_in_small_chunks'] / r['points']:.0%}" for r in results)


def _per_metric_text(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in values.items())


async def run(ctx: Context) -> list[Row]:
    s = ctx.sizes
    steps = Training(seed=0, epochs=s.corpus_epochs).steps()
    digits = Row(
        key="storage_corpus_digits",
        figure=f"{TITLE}: digits MLP, {s.corpus_runs} runs × {steps:,} steps × {len(METRICS)} metrics",
        unit="B/point",
        bars=[BAR],
    )
    synth = Row(
        key="storage_corpus_synthetic",
        figure=f"{TITLE}: synthetic curves of the same shapes, {len(METRICS)} × {s.corpus_synthetic_points:,} points",
        unit="B/point",
        bars=[BAR],
    )
    ctx.progress(f"  synthetic: {len(METRICS)} curves × {s.corpus_synthetic_points:,} points × {s.reps}")
    made = await synthetic_reps(ctx)
    synth.runstream = Stats.of(r["bytes_per_point"] for r in made)
    synth.details["runs"] = made
    synth.note = (
        f"chunks of {CHUNK_POINTS:,} points encoded by runstream.chunks.encode_chunks, COPY into point_chunks of a "
        f"scratch database (real migrations), read back bit-exact; B/point = pg_total_relation_size of the point "
        f"tables / points, median of {s.reps} seeds. Per metric (growth as each is stored): "
        f"{_per_metric_text(_median_per_metric(made))}."
    )
    if gone := ctx.lacks("producer", "ingest"):
        digits.missing = gone
        return [digits, synth]
    csv = await asyncio.to_thread(digits_csv)
    results = []
    for rep in range(s.corpus_digits_reps):
        ctx.progress(f"  digits rep {rep + 1}/{s.corpus_digits_reps}: {s.corpus_runs} runs × {steps:,} steps")
        results.append(await digits_once(ctx, csv, seed=rep * s.corpus_runs))
        got = results[-1]
        ctx.progress(
            f"    {got['bytes_per_point']:.2f} B/point ({got['bytes_per_point_before_vacuum']:.2f} before VACUUM FULL),"
            f" {got['points']:,} points in {got['chunks']:,} chunks ({got['points_in_small_chunks']:,} points in"
            f" {got['small_chunks']} under {SMALL_CHUNK_POINTS:,}), merged {got['settle_seconds']:.0f} s after commit"
        )
    digits.runstream = Stats.of(r["bytes_per_point"] for r in results)
    digits.details["runs"] = results
    digits.note = (
        f"{'one measurement' if len(results) == 1 else f'median of {len(results)} measurements'}, each "
        f"{s.corpus_runs} seeded trainings (float32 MLP 64-64-10, SGD, cosine lr, batch 32) logged by "
        "run.log_metrics per step into 1 ingest worker; after every point is committed and compaction has merged "
        "every series' small chunks, VACUUM FULL of the point tables (the merged-away rows' space), then "
        "pg_total_relation_size / points. Stored column bytes per point by metric (no row headers, pages, indexes): "
        f"{_per_metric_text(_median_per_metric(results))}. Points left in chunks under {SMALL_CHUNK_POINTS:,} points "
        f"(compaction leaves a series' last small chunk as written): {_share_text(results)}."
    )
    return [digits, synth]
