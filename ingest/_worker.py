"""The ingest worker: a facade over a consumer, a decoder, a writer and a sink.

The loop::

    getmany -> decode each record (bad ones become dead letters) -> hold
    when the records in hand reach a size or age bound: flush
        one transaction: data + producer sessions + consumer offsets,
        dead letters produced before COMMIT
        then (advisory only) commit the same offsets to Kafka

PostgreSQL is the source of truth for offsets. On every partition assignment
the worker checks that the topic is still the one the stored offsets were read
from (:mod:`ingest._incarnation`), then seeks to the stored next offset (the
beginning when none), and the writer's offset check drops anything already
stored, so rebalances, crashes and retries neither lose nor duplicate a
record. The same check runs when a fetch finds its offset out of range (the
consumer never resets an offset by itself) and every
``topic_check_interval_seconds``; it also releases partitions held after a
partition change.

While a flush fails (PostgreSQL down), the worker keeps the records in hand,
pauses its partitions so memory stays bounded, keeps polling so it stays in
the group, and retries with capped exponential backoff. On revocation it
writes what it holds for the revoked partitions if it can do so promptly.
Whether it gets anywhere is what ``/ready`` and ``runstream status`` report
(:mod:`ingest._health`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    KafkaError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
)

from runstream import kafka
from runstream.config import Settings
from runstream.dsn import postgres_setup_error
from runstream.schema import check_schema, migrate

from ._compaction import ChunkCompactor
from ._decoder import DeadLetter, Decoded, Source, decode_record
from ._dlq import DeadLetterProducer, DeadLetters
from ._errors import IngestStartError, IngestStateError
from ._health import Report, Vitals, assess
from ._incarnation import Incarnations
from ._liveness import LivenessSweeper
from ._metrics import IngestMetrics, MetricsServer
from ._options import IngestOptions
from ._partitions import PointPartitions, utc_day
from ._periodic import Periodic
from ._topics import TopicIdentity, topic_identity
from ._writer import FlushResult, Writer

__all__ = ["IngestWorker", "run_worker"]

log = logging.getLogger("ingest")
T = TypeVar("T")


class IngestWorker:
    """One consumer in the ingest group, writing to PostgreSQL.

    ``start()`` creates the topics if missing, applies pending migrations,
    connects, joins the group and serves metrics on ``metrics_port`` (default
    ``settings.ingest_metrics_port``; 0 disables the server). ``options`` tunes
    batching, retries and sweeps (default: :meth:`IngestOptions.from_settings`).
    ``stop()`` finishes the batch in hand, commits,
    leaves the group and closes everything; it is idempotent. ``async with``
    does both.
    """

    def __init__(
        self, settings: Settings, *, options: IngestOptions | None = None, metrics_port: int | None = None
    ) -> None:
        self.settings = settings
        self.options = options or IngestOptions.from_settings(settings)
        self.metrics = IngestMetrics()
        self._metrics_port = settings.ingest_metrics_port if metrics_port is None else metrics_port
        self._state = "new"
        self._stack = AsyncExitStack()
        self._consumer: AIOKafkaConsumer | None = None
        self._writer: Writer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._stop_deadline = float("inf")
        self._flush_lock = asyncio.Lock()
        self._pending: list[Decoded | DeadLetter] = []
        self._pending_points = 0
        self._pending_since = 0.0
        self._flushing: asyncio.Task[None] | None = None
        self._paused = False
        self._abandoned = False
        self._trouble_at = time.monotonic()  # start counts: a backlog may wait
        self._lag: dict[int, int] = {}
        # The next offset stored in PostgreSQL per assigned partition (lag = broker's end - this).
        self._stored: dict[int, int] = {}
        self._joined = False
        # What the topic is (see _incarnation): None until the first reconciliation.
        self._incarnations: Incarnations | None = None
        self._identity: TopicIdentity | None = None
        self._epoch = 1
        self._held: set[int] = set()
        self._notices: list[str] = []
        self._dead_letters: DeadLetters | None = None
        self._jobs: list[Periodic] = []
        self._ensure_topics: Callable[[], Awaitable[None]] = _nothing
        # Health (see _health): wall-clock seconds.
        self._started_at = time.time()
        self._progress_at: float | None = None
        self._writing: list[Decoded | DeadLetter] = []
        self._flush_error: str | None = None
        self._fetch_failing_since: float | None = None
        self._fetch_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        if self._state != "new":
            raise IngestStateError(f"an ingest worker can be started once; this one is {self._state}")
        self._state = "starting"
        try:
            await self._start()
        except BaseException:
            self._state = "stopped"
            await self._stack.aclose()
            raise
        self._state = "running"

    async def _start(self) -> None:
        s, o = self.settings, self.options
        # The one way this worker creates its topics: at start, and again if one is deleted under it.
        self._ensure_topics = lambda: kafka.ensure_topics(s)
        await _retrying("create topics", o, self._ensure_topics)
        # Idempotent and serialised by an advisory lock. In production
        # (RUNSTREAM_AUTO_MIGRATE=false) `runstream migrate` is the one applier;
        # either way a worker never writes to a schema other than its code's.
        if s.auto_migrate:
            await _retrying("migrate the schema", o, lambda: migrate(s.database_url))
        await _retrying("check the schema", o, lambda: check_schema(s.database_url))
        pool: asyncpg.Pool = await _retrying(
            "connect to PostgreSQL", o, lambda: asyncpg.create_pool(s.database_url, min_size=1, max_size=3)
        )
        self._stack.push_async_callback(pool.close)
        partitions = PointPartitions(pool)
        self._incarnations = Incarnations(pool, s.topic)
        self._notices = [c.describe() for c in await self._incarnations.recent_changes()]
        sweeper = LivenessSweeper(
            pool,
            not_responding_after_seconds=s.not_responding_after_seconds,
            failed_after_seconds=s.failed_after_seconds,
        )
        dlq = DeadLetterProducer(s, topic=s.dlq_topic)
        await _retrying("start the dead-letter producer", o, dlq.start)
        self._stack.push_async_callback(dlq.stop)
        dead_letters = DeadLetters(
            dlq.send_raw,
            ensure_topic=self._ensure_topics,
            topic=s.dlq_topic,
            timeout_seconds=o.dead_letter_timeout_seconds,
        )
        self._dead_letters = dead_letters
        self._writer = Writer(pool, s.topic, dead_letters, partitions=partitions)
        consumer = AIOKafkaConsumer(
            **kafka.client_options(s),
            group_id=s.group_id,
            enable_auto_commit=False,
            # Never: an offset out of range is a changed topic or lost records,
            # which _reconcile handles (and reports) instead of a silent jump.
            auto_offset_reset="none",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            session_timeout_ms=int(o.session_timeout_seconds * 1000),
            heartbeat_interval_ms=max(100, int(o.session_timeout_seconds * 1000 / 3)),
        )
        await _retrying("start the consumer", o, lambda: kafka.start(consumer, s))
        self._stack.push_async_callback(consumer.stop)
        self._jobs = [
            # Only while caught up: after an outage the data of live runs may
            # still wait in Kafka, and their silence is ingest's, not theirs.
            Periodic(
                "ingest-liveness", sweeper.sweep, interval_seconds=o.liveness_interval_seconds, ready=self._caught_up
            ),
            Periodic(
                "ingest-maintenance",
                lambda: _maintain(partitions, s.retention_days),
                interval_seconds=o.maintenance_interval_seconds,
            ),
            Periodic(
                "ingest-compaction",
                ChunkCompactor(pool, age_seconds=o.compaction_age_seconds, observe=self.metrics.compacted).compact,
                interval_seconds=o.compaction_interval_seconds,
            ),
            Periodic("ingest-topic-watch", self._watch_topic, interval_seconds=o.topic_check_interval_seconds),
            Periodic("ingest-lag", self._measure_lag, interval_seconds=o.lag_interval_seconds),
            Periodic(
                "ingest-dead-letters",
                lambda: dead_letters.redeliver(pool),
                interval_seconds=o.dead_letter_retry_seconds,
            ),
        ]
        for job in self._jobs:
            if job.interval_seconds > 0:  # 0 disables the job
                job.start()
                self._stack.push_async_callback(job.stop)
        consumer.subscribe([s.topic], listener=_Listener(self))
        self._consumer = consumer
        self._task = asyncio.create_task(self._consume(), name="ingest-consume")
        self._stack.push_async_callback(self._finish_task)
        if self._metrics_port:
            server = MetricsServer(
                self.metrics, host=s.ingest_metrics_host, port=self._metrics_port, health=self.health
            )
            try:
                await server.start()
            except OSError as exc:
                raise IngestStartError(
                    f"cannot serve metrics on {s.ingest_metrics_host}:{self._metrics_port}: {exc.strerror or exc}"
                ) from exc
            self._stack.push_async_callback(server.stop)
        log.info("ingest worker consuming %s as %s", s.topic, s.group_id)

    async def stop(self) -> None:
        """Finish the batch in hand, commit, leave the group, close. Idempotent."""
        if self._state in ("new", "stopped"):
            self._state = "stopped"
            return
        self._state = "stopped"
        self._request_stop()
        await self._stack.aclose()

    async def wait(self) -> None:
        """Return when the worker's loop ends; raise what ended it, if anything."""
        if self._task is None:
            raise IngestStateError("the worker is not started")
        await asyncio.shield(self._task)

    async def __aenter__(self) -> IngestWorker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _request_stop(self) -> None:
        if not self._stop_requested.is_set():
            self._stop_deadline = time.monotonic() + self.options.stop_timeout_seconds
            self._stop_requested.set()

    async def _finish_task(self) -> None:
        self._request_stop()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    # --- the loop ----------------------------------------------------------------

    async def _consume(self) -> None:
        consumer, o = self._consumer, self.options
        assert consumer is not None  # noqa: S101 - set by _start before the task exists
        timeout_ms = int(o.fetch_timeout_seconds * 1000)
        while not self._stop_requested.is_set():
            self._reap()
            if self._flushing is not None and self._full():
                # The next flush is ready but the last one is still being written
                # (or retried): stop fetching so memory stays bounded, and poll
                # without records now and then to stay in the group.
                self._pause(True)
                await asyncio.wait({self._flushing}, timeout=1.0)
                if not self._flushing.done():
                    self._hold((await consumer.getmany(timeout_ms=0, max_records=o.fetch_max_records)).values())
                continue
            self._pause(False)
            room = max(1, min(o.fetch_max_records, o.flush_max_records - len(self._pending)))
            try:
                fetched = await consumer.getmany(timeout_ms=timeout_ms, max_records=room)
            except OffsetOutOfRangeError as exc:
                # A changed topic, a truncated log or expired records: never skipped silently.
                log.warning("fetch offsets out of range %s: checking the topic", exc.args[0] if exc.args else exc)
                await self._reconcile_locked()
                continue
            except NoOffsetForPartitionError as exc:
                # Nothing stored in PostgreSQL could be read at assignment, nor in
                # Kafka: from the start (the writer drops what is stored).
                await consumer.seek_to_beginning(*exc.args)
                continue
            except KafkaError as exc:
                # aiokafka reconnects by itself; an error surfacing here returned
                # no records, so waiting a little and polling again loses nothing.
                log.warning("fetch failed (%r); polling again", exc)
                self._fetch_failing_since = self._fetch_failing_since or time.time()
                self._fetch_error = repr(exc)
                await asyncio.sleep(o.retry_max_seconds)
                continue
            self._fetch_failing_since = self._fetch_error = None
            self._hold(fetched.values())
            if self._pending and self._flushing is None and self._flush_due():
                # Written in the background: decoding the next records overlaps it.
                self._flushing = asyncio.create_task(self._flush(), name="ingest-flush")
        self._pause(False)
        if self._flushing is not None:
            await asyncio.wait({self._flushing})
            self._reap()
        await self._flush()  # the batch in hand

    def _reap(self) -> None:
        if self._flushing is not None and self._flushing.done():
            task, self._flushing = self._flushing, None
            task.result()  # a flush only fails on a bug: end the loop with it

    def _hold(self, fetched: Iterable[list[Any]]) -> None:
        for messages in fetched:
            for m in messages:
                if not self._pending:
                    self._pending_since = time.monotonic()
                source = Source(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp / 1000)
                record = decode_record(source)
                if isinstance(record, Decoded):
                    self._pending_points += record.points
                self._pending.append(record)
            self.metrics.records.inc(len(messages))

    def _full(self) -> bool:
        o = self.options
        return self._pending_points >= o.flush_max_points or len(self._pending) >= o.flush_max_records

    def _flush_due(self) -> bool:
        return self._full() or time.monotonic() - self._pending_since >= self.options.flush_interval_seconds

    def _take_pending(self) -> list[Decoded | DeadLetter]:
        """The oldest records in hand, up to one flush's worth."""
        o = self.options
        if not self._full():
            records, self._pending, self._pending_points = self._pending, [], 0
            return records
        taken = points = 0
        for record in self._pending:
            if taken >= o.flush_max_records or points >= o.flush_max_points:
                break
            taken += 1
            points += record.points if isinstance(record, Decoded) else 0
        records, self._pending = self._pending[:taken], self._pending[taken:]
        self._pending_points -= points
        return records

    async def _flush(self) -> None:
        """Write the records in hand, retrying until stored or the stop deadline.

        Records are taken *inside* the lock, so flushes (from the loop or a
        revocation) write each partition's records in offset order; the
        writer's offset check relies on that.
        """
        async with self._flush_lock:
            if self._abandoned:
                return
            records = self._take_pending()
            if not records:
                return
            self._writing = records
            try:
                result = await self._write_retrying(records)
            finally:
                self._writing = []
        if result is not None:
            # Outside the lock: the advisory Kafka commit may wait on a
            # rebalance whose revocation callback wants the lock.
            await self._after_commit(result)
            if result.stale_epoch:
                await self._reconcile_locked()

    async def _write_retrying(self, records: list[Decoded | DeadLetter]) -> FlushResult | None:
        delay = self.options.retry_initial_seconds
        while True:
            try:
                return await self._write(records)
            except Exception as exc:  # an outage, not data: the writer isolates bad records
                self.metrics.retries.inc()
                self._trouble_at = time.monotonic()
                self._flush_error = f"flush of {len(records)} records failing: {exc!r}"
                if time.monotonic() + delay > self._stop_deadline:
                    # Nothing was committed: these records will be consumed
                    # again. Nothing after them may be written now.
                    self._abandoned = True
                    log.error("giving up a flush of %d records at shutdown: %r", len(records), exc)
                    return None
                log.warning("flush of %d records failed, retrying in %.2fs: %r", len(records), delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.retry_max_seconds)

    async def _write(self, records: list[Decoded | DeadLetter]) -> FlushResult:
        assert self._writer is not None  # noqa: S101
        started = time.perf_counter()
        result = await self._writer.write(records, epoch=self._epoch)
        self.metrics.write_seconds.observe(time.perf_counter() - started)
        self._progress_at, self._flush_error = time.time(), None
        return result

    def _pause(self, paused: bool) -> None:
        consumer = self._consumer
        if consumer is None or paused == self._paused:
            return
        self._paused = paused
        if paused:
            consumer.pause(*consumer.assignment())
        else:
            consumer.resume(*(tp for tp in consumer.assignment() if tp.partition not in self._held))

    async def _after_commit(self, result: FlushResult) -> None:
        m = self.metrics
        m.flushes.inc()
        m.points.inc(result.points)
        m.batches.inc(result.batches)
        m.duplicates.inc(result.duplicates)
        m.already_stored.inc(result.already_stored)
        m.ignored_statuses.inc(result.ignored_statuses)
        m.lost_batches.inc(result.lost_seqs)
        m.isolated.inc(result.isolated)
        m.recovered_batches.inc(result.recovered_seqs)
        if result.lost_seqs:
            log.warning("%d batches of producer sessions given up as lost (see ingest._sessions)", result.lost_seqs)
        if result.recovered_seqs:
            log.warning("%d batches counted as lost arrived after all and were stored", result.recovered_seqs)
        for letter in result.dead:
            m.dead_letters.labels(letter.reason).inc()
            log.warning(
                "dead-lettered partition=%d offset=%d reason=%s: %s",
                letter.source.partition,
                letter.source.offset,
                letter.reason,
                letter.message,
            )
        consumer = self._consumer
        if consumer is None:
            return
        topic = self.settings.topic
        assigned = consumer.assignment()
        offsets = {TopicPartition(topic, p): o for p, o in result.next_offsets.items()}
        offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
        for tp, offset in offsets.items():
            self._stored[tp.partition] = offset
            highwater = consumer.highwater(tp)
            if highwater is not None:
                self._set_lag(tp.partition, highwater - offset)
        for partition, stored in result.stale.items():
            tp = TopicPartition(topic, partition)
            if tp in assigned and await consumer.position(tp) < stored:
                consumer.seek(tp, stored)  # someone else stored these already
        if offsets:
            try:
                await consumer.commit(offsets)  # advisory: PostgreSQL holds the truth
            except KafkaError as exc:
                log.debug("advisory Kafka commit failed: %r", exc)

    def _set_lag(self, partition: int, lag: int) -> None:
        self._lag[partition] = max(0, lag)
        self.metrics.lag.labels(str(partition)).set(self._lag[partition])

    async def _measure_lag(self) -> None:
        """Lag from the broker's end offsets now, against what PostgreSQL holds: also while nothing is stored.

        After a commit the lag is known from the fetch's high watermark; this
        job asks the broker (a ListOffsets request, answered even while the
        partitions are paused) so that the gauge keeps rising while a flush
        is stuck, or while the worker is between commits on a quiet topic.
        """
        consumer = self._consumer
        if consumer is None:
            return
        assigned = [tp for tp in consumer.assignment() if tp.partition in self._stored]
        if not assigned:
            return
        ends = await consumer.end_offsets(assigned)
        for tp, end in ends.items():
            stored = self._stored.get(tp.partition)
            if stored is not None:  # not revoked meanwhile
                self._set_lag(tp.partition, end - stored)

    def _caught_up(self) -> bool:
        """Whether silence in the data means silence of the runs (for the liveness sweep)."""
        calm = time.monotonic() - self._trouble_at > self.settings.not_responding_after_seconds
        return calm and not self._full() and self._lag_total() < self.options.flush_max_records

    def _lag_total(self) -> int:
        return sum(lag for partition, lag in self._lag.items() if partition not in self._held)

    # --- the topic ---------------------------------------------------------------

    async def _reconcile_locked(self) -> None:
        """:meth:`_reconcile` between flushes."""
        async with self._flush_lock:
            await self._reconcile()

    async def _reconcile(self) -> bool:
        """Check the topic against PostgreSQL (_incarnation) and seek every assigned partition accordingly.

        The caller holds the flush lock or is the rebalance callback (nothing
        is being written for these partitions). Records in hand are dropped and
        fetched again from the stored offsets. False if Kafka or PostgreSQL
        could not be asked (the topic watch tries again).
        """
        consumer, incarnations, topic = self._consumer, self._incarnations, self.settings.topic
        if consumer is None or incarnations is None:
            return False
        try:
            identity = await topic_identity(consumer._client, topic)
            if identity.partitions == 0:
                log.warning("topic %s does not exist: creating it", topic)
                await self._ensure_topics()
                return False
            every = [TopicPartition(topic, p) for p in range(identity.partitions)]
            starts = await consumer.beginning_offsets(every)
            ends = await consumer.end_offsets(every)
            done = await incarnations.reconcile(identity, {tp.partition: (starts[tp], ends[tp]) for tp in every})
        except (KafkaError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not check topic %s (%r); trying again soon", topic, exc)
            return False
        self._identity, self._epoch, self._held = identity, done.epoch, done.held
        for change in done.changes:
            self.metrics.topic_changes.labels(change.kind).inc()
        self._notices = (self._notices + [c.describe() for c in done.changes])[-5:]
        assigned = consumer.assignment()
        self._drop({tp.partition for tp in assigned})
        for tp in assigned:
            self._stored[tp.partition] = done.offsets.get(tp.partition, starts[tp])
            if tp.partition in self._held:
                consumer.pause(tp)
            else:
                consumer.seek(tp, done.offsets.get(tp.partition, starts[tp]))
                if not self._paused:
                    consumer.resume(tp)
        self.metrics.held_partitions.set(len(self._held & {tp.partition for tp in assigned}))
        return True

    async def _watch_topic(self) -> None:
        """The periodic look at the topic: changed under us, deleted, grown; held partitions drained?"""
        consumer, incarnations = self._consumer, self._incarnations
        if consumer is None or incarnations is None:
            return
        identity = await topic_identity(consumer._client, self.settings.topic)
        if identity != self._identity:
            if self._identity is not None and identity.partitions > self._identity.partitions:
                # The group rebalances once the consumer's metadata shows the new partitions.
                consumer._client.force_metadata_update()
            await self._reconcile_locked()
        elif self._held:
            held = await incarnations.release_drained()
            if held != self._held:
                await self._reconcile_locked()

    # --- rebalancing -------------------------------------------------------------

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        self._joined = True  # a member of the group, with partitions or without (more workers than partitions)
        # Owned from now: aiokafka fetches the new partitions while the check below runs (up to
        # revoke_timeout_seconds), so the gauge set after it could say 0 of partitions being stored.
        self.metrics.assigned.set(0 if consumer is None else len(consumer.assignment()))
        if consumer is None or not assigned:
            return
        try:
            checked = await asyncio.wait_for(self._reconcile(), self.options.revoke_timeout_seconds)
        except TimeoutError:
            checked = False
        if not checked:
            # Kafka's committed offsets never run ahead of PostgreSQL's, and the
            # writer drops what is already stored: safe, only slower. The topic
            # watch checks the topic as soon as it can.
            self._identity = None
            log.warning("could not check the topic at assignment; starting from Kafka's committed offsets")
        log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        partitions = {tp.partition for tp in revoked}
        try:
            await asyncio.wait_for(self._flush_lock.acquire(), self.options.revoke_timeout_seconds)
        except TimeoutError:
            # A flush is stuck retrying; it keeps its records (the offset check
            # makes writing them later safe). Let the new owner have the rest.
            self._drop(partitions)
            log.info("revoked partitions %s while a flush is retrying", sorted(partitions))
            return
        try:
            records: list[Decoded | DeadLetter] = []
            if not self._abandoned:
                records, self._pending, self._pending_points = self._pending, [], 0
            if records and self._writer is not None:
                try:
                    result = await self._write(records)
                except Exception as exc:
                    log.warning("could not write held records on revocation (%r); the new owner will", exc)
                    # Back in front, in order: nothing was written in between.
                    self._pending[:0] = [r for r in records if r.source.partition not in partitions]
                    self._recount()
                else:
                    await self._after_commit(result)
            self._drop(partitions)
        finally:
            self._flush_lock.release()
        for partition in partitions:
            self._lag.pop(partition, None)
            self._stored.pop(partition, None)
            with contextlib.suppress(KeyError):  # no lag measured for it yet
                self.metrics.lag.remove(str(partition))
        self.metrics.assigned.set(0)
        log.info("revoked partitions %s", sorted(partitions))

    # --- health ------------------------------------------------------------------

    def health(self) -> Report:
        """The worker's health report (see _health); also what ``GET /ready`` answers."""
        waiting = [*self._writing, *self._pending]
        produced = [r.source.produced_at for r in waiting if r.source.produced_at is not None]
        dlq = self._dead_letters
        consumer = self._consumer
        # Kafka away: the fetches say so (when aiokafka surfaces it), or the topic watch does.
        kafka_failing = [(self._fetch_failing_since, self._fetch_error)] + [
            (job.failing_since, job.last_failure) for job in self._jobs if job.name == "ingest-topic-watch"
        ]
        kafka_since, kafka_error = min(
            ((since, error) for since, error in kafka_failing if since is not None), default=(None, None)
        )
        vitals = Vitals(
            now=time.time(),
            started_at=self._started_at,
            progress_at=self._progress_at,
            oldest_waiting_at=min(produced, default=None),
            records_waiting=len(waiting),
            lag=self._lag_total(),
            kafka_failing_since=kafka_since,
            kafka_error=kafka_error,
            flush_error=self._flush_error,
            dead_letter_topic=self.settings.dlq_topic,
            dead_letter_failing_since=None if dlq is None else dlq.failing_since,
            dead_letter_error=None if dlq is None else dlq.last_error,
            dead_letters_held=0 if dlq is None else dlq.held,
            job_errors={job.name: job.error for job in self._jobs if job.error is not None},
            assigned=sorted(tp.partition for tp in consumer.assignment()) if consumer is not None else [],
            held=sorted(self._held),
            epoch=self._epoch,
            notices=list(self._notices),
            joined=self._joined,
        )
        return assess(vitals, stall_seconds=self.options.stall_seconds)

    def _drop(self, partitions: set[int]) -> None:
        self._pending = [r for r in self._pending if r.source.partition not in partitions]
        self._recount()

    def _recount(self) -> None:
        self._pending_points = sum(r.points for r in self._pending if isinstance(r, Decoded))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped: its classes are Any
    def __init__(self, worker: IngestWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._worker._on_assigned(assigned)


async def _nothing() -> None:
    return None


async def _retrying(what: str, options: IngestOptions, attempt: Callable[[], Awaitable[T]]) -> T:
    """Call ``attempt()`` until it succeeds or ``start_timeout_seconds`` pass."""
    deadline = time.monotonic() + options.start_timeout_seconds
    delay = options.retry_initial_seconds
    while True:
        try:
            return await attempt()
        except (OSError, KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # A refused password or certificate stays refused: say so at once, naming the setting.
            # (A Kafka setting that is wrong raises kafka.KafkaSetupError, which is not caught here.)
            if (setup := postgres_setup_error(exc)) is not None:
                raise IngestStartError(f"could not {what}: {setup}") from exc
            if time.monotonic() + delay > deadline:
                raise IngestStartError(f"could not {what}: {exc!r}") from exc
            log.warning("could not %s (%r), retrying in %.2fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, options.retry_max_seconds)


async def _maintain(partitions: PointPartitions, retention_days: int) -> None:
    """Tomorrow's partition before it is needed; yesterday's data past retention gone."""
    await partitions.ensure(utc_day() + 1)
    if retention_days > 0:
        await partitions.drop_expired(retention_days)


def run_worker(settings: Settings, *, options: IngestOptions | None = None) -> None:
    """Run one worker until SIGTERM or SIGINT, then stop it cleanly (blocking)."""
    asyncio.run(_serve(settings, options))


async def _serve(settings: Settings, options: IngestOptions | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with IngestWorker(settings, options=options) as worker:
        stopped = asyncio.create_task(stop.wait())
        ended = asyncio.create_task(worker.wait())
        await asyncio.wait({stopped, ended}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if ended.done():
            ended.result()  # the loop ended on its own: raise why
        else:
            ended.cancel()
    log.info("ingest worker stopped")
