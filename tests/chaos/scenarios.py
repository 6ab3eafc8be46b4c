"""The faults of issue 7 (and issue 13's replaced broker), each injected while four training processes log.

A scenario starts the processes it needs on its :class:`~tests.chaos.box.Box`,
injects its fault at random moments, lets the load run on for ``size.tail``
seconds so that recovery happens under load, and stops the load. It returns
notes for the report; the runner then waits for ingest to settle and checks
the ledger. Sleeps here only *schedule* faults; every wait for a state is a
condition with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.chaos.box import Box
from tests.chaos.ledger import read_ledgers
from tests.chaos.sse import StatusWatcher
from tests.support import eventually

#: Load offered when a scenario does not say otherwise: training goes on for at most this long.
MAX_LOAD_SECONDS = 900.0
TRAINERS = 4


@dataclass(frozen=True)
class Size:
    """How hard a run of the suite pushes: the full form and the quick (CI) form."""

    rate: float  # points/s offered by the four training processes together
    kills: int  # SIGKILLs of the ingest worker
    pg_outage_seconds: float
    kafka_outage_seconds: float
    churn_seconds: float  # load under workers joining and leaving
    query_restarts: int
    gap_seconds: tuple[float, float]  # a random pause between two faults
    tail_seconds: float  # load after the last fault
    settle_seconds: float  # deadline for ingest to store everything afterwards
    broker_kills: int = 1  # SIGKILLs of a partition leader of the 3-broker cluster
    broker_down_seconds: float = 5.0  # how long a killed broker stays down


FULL = Size(
    rate=100_000,
    kills=10,
    pg_outage_seconds=60,
    kafka_outage_seconds=30,
    churn_seconds=60,
    query_restarts=5,
    gap_seconds=(2.0, 6.0),
    tail_seconds=5.0,
    settle_seconds=300,
    broker_kills=3,
    broker_down_seconds=15.0,
)
QUICK = Size(
    rate=20_000,
    kills=3,
    pg_outage_seconds=10,
    kafka_outage_seconds=10,
    churn_seconds=12,
    query_restarts=2,
    gap_seconds=(0.5, 2.0),
    tail_seconds=1.5,
    settle_seconds=90,
)

Scenario = Callable[[Box, Size, random.Random], Awaitable[list[str]]]


async def _pause(size: Size, rng: random.Random) -> None:
    await asyncio.sleep(rng.uniform(*size.gap_seconds))  # schedules the next fault at a random moment


async def _under_load(box: Box, size: Size) -> None:
    box.start_trainers(TRAINERS, rate=size.rate, seconds=MAX_LOAD_SECONDS)
    await box.logged_runs(TRAINERS * 2)


async def kill_ingest(box: Box, size: Size, rng: random.Random) -> list[str]:
    """1. SIGKILL the ingest worker at random moments, restarting it each time."""
    worker = await box.start_worker()
    await _under_load(box, size)
    for _ in range(size.kills):
        await _pause(size, rng)
        await box.stop_worker(worker, signal.SIGKILL)
        worker = await box.start_worker()
    await asyncio.sleep(size.tail_seconds)
    return [f"{size.kills} SIGKILLs of the worker"]


async def restart_postgres(box: Box, size: Size, rng: random.Random) -> list[str]:
    """2. Restart PostgreSQL (fast shutdown) twice, then stop it for ``pg_outage_seconds``."""
    await box.start_worker()
    await _under_load(box, size)
    postgres = box.stack.postgres
    for _ in range(2):
        await _pause(size, rng)
        await asyncio.to_thread(postgres.stop)
        await asyncio.to_thread(postgres.start)
    await _pause(size, rng)
    await asyncio.to_thread(postgres.stop)
    await asyncio.sleep(size.pg_outage_seconds)  # the outage itself
    await asyncio.to_thread(postgres.start)
    await asyncio.sleep(size.tail_seconds)
    return [f"2 fast restarts, then down {size.pg_outage_seconds:.0f} s"]


async def stop_kafka(box: Box, size: Size, rng: random.Random) -> list[str]:
    """3. Stop the broker for ``kafka_outage_seconds``: producers spool and replay, ingest reconnects."""
    await box.start_worker()
    await _under_load(box, size)
    await _pause(size, rng)
    stopping = time.monotonic()
    await asyncio.to_thread(box.stack.kafka.stop)
    stopped = time.monotonic()
    await asyncio.sleep(size.kafka_outage_seconds)  # the outage itself
    starting = time.monotonic()
    await asyncio.to_thread(box.stack.kafka.start)
    started = time.monotonic()
    await asyncio.sleep(size.tail_seconds)
    return [
        f"broker down {started - stopped:.0f} s (stopping took {stopped - stopping:.0f} s,"
        f" starting {started - starting:.0f} s)"
    ]


#: Liveness timeouts short enough to watch a dead run fail, long enough that the
#: live runs' few seconds of silence while the broker is frozen do not fail them.
#: (The worker sweeps every 5 s, IngestOptions.liveness_interval_seconds, not settable from the environment.)
LIVENESS = {"RUNSTREAM_NOT_RESPONDING_AFTER": "8", "RUNSTREAM_FAILED_AFTER": "16"}


async def kill_trainer(box: Box, size: Size, rng: random.Random) -> list[str]:
    """4. SIGKILL a training process while it spools; ``runstream sync`` publishes its spool;
    its runs end Failed after the heartbeat timeout.

    The broker is frozen (SIGSTOP) for the few seconds it takes the victim to
    start spooling, so that it dies with a spool; the other processes spool too.
    """
    await box.start_worker(**LIVENESS)
    await _under_load(box, size)
    await _pause(size, rng)
    victim = box.trainers[0]
    kafka_pid = box.stack.kafka.pid()
    if kafka_pid is None:
        raise RuntimeError("the broker is not running")
    os.kill(kafka_pid, signal.SIGSTOP)
    try:
        await eventually(lambda: _spooled(box, 0), lambda n: n > 0, timeout_seconds=30, what="the victim spools")
        await asyncio.sleep(rng.uniform(0.0, 1.0))  # somewhere in the middle of spooling
        box.kill_trainer(victim)
    finally:
        os.kill(kafka_pid, signal.SIGCONT)
    synced = await box.sync()
    await asyncio.sleep(size.tail_seconds)
    return [f"victim pid {victim.pid} killed while spooling", f"runstream sync: {synced}"]


async def _spooled(box: Box, trainer: int) -> int:
    """Records trainer ``trainer`` reports spooled at its last flush."""
    return sum(run.spooled for run in read_ledgers([box.home / f"ledger-{trainer}.jsonl"]).values())


async def fill_spool_disk(box: Box, size: Size, rng: random.Random) -> list[str]:
    """5. The spool's disk is full while the broker is down: the SDK applies its policy and reports it,
    the training processes do not crash, and (the broker back) every point arrives.

    The spool is a 1 MiB tmpfs that a filler file leaves 64 KiB of: full with the first records spooled.
    """
    spool = box.home / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    await _run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "chaos-spool", str(spool)])
    try:
        await _run(["fallocate", "-l", str(1024 * 1024 - 64 * 1024), str(spool / "filler")])
        await box.start_worker()
        await _under_load(box, size)
        await _pause(size, rng)
        await asyncio.to_thread(box.stack.kafka.stop)
        await eventually(lambda: _spool_files(spool), lambda n: n > 0, timeout_seconds=60, what="the SDK spooling")
        await asyncio.sleep(size.kafka_outage_seconds)  # the disk stays full for a while
        await asyncio.to_thread(box.stack.kafka.start)
        await asyncio.sleep(size.tail_seconds)
        box.stop_load()
        await box.trainers_done(timeout_seconds=size.settle_seconds)
        synced = await box.sync()  # what a process could only leave in its spool: the documented recovery
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", "-l", str(spool)], check=False)
    # The documented report: run.stats()["spool_errors"], kept in the ledger when a run completes.
    refused = sum(int(run.stats.get("spool_errors", 0)) for run in box.ledger().values())
    if refused == 0:
        raise AssertionError("no run reports spool_errors: the full disk went unreported (or never filled)")
    return [
        f"spool on a full tmpfs (64 KiB free), broker down {size.kafka_outage_seconds:.0f} s",
        f"{refused} spool writes refused, reported as spool_errors",
        synced,
    ]


async def _run(argv: list[str]) -> None:
    done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (the tmpfs needs root): {done.stderr.strip()}")


async def _spool_files(spool: Path) -> int:
    return sum(1 for _ in spool.rglob("*.jsonl"))


async def churn_workers(box: Box, size: Size, rng: random.Random) -> list[str]:
    """6. Two ingest workers, one joining and one leaving every few seconds: rebalances all along."""
    workers = [await box.start_worker(), await box.start_worker()]
    await _under_load(box, size)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + size.churn_seconds
    changes = 0
    while loop.time() < deadline:
        await _pause(size, rng)
        workers.append(await box.start_worker())
        await _pause(size, rng)
        await box.stop_worker(workers.pop(0))
        changes += 2
    await asyncio.sleep(size.tail_seconds)
    return [f"{changes} joins and leaves"]


async def restart_query(box: Box, size: Size, rng: random.Random) -> list[str]:
    """7. Restart the query service while clients hold a live SSE stream per run; runs
    complete at random moments, some while the service is down, two per process only
    when the load stops. Every stream must reconnect and see every status change after
    the first status it saw."""
    await box.start_worker()
    query_url = await box.query_url()
    window = 2 * size.query_restarts * size.gap_seconds[1]  # about as long as the restarts take
    for _ in range(TRAINERS):
        ends = [round(rng.uniform(1.0, window), 2) for _ in range(3)] + [MAX_LOAD_SECONDS] * 2
        box.start_trainers(1, rate=size.rate / TRAINERS, seconds=MAX_LOAD_SECONDS, ends=ends)
    watcher = StatusWatcher(query_url, await box.logged_runs(5 * TRAINERS))
    watching = asyncio.create_task(watcher.watch(timeout_seconds=window + size.settle_seconds))
    down: list[tuple[float, float]] = []
    try:
        for _ in range(size.query_restarts):
            await _pause(size, rng)
            await asyncio.to_thread(box.sandbox.query.stop)  # type: ignore[union-attr]
            stopped = time.time()
            await _pause(size, rng)
            await box.query_url()
            down.append((stopped, time.time()))
        box.stop_load()
        await box.trainers_done(timeout_seconds=window + 60)
        await watching
    finally:
        watching.cancel()
    history = await watcher.history(box.settings.database_url)
    if missed := watcher.missed(history):
        raise AssertionError(f"streams missed status changes, {{run: (history, seen)}}: {missed}")
    unseen = sum(1 for changes in history.values() for _, t in changes if any(a <= t <= b for a, b in down))
    return [
        f"{size.query_restarts} restarts; {unseen} status changes while the service was down;"
        f" {watcher.reconnects} reconnection attempts by {len(watcher.runs)} streams"
    ]


async def replace_broker(box: Box, size: Size, rng: random.Random) -> list[str]:
    """8. The broker's data is lost (a lost volume: a new, empty cluster on the same address) while
    PostgreSQL is kept: ingest finds a new topic under the old name, reads it from its start, and
    every point logged afterwards is stored; the training processes spool meanwhile and replay.

    Records Kafka acknowledged and nobody read yet go with its data: no consumer can save those.
    So the training processes are frozen (SIGSTOP) until ingest has stored everything the old broker
    holds, then the broker's data is replaced and they go on, into the outage.
    """
    await box.start_worker()
    await _under_load(box, size)
    await _pause(size, rng)
    live = [t for t in box.trainers if t.alive()]
    for trainer in live:
        os.killpg(trainer.pid, signal.SIGSTOP)
    try:
        stored = await eventually(
            lambda: _unread(box), lambda n: n == 0, timeout_seconds=size.settle_seconds, what="ingest caught up"
        )
        before = await _cluster_id(box)
        await asyncio.to_thread(box.stack.kafka.stop)
        shutil.rmtree(box.stack.kafka.root / "data")
    finally:
        for trainer in live:
            os.killpg(trainer.pid, signal.SIGCONT)
    await asyncio.sleep(size.kafka_outage_seconds)  # the outage itself: the broker is being rebuilt
    await asyncio.to_thread(box.stack.kafka.start)
    # Ingest creates the topics again, as at its start, and finds them new.
    await eventually(lambda: _changes(box), lambda kinds: "new_topic" in kinds, timeout_seconds=60, what="noticed")
    await asyncio.sleep(size.tail_seconds)
    return [f"broker data replaced (cluster {before} -> {await _cluster_id(box)}) with {stored} records unread"]


async def _unread(box: Box) -> int:
    """Records of the events topic that PostgreSQL's offsets have not passed."""
    _, ends = await _kafka_view(box)
    stored = await _stored_offsets(box)
    return sum(max(0, end - stored.get(partition, 0)) for partition, end in ends.items())


async def _cluster_id(box: Box) -> str:
    return (await _kafka_view(box))[0]


async def _kafka_view(box: Box) -> tuple[str, dict[int, int]]:
    """The cluster's id and the events topic's end offset per partition, as Kafka says now."""
    from ingest._topics import topic_identity
    from runstream.kafka import client_options

    topic = box.settings.topic
    consumer = AIOKafkaConsumer(**client_options(box.settings))
    await consumer.start()
    try:
        identity = await topic_identity(consumer._client, topic)
        partitions = [TopicPartition(topic, p) for p in range(identity.partitions)]
        ends = await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()
    return str(identity.cluster_id), {tp.partition: end for tp, end in ends.items()}


async def _changes(box: Box) -> list[str]:
    conn = await asyncpg.connect(box.settings.database_url)
    try:
        rows = await conn.fetch("SELECT kind FROM topic_changes WHERE topic = $1 ORDER BY id", box.settings.topic)
    finally:
        await conn.close()
    return [r["kind"] for r in rows]


# --- the replicated cluster (3 KRaft nodes, replication factor 3, min.insync.replicas 2) ---------

#: Scenarios that run on a 3-broker cluster of their own (Infra.start_local(kafka_brokers=3)); the
#: full suite only: CI checks the cluster leanly in tests/test_kafka_cluster.py.
CLUSTER_SCENARIOS = frozenset({"kill-broker", "lose-broker"})
#: The cluster's three JVMs share the machine with the load: a fifth of the single-broker rate.
_CLUSTER_RATE_SHARE = 0.2


async def kill_broker(box: Box, size: Size, rng: random.Random) -> list[str]:
    """9. SIGKILL the broker that leads the busiest partitions, under load; restart it after
    ``broker_down_seconds``. Measures, per kill, the time from the SIGKILL to the first point of a
    partition it led stored again in PostgreSQL, from beyond where its log ended (and to the last such
    partition flowing again): Kafka's defaults fence a silent broker after broker.session.timeout.ms, 9 s."""
    from ops.stack import KafkaCluster

    cluster = box.stack.kafka
    if not isinstance(cluster, KafkaCluster):
        raise RuntimeError("kill-broker needs the 3-broker cluster")
    await box.start_worker()
    box.start_trainers(TRAINERS, rate=size.rate * _CLUSTER_RATE_SHARE, seconds=MAX_LOAD_SECONDS)
    await box.logged_runs(TRAINERS * 2)
    notes = []
    for _ in range(size.broker_kills):
        await _pause(size, rng)
        victim, led = await _busiest_leader(box)
        pid = cluster.broker(victim).pid()
        if pid is None:
            raise RuntimeError(f"broker {victim} is not running")
        # The victim's log ends just before it dies: a record stored past them went through a new
        # leader (records the worker had fetched already are stored meanwhile and do not count).
        _, ends = await _kafka_view(box)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        first, last = await _stored_again(box, led, ends, killed, timeout_seconds=size.settle_seconds)
        await asyncio.sleep(max(0.0, size.broker_down_seconds - (time.monotonic() - killed)))  # stays down
        await asyncio.to_thread(cluster.start)
        notes.append(
            f"SIGKILL of broker {victim} (leader of partitions {sorted(led)}): first point of those stored again"
            f" after {first:.1f} s, all of them after {last:.1f} s"
        )
    await asyncio.sleep(size.tail_seconds)
    return notes


async def lose_broker(box: Box, size: Size, rng: random.Random) -> list[str]:
    """10. Stop one broker for good under load: the two left hold every partition's in-sync replicas
    (min.insync.replicas=2), so producers and ingest go on; everything is stored before it returns."""
    from ops.stack import KafkaCluster

    cluster = box.stack.kafka
    if not isinstance(cluster, KafkaCluster):
        raise RuntimeError("lose-broker needs the 3-broker cluster")
    await box.start_worker()
    box.start_trainers(TRAINERS, rate=size.rate * _CLUSTER_RATE_SHARE, seconds=MAX_LOAD_SECONDS)
    await box.logged_runs(TRAINERS * 2)
    await _pause(size, rng)
    victim, led = await _busiest_leader(box)
    await asyncio.to_thread(cluster.broker(victim).stop)
    await asyncio.sleep(size.churn_seconds)  # load on two brokers
    box.stop_load()
    errors = await box.trainers_done(timeout_seconds=size.settle_seconds)
    if errors:
        raise AssertionError("; ".join(errors))
    async with asyncpg.create_pool(box.settings.database_url, min_size=1, max_size=2) as db:
        late = await box.settled(db, box.ledger(), size.settle_seconds)
    if late is not None:
        raise AssertionError(f"not stored with broker {victim} gone: {late}")
    return [f"broker {victim} (leader of {sorted(led)}) stopped for good; load {size.churn_seconds:.0f} s on two"]


async def _busiest_leader(box: Box) -> tuple[int, set[int]]:
    """The node that leads the partition with the most records stored, and every partition it leads."""
    from ingest._topics import topic_identity
    from runstream.kafka import client_options

    stored = await _stored_offsets(box)
    topic = box.settings.topic
    consumer = AIOKafkaConsumer(**client_options(box.settings))
    await consumer.start()
    try:
        partitions = (await topic_identity(consumer._client, topic)).partitions
        cluster = await consumer._client.fetch_all_metadata()
        leaders = {p: cluster.leader_for_partition(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()
    # During a failover a partition may have no leader yet (-1): only partitions with one count.
    leaders = {p: leader for p, leader in leaders.items() if leader is not None and leader >= 0}
    busiest = max(leaders, key=lambda p: stored.get(p, 0))
    victim = int(leaders[busiest])
    return victim, {p for p, leader in leaders.items() if leader == victim and stored.get(p, 0) > 0}


async def _stored_offsets(box: Box) -> dict[int, int]:
    conn = await asyncpg.connect(box.settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT partition, next_offset FROM consumer_offsets WHERE topic = $1", box.settings.topic
        )
    finally:
        await conn.close()
    return {r["partition"]: r["next_offset"] for r in rows}


async def _stored_again(
    box: Box, partitions: set[int], before: dict[int, int], since: float, *, timeout_seconds: float
) -> tuple[float, float]:
    """Seconds from ``since`` until the first, and the last, of ``partitions`` stored beyond ``before``
    (offsets: stored past ``before[p]`` means the record at ``before[p]`` is in PostgreSQL)."""
    flowing: dict[int, float] = {}

    async def progress() -> dict[int, float]:
        now, stored = time.monotonic(), await _stored_offsets(box)
        for p in partitions:
            if p not in flowing and stored.get(p, 0) > before.get(p, 0):
                flowing[p] = now - since
        return flowing

    await eventually(
        progress,
        lambda done: set(done) == partitions,
        timeout_seconds=timeout_seconds,
        interval_seconds=0.05,
        what=f"partitions {sorted(partitions)} stored again",
    )
    return min(flowing.values(), default=0.0), max(flowing.values(), default=0.0)


SCENARIOS: dict[str, Scenario] = {
    "kill-ingest": kill_ingest,
    "restart-postgres": restart_postgres,
    "stop-kafka": stop_kafka,
    "kill-trainer": kill_trainer,
    "fill-spool-disk": fill_spool_disk,
    "churn-workers": churn_workers,
    "restart-query": restart_query,
    "replace-broker": replace_broker,
    "kill-broker": kill_broker,
    "lose-broker": lose_broker,
}
#: What `make chaos QUICK=1` (and CI, through tests/test_chaos.py) runs.
QUICK_SCENARIOS = [name for name in SCENARIOS if name not in CLUSTER_SCENARIOS]
