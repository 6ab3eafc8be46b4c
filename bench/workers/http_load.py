"""An HTTP load generator (aiohttp, one process, ``concurrency`` connections).

Open loop (``rate`` > 0): requests are due at fixed intervals whatever the
answers, and each latency runs from the moment the request was due, so a slow
server cannot hide its queueing (no coordinated omission). Closed loop
(``rate`` = 0): ``concurrency`` clients send back to back, for the most
requests per second. Reports throughput, p50/p99/max and errors. Infinite values are written
as JSON ``Infinity``.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bench.workers import emit, params

GRACE_SECONDS = 5.0


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("inf")
    return ordered[min(len(ordered) - 1, max(0, int(q / 100 * len(ordered) + 0.999999) - 1))]


async def _one(session: aiohttp.ClientSession, url: str, due: float, latencies: list[float], errors: list[int]) -> None:
    try:
        async with session.get(url) as resp:
            await resp.read()
            if resp.status != 200:
                errors.append(resp.status)
                return
    except aiohttp.ClientError:
        errors.append(0)
        return
    latencies.append(time.perf_counter() - due)


async def _open_loop(
    session: aiohttp.ClientSession,
    url: str,
    rate: float,
    seconds: float,
    limit: int,
    latencies: list[float],
    errors: list[int],
) -> None:
    gate = asyncio.Semaphore(limit)
    tasks = []
    started = time.perf_counter()
    count = int(rate * seconds)

    async def fire(due: float) -> None:
        async with gate:
            await _one(session, url, due, latencies, errors)

    for i in range(count):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(due)))
    # A server that cannot keep up is given up to GRACE_SECONDS more; what is still unanswered then
    # counts as infinitely late (it shows in p99 when more than 1% is left).
    _, pending = await asyncio.wait(tasks, timeout=min(GRACE_SECONDS, seconds))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    latencies.extend([float("inf")] * len(pending))


async def _closed_loop(
    session: aiohttp.ClientSession, url: str, seconds: float, clients: int, latencies: list[float], errors: list[int]
) -> None:
    stop = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < stop:
            await _one(session, url, time.perf_counter(), latencies, errors)

    await asyncio.gather(*(client() for _ in range(clients)))


async def main() -> None:
    p = params()
    results = []
    connector = aiohttp.TCPConnector(limit=p["concurrency"])
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(3):  # warm-up: connections and the service's first requests
            await _one(session, p["url"], time.perf_counter(), [], [])
        for _ in range(p["reps"]):
            latencies: list[float] = []
            errors: list[int] = []
            started = time.perf_counter()
            if p["rate"]:
                await _open_loop(session, p["url"], p["rate"], p["seconds"], p["concurrency"], latencies, errors)
            else:
                await _closed_loop(session, p["url"], p["seconds"], p["concurrency"], latencies, errors)
            elapsed = time.perf_counter() - started
            ordered = sorted(latencies)
            answered = sum(1 for x in latencies if x != float("inf"))
            results.append(
                {
                    "requests": answered,
                    "unanswered": len(latencies) - answered,
                    "errors": len(errors),
                    "seconds": elapsed,
                    "requests_per_second": answered / elapsed,
                    "p50": _percentile(ordered, 50),
                    "p99": _percentile(ordered, 99),
                    "max": ordered[-1] if ordered else float("inf"),
                }
            )
    emit({"runs": results})


if __name__ == "__main__":
    asyncio.run(main())
