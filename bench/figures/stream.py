"""11. Stream delivery: ``run.log`` to a ``runstream.stream`` subscriber, and many subscribers on one query process.

Delivery: the freshness figure's producer (an offered rate over 20 metrics,
and a ``probe`` every 20 ms whose value is the wall-clock time it was logged)
feeds one ingest worker; a :class:`runstream.stream.Stream` follows the run's
``probe`` metric from the query service, and each probe's delay is the time
its event arrived minus its value. Unlike the freshness figure nothing is
polled, so this is the delay itself, not an upper bound.

Subscribers: N streams of one run (raw SSE connections from this process) on
one query process; the query service's resident memory is read before they
connect and once a point logged afterwards has reached all of them, which
also gives how long that point took to reach the last one.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import aiohttp

from bench.by_rate import percentile_rows
from bench.context import Context
from bench.load import PacedLoad
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats, percentile
from producer import Experiment, Workspace
from runstream.stream import STREAM_PATH, NewPoints, Stream

TITLE = "11. stream delivery: run.log to a runstream.stream subscriber"
PROBE_INTERVAL = 0.02


async def _follow(base: str, run_id: str, delays: dict[int, float], stop: asyncio.Event) -> None:
    async with Stream(base, runs=[run_id], metrics=["probe"]) as stream:
        async for event in stream:
            arrived = time.time()
            if isinstance(event, NewPoints) and "probe" in event.metrics:
                series = event.metrics["probe"]
                for step, value in zip(series.steps, series.values, strict=True):
                    if step > 0:  # step 0 is logged before the measurement
                        delays.setdefault(step, arrived - float(value))
            if stop.is_set():
                return


async def _measure_rate(ctx: Context, sandbox: Sandbox, rate: int) -> list[dict[str, Any]]:
    results = []
    async with PacedLoad(sandbox.settings, rate, ctx.sizes.freshness_seconds, ctx.sizes.reps, PROBE_INTERVAL) as load:
        for rep in range(ctx.sizes.reps):
            run_id = await load.next_run()
            delays: dict[int, float] = {}
            stop = asyncio.Event()
            follower = asyncio.create_task(_follow(sandbox.settings.query_url, run_id, delays, stop))
            load.go()
            expected = (await load.done())["probes"]
            deadline = time.monotonic() + 10.0
            while len(delays) < expected - 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            stop.set()
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            samples = list(delays.values()) + [math.inf] * max(0, expected - 1 - len(delays))
            results.append({"p50": percentile(samples, 50), "p99": percentile(samples, 99), "probes": expected})
            ctx.progress(
                f"    {rate:,}/s rep {rep + 1}: p50 {results[-1]['p50'] * 1000:.0f} ms, "
                f"p99 {results[-1]['p99'] * 1000:.0f} ms ({len(delays)}/{expected - 1} probes)"
            )
    return results


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


async def _subscriber(session: aiohttp.ClientSession, url: str, ready: asyncio.Event, got: list[float]) -> None:
    async with session.get(url) as resp:
        async for line in resp.content:
            if line.startswith(b"event: ready"):
                ready.set()
            elif line.startswith(b"event: points"):
                got.append(time.time())
                return


async def _subscribers(ctx: Context, n: int) -> dict[str, Any]:
    async with Sandbox(ctx.infra, "stream_subs") as sandbox:
        await sandbox.start_ingest(1)
        base = await sandbox.start_query()
        assert sandbox.query is not None  # noqa: S101 - started just above
        ws = Workspace.from_settings(sandbox.settings)
        run = await asyncio.to_thread(Experiment(ws, "bench-stream").start_logging)
        await asyncio.to_thread(run.log, "x", 0.0)
        await asyncio.to_thread(run.flush)
        before = _rss(sandbox.query.pid)
        url = f"{base}{STREAM_PATH}?run={run.id}&metric=x"
        got: list[float] = []
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
            ready = [asyncio.Event() for _ in range(n)]
            tasks = [asyncio.create_task(_subscriber(session, url, r, got)) for r in ready]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 120)
            connected = _rss(sandbox.query.pid)
            logged = time.time()
            await asyncio.to_thread(run.log, "x", 1.0)
            await asyncio.to_thread(run.flush)
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
        after = _rss(sandbox.query.pid)
        await asyncio.to_thread(run.complete)
        sandbox.check_alive()
    return {
        "subscribers": n,
        "rss_before": before,
        "rss_connected": connected,
        "rss_after": after,
        "bytes_per_subscriber": (max(connected, after) - before) / n,
        "last_delivery_seconds": max(got) - logged,
    }


async def run(ctx: Context) -> list[Row]:
    rows = await percentile_rows(
        ctx,
        key="stream",
        title=TITLE,
        rates=ctx.sizes.freshness_rates,
        measure=_measure_rate,
        note=(
            f"{ctx.sizes.freshness_seconds:g} s of logging per run over 20 metrics plus a probe every 20 ms; "
            "a runstream.stream.Stream follows the probe metric (GET /api/changes/stream); delay = event "
            "arrival - logged time. One ingest worker, one query service (rounds at least 0.05 s apart: FollowPacing)."
        ),
        bars=([], [Bar("max", 0.3, "≤ 300 ms")]),
    )
    n = 1000 if not ctx.quick else 200
    memory = Row(
        key=f"stream_rss_per_subscriber_{n}", figure=f"11. query RSS per stream subscriber, {n} subscribers", unit="B"
    )
    spread = Row(key=f"stream_fanout_{n}", figure=f"11. a new point reaches all {n} subscribers", unit="s")
    if gone := ctx.lacks("producer", "ingest", "query"):
        memory.missing = spread.missing = gone
        return [*rows, memory, spread]
    ctx.progress(f"  {n} subscribers on one query process")
    found = [await _subscribers(ctx, n) for _ in range(1 if ctx.quick else 3)]
    memory.runstream = Stats.of(f["bytes_per_subscriber"] for f in found)
    spread.runstream = Stats.of(f["last_delivery_seconds"] for f in found)
    memory.details["runs"] = found
    memory.note = "VmRSS of the query process before the subscribers connect and after a point reached them all"
    return [*rows, memory, spread]
