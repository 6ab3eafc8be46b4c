"""Issue 13 on the real broker and PostgreSQL: no record stops or stalls ingest, nothing is skipped silently.

The crafted records of the issue (a step of 2**63, a status error nested 900 deep) and their variants
in every field are dead-lettered with a reason, and a normal run behind them is stored within seconds;
a forged seq cannot burn a live session; PostgreSQL's own refusals are isolated; a dead-letter topic
that is gone keeps nothing waiting; a worker that makes no progress says so on /ready, in its gauge
and in `runstream status`; partitions added under load lose and duplicate nothing; a topic deleted
and created again under a running worker is read from its start. (A broker whose data is wiped:
test_ingest_topic_changes.py, on a broker of its own.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from ingest import IngestOptions, IngestWorker
from ingest._decoder import DeadLetter, Decoded, Source
from ingest._partitions import PointPartitions
from ingest._writer import Writer
from ops.stack._process import record_pid
from runstream.config import Settings
from runstream.events import decode_batch
from runstream.kafka import client_options
from tests.conftest import Services
from tests.support import eventually
from tests.test_ingest_recovery import private, start_worker
from tests.test_ingest_support import T0, dead_letters, new_id, points, raw, scalars, send, started, status
from tests.test_ingest_worker import own_database, proxied_database

ROOT = Path(__file__).resolve().parent.parent
#: "Stored within seconds": how long a normal record behind the crafted ones may take.
WITHIN_SECONDS = 15.0


async def scrape(settings: Settings) -> dict[str, float]:
    url = f"http://127.0.0.1:{settings.ingest_metrics_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        text = await resp.text()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def ready(settings: Settings) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{settings.ingest_metrics_port}/ready"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


def numbered(run: str, session: str, seq: int) -> bytes:
    """Batch ``seq`` of a session: the run's start with the first, one point at step ``seq``."""
    first = [started()] if seq == 1 else []
    return raw(run, session, seq, *first, scalars("x", "float", [float(seq)], first_step=seq))


async def _last_seq(db: asyncpg.Pool, session: str) -> int | None:
    value = await db.fetchval("SELECT last_seq FROM producer_sessions WHERE session_id = $1", session)
    return None if value is None else int(value)


def nested(leaf: Any, depth: int) -> Any:
    for _ in range(depth):
        leaf = {"k": leaf}
    return leaf


def crafted_records() -> list[tuple[str, bytes]]:
    """(what, record) for the issue's two records and their variants in every field."""
    out: list[tuple[str, bytes]] = []

    def add(what: str, *events: dict[str, Any], **header: Any) -> None:
        doc = {"v": 2, "run": new_id(), "session": new_id(), "seq": 1, "events": [started(), *events], **header}
        # json, not orjson: integers beyond 64 bits, nesting beyond 254
        out.append((what, _json(doc)))

    base = scalars("x", "float", [1.0, 2.0])
    add("issue item 1: steps {from: 0, step: 2**63}", {**base, "steps": {"from": 0, "step": 2**63}})
    for column in ("steps", "ordinals"):
        for spec in ({"from": 0, "step": 2**63}, {"from": 2**63, "step": 1}, {"from": -(2**63), "step": -1},
                     {"from": 0, "step": 10**30}, {"from": 2**64, "step": 0}):  # fmt: skip
            add(f"{column} {spec}", {**base, column: spec})
    for seq in (2**63, 2**64 - 1, 10**30):
        add(f"seq {seq}", base, seq=seq)
    for time_value in (2**63, 2**64, 10**30, -(10**30)):
        add(f"heartbeat time {time_value}", {"type": "heartbeat", "time": time_value})
    add("v 2**64", base, v=2**64)
    for depth in (600, 750, 900, 1100):
        add(f"issue item 2: status error nested {depth}", status("Failed", T0, nested(1, depth)))
    for depth in (300, 900):
        add(f"list values nested {depth}", {"type": "list", "name": "l", "time": T0, "values": [nested(1, depth)]})
        add(f"row column nested {depth}", {"type": "row", "name": "r", "time": T0, "columns": {"a": nested(1, depth)}})
        add(
            f"table column nested {depth}",
            {"type": "table", "name": "t", "time": T0, "columns": {"a": [nested(1, depth)]}},
        )
        add(f"tags nested {depth}", {"type": "tags", "time": T0, "tags": {"a": nested("v", depth)}})
        add(f"properties nested {depth}", {"type": "properties", "time": T0, "properties": nested("v", depth)})
    for field, event in {
        "series name": scalars("a\x00b", "float", [1.0]),
        "str value": scalars("s", "str", ["a\x00b"]),
        "tag key": {"type": "tags", "time": T0, "tags": {"a\x00": "b"}},
        "tag value": {"type": "tags", "time": T0, "tags": {"a": "b\x00"}},
        "property": {"type": "properties", "time": T0, "properties": {"a": "\x00"}},
        "status error": status("Failed", T0, {"message": "a\x00b"}),
        "entry name": {"type": "list", "name": "\x00", "time": T0, "values": [1]},
        "long name": scalars("n" * 2000, "float", [1.0]),
    }.items():
        add(f"NUL or size in {field}", event)
    return out


def _json(doc: Any) -> bytes:
    from tests.test_fuzz_decoder import to_json

    return to_json(doc)


async def test_the_records_of_issue_13_and_variants_in_every_field_are_dead_lettered_and_a_run_behind_them_is_stored(
    settings: Settings, db: asyncpg.Pool, spawn: Callable[..., Any]
) -> None:
    mine = private(settings, "crafted")
    worker = await start_worker(spawn, mine)
    key = new_id()  # one partition for all: the normal run waits behind every crafted record
    crafted = crafted_records()
    sizes = {what: len(value) for what, value in crafted}
    assert sizes["issue item 1: steps {from: 0, step: 2**63}"] < 500  # the issue's: 286 bytes, without run_started
    assert sizes["issue item 2: status error nested 600"] < 4000  # the issue's: 3.8 KB
    run, session = new_id(), new_id()
    normal = [raw(run, session, 1, started()), *(raw(run, session, s, scalars("x", "float", [float(s)], first_step=s))
                                                 for s in range(2, 6))]  # fmt: skip
    async with AIOKafkaProducer(**client_options(mine), acks="all") as producer:
        where = {}
        for what, value in crafted:
            [offset] = await send(producer, mine.topic, key, [value])
            where[offset] = what
        sent = time.monotonic()
        await send(producer, mine.topic, key, normal)

    async def stored() -> int:
        return len(await points(db, run, "x"))

    await eventually(stored, lambda n: n == 4, timeout_seconds=WITHIN_SECONDS, what="the normal run behind them")
    assert time.monotonic() - sent < WITHIN_SECONDS
    letters = await dead_letters(mine, set(where))
    assert set(letters) == set(where), [where[o] for o in set(where) - set(letters)]
    for offset, letter in letters.items():
        assert letter["reason"] in {"bad_value", "bad_shape", "too_deep", "not_json", "bad_version"}, where[offset]
        assert letter["exception"] and letter["message"], where[offset]
    assert {letters[o]["reason"] for o, w in where.items() if w.startswith("issue item 1")} == {"bad_value"}
    assert {letters[o]["reason"] for o, w in where.items() if w.startswith("issue item 2")} <= {"too_deep", "not_json"}
    assert worker.poll() is None, "the worker died"
    assert (await ready(mine))[0] == 200


async def test_a_forged_seq_cannot_burn_a_live_session(settings: Settings, db: asyncpg.Pool) -> None:
    mine = private(settings, "burn")
    run, victim = new_id(), new_id()

    def batch(seq: int, session: str = victim) -> bytes:
        return numbered(run, session, seq)

    forged = [batch(2**63 - 1), batch(3 + 10_001), batch(2**40, new_id())]  # far beyond; a new session far out
    async with IngestWorker(mine, options=IngestOptions(stall_seconds=5.0)) as worker:
        async with AIOKafkaProducer(**client_options(mine), acks="all") as producer:
            await send(producer, mine.topic, run, [batch(1), batch(2), batch(3)])
            where = await send(producer, mine.topic, run, forged)
            await send(producer, mine.topic, run, [batch(4), batch(5), batch(6), batch(5)])

        async def last_seq() -> int | None:
            return await _last_seq(db, victim)

        await eventually(last_seq, lambda s: s == 6, what="the victim's later batches stored")
        assert [p[0] for p in await points(db, run, "x")] == [1, 2, 3, 4, 5, 6]
        letters = await dead_letters(mine, set(where))
        assert [letters[w]["reason"] for w in where] == ["seq_gap"] * 3
        registry = worker.metrics.registry
        assert registry.get_sample_value("runstream_ingest_dead_lettered_records_total", {"reason": "seq_gap"}) == 3
        assert registry.get_sample_value("runstream_ingest_duplicate_batches_total") == 1


def _decoded(offset: int, run: str, session: str, *events: dict[str, Any], tamper: str | None = None) -> Decoded:
    """A record past the format's checks but not the decoder's (as if they had a hole); ``tamper``
    sets a heartbeat's time to it, where only ingest's own code can trip over it."""
    value = raw(run, session, 1, *events)
    batch = decode_batch(value)
    if tamper is not None:
        batch.events.append({"type": "heartbeat", "time": tamper})
    return Decoded(Source("t", 0, offset, None, value), batch, 1)


async def test_what_postgresql_refuses_and_what_trips_ingest_is_isolated_in_one_transaction(
    settings: Settings, services: Services
) -> None:
    """The writer's fallback, fed records the decoder would have refused (as if its checks had a hole)."""
    async with own_database(services.admin_dsn) as dsn, asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
        letters: list[DeadLetter] = []

        async def sink(batch: Any, conn: Any) -> None:
            letters.extend(batch)

        writer = Writer(pool, "fallback", sink, partitions=PointPartitions(pool))
        run = new_id()
        records: list[Decoded | DeadLetter] = [_decoded(0, run, new_id(), started())]
        bad = {}
        for i in range(1, 400):
            tamper = None
            if i % 40 == 7:
                event = scalars(f"bad\x00{i}", "float", [1.0])  # PostgreSQL: invalid byte sequence 0x00
                bad[i] = "db_rejected"
            else:
                event = scalars(f"m{i % 7}", "float", [1.0], first_step=i)
            if i % 40 == 23:
                tamper = "noon"  # float("noon") in the planner: a bug tripped by this record
                bad[i] = "ingest_error"
            records.append(_decoded(i, run, new_id(), event, tamper=tamper))
        result = await writer.write(records)
        assert {int(letter.source.offset): letter.reason for letter in letters} == bad
        assert all(letter.exception for letter in letters)
        assert result.isolated == len(bad) and result.next_offsets == {0: 400}
        stored = await pool.fetchval("SELECT sum(point_count) FROM series WHERE run_id = $1", run)
        assert stored == 399 - len(bad)
        assert await pool.fetchval("SELECT count(*) FROM producer_sessions WHERE last_seq = 1") == 400


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**client_options(settings))
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def test_a_deleted_dead_letter_topic_stalls_nothing_and_gets_its_letters_later(
    settings: Settings, db: asyncpg.Pool, admin: AIOKafkaAdminClient
) -> None:
    mine = private(settings, "dlqgone")
    options = IngestOptions(dead_letter_timeout_seconds=1.0, dead_letter_retry_seconds=0.5)
    run, session = new_id(), new_id()
    async with IngestWorker(mine, options=options):
        await admin.delete_topics([mine.dlq_topic])
        await eventually(admin.list_topics, lambda topics: mine.dlq_topic not in topics, what="the topic gone")
        bad = [b"not json %d" % i for i in range(5)]
        async with AIOKafkaProducer(**client_options(mine), acks="all") as producer:
            where = await send(producer, mine.topic, run, bad)
            await send(producer, mine.topic, run, [raw(run, session, 1, started(), scalars("x", "float", [1.0]))])
        await eventually(
            lambda: points(db, run, "x"), lambda p: len(p) == 1, timeout_seconds=WITHIN_SECONDS, what="the good record"
        )
        await eventually(
            lambda: db.fetchval("SELECT count(*) FROM dead_letters WHERE topic = $1", mine.dlq_topic),
            lambda n: n == 0,
            what="no letter left waiting",
        )
        letters = await dead_letters(mine, set(where))
        assert [letters[w]["reason"] for w in where] == ["not_json"] * 5
        assert [letters[w]["value"] for w in where] == bad
        assert mine.dlq_topic in await admin.list_topics()
        await eventually(lambda: ready(mine), lambda r: r[0] == 200, what="healthy")


async def test_an_unwritable_dead_letter_topic_is_reported_until_it_takes_the_letters(
    settings: Settings, db: asyncpg.Pool, admin: AIOKafkaAdminClient
) -> None:
    """The topic refuses every dead letter (its max.message.bytes is below any of them): they wait in
    PostgreSQL, the worker says so, and they go to the topic once it takes them."""
    mine = private(settings, "dlqrefuses")
    await admin.create_topics([NewTopic(mine.dlq_topic, 1, 1, topic_configs={"max.message.bytes": "64"})])
    options = IngestOptions(dead_letter_timeout_seconds=2.0, dead_letter_retry_seconds=0.2)
    run, session = new_id(), new_id()
    async with IngestWorker(mine, options=options):
        async with AIOKafkaProducer(**client_options(mine), acks="all") as producer:
            where = await send(producer, mine.topic, run, [b"{", b"[", b"nope"])
            await send(producer, mine.topic, run, [raw(run, session, 1, started(), scalars("x", "float", [1.0]))])
        await eventually(lambda: points(db, run, "x"), lambda p: len(p) == 1, timeout_seconds=WITHIN_SECONDS)
        code, body = await eventually(lambda: ready(mine), lambda r: r[0] == 503, what="reported unhealthy")
        assert any("dead-letter topic" in reason and "3 dead letters" in reason for reason in body["reasons"]), body
        assert body["dead_letters_held"] == 3 and body["dead_letter_topic_writable"] is False
        metrics = await scrape(mine)
        assert metrics["runstream_ingest_dead_letter_topic_writable"] == 0
        assert metrics["runstream_ingest_dead_letters_held"] == 3
        assert metrics["runstream_ingest_healthy"] == 0
        resource = ConfigResource(ConfigResourceType.TOPIC, mine.dlq_topic, configs={"max.message.bytes": "1048576"})
        await admin.alter_configs([resource])
        await eventually(lambda: ready(mine), lambda r: r[0] == 200, what="healthy again")
        letters = await dead_letters(mine, set(where))
        assert [letters[w]["reason"] for w in where] == ["not_json"] * 3
        assert await db.fetchval("SELECT count(*) FROM dead_letters WHERE topic = $1", mine.dlq_topic) == 0


def serve_status_from_here(home: Path) -> None:
    """`runstream status` finds the stack's ingest by its pid file under ``home``: this process serves it."""
    record_pid(home / "pids" / "ingest.pid", os.getpid())


async def _runstream_status(settings: Settings) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ops.cli", "status",
        env={**os.environ, **settings.as_env(), "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return out.decode()


async def test_a_worker_stuck_retrying_is_unhealthy_on_ready_in_its_gauge_and_in_runstream_status(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    async with proxied_database(services.admin_dsn) as (_, proxy, proxied):
        mine = dataclasses.replace(private(settings, "stuck"), home=tmp_path, database_url=proxied)
        serve_status_from_here(tmp_path)
        run, session = new_id(), new_id()
        options = IngestOptions(stall_seconds=1.0, retry_max_seconds=0.2)
        async with IngestWorker(mine, options=options):
            async with AIOKafkaProducer(**client_options(mine), acks="all") as producer:
                await send(producer, mine.topic, run, [raw(run, session, 1, started())])
                await eventually(lambda: ready(mine), lambda r: r[1]["seconds_since_progress"] is not None)
                assert (await ready(mine))[0] == 200
                await proxy.cut()
                await send(producer, mine.topic, run, [raw(run, session, 2, {"type": "heartbeat", "time": T0})])
            code, body = await eventually(lambda: ready(mine), lambda r: r[0] == 503, what="reported stalled")
            assert any(reason.startswith("stalled: 1 records waiting") for reason in body["reasons"]), body
            assert (await scrape(mine))["runstream_ingest_healthy"] == 0
            out = await _runstream_status(mine)
            assert "UNHEALTHY" in out and "stalled" in out, out
            await proxy.start()
            await eventually(lambda: ready(mine), lambda r: r[0] == 200, what="healthy again")
            assert (await scrape(mine))["runstream_ingest_healthy"] == 1
            out = await _runstream_status(mine)
            assert [line.split()[-1] for line in out.splitlines() if line.startswith("ingest")] == ["ok"], out
        await proxy.cut()


async def test_a_worker_that_never_stores_is_unhealthy_as_soon_as_old_records_wait(
    settings: Settings, services: Services
) -> None:
    """A crash loop: each new process finds records that have waited long and stores nothing. It must
    not look healthy just because it started a moment ago."""
    async with proxied_database(services.admin_dsn) as (_, proxy, proxied):
        mine = dataclasses.replace(private(settings, "crashloop"), database_url=proxied)
        run, session = new_id(), new_id()
        async with IngestWorker(mine, options=IngestOptions(stall_seconds=30.0)):
            await proxy.cut()
            async with AIOKafkaProducer(**client_options(mine), acks="all") as producer:
                ten_minutes_ago = int((time.time() - 600) * 1000)
                await producer.send_and_wait(
                    mine.topic, raw(run, session, 1, started()), key=run.encode(), timestamp_ms=ten_minutes_ago
                )
            started_at = time.monotonic()
            # Not yet a member of the group answers 503 too ("starting"): wait for the verdict this is about.
            code, body = await eventually(
                lambda: ready(mine),
                lambda r: r[0] == 503 and any("nothing stored since this process" in why for why in r[1]["reasons"]),
                what="reported stalled",
            )
            assert time.monotonic() - started_at < 30.0  # long before stall_seconds of its own
            assert body["status"] == "unhealthy", body
            assert body["oldest_waiting_seconds"] >= 600
            await proxy.start()  # PostgreSQL back: the worker stores, and stops cleanly
            await eventually(lambda: ready(mine), lambda r: r[0] == 200, what="healthy once it stores")
        await proxy.cut()


async def test_partitions_added_under_load_lose_nothing_and_duplicate_nothing(
    settings: Settings, db: asyncpg.Pool, admin: AIOKafkaAdminClient
) -> None:
    mine = dataclasses.replace(private(settings, "grow"), topic_partitions=2)
    runs = [(new_id(), new_id()) for _ in range(12)]
    sent: dict[str, int] = {}
    options = IngestOptions(topic_check_interval_seconds=0.5)
    async with IngestWorker(mine, options=options) as worker:
        # Producers that see new partitions within half a second, as the SDK's do within five minutes.
        async with AIOKafkaProducer(
            **client_options(mine), acks="all", metadata_max_age_ms=500, linger_ms=2
        ) as producer:

            async def log(run: str, session: str, batches: int) -> None:
                for seq in range(1, batches + 1):
                    events = [started()] if seq == 1 else []
                    event = scalars("x", "float", [float(seq)] * 10, first_step=10 * seq, first_ordinal=10 * seq)
                    await producer.send_and_wait(mine.topic, raw(run, session, seq, *events, event), key=run.encode())
                    sent[run] = seq
                    await asyncio.sleep(0.01)  # a training loop's pace

            async def total() -> int:
                return sum(sent.values())

            load = [asyncio.create_task(log(run, session, 150)) for run, session in runs[:8]]
            await eventually(total, lambda n: n > 200, what="load running")
            await admin.create_partitions({mine.topic: NewPartitions(total_count=6)})
            later = [asyncio.create_task(log(run, session, 60)) for run, session in runs[8:]]  # runs started after
            await asyncio.gather(*load, *later)
        expected = {run: sent[run] * 10 for run, _ in runs}

        async def stored() -> dict[str, int]:
            return {run: len(await points(db, run, "x")) for run, _ in runs}

        await eventually(stored, lambda got: got == expected, timeout_seconds=60, what="every point stored")
        for run, _ in runs:
            steps = [p[0] for p in await points(db, run, "x")]
            assert steps == list(range(10, 10 * (sent[run] + 1))), run  # each point once
        consumer = AIOKafkaConsumer(**client_options(mine))
        await consumer.start()
        try:
            added = [TopicPartition(mine.topic, p) for p in range(2, 6)]
            assert sum((await consumer.end_offsets(added)).values()) > 0, "no run moved to the new partitions"
        finally:
            await consumer.stop()
        changes = await db.fetch("SELECT kind, detail FROM topic_changes WHERE topic = $1", mine.topic)
        assert [c["kind"] for c in changes] == ["partitions_added"], changes
        assert "2 -> 6 partitions" in changes[0]["detail"]
        assert (
            worker.metrics.registry.get_sample_value(
                "runstream_ingest_topic_changes_total", {"kind": "partitions_added"}
            )
            == 1
        )
        assert await db.fetchval("SELECT drained_at IS NOT NULL FROM partition_growth WHERE topic = $1", mine.topic)
        dead = [s.value for metric in worker.metrics.dead_letters.collect() for s in metric.samples]
        assert sum(dead) == 0, "no record was dead-lettered (unknown_run would be a run read out of order)"


async def test_a_topic_deleted_and_created_again_under_a_running_worker_is_read_from_its_start(
    settings: Settings, db: asyncpg.Pool, admin: AIOKafkaAdminClient, tmp_path: Path
) -> None:
    mine = dataclasses.replace(private(settings, "recreated"), home=tmp_path)
    serve_status_from_here(tmp_path)
    run, session = new_id(), new_id()
    options = IngestOptions(topic_check_interval_seconds=0.5)

    def batch(seq: int) -> bytes:
        return numbered(run, session, seq)

    async def last_seq() -> int | None:
        return await _last_seq(db, session)

    async with IngestWorker(mine, options=options) as worker:
        async with AIOKafkaProducer(**client_options(mine), acks="all") as producer:
            await send(producer, mine.topic, run, [batch(s) for s in range(1, 21)])
            await eventually(last_seq, lambda s: s == 20, what="the first 20 stored")
            await admin.delete_topics([mine.topic])
            registry = worker.metrics.registry
            # The worker creates it again (as it does at start), then reads the new one from its start.
            await eventually(
                lambda: _changes(db, mine.topic), lambda kinds: "new_topic" in kinds, what="the new topic noticed"
            )
            await send(producer, mine.topic, run, [batch(s) for s in range(21, 26)])
        await eventually(last_seq, lambda s: s == 25, what="the new topic's records stored")
        assert [p[0] for p in await points(db, run, "x")] == list(range(1, 26))
        assert registry.get_sample_value("runstream_ingest_topic_changes_total", {"kind": "new_topic"}) == 1
        assert any("new_topic" in notice for notice in (await ready(mine))[1]["notices"])
        out = await _runstream_status(mine)
        assert "- " in out and "new_topic: the topic was created again" in out, out


async def _changes(db: asyncpg.Pool, topic: str) -> list[str]:
    return [r["kind"] for r in await db.fetch("SELECT kind FROM topic_changes WHERE topic = $1 ORDER BY id", topic)]
