"""One flush = one PostgreSQL transaction: data, producer sessions and offsets.

Exactly once rests on two facts written atomically with the data:

* ``consumer_offsets`` holds, per partition, the next offset to consume. The
  transaction first locks the rows of the partitions it writes and keeps only
  records at or past the stored offset. So a record is stored once even when
  two workers hold the same partition across a rebalance, or a flush is
  retried after a failure at an unknown point: whoever commits first wins and
  the other drops what is already stored.
* ``producer_sessions`` holds the seqs seen per producer session
  (:mod:`ingest._sessions`), so a batch the SDK sent twice is dropped, even
  when the copies are read from different partitions or topic incarnations.

Offsets belong to one incarnation of the topic (:mod:`ingest._incarnation`):
the flush checks the worker's epoch against ``topic_incarnations``; a worker
that has not noticed a new topic yet stores its records' data (the seq dedupe
keeps that exact) but no offsets, and is told to look again.

No record can stop or stall a flush. The plan is written inside a savepoint;
if that fails because of content (PostgreSQL refusing a value, SQLSTATE
classes 22, 23 and 54, or any exception of ingest's own code: a bug tripped by
a record is that record's problem, not its partition's), the records are split
in halves, each in its own savepoint, until the failing ones are alone: those
are dead-lettered (``db_rejected``, or a reason from the exception, see
:func:`ingest._decoder.exception_letter`) and the rest are stored, in the same
transaction: about 2·log2(n) savepoints per bad record, no commit or Kafka
round trip among them. After _SAVEPOINTS savepoints the transaction commits
what it has settled (a prefix of the records, with its offsets) and the next
one goes on, so many bad records cost a steady few ms each rather than
PostgreSQL's slow path for transactions of thousands of subtransactions. The
decoder's checks keep PostgreSQL's known refusals from getting this far.
Failures of PostgreSQL itself or of the connection propagate; the caller
retries the same records, which the offset check makes safe.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import orjson

from runstream.chunks import CHUNK_COLUMNS, PointColumns, encode_chunk, encode_chunks
from runstream.events import BatchHeader
from runstream.pg import Conn

from ._compaction import CHUNK_POINTS, SMALL_CHUNK_POINTS, slices
from ._decoder import DeadLetter, Decoded, exception_letter
from ._notify import notify_changed_runs
from ._partitions import PointPartitions, utc_day
from ._plan import Plan, RunState, SeriesKey, SeriesState, build_plan
from ._sessions import SessionState
from ._summary import summarize, summarize_all

__all__ = ["FlushResult", "Writer", "is_content_error"]

log = logging.getLogger(__name__)

#: Savepoints per transaction while isolating bad records: below PostgreSQL's
#: cache of 64 subtransactions per transaction, past which every row it reads
#: costs a lookup in pg_subtrans (tens of ms per savepoint after thousands).
#: More than the depth of any bisection (log2 of a flush's records), so each
#: transaction settles at least one record.
_SAVEPOINTS: Final = 48

#: SQLSTATE classes that mean "this content cannot be stored": data exception,
#: integrity constraint violation, program limit exceeded.
_CONTENT_SQLSTATES: Final = frozenset({"22", "23", "54"})

Record = Decoded | DeadLetter
DeadLetterSink = Callable[[Sequence[DeadLetter], Conn], Awaitable[None]]


@dataclass(slots=True)
class _Window:
    """The records isolation tries at once; kept across a flush's transactions."""

    size: int


def is_content_error(exc: BaseException) -> bool:
    """Whether ``exc`` (raised writing some records) blames their content rather than PostgreSQL or the connection."""
    if isinstance(exc, asyncpg.exceptions._base.DataError):
        return True  # a parameter PostgreSQL's type cannot hold, found while encoding it
    if isinstance(exc, asyncpg.PostgresError):
        return (exc.sqlstate or "")[:2] in _CONTENT_SQLSTATES
    # The connection, the server's state (down, read-only, out of disk...), a timeout: retry.
    return not isinstance(exc, asyncpg.InterfaceError | OSError | TimeoutError)


@dataclass(slots=True)
class FlushResult:
    """What a flush stored. ``stale`` maps partitions whose records were all
    already stored (by another worker, or an earlier attempt) to the stored
    next offset, so the caller can skip ahead. ``stale_epoch`` is set when the
    topic changed under the caller: data was stored, no offset."""

    next_offsets: dict[int, int] = field(default_factory=dict)
    stale: dict[int, int] = field(default_factory=dict)
    batches: int = 0
    points: int = 0
    duplicates: int = 0
    ignored_statuses: int = 0
    already_stored: int = 0
    lost_seqs: int = 0
    recovered_seqs: int = 0
    isolated: int = 0  # records dead-lettered because writing them failed
    dead: list[DeadLetter] = field(default_factory=list)
    stale_epoch: bool = False

    def add(self, plan: Plan) -> None:
        self.batches += plan.batches
        self.points += plan.points
        self.duplicates += plan.duplicates
        self.ignored_statuses += plan.ignored_statuses
        self.lost_seqs += plan.lost_seqs
        self.recovered_seqs += plan.recovered_seqs
        self.dead += plan.dead


def _small_chunks(points: int) -> int:
    """How many of the chunks slices makes of ``points`` points are small (for the compactor)."""
    return int(points % CHUNK_POINTS < SMALL_CHUNK_POINTS and points % CHUNK_POINTS > 0)


def _is_text(plan: Plan, key: SeriesKey) -> bool:
    return plan.series[key].value_type == "str"


def _ts(epoch_seconds: float | None) -> datetime | None:
    return None if epoch_seconds is None else datetime.fromtimestamp(epoch_seconds, UTC)


def _header(record: Record) -> BatchHeader | None:
    if isinstance(record, DeadLetter):
        return record.header
    return BatchHeader(record.batch.run_id, record.batch.session_id, record.batch.seq)


@dataclass(slots=True)
class _Attempt:
    """One transaction of a flush, as isolating its bad records needs it."""

    conn: Conn
    day: int
    epoch: int
    result: FlushResult
    window: _Window
    isolated: list[DeadLetter] = field(default_factory=list)
    savepoints: int = _SAVEPOINTS


class Writer:
    """Writes flushes of records for one topic through a pool."""

    def __init__(
        self, pool: asyncpg.Pool, topic: str, dead_letters: DeadLetterSink, *, partitions: PointPartitions
    ) -> None:
        self._pool = pool
        self._topic = topic
        self._dead_letters = dead_letters
        self._partitions = partitions

    async def write(self, records: Sequence[Record], *, epoch: int = 1) -> FlushResult:
        """Store ``records`` (in consumption order per partition), read in topic ``epoch``, exactly once.

        Usually one transaction. One that has to isolate many bad records commits
        what it has settled once it used :data:`_SAVEPOINTS` savepoints, and the
        next transaction goes on from there.
        """
        result = FlushResult()
        stored: dict[int, int] = {}
        remaining = list(records)
        window = _Window(len(remaining))
        while remaining:
            remaining = remaining[await self._transaction(remaining, epoch, result, stored, window) :]
        result.stale = {p: o for p, o in stored.items() if p not in result.next_offsets}
        return result

    async def _transaction(
        self, records: list[Record], epoch: int, result: FlushResult, stored: dict[int, int], window: _Window
    ) -> int:
        """One transaction over a prefix of ``records``; return the prefix's length (at least 1)."""
        day = utc_day()
        await self._partitions.ensure(day)  # before the flush's transaction: see _partitions
        letters_before = len(result.dead)
        async with self._pool.acquire() as conn, conn.transaction():
            current = await self._epoch(conn)
            if current != epoch:
                # The topic changed under the caller: its records may come from
                # either incarnation. Their data is safe to store (seqs are
                # deduped exactly); their offsets are not.
                result.stale_epoch = True
                kept = records
            else:
                stored.update(await self._lock_offsets(conn, {r.source.partition for r in records}))
                kept = [r for r in records if r.source.offset >= stored[r.source.partition]]
            attempt = _Attempt(conn, day, current, result, window)
            settled = await self._settle(attempt, kept)
            if attempt.isolated:
                result.isolated += len(attempt.isolated)
                await self._use_up_seqs(conn, attempt.isolated, day, current, result)
            done = (
                len(records) if settled == len(kept) else next(i for i, r in enumerate(records) if r is kept[settled])
            )
            if current == epoch:
                result.already_stored += done - settled
                next_offsets = {r.source.partition: r.source.offset + 1 for r in kept[:settled]}
                await self._store_offsets(conn, next_offsets)
                result.next_offsets.update(next_offsets)
            dead = result.dead[letters_before:]
            if dead:
                # Before COMMIT: a crash in between re-sends (at least once)
                # rather than losing the dead letter.
                await self._dead_letters(dead, conn)
        return done

    async def _settle(self, attempt: _Attempt, records: Sequence[Record]) -> int:
        """Write ``records`` window by window (see _isolate); return how many are settled, a prefix.

        The window is the whole flush until a failure; then it is the size of the
        last halves bisection tried, and doubles with each window written whole,
        so a run of bad records costs about one savepoint each, not a bisection
        of all the rest in every transaction.
        """
        window = attempt.window
        settled = 0
        while settled < len(records) and attempt.savepoints:
            part = records[settled : settled + window.size]
            failures = len(attempt.isolated)
            done = await self._isolate(attempt, part)
            settled += done
            if done == len(part) and len(attempt.isolated) == failures:
                window.size *= 2
        return settled

    async def _isolate(self, attempt: _Attempt, records: Sequence[Record]) -> int:
        """Write ``records`` in a savepoint, halving around failures, while the attempt has savepoints left.

        The records that fail alone go to ``attempt.isolated``; its window
        becomes the size of the halves tried last. Returns how many records (a
        prefix, left to right) are settled: written or isolated.
        """
        if not records or attempt.savepoints == 0:
            return 0
        attempt.savepoints -= 1
        try:
            async with attempt.conn.transaction():  # a savepoint
                plan = await self._write_plan(attempt.conn, records, attempt.day, attempt.epoch)
        except Exception as exc:
            if not is_content_error(exc):
                raise
            if len(records) == 1:
                attempt.isolated.append(self._isolated(records[0], exc))
                return 1
            middle = attempt.window.size = len(records) // 2
            first = await self._isolate(attempt, records[:middle])
            return first if first < middle else middle + await self._isolate(attempt, records[middle:])
        attempt.result.add(plan)
        return len(records)

    async def _use_up_seqs(
        self, conn: Conn, letters: list[DeadLetter], day: int, epoch: int, result: FlushResult
    ) -> None:
        """Dead-letter the isolated records; their seqs are used up all the same (see _sessions)."""
        try:
            async with conn.transaction():  # a savepoint: nothing may stop the flush here either
                await self._write_plan(conn, letters, day, epoch, result)
        except Exception as exc:
            if not is_content_error(exc):
                raise
            log.exception("could not record the seqs of %d dead-lettered records: %r", len(letters), exc)
            result.dead += letters

    @staticmethod
    def _isolated(record: Record, exc: Exception) -> DeadLetter:
        reason = "ingest_error"
        if isinstance(exc, asyncpg.PostgresError | asyncpg.exceptions._base.DataError):
            reason = "db_rejected"
        letter = exception_letter(record.source, exc, _header(record), default=reason)
        log.warning(
            "record partition=%d offset=%d cannot be stored (%s): %r",
            record.source.partition,
            record.source.offset,
            letter.reason,
            exc,
            exc_info=letter.reason == "ingest_error",
        )
        return letter

    async def _write_plan(
        self,
        conn: Conn,
        records: Sequence[Record],
        day: int,
        epoch: int,
        result: FlushResult | None = None,
    ) -> Plan:
        plan = await self._plan(conn, records, epoch)
        await self._apply(conn, plan, day)
        if result is not None:
            result.add(plan)
        return plan

    async def stored_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        """The next offset to consume for each partition that has one stored."""
        rows = await self._pool.fetch(
            "SELECT partition, next_offset FROM consumer_offsets WHERE topic = $1 AND partition = ANY($2::int[])",
            self._topic,
            sorted(partitions),
        )
        return {row["partition"]: row["next_offset"] for row in rows}

    # --- reads -------------------------------------------------------------------

    async def _epoch(self, conn: Conn) -> int:
        # FOR SHARE: a reconciliation (which may start a new epoch) waits for this flush, and the other way round.
        epoch = await conn.fetchval("SELECT epoch FROM topic_incarnations WHERE topic = $1 FOR SHARE", self._topic)
        return 1 if epoch is None else int(epoch)

    async def _lock_offsets(self, conn: Conn, partitions: set[int]) -> dict[int, int]:
        ordered = sorted(partitions)  # one lock order for every worker: no deadlocks
        await conn.execute(
            "INSERT INTO consumer_offsets (topic, partition, next_offset)"
            " SELECT $1, p, 0 FROM unnest($2::int[]) AS p ON CONFLICT DO NOTHING",
            self._topic,
            ordered,
        )
        rows = await conn.fetch(
            "SELECT partition, next_offset FROM consumer_offsets"
            " WHERE topic = $1 AND partition = ANY($2::int[]) ORDER BY partition FOR UPDATE",
            self._topic,
            ordered,
        )
        return {row["partition"]: row["next_offset"] for row in rows}

    async def _plan(self, conn: Conn, records: Sequence[Record], epoch: int) -> Plan:
        decoded = [r for r in records if isinstance(r, Decoded)]
        headers = [h for h in (_header(r) for r in records) if h is not None]
        run_ids = list({r.batch.run_id for r in decoded})
        keys = list(
            {
                (r.batch.run_id, e["name"])
                for r in decoded
                for e in r.batch.events
                if "name" in e and e["type"] != "run_started"
            }
        )
        runs: dict[str, RunState] = {}
        series: dict[SeriesKey, SeriesState] = {}
        sessions = await self._lock_sessions(conn, headers)
        if run_ids:
            # FOR UPDATE: the liveness sweep must not change a status between
            # this read and this transaction's update of it.
            for row in await conn.fetch(
                "SELECT id, status FROM runs WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", run_ids
            ):
                runs[str(row["id"])] = RunState(row["status"])
        if keys:
            for row in await conn.fetch(
                # point_count counts entries of list/row/table/image series,
                # so the next position is known without scanning them.
                "SELECT s.id, s.run_id, s.name, s.kind, s.value_type, s.point_count AS next_position"
                " FROM series s JOIN unnest($1::uuid[], $2::text[]) AS k(run_id, name)"
                " ON s.run_id = k.run_id AND s.name = k.name",
                [k[0] for k in keys],
                [k[1] for k in keys],
            ):
                series[(str(row["run_id"]), row["name"])] = SeriesState(
                    row["id"], row["kind"], row["value_type"], row["next_position"]
                )
        return build_plan(records, runs, series, sessions, epoch=epoch)

    async def _lock_sessions(self, conn: Conn, headers: list[BatchHeader]) -> dict[str, SessionState]:
        """The sessions' seen seqs, locked: a session read from two partitions is updated by one flush at a time."""
        if not headers:
            return {}
        runs = {h.session_id: h.run_id for h in headers}
        ids = sorted(runs)
        # Rows first (epoch 0: nothing seen), so that FOR UPDATE has something to lock.
        await conn.execute(
            "INSERT INTO producer_sessions (session_id, run_id, last_seq, epoch)"
            " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::int[]) ON CONFLICT DO NOTHING",
            ids,
            [runs[i] for i in ids],
            [0] * len(ids),
            [0] * len(ids),
        )
        rows = await conn.fetch(
            "SELECT session_id, run_id, last_seq, ahead, epoch, lost_floor FROM producer_sessions"
            " WHERE session_id = ANY($1::uuid[]) ORDER BY session_id FOR UPDATE",
            ids,
        )
        return {
            str(r["session_id"]): SessionState(
                str(r["run_id"]), r["last_seq"], list(r["ahead"]), r["epoch"], r["lost_floor"]
            )
            for r in rows
        }

    # --- writes ------------------------------------------------------------------

    async def _apply(self, conn: Conn, plan: Plan, day: int) -> None:
        await self._write_runs(conn, plan)
        ids = await self._write_series(conn, plan)
        if plan.scalars:
            columns = self._columns(plan)
            await conn.copy_records_to_table(
                "point_chunks", columns=(*CHUNK_COLUMNS, "stored_day"), records=self._chunks(plan, ids, columns, day)
            )
            await self._write_summaries(conn, plan, ids, columns, day)
        if plan.entries:
            await conn.copy_records_to_table(
                "series_entries",
                columns=["series_id", "time", "position", "value"],
                records=[(ids[key], time, position, value) for key, time, position, value in plan.entries],
            )
            counts = Counter(ids[key] for key, _, _, _ in plan.entries)
            await conn.execute(
                "UPDATE series AS s SET point_count = s.point_count + u.n"
                " FROM unnest($1::bigint[], $2::bigint[]) AS u(id, n) WHERE s.id = u.id",
                list(counts),
                list(counts.values()),
            )
        if plan.sessions:
            # The rows exist and are locked (_lock_sessions): the plan's state replaces them.
            await conn.execute(
                "UPDATE producer_sessions AS p SET last_seq = u.last_seq, epoch = u.epoch, ahead = '{}'"
                " FROM unnest($1::uuid[], $2::bigint[], $3::int[]) AS u(id, last_seq, epoch) WHERE p.session_id = u.id",
                list(plan.sessions),
                [state.last_seq for state in plan.sessions.values()],
                [state.epoch for state in plan.sessions.values()],
            )
            # Seqs seen out of order: rare (a partition change, a replaced topic), one statement each.
            # ``lost_floor`` matters only while a gap is open above ``last_seq``.
            ahead = [(session, state.ahead, state.floor) for session, state in plan.sessions.items() if state.ahead]
            if ahead:
                await conn.executemany(
                    "UPDATE producer_sessions SET ahead = $2, lost_floor = $3 WHERE session_id = $1", ahead
                )
        await notify_changed_runs(conn, set(plan.run_updates) | {key[0] for key in plan.series})

    async def _write_runs(self, conn: Conn, plan: Plan) -> None:
        if plan.experiments:
            names = sorted(plan.experiments)
            await conn.execute(
                "INSERT INTO experiments (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING", names
            )
            rows = await conn.fetch("SELECT id, name FROM experiments WHERE name = ANY($1::text[])", names)
            experiment_ids = {row["name"]: row["id"] for row in rows}
            new = list(plan.new_runs.values())
            await conn.execute(
                "INSERT INTO runs (id, experiment_id, display_name, parent_id, status, created_at, started_at)"
                " SELECT r.id, r.experiment_id, r.display_name, r.parent_id, 'Running', r.t, r.t"
                " FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::uuid[], $5::timestamptz[])"
                " AS r(id, experiment_id, display_name, parent_id, t)"
                " ON CONFLICT (id) DO NOTHING",
                [r.run_id for r in new],
                [experiment_ids[r.experiment] for r in new],
                [r.display_name for r in new],
                [r.parent_id for r in new],
                [_ts(r.time) for r in new],
            )
        if plan.run_updates:
            updates = list(plan.run_updates.items())
            await conn.execute(
                "UPDATE runs AS r SET status = coalesce(u.status, r.status),"
                " ended_at = coalesce(u.ended_at, r.ended_at), error = coalesce(u.error, r.error),"
                " heartbeat_at = greatest(r.heartbeat_at, u.heartbeat_at),"
                " tags = r.tags || u.tags, properties = u.properties || r.properties, seen_at = now(),"
                " display_name = coalesce(u.display_name, r.display_name),"
                " description = coalesce(u.description, r.description)"
                " FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::jsonb[], $5::timestamptz[],"
                " $6::jsonb[], $7::jsonb[], $8::text[], $9::text[])"
                " AS u(id, status, ended_at, error, heartbeat_at, tags, properties, display_name, description)"
                " WHERE r.id = u.id",
                [run_id for run_id, _ in updates],
                [u.status for _, u in updates],
                [_ts(u.ended_at) for _, u in updates],
                [u.error for _, u in updates],
                [_ts(u.heartbeat_at) for _, u in updates],
                [orjson.dumps(u.tags).decode() for _, u in updates],
                [orjson.dumps(u.properties).decode() for _, u in updates],
                [u.display_name for _, u in updates],
                [u.description for _, u in updates],
            )
        if plan.history:
            await conn.executemany(
                "INSERT INTO status_history (run_id, status, time, error) VALUES ($1, $2, $3, $4::jsonb)",
                [(run_id, status, _ts(time), error) for run_id, status, time, error in plan.history],
            )

    async def _write_series(self, conn: Conn, plan: Plan) -> dict[SeriesKey, int]:
        ids: dict[SeriesKey, int] = {key: state.id for key, state in plan.series.items() if state.id is not None}
        new = [(key, state) for key, state in plan.series.items() if state.id is None]
        if new:
            columns: list[list[Any]] = [[k[0] for k, _ in new], [k[1] for k, _ in new]]
            await conn.execute(
                "INSERT INTO series (run_id, name, kind, value_type)"
                " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])"
                " ON CONFLICT (run_id, name) DO NOTHING",
                *columns,
                [s.kind for _, s in new],
                [s.value_type for _, s in new],
            )
            rows = await conn.fetch(
                "SELECT s.id, s.run_id, s.name FROM series s JOIN unnest($1::uuid[], $2::text[]) AS k(run_id, name)"
                " ON s.run_id = k.run_id AND s.name = k.name",
                *columns,
            )
            ids.update({(str(row["run_id"]), row["name"]): row["id"] for row in rows})
        widened = [ids[key] for key in plan.widened if plan.series[key].id is not None]
        if widened:
            await conn.execute(
                "UPDATE series SET value_type = 'float' WHERE id = ANY($1::bigint[]) AND value_type = 'int'", widened
            )
        return ids

    @staticmethod
    def _columns(plan: Plan) -> dict[SeriesKey, PointColumns]:
        """Each series' points in this flush as whole columns."""
        return {key: c.joined(is_text=_is_text(plan, key)) for key, c in plan.scalars.items()}

    @staticmethod
    def _chunks(
        plan: Plan, ids: dict[SeriesKey, int], columns: dict[SeriesKey, PointColumns], day: int
    ) -> list[tuple[Any, ...]]:
        """The flush's chunk records: numeric series encoded together (encode_chunks), text series one by one."""
        numeric = [(ids[key], part) for key, c in columns.items() if not _is_text(plan, key) for part in slices(c)]
        text = [
            encode_chunk(ids[key], *part, is_text=True)
            for key, c in columns.items()
            if _is_text(plan, key)
            for part in slices(c)
        ]
        encoded = encode_chunks([i for i, _ in numeric], [part for _, part in numeric]) + text
        return [(*record, day) for record in encoded]

    @staticmethod
    async def _write_summaries(
        conn: Conn,
        plan: Plan,
        ids: dict[SeriesKey, int],
        columns: dict[SeriesKey, PointColumns],
        day: int,
    ) -> None:
        text = [key for key in columns if _is_text(plan, key)]
        numeric = [key for key in columns if not _is_text(plan, key)]
        summaries = summarize_all([columns[key] for key in numeric]) + [
            (*summarize(*columns[key], is_text=True), float(columns[key].times.min())) for key in text
        ]
        rows = sorted(  # in id order: writers that share series lock them in one order
            (ids[key], *summary, _small_chunks(summary[0]))
            for key, summary in zip(numeric + text, summaries, strict=True)
        )
        await conn.execute(
            "UPDATE series AS s SET point_count = s.point_count + u.n,"
            " first_time = least(s.first_time, u.first_time),"
            " first_day = coalesce(s.first_day, $13), last_day = $13, small_chunks = s.small_chunks + u.small,"
            " small_since = CASE WHEN u.small > 0 THEN coalesce(s.small_since, now()) ELSE s.small_since END,"
            " min_value = least(s.min_value, u.min_value), max_value = greatest(s.max_value, u.max_value),"
            " max_step = greatest(s.max_step, u.max_step),"
            " last_step = CASE WHEN u.newer THEN u.last_step ELSE s.last_step END,"
            " last_time = CASE WHEN u.newer THEN u.last_time ELSE s.last_time END,"
            " last_ordinal = CASE WHEN u.newer THEN u.last_ordinal ELSE s.last_ordinal END,"
            " last_value = CASE WHEN u.newer THEN u.last_value ELSE s.last_value END,"
            " last_text = CASE WHEN u.newer THEN u.last_text ELSE s.last_text END"
            " FROM (SELECT v.*,"
            "       (t.last_time IS NULL OR (v.last_time, v.last_ordinal) >= (t.last_time, t.last_ordinal)) AS newer"
            "       FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::float8[], $5::bigint[],"
            "       $6::bigint[], $7::float8[], $8::bigint[], $9::float8[], $10::text[], $11::float8[], $12::int[])"
            "       AS v(id, n, min_value, max_value, max_step,"
            "            last_step, last_time, last_ordinal, last_value, last_text, first_time, small)"
            "       JOIN series t ON t.id = v.id) AS u"
            " WHERE s.id = u.id",
            *zip(*rows, strict=True),
            day,
        )

    async def _store_offsets(self, conn: Conn, next_offsets: dict[int, int]) -> None:
        if not next_offsets:
            return
        partitions = sorted(next_offsets)
        await conn.execute(
            "UPDATE consumer_offsets SET next_offset = greatest(next_offset, x.o), updated_at = now()"
            " FROM unnest($2::int[], $3::bigint[]) AS x(p, o) WHERE topic = $1 AND partition = x.p",
            self._topic,
            partitions,
            [next_offsets[p] for p in partitions],
        )
