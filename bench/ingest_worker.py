"""Measure one worker: ``python -m bench.ingest_worker [--points N] [--freshness RATE]``.

Throughput: pre-produces float batches (like the SDK's) to a fresh topic of
its own, then starts an in-process worker and times until PostgreSQL holds
every record (consumer_offsets says so). Prints points per second.

Freshness (``--freshness 100000``): produces that many points per second in
batches every 10 ms for ``--seconds`` and reports p50/p99 of the time from
sending a batch to its commit in PostgreSQL.

Rejected records (``--rejected 10000``): what N records PostgreSQL would refuse
(a NUL in a series name) cost the other runs. First end to end: N such records,
then one normal batch per partition, consumed by a fresh worker, timed from its
start until the normal batches are stored, against the same without the bad
records. Then the writer's fallback alone: N records that got past the
decoder's checks (as if they had a hole), with normal ones among them, in one
flush bisected in savepoints.

Uses the settings from ``RUNSTREAM_*`` for Kafka and PostgreSQL; the topics
and group are ``bench-*``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
import uuid

import asyncpg
from aiokafka import AIOKafkaProducer

from ingest._decoder import Decoded, Source
from ingest._options import IngestOptions
from ingest._partitions import PointPartitions
from ingest._worker import IngestWorker
from ingest._writer import Writer
from runstream import kafka
from runstream.config import Settings
from runstream.events import Batch, encode_batch, scalars_event


def _records(points: int, runs: int, metrics: int, per_event: int) -> list[tuple[bytes, bytes]]:
    out = []
    run_ids = [str(uuid.uuid4()) for _ in range(runs)]
    sessions = [str(uuid.uuid4()) for _ in range(runs)]
    per_batch = metrics * per_event
    t0 = time.time()
    for b in range(max(1, points // (per_batch * runs))):
        for run, session in zip(run_ids, sessions, strict=True):
            events = []
            if b == 0:
                events.append({"type": "run_started", "time": t0, "experiment": "bench", "display_name": None})
            steps = list(range(b * per_event, (b + 1) * per_event))
            times = [t0 + s * 0.001 for s in steps]
            for m in range(metrics):
                events.append(scalars_event(f"m{m}", "float", steps, times, steps, [s * 0.5 + m for s in steps]))
            out.append((run.encode(), encode_batch(Batch(run, session, b + 1, events))))
    return out


async def _main(points: int, runs: int, metrics: int, per_event: int, flush_points: int) -> None:
    base = Settings.from_env()
    tag = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(
        base, topic=f"bench-{tag}.events", dlq_topic=f"bench-{tag}.dlq", group_id=f"bench-{tag}"
    )
    records = _records(points, runs, metrics, per_event)
    total_points = len(records) * metrics * per_event
    # Create the topics first (the worker would), so production lands on every partition.
    await kafka.ensure_topics(settings, {settings.topic: settings.topic_partitions})
    started = time.perf_counter()
    async with AIOKafkaProducer(**kafka.client_options(settings), linger_ms=20, max_request_size=16 << 20) as p:
        futures = [await p.send(settings.topic, value=v, key=k) for k, v in records]
        await asyncio.gather(*futures)
    print(f"produced {len(records)} records, {total_points} points in {time.perf_counter() - started:.2f}s")
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
        started = time.perf_counter()
        async with IngestWorker(
            settings,
            options=IngestOptions(flush_max_points=flush_points),
            metrics_port=0,
        ) as worker:
            while True:
                done = await pool.fetchval(
                    "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE topic = $1", settings.topic
                )
                if done >= len(records):
                    break
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
    print(f"ingested {total_points} points in {elapsed:.2f}s: {total_points / elapsed:,.0f} points/s (incl. start)")
    registry = worker.metrics.registry
    flushes = registry.get_sample_value("runstream_ingest_flushes_total") or 0
    writing = registry.get_sample_value("runstream_ingest_write_seconds_sum") or 0
    print(f"{flushes:.0f} flushes, {writing:.2f}s inside write transactions")


async def _freshness(rate: int, seconds: float) -> None:
    base = Settings.from_env()
    tag = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(
        base, topic=f"bench-{tag}.events", dlq_topic=f"bench-{tag}.dlq", group_id=f"bench-{tag}"
    )
    run, session = str(uuid.uuid4()), str(uuid.uuid4())
    per_batch = max(1, rate // 100)
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    async with (
        asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool,
        IngestWorker(settings, metrics_port=0),
        AIOKafkaProducer(**kafka.client_options(settings), linger_ms=0) as producer,
    ):

        async def watch() -> None:
            while True:
                last = await pool.fetchval("SELECT last_seq FROM producer_sessions WHERE session_id = $1", session)
                now = time.perf_counter()
                for seq in range(len(seen) + 1, (last or 0) + 1):
                    seen[seq] = now
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        start, seq = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            seq += 1
            steps = list(range((seq - 1) * per_batch, seq * per_batch))
            now = time.time()
            events = [scalars_event("loss", "float", steps, [now] * per_batch, steps, [0.5] * per_batch)]
            if seq == 1:
                events.insert(0, {"type": "run_started", "time": now, "experiment": "bench", "display_name": None})
            sent[seq] = time.perf_counter()
            await producer.send(settings.topic, encode_batch(Batch(run, session, seq, events)), key=run.encode())
            await asyncio.sleep(max(0.0, start + seq * 0.01 - time.perf_counter()))
        achieved = seq * per_batch / (time.perf_counter() - start)
        deadline = time.perf_counter() + 30
        while len(seen) < seq and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        watcher.cancel()
    delays = sorted(seen[s] - sent[s] for s in seen if s > 50)  # skip the warm-up (group join)
    p50, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99)]
    print(
        f"{achieved:,.0f} points/s (asked {rate:,}) for {seconds}s: "
        f"send -> committed p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )


def _bad_and_good(bad: int, partitions: int) -> tuple[list[tuple[bytes, bytes]], list[str]]:
    """``bad`` records PostgreSQL refuses, then a normal run's batch keyed to each partition (roughly)."""
    t0 = time.time()
    records = []
    for i in range(bad):
        run, session = str(uuid.uuid4()), str(uuid.uuid4())
        event = scalars_event(f"bad\x00{i}", "float", [0], [t0], [0], [1.0])
        records.append((run.encode(), encode_batch(Batch(run, session, 1, [event]))))
    good = [str(uuid.uuid4()) for _ in range(4 * partitions)]
    for run in good:
        started = {"type": "run_started", "time": t0, "experiment": "bench", "display_name": None}
        event = scalars_event("loss", "float", [0], [t0], [0], [0.5])
        records.append((run.encode(), encode_batch(Batch(run, str(uuid.uuid4()), 1, [started, event]))))
    return records, good


async def _time_to_store(settings: Settings, records: list[tuple[bytes, bytes]], good: list[str]) -> float:
    """Seconds from a fresh worker's start until the good runs' batches are stored."""
    await kafka.ensure_topics(settings, {settings.topic: settings.topic_partitions})
    async with AIOKafkaProducer(**kafka.client_options(settings), linger_ms=20) as producer:
        await asyncio.gather(*[await producer.send(settings.topic, value=v, key=k) for k, v in records])
    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as pool:
        started = time.perf_counter()
        async with IngestWorker(settings, metrics_port=0):
            while await pool.fetchval("SELECT count(*) FROM runs WHERE id = ANY($1::uuid[])", good) < len(good):
                await asyncio.sleep(0.02)
            return time.perf_counter() - started


async def _rejected(count: int) -> None:
    base = Settings.from_env()

    def fresh() -> Settings:
        tag = uuid.uuid4().hex[:8]
        return dataclasses.replace(
            base, topic=f"bench-{tag}.events", dlq_topic=f"bench-{tag}.dlq", group_id=f"bench-{tag}"
        )

    records, good = _bad_and_good(count, base.topic_partitions)
    with_bad = await _time_to_store(fresh(), records, good)
    without = await _time_to_store(fresh(), records[count:], good)
    print(
        f"{count} records PostgreSQL would refuse, then {len(good)} normal batches: stored {with_bad:.2f}s after the"
        f" worker's start, against {without:.2f}s without them: they cost the other runs {with_bad - without:.2f}s"
    )
    await _fallback(base, count)


async def _fallback(settings: Settings, count: int) -> None:
    """The writer's last resort: records past the decoder that PostgreSQL refuses, bisected in one transaction."""
    from runstream.events import decode_batch

    t0 = time.time()
    records: list[Decoded] = []
    for i in range(count + count // 10):
        run, session = str(uuid.uuid4()), str(uuid.uuid4())
        name = f"bad\x00{i}" if i % 11 != 10 else "loss"  # one normal record in eleven
        events = [{"type": "run_started", "time": t0, "experiment": "bench", "display_name": None}]
        value = encode_batch(Batch(run, session, 1, [*events, scalars_event(name, "float", [0], [t0], [0], [1.0])]))
        records.append(Decoded(Source("bench", 0, i, None, value), decode_batch(value), 1))

    async def ignore(letters: object, conn: object) -> None:
        return None

    async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=2) as pool:
        writer = Writer(pool, f"bench-{uuid.uuid4().hex[:8]}", ignore, partitions=PointPartitions(pool))
        started = time.perf_counter()
        result = await writer.write(records)
        elapsed = time.perf_counter() - started
    print(
        f"fallback: {result.isolated} refused records isolated among {len(records)} in one flush in {elapsed:.2f}s"
        f" ({elapsed / max(1, result.isolated) * 1000:.2f} ms each, {result.batches} stored)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--metrics", type=int, default=5)
    parser.add_argument("--per-event", type=int, default=2000)
    parser.add_argument("--flush-points", type=int, default=IngestOptions().flush_max_points)
    parser.add_argument("--freshness", type=int, metavar="RATE", help="measure freshness at RATE points/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rejected", type=int, metavar="N", help="measure what N records PostgreSQL refuses cost")
    args = parser.parse_args()
    if args.rejected:
        asyncio.run(_rejected(args.rejected))
    elif args.freshness:
        asyncio.run(_freshness(args.freshness, args.seconds))
    else:
        asyncio.run(_main(args.points, args.runs, args.metrics, args.per_event, args.flush_points))


if __name__ == "__main__":
    main()
