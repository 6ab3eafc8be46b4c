"""Live updates: one watcher per watched run (or experiment), shared by every client streaming it.

Ingest NOTIFYs ``runstream_changed_runs`` with the ids of the runs each commit
changed (:data:`runstream.events.CHANGED_RUNS_CHANNEL`). The hub LISTENs on
one connection and wakes the watchers of those runs (and every experiment
watcher, whose runs it cannot tell apart without a query). A woken
:class:`RunWatcher` asks PostgreSQL whether the run's data version (see
:mod:`._series`) or its status row changed; only then does it read the new
points, after the last (time, ordinal) it sent for each series, and hand one
batched event to every subscriber. So N browsers on a run cost one small
query per change, not N, and nothing is polled while nothing changes.

A watcher pushes at most once per ``interval_seconds`` (changes arriving
meanwhile are batched into the next push), and checks once per
``fallback_seconds`` even without a notification: notifications sent while
the listening connection was down (a PostgreSQL restart) are lost, and
changes made by anything but ingest are not announced.

An :class:`ExperimentWatcher` likewise compares the status, end and heartbeat
of an experiment's newest runs when woken and pushes the runs that changed
(or appeared), for the experiment page's table.

A subscriber whose queue is full (a client that stopped reading) is dropped;
its stream ends and an ``EventSource`` reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from runstream.events import CHANGED_RUNS_CHANNEL, metric_descriptions
from runstream.pg import Conn
from runstream.tasks import cancel_and_wait

from ._db import Database
from ._points import read_after
from ._series import SeriesReader, json_values

__all__ = ["LiveEvent", "LiveHub", "Subscription", "end_cursors"]

_log = logging.getLogger("query.live")
_QUEUE_EVENTS: Final = 64
#: A cursor before every point of a series.
_BEFORE_ALL: Final = (-math.inf, -(2**63))
#: Seconds around series.last_time within which its stored last point lies (times are kept to the microsecond).
_NEAR: Final = 1e-5


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """``run`` (details changed), ``points`` (new points per metric) or ``runs`` (an experiment's changed runs).

    A ``None`` in a queue instead of an event ends that stream.
    """

    kind: str
    data: dict[str, Any]


def run_event(run: dict[str, Any]) -> LiveEvent:
    """A run's details for a live page, with its metrics' descriptions picked out of its properties."""
    return LiveEvent("run", {**run, "descriptions": metric_descriptions(run.get("properties"))})


@dataclass(eq=False)
class Subscription:
    key: tuple[str, str]
    queue: asyncio.Queue[LiveEvent | None] = field(default_factory=lambda: asyncio.Queue(_QUEUE_EVENTS))

    async def next(self) -> LiveEvent | None:
        return await self.queue.get()


async def end_cursors(pool: asyncpg.Pool, series_ids: Sequence[int]) -> dict[int, tuple[float, int]]:
    """Each series' (time, ordinal) cursor at its stored last point; series with no point are left out."""
    records = await pool.fetch(
        "SELECT id, last_time FROM series WHERE id = ANY($1::bigint[]) AND last_time IS NOT NULL", list(series_ids)
    )
    # series.last_time is the exact logged time; the cursor must be the stored (decoded) point,
    # which can differ by rounding, so read the points just around it.
    near_end = {r["id"]: (r["last_time"] - _NEAR, _BEFORE_ALL[1]) for r in records}
    return {sid: (float(p.times[-1]), int(p.ordinals[-1])) for sid, p in (await read_after(pool, near_end)).items()}


class _Watcher:
    """Polls one thing for changes while it has subscribers; subclasses say what and how."""

    def __init__(self, hub: LiveHub, label: str) -> None:
        self._hub = hub
        self._label = label
        self.subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        #: Set once the starting point is read: later changes are news to subscribers.
        self.ready = asyncio.Event()
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Something changed: check soon (within ``interval_seconds``)."""
        self._woken.set()

    async def _prime(self) -> None:
        raise NotImplementedError

    async def _tick(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"live-{self._label}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for sub in list(self.subscribers):
            _offer(sub, None)

    async def _loop(self) -> None:
        primed = False
        try:
            while True:
                self._woken.clear()  # a change from now on brings another round
                try:
                    if primed:
                        await self._tick()
                    else:
                        await self._prime()
                        primed = True
                except (asyncpg.PostgresError, OSError) as exc:
                    # A database hiccup: skip this round, the next one catches up.
                    _log.warning("live update for %s failed: %s", self._label, exc)
                finally:
                    self.ready.set()
                await asyncio.sleep(self._hub.interval_seconds)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), self._hub.fallback_seconds)
        except Exception:
            _log.exception("live updates for %s stopped", self._label)
            for sub in list(self.subscribers):
                _offer(sub, None, force=True)

    def _publish(self, event: LiveEvent) -> None:
        for sub in list(self.subscribers):
            if not _offer(sub, event):
                # Not reading: end its stream rather than buffer without bound.
                self.subscribers.discard(sub)
                _offer(sub, None, force=True)


class RunWatcher(_Watcher):
    """New points and detail changes of one run."""

    def __init__(self, run_id: uuid.UUID, hub: LiveHub) -> None:
        super().__init__(hub, f"run {run_id}")
        self.run_id = run_id
        self._cursors: dict[int, tuple[float, int]] = {}
        self._names: dict[int, tuple[str, str | None]] = {}
        self._version: tuple[int, int] | None = None
        self._run: dict[str, Any] | None = None

    async def _prime(self) -> None:
        """Start from what is stored now: clients load history through the series API."""
        self._run = await self._hub.db.get_run(self.run_id)
        self._version = await self._hub.series.data_version(self.run_id)
        await self._refresh_series(start_at_end=True)

    async def _refresh_series(self, *, start_at_end: bool) -> None:
        records = await self._hub.pool.fetch(
            "SELECT s.id, s.name, s.value_type FROM series s WHERE s.run_id = $1 AND s.kind = 'scalar'",
            self.run_id,
        )
        fresh = [r for r in records if r["id"] not in self._names]
        for r in fresh:
            self._names[r["id"]] = (r["name"], r["value_type"])
            self._cursors[r["id"]] = _BEFORE_ALL
        if start_at_end:
            self._cursors.update(await end_cursors(self._hub.pool, [r["id"] for r in fresh]))

    async def _tick(self) -> None:
        run = await self._hub.db.get_run(self.run_id)
        if run != self._run:
            self._run = run
            if run is not None:
                self._publish(run_event(run))
        version = await self._hub.series.data_version(self.run_id)
        if version == self._version:
            return
        await self._refresh_series(start_at_end=False)
        points, caught_up = await self._new_points()
        if caught_up:
            # Else the next tick reads on, though nothing new may arrive to change the version.
            self._version = version
        if points:
            self._publish(LiveEvent("points", {"run_id": str(self.run_id), "metrics": points}))

    async def _new_points(self) -> tuple[dict[str, dict[str, list[Any]]], bool]:
        """New points by metric, and whether every series is caught up (none held back by the event's limit)."""
        limit = self._hub.max_points_per_event
        found = await read_after(self._hub.pool, self._cursors, limit=limit)
        out: dict[str, dict[str, list[Any]]] = {}
        for series_id, points in found.items():
            name, value_type = self._names[series_id]
            out[name] = {
                "steps": points.steps.tolist(),
                "times": points.times.tolist(),
                "values": json_values(value_type, points.values),
            }
            self._cursors[series_id] = (float(points.times[-1]), int(points.ordinals[-1]))
        return out, all(len(points) < limit for points in found.values())


class ExperimentWatcher(_Watcher):
    """Status changes and new runs among an experiment's newest runs."""

    def __init__(self, experiment: str, hub: LiveHub) -> None:
        super().__init__(hub, f"experiment {experiment!r}")
        self.experiment = experiment
        self._seen: dict[str, tuple[Any, ...]] = {}

    async def _snapshot(self) -> dict[str, tuple[Any, ...]]:
        records = await self._hub.pool.fetch(
            """
            SELECT r.id, r.status, r.ended_at, r.heartbeat_at FROM runs r
            JOIN experiments e ON e.id = r.experiment_id
            WHERE e.name = $1 ORDER BY r.created_at DESC, r.id DESC LIMIT $2
            """,
            self.experiment,
            self._hub.experiment_runs,
        )
        return {str(r["id"]): (r["status"], r["ended_at"], r["heartbeat_at"]) for r in records}

    async def _prime(self) -> None:
        self._seen = await self._snapshot()

    async def _tick(self) -> None:
        now = await self._snapshot()
        changed = [run_id for run_id, state in now.items() if self._seen.get(run_id) != state]
        self._seen = now
        if changed:
            runs = [r for r in [await self._hub.db.get_run(uuid.UUID(run_id)) for run_id in changed] if r is not None]
            self._publish(LiveEvent("runs", {"experiment": self.experiment, "runs": runs}))


def _offer(sub: Subscription, event: LiveEvent | None, *, force: bool = False) -> bool:
    if force:
        while sub.queue.full():
            sub.queue.get_nowait()
    try:
        sub.queue.put_nowait(event)
        return True
    except asyncio.QueueFull:
        return False


class LiveHub:
    """The watchers of one app; ``stop()`` ends every stream (at shutdown)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        db: Database,
        series: SeriesReader,
        *,
        interval_seconds: float = 0.5,
        fallback_seconds: float = 5.0,
        max_points_per_event: int = 10_000,
        experiment_runs: int = 200,
    ) -> None:
        self.pool = pool
        self.db = db
        self.series = series
        self.interval_seconds = interval_seconds
        self.fallback_seconds = fallback_seconds
        self.max_points_per_event = max_points_per_event
        self.experiment_runs = experiment_runs
        self._watchers: dict[tuple[str, str], _Watcher] = {}
        self._stopped = False
        self._listening: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def start(self) -> None:
        """Listen for ingest's notifications until :meth:`stop`."""
        if self._listening is None:
            self._listening = asyncio.create_task(self._listen(), name="live-listen")

    async def _listen(self) -> None:
        """Hold one pooled connection LISTENing; take another if it is lost."""
        while True:
            lost = asyncio.Event()

            def on_lost(_conn: object, lost: asyncio.Event = lost) -> None:
                lost.set()

            try:
                async with self.pool.acquire() as conn:
                    conn.add_termination_listener(on_lost)
                    await conn.add_listener(CHANGED_RUNS_CHANNEL, self._on_notify)
                    try:
                        self._wake_all()  # what changed while nobody listened
                        await lost.wait()
                    finally:
                        conn.remove_termination_listener(on_lost)
                        if not conn.is_closed():
                            await conn.remove_listener(CHANGED_RUNS_CHANNEL, self._on_notify)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                _log.warning(
                    "live: cannot listen for changes (%s); watchers check every %.0fs", exc, self.fallback_seconds
                )
            await asyncio.sleep(min(1.0, self.fallback_seconds))

    def changed(self) -> asyncio.Event:
        """An event set by the next commit ingest announces (of any run), or when listening (re)starts.

        Take it *before* reading what it guards, then wait on it: a commit in
        between has set it already, so none is missed. Notifications sent
        while nobody listened are lost: wait with a timeout and read again.
        """
        return self._changed

    def _announce_change(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _on_notify(self, _conn: Conn, _pid: int, _channel: str, payload: object) -> None:
        self._announce_change()
        for run_id in str(payload).split(","):
            watcher = self._watchers.get(("run", run_id))
            if watcher is not None:
                watcher.wake()
        for key, watcher in self._watchers.items():
            if key[0] == "experiment":
                watcher.wake()

    def _wake_all(self) -> None:
        self._announce_change()
        for watcher in self._watchers.values():
            watcher.wake()

    async def subscribe(self, run_id: uuid.UUID) -> Subscription:
        """A run's stream, returned once its watcher knows where "new" starts."""
        return await self._subscribe(("run", str(run_id)), lambda: RunWatcher(run_id, self))

    async def subscribe_experiment(self, name: str) -> Subscription:
        """An experiment's stream of run changes."""
        return await self._subscribe(("experiment", name), lambda: ExperimentWatcher(name, self))

    async def _subscribe(self, key: tuple[str, str], make: Callable[[], _Watcher]) -> Subscription:
        if self._stopped:
            raise RuntimeError("the live hub is stopped")
        watcher = self._watchers.get(key)
        if watcher is None:
            watcher = self._watchers[key] = make()
        sub = Subscription(key)
        watcher.subscribers.add(sub)
        watcher.start()
        await watcher.ready.wait()
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        watcher = self._watchers.get(sub.key)
        if watcher is None:
            return
        watcher.subscribers.discard(sub)
        if not watcher.subscribers:
            del self._watchers[sub.key]
            await watcher.stop()

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    @property
    def stopped(self) -> bool:
        """Set by :meth:`stop`; streams that follow :meth:`changed` end then."""
        return self._stopped

    async def stop(self) -> None:
        self._stopped = True
        self._announce_change()  # wakes the streams waiting on changed(), which see stopped and end
        listening, self._listening = self._listening, None
        await cancel_and_wait(listening)
        watchers, self._watchers = list(self._watchers.values()), {}
        for watcher in watchers:
            await watcher.stop()
