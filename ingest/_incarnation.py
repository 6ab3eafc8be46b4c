"""Which incarnation of the events topic the stored offsets belong to, and what Kafka lost.

Offsets in ``consumer_offsets`` mean something only for the topic they were
read from. If the broker's data is replaced while PostgreSQL is kept (a new
cluster, a lost volume, a restored backup, the topic deleted and created
again), the new topic starts again at offset 0, below the stored offsets, and
every record of it would look "already stored". So ingest records the topic's
identity (``topic_incarnations``: Kafka's topic id and cluster id, see
:func:`ingest._topics.topic_identity`) and compares it whenever it is assigned
partitions, when a fetch finds its offset out of range, and every few seconds
(the worker's topic watch):

* **a new topic** (topic id or cluster id changed; where the broker names no
  ids, fewer partitions or a stored offset beyond the end): the stored offsets
  are dropped and the new topic is read from its start;
* **a truncated log** (same topic, stored offset beyond its end, e.g. after an
  unclean leader election): read on from the end, where new records go;
* **expired records** (the stored offset below the log's start: retention
  deleted records ingest never read): read on from the start, counting the
  records lost;
* **partitions added**: the new partitions are *held* until every older one is
  stored up to its end offset at that moment, so the runs whose key moved to a
  new partition are read in order (see the operator's procedure in
  ``ingest/README.md``).

Each is logged, counted and recorded in ``topic_changes`` (``runstream status``
shows the recent ones). Every loss bumps ``epoch``: sessions may then resume
past the seqs that went with the lost records (:mod:`ingest._sessions`), and a
worker still writing with the old epoch stores data but no offsets (the
writer's check), so it cannot carry old offsets into the new topic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from runstream.pg import Conn

from ._topics import TopicIdentity

__all__ = ["Incarnations", "Reconciled", "TopicChange"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicChange:
    kind: str
    epoch: int
    detail: str
    at: datetime | None = None

    def describe(self) -> str:
        when = f"{self.at:%Y-%m-%d %H:%M:%S} UTC " if self.at is not None else ""
        return f"{when}{self.kind}: {self.detail}"


@dataclass(slots=True)
class Reconciled:
    """The state after a reconciliation: what to read from where, and what changed."""

    epoch: int
    offsets: dict[int, int]  # stored next offset per partition that has one
    held: set[int]  # added partitions not to read yet
    changes: list[TopicChange] = field(default_factory=list)


class Incarnations:
    """The ``topic_incarnations`` row of one topic, through a pool it does not own."""

    def __init__(self, pool: asyncpg.Pool, topic: str) -> None:
        self._pool = pool
        self._topic = topic

    async def reconcile(self, identity: TopicIdentity, bounds: Mapping[int, tuple[int, int]]) -> Reconciled:
        """Compare what Kafka says now with what PostgreSQL holds, and adjust the offsets.

        ``bounds`` holds (log start, end offset) of each partition of the topic.
        One transaction; the topic's row and offset rows are locked meanwhile,
        so concurrent workers agree on one outcome.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT epoch, topic_id, cluster_id, partitions FROM topic_incarnations WHERE topic = $1 FOR UPDATE",
                self._topic,
            )
            rows = await conn.fetch(
                "SELECT partition, next_offset FROM consumer_offsets WHERE topic = $1 ORDER BY partition FOR UPDATE",
                self._topic,
            )
            stored = {r["partition"]: r["next_offset"] for r in rows}
            if row is None:
                # The first look (or the first since this table exists): offsets
                # stored before are taken to be this topic's.
                await self._record(conn, 1, identity)
                done = Reconciled(1, stored, set())
            else:
                done = await self._compare(conn, row, identity, stored, bounds)
            for change in done.changes:
                await conn.execute(
                    "INSERT INTO topic_changes (topic, kind, epoch, detail) VALUES ($1, $2, $3, $4)",
                    self._topic,
                    change.kind,
                    change.epoch,
                    change.detail,
                )
            done.held = await self._held(conn)
        for change in done.changes:
            log.warning("%s: %s", self._topic, change.describe())
        return done

    async def _compare(
        self,
        conn: Conn,
        row: asyncpg.Record,
        identity: TopicIdentity,
        stored: dict[int, int],
        bounds: Mapping[int, tuple[int, int]],
    ) -> Reconciled:
        epoch = row["epoch"]
        why = _new_topic(row, identity, stored, bounds)
        if why is not None:
            epoch += 1
            await conn.execute("DELETE FROM consumer_offsets WHERE topic = $1", self._topic)
            await conn.execute("DELETE FROM partition_growth WHERE topic = $1", self._topic)
            await self._record(conn, epoch, identity)
            detail = (
                f"{why}; the offsets stored for the old topic ({len(stored)} partitions, {sum(stored.values())}"
                f" records) no longer apply: reading the new topic ({identity.describe()}) from its start"
            )
            return Reconciled(epoch, {}, set(), [TopicChange("new_topic", epoch, detail)])
        changes = []
        if identity.partitions > row["partitions"]:
            changes.append(await self._grown(conn, row["partitions"], identity.partitions, bounds, epoch))
        moved = _out_of_range(stored, bounds)
        if moved:
            epoch += 1
            for partition, (kind, offset, detail) in sorted(moved.items()):
                stored[partition] = offset
                changes.append(TopicChange(kind, epoch, f"partition {partition}: {detail}"))
            await conn.execute(
                "UPDATE consumer_offsets SET next_offset = x.o, updated_at = now()"
                " FROM unnest($2::int[], $3::bigint[]) AS x(p, o) WHERE topic = $1 AND partition = x.p",
                self._topic,
                list(moved),
                [offset for _, offset, _ in moved.values()],
            )
        await conn.execute(
            "UPDATE topic_incarnations SET epoch = $2, partitions = greatest(partitions, $3),"
            " topic_id = coalesce($4, topic_id), cluster_id = coalesce($5, cluster_id) WHERE topic = $1",
            self._topic,
            epoch,
            identity.partitions,
            identity.topic_id,
            identity.cluster_id,
        )
        return Reconciled(epoch, stored, set(), changes)

    async def _grown(
        self, conn: Conn, was: int, now: int, bounds: Mapping[int, tuple[int, int]], epoch: int
    ) -> TopicChange:
        # A partition with nothing in it has nothing to drain: target 0.
        drain_to = [bounds[p][1] if bounds[p][1] > bounds[p][0] else 0 for p in range(was)]
        await conn.execute(
            "INSERT INTO partition_growth (topic, first_new, partitions, drain_to) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            self._topic,
            was,
            now,
            drain_to,
        )
        detail = (
            f"{was} -> {now} partitions; partitions {was}..{now - 1} are read once partitions 0..{was - 1} are"
            f" stored up to their current ends ({sum(drain_to)} records in all), so runs whose key moved stay in order"
        )
        return TopicChange("partitions_added", epoch, detail)

    async def _record(self, conn: Conn, epoch: int, identity: TopicIdentity) -> None:
        await conn.execute(
            "INSERT INTO topic_incarnations (topic, epoch, topic_id, cluster_id, partitions)"
            " VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (topic) DO UPDATE SET epoch = EXCLUDED.epoch, topic_id = EXCLUDED.topic_id,"
            " cluster_id = EXCLUDED.cluster_id, partitions = EXCLUDED.partitions, since = now()",
            self._topic,
            epoch,
            identity.topic_id,
            identity.cluster_id,
            identity.partitions,
        )

    async def _held(self, conn: Conn) -> set[int]:
        rows = await conn.fetch(
            "SELECT first_new, partitions FROM partition_growth WHERE topic = $1 AND drained_at IS NULL", self._topic
        )
        return {p for r in rows for p in range(r["first_new"], r["partitions"])}

    async def release_drained(self) -> set[int]:
        """Mark the growths whose older partitions are stored far enough as drained; return what stays held."""
        async with self._pool.acquire() as conn, conn.transaction():
            growths = await conn.fetch(
                "SELECT first_new, drain_to FROM partition_growth WHERE topic = $1 AND drained_at IS NULL FOR UPDATE",
                self._topic,
            )
            if not growths:
                return set()
            rows = await conn.fetch("SELECT partition, next_offset FROM consumer_offsets WHERE topic = $1", self._topic)
            stored = {r["partition"]: r["next_offset"] for r in rows}
            for growth in growths:
                if all(stored.get(p, 0) >= target for p, target in enumerate(growth["drain_to"])):
                    await conn.execute(
                        "UPDATE partition_growth SET drained_at = now() WHERE topic = $1 AND first_new = $2",
                        self._topic,
                        growth["first_new"],
                    )
                    log.info(
                        "%s: partitions from %d on drained their predecessors: reading them",
                        self._topic,
                        growth["first_new"],
                    )
            return await self._held(conn)

    async def recent_changes(self, limit: int = 5) -> list[TopicChange]:
        rows = await self._pool.fetch(
            "SELECT kind, epoch, detail, at FROM topic_changes WHERE topic = $1 ORDER BY id DESC LIMIT $2",
            self._topic,
            limit,
        )
        return [TopicChange(r["kind"], r["epoch"], r["detail"], r["at"]) for r in reversed(rows)]

    async def last_progress(self) -> datetime | None:
        """When any worker last moved a stored offset of the topic."""
        value: datetime | None = await self._pool.fetchval(
            "SELECT max(updated_at) FROM consumer_offsets WHERE topic = $1", self._topic
        )
        return value


def _new_topic(
    row: asyncpg.Record, identity: TopicIdentity, stored: Mapping[int, int], bounds: Mapping[int, tuple[int, int]]
) -> str | None:
    """Why the topic Kafka has now is not the one the stored offsets were read from, or None."""
    if row["cluster_id"] is not None and identity.cluster_id is not None and row["cluster_id"] != identity.cluster_id:
        return f"Kafka is another cluster (cluster id {identity.cluster_id}, was {row['cluster_id']})"
    if row["topic_id"] is not None and identity.topic_id is not None:
        if row["topic_id"] != identity.topic_id:
            return f"the topic was created again (topic id {identity.topic_id}, was {row['topic_id']})"
    if row["topic_id"] is None or identity.topic_id is None:
        # No ids to compare: only what offsets can tell.
        if identity.partitions < row["partitions"]:
            return f"the topic has {identity.partitions} partitions, fewer than the {row['partitions']} it had"
        beyond = sorted(p for p, o in stored.items() if p in bounds and o > bounds[p][1])
        if beyond:
            return f"stored offsets are beyond the end of partitions {beyond}"
    return None


def _out_of_range(stored: Mapping[int, int], bounds: Mapping[int, tuple[int, int]]) -> dict[int, tuple[str, int, str]]:
    """Partitions of the same topic whose stored offset Kafka no longer has: (kind, where to go on, detail)."""
    moved = {}
    for partition, offset in stored.items():
        if partition not in bounds:
            continue
        start, end = bounds[partition]
        if offset > end:
            moved[partition] = (
                "truncated",
                end,
                f"the log ends at {end}, below the stored offset {offset} (truncated, e.g. by an unclean leader"
                f" election): {offset - end} stored records are gone from Kafka; reading on from {end}",
            )
        elif offset < start:
            moved[partition] = (
                "expired",
                start,
                f"the log starts at {start}, above the stored offset {offset}: {start - offset} records expired"
                f" (retention) before ingest read them and are lost; reading on from {start}",
            )
    return moved
