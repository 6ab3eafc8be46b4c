"""The in-memory buffer between ``run.log()`` and the background sender.

Scalars are kept columnar per metric name (values, steps, times, ordinals),
which makes ``append_float`` a handful of array appends under one lock and
lets the sender build ``scalars`` events without reshaping. Dicts of floats
(``log_metrics``) are kept row by row instead (:class:`PendingRows`): a call
whose names are the previous call's costs a few C-level operations for the
whole dict rather than two array appends per value, and the rows become
per-name columns when sealed. Any other event (tags, lists, status...) first
*seals* the pending points into sealed pieces (:class:`SealedPoints`), so
the sealed list is in the order the caller produced things, and a run's
events keep their order on the wire.

Memory is bounded by counting points (and list/table cells) from the moment
they are appended until the sender reports them delivered (to Kafka or to
the spool). Crossing ``flush_points`` undrained wakes the sender; reaching
``max_points`` undelivered makes the caller wait up to ``wait_seconds``, and
first asks the sender (``relieve``) to spill what it holds to the spool
rather than wait for Kafka, which frees the room within milliseconds. Only
if no room comes in time (no spool, or a disk that cannot keep up) does it
raise :class:`BufferFullError` without buffering the value. All three thresholds are
folded into one number, ``_limit``, so the hot path does a single comparison.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

import numpy as np

from producer._errors import BufferFullError, DeliveryError, RunClosedError
from runstream.events import ScalarKind, WireEvent

_now = time.time

#: Rows cut by another call on one of their names before holding this many: their names go to columns.
_FEW_ROWS = 16
#: Name sets remembered as going to columns, at most.
_MAX_NO_ROWS = 1024


def _new_values(kind: ScalarKind) -> Any:
    if kind == "float":
        return array("d")
    if kind == "int":
        return array("q")
    return []


class PendingPoints:
    """Pending points of one metric name, all of one kind.

    :attr:`count` numbers the name's points in this session (the ordinals). The
    pending points are always the consecutive ordinals ``first .. count - 1``,
    so ordinals are not stored (nor is ``count``: it is ``first`` plus the
    pending times, the column every append writes last); nor are steps while every pending step is
    automatic (equal to the ordinal): ``steps`` stays None until an explicit
    step arrives.
    """

    __slots__ = ("name", "kind", "values", "steps", "times", "first", "fast")

    def __init__(self, name: str, kind: ScalarKind) -> None:
        self.name = name
        self.kind: ScalarKind = kind
        self.values: Any = _new_values(kind)
        self.steps: array[int] | None = None
        self.times = array("d")
        self.first = 0
        #: kind float, automatic steps, buffer open: append_float may take the short cut.
        self.fast = False

    @property
    def count(self) -> int:
        """The name's points so far in this session: the next ordinal, and the next automatic step."""
        return self.first + len(self.times)

    def repair(self) -> None:
        """Restore the invariant after an append was cut short by an exception.

        A signal handler (KeyboardInterrupt, a timeout) can raise between any
        two bytecodes of an append; whatever columns got the point, keep it
        only if all did, so values, steps and times stay aligned.
        """
        n = min(len(self.values), len(self.times), len(self.steps) if self.steps is not None else len(self.times))
        del self.values[n:], self.times[n:]
        if self.steps is not None:
            del self.steps[n:]


@dataclass(frozen=True, slots=True)
class SealedPoints:
    """Sealed points of one name and kind, in logging order."""

    name: str
    kind: ScalarKind
    values: Any
    steps: array[int] | range
    times: array[float]
    ordinals: range


class PendingRows:
    """Pending ``log_metrics`` calls with the same float metrics in the same order: one row per call.

    The values of every row are kept end to end in one list (``flat``, row
    after row), which a dict's values extend in one C-level call. Name ``j``'s
    point in row ``r`` has ordinal ``first[j] + r``; its step is that ordinal
    when ``steps`` is None (every call took each name's next step), else the
    row's step. While rows are pending, the names' own columns take nothing:
    any other point of one of them seals the rows first, so each name's points
    stay in order.
    """

    __slots__ = ("first", "flat", "names", "steps", "times", "types")

    def __init__(self, names: tuple[str, ...], first: list[int], *, explicit_steps: bool) -> None:
        self.names = names
        self.types = [float] * len(names)  # what ``list(map(type, values))`` of a row must equal
        self.first = first
        self.flat: list[float] = []
        self.times = array("d")
        self.steps: array[int] | None = array("q") if explicit_steps else None

    def repair(self) -> None:
        """Keep only whole rows after an append was cut short (see :meth:`PendingPoints.repair`)."""
        rows = min(len(self.times), len(self.flat) // len(self.names))
        if self.steps is not None:
            rows = min(rows, len(self.steps))
            del self.steps[rows:]
        del self.times[rows:], self.flat[rows * len(self.names) :]

    def sealed(self) -> list[SealedPoints]:
        """Each name's points as one sealed piece (none when no row is pending)."""
        rows = len(self.times)
        if not rows:
            return []
        grid = np.array(self.flat, dtype=np.float64).reshape(rows, len(self.names))
        out = []
        for j, name in enumerate(self.names):
            ordinals = range(self.first[j], self.first[j] + rows)
            steps = ordinals if self.steps is None else self.steps
            out.append(SealedPoints(name, "float", grid[:, j], steps, self.times, ordinals))
        return out


Item = SealedPoints | WireEvent


class Buffer:
    """Thread-safe; written by the caller's threads, drained by the sender."""

    def __init__(
        self,
        *,
        flush_points: int,
        max_points: int,
        wait_seconds: float,
        wake: Callable[[], None],
        relieve: Callable[[], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._flush_points = flush_points
        self._max_points = max_points
        self._wait_seconds = wait_seconds
        self._wake = wake
        self._relieve = relieve
        self._columns: dict[str, PendingPoints] = {}
        #: name -> columns for names whose pending kind is float: the caller's fast path.
        self.fast: dict[str, PendingPoints] = {}
        #: name -> columns whose pending kind is float, automatic steps or not: names append_floats can take.
        self._floats: dict[str, PendingPoints] = {}
        #: the pending rows of log_metrics calls, by their names (disjoint: a name is in one at most)
        self._rows: dict[tuple[str, ...], PendingRows] = {}
        #: name -> the pending rows holding it
        self._row_of: dict[str, PendingRows] = {}
        #: names whose rows were cut short by their own names logged otherwise: their dicts go to columns
        self._no_rows: set[tuple[str, ...]] = set()
        self._sealed: list[Item] = []
        self._total = 0  # weight appended since creation
        self._drained = 0  # weight handed to the sender
        self._delivered = 0  # weight the sender reported delivered
        self._limit = flush_points
        self._closed = False
        self._failure: BaseException | None = None
        self.blocked_calls = 0
        self.blocked_seconds = 0.0
        self.full_errors = 0  # calls that found no room in time and raised BufferFullError
        #: callers waiting for room right now; the sender spills while there are any
        self.waiters = 0

    # --- the caller's side ------------------------------------------------

    def append_float(self, columns: PendingPoints, value: float) -> None:
        """The hot path: one float with an automatic step, for a name in :attr:`fast`."""
        t = _now()
        # ``with``, not acquire() and a try: a signal handler raising right after acquire() returns
        # (KeyboardInterrupt) would leave the lock held, and the next call waiting for ever.
        with self._lock:
            if columns.fast and self._total < self._limit:
                try:  # free in 3.11 unless something raises
                    columns.values.append(value)
                    columns.times.append(t)
                except BaseException:
                    columns.repair()
                    raise
                self._total += 1
                return
            # Another thread changed the name's kind or steps, or a threshold is reached.
            self._append_locked(columns.name, "float", value, None, t)

    def append(self, name: str, kind: ScalarKind, value: Any, step: int | None) -> None:
        """Any validated scalar; switches the name's pending kind when it changes."""
        t = _now()
        with self._lock:
            self._append_locked(name, kind, value, step, t)

    def append_floats(self, metrics: dict[str, Any], step: int | None) -> bool:
        """A dict of floats, one time and ``step`` for all (None: each name's next); False if it cannot take it.

        The fast path of ``log_metrics``: it takes the dict only if every value
        is a float and every name is pending as floats (so already validated
        and of kind float), checked under the lock before anything is appended;
        otherwise it returns False having appended nothing, and the caller
        validates and uses :meth:`append_many`. A dict with the previous
        call's names, in the same order, and the same kind of step (given or
        not) is one more row of :class:`PendingRows`; any other starts new rows.
        """
        t = _now()
        names = tuple(metrics)
        types = list(map(type, metrics.values()))
        n = len(names)
        with self._lock:
            if self._total + n > self._limit:
                self._reserve(n, "log_metrics()")  # may wait, and let the sender seal the rows meanwhile
            rows = self._rows.get(names)
            if rows is None or (rows.steps is None) != (step is None):
                if types != [float] * n:
                    return False
                if names in self._no_rows:
                    return self._append_columns(metrics, step, t)
                rows = self._start_rows(names, explicit_steps=step is not None)
                if rows is None:
                    return False
            elif types != rows.types:
                return False
            self._total += n  # counted first: an interrupted call over-counts, never under
            try:
                if step is not None and rows.steps is not None:  # given steps: the rows hold them (only then)
                    rows.steps.append(step)
                rows.times.append(t)
                rows.flat.extend(metrics.values())
            except BaseException:
                rows.repair()
                raise
            return True

    def _append_columns(self, metrics: dict[str, float], step: int | None, t: float) -> bool:
        """The floats of ``metrics`` appended name by name to their columns (room made; False if a name is
        not pending as floats): for dicts whose names are also logged in other ways, where rows would
        be cut after a row or two, each cut an event per name on the wire."""
        if not self._free_floats(metrics):
            return False
        floats = self._floats
        self._total += len(metrics)  # counted first: an interrupted call over-counts, never under
        try:
            for name, value in metrics.items():
                columns = floats[name]
                steps = columns.steps
                if steps is not None:
                    steps.append(columns.count if step is None else step)
                elif step is not None and step != columns.count:
                    self._append_point(name, "float", value, step, t)  # materialises the steps
                    continue
                columns.values.append(value)
                columns.times.append(t)
        except BaseException:
            self._repair(metrics)
            raise
        return True

    def _start_rows(self, names: tuple[str, ...], *, explicit_steps: bool) -> PendingRows | None:
        """New pending rows for ``names``, or None if a name is not pending as floats.

        Rows holding any of the names are sealed first (each name is in one at most); others stay
        open, so dicts of different names logged in turn (``{"loss": ...}``, then ``{"lr": ...}``)
        each keep their rows.
        """
        if not self._free_floats(names):
            return None
        floats = self._floats
        first = []
        for name in names:
            columns = floats[name]
            self._set_fast(columns, False)  # log() of the name goes the long way, which seals the rows first
            first.append(columns.count)
        rows = PendingRows(names, first, explicit_steps=explicit_steps)
        self._rows[names] = rows
        self._row_of.update(dict.fromkeys(names, rows))
        return rows

    def _seal_rows(self, rows: PendingRows) -> None:
        """Seal pending rows: each of their names' own pending points first, then its points of the rows."""
        named = [self._columns[name] for name in rows.names]
        for columns in named:
            self._seal(columns)
        pieces = rows.sealed()
        ends = [first + len(rows.times) for first in rows.first]
        # Made now, run below inside one call: the names' next ordinals move past the rows, and the
        # names no longer point at them.
        finish = chain(map(setattr, named, repeat("first"), ends), map(self._row_of.pop, rows.names))
        # From here to the end of deque() no Python code runs between calls or loop turns, where
        # CPython runs signal handlers: a KeyboardInterrupt cannot leave the rows both sealed and
        # pending (sent twice), or sealed with the names' next ordinals not moved past them.
        self._sealed += pieces
        del self._rows[rows.names]
        deque(finish, maxlen=0)
        for columns in named:
            self._set_fast(columns, columns.kind == "float" and columns.steps is None and not self._closed)

    def _free_floats(self, names: Collection[str]) -> bool:
        """Whether every name is pending as floats; if so, rows holding any of them are cut first."""
        floats, held_by = self._floats, self._row_of
        if not all(name in floats for name in names):
            return False
        for name in names:
            held = held_by.get(name)
            if held is not None:
                self._cut_rows(held)
        return True

    def _cut_rows(self, rows: PendingRows) -> None:
        """Seal ``rows`` because one of their names is logged otherwise; if that came after only a few
        rows, their names' dicts go to columns from now on (see :meth:`_append_columns`)."""
        if len(rows.times) < _FEW_ROWS:
            if len(self._no_rows) >= _MAX_NO_ROWS:
                self._no_rows.clear()  # bounded: names that vary from call to call must not grow it
            self._no_rows.add(rows.names)
        self._seal_rows(rows)

    def _seal_all_rows(self) -> None:
        for rows in list(self._rows.values()):
            self._seal_rows(rows)

    def append_many(self, points: list[tuple[str, ScalarKind, Any]], step: int | None) -> None:
        """Validated ``(name, kind, value)`` points of one call: one time and ``step``, all or none.

        Room for all of them is made before the first is appended, so a full
        buffer or a closed run refuses the whole call. Only a signal raising
        mid-call (KeyboardInterrupt) can leave a prefix appended, with every
        name's columns still aligned.
        """
        t = _now()
        with self._lock:
            self._reserve(len(points), "log_metrics()")
            self._total += len(points)
            try:
                for name, kind, value in points:
                    self._append_point(name, kind, value, step, t)
            except BaseException:
                self._repair(name for name, _, _ in points)
                raise

    def _append_locked(self, name: str, kind: ScalarKind, value: Any, step: int | None, t: float) -> None:
        self._reserve(1, f"metric {name!r}")
        self._append_point(name, kind, value, step, t)
        self._total += 1

    def _reserve(self, n: int, what: str) -> None:
        """Refuse if the run is closed; make room for ``n`` more points if a threshold is reached."""
        if self._closed:
            raise RunClosedError(f"{what}: the run is closed to new data")
        if self._total + n > self._limit:
            self._make_room(n)

    def _append_point(self, name: str, kind: ScalarKind, value: Any, step: int | None, t: float) -> None:
        """Append one point to its name's columns (room already made, weight counted by the caller)."""
        columns = self._columns_for(name, kind)
        n = columns.count
        if step is not None and step != n and columns.steps is None:
            # First explicit step of these pending points: materialise the automatic ones.
            columns.steps = array("q", range(columns.first, n))
            self._set_fast(columns, False)
        try:
            if columns.steps is not None:
                columns.steps.append(n if step is None else step)
            columns.values.append(value)
            columns.times.append(t)
        except BaseException:
            columns.repair()
            raise

    def _repair(self, names: Iterable[str]) -> None:
        for name in names:
            columns = self._columns.get(name)
            if columns is not None:
                columns.repair()

    def _set_fast(self, columns: PendingPoints, on: bool) -> None:
        columns.fast = on
        if on:
            self.fast[columns.name] = columns
        else:
            self.fast.pop(columns.name, None)

    def add_event(self, event: WireEvent, weight: int = 1, *, wait_for_room: bool = True) -> None:
        """A non-scalar event, after every point logged before it.

        The sender adds its heartbeats with ``wait_for_room=False``: it must
        never wait for room only it can make.
        """
        with self._lock:
            if self._closed:
                raise RunClosedError(f"{event.get('name') or event['type']!r}: the run is closed to new data")
            if wait_for_room and self._total >= self._limit:
                self._make_room(1)
            self._seal_all()
            self._sealed.append(event)
            self._total += weight

    def close(self, final: WireEvent | None = None) -> None:
        """Refuse further data; ``final`` (a status event) is the last thing buffered. Idempotent."""
        with self._lock:
            if self._closed:
                return
            if final is not None:
                self._seal_all()
                self._sealed.append(final)
                self._total += 1
            self._seal_all_rows()  # later dicts would start rows of their own, which a closed buffer refuses
            self._closed = True
            self._floats.clear()
            for columns in self._columns.values():
                self._set_fast(columns, False)

    @property
    def closed(self) -> bool:
        return self._closed

    def _columns_for(self, name: str, kind: ScalarKind) -> PendingPoints:
        rows = self._row_of.get(name)
        if rows is not None:
            self._cut_rows(rows)
        columns = self._columns.get(name)
        if columns is None:
            columns = self._columns[name] = PendingPoints(name, kind)
        elif columns.kind != kind:
            self._seal(columns)
            columns.kind = kind
            columns.values = _new_values(kind)
        if kind == "float":
            self._floats[name] = columns
        else:
            self._floats.pop(name, None)
        self._set_fast(columns, kind == "float" and columns.steps is None)
        return columns

    def _make_room(self, n: int) -> None:
        # Called with the lock held, when ``n`` more points would cross a threshold folded into _limit.
        if self._failure is not None:
            raise DeliveryError(f"the run's sender has stopped: {self._failure}") from self._failure
        more = min(n, self._max_points) - 1  # beyond the first point; a call larger than the buffer fits alone
        if self._total + more - self._drained >= self._flush_points:
            self._wake()
        if self._total + more - self._delivered < self._max_points:
            self._limit = self._delivered + self._max_points
            return
        self.blocked_calls += 1
        self.waiters += 1
        if self._relieve is not None:
            self._relieve()
        started = time.monotonic()
        try:
            room = self._changed.wait_for(
                lambda: self._total + more - self._delivered < self._max_points or self._failure is not None,
                timeout=self._wait_seconds,
            )
        finally:
            self.waiters -= 1
        self.blocked_seconds += time.monotonic() - started
        if self._failure is not None:
            raise DeliveryError(f"the run's sender has stopped: {self._failure}") from self._failure
        if not room:
            self.full_errors += 1
            raise BufferFullError(
                f"{self._total - self._delivered} points are waiting for Kafka, the maximum is "
                f"{self._max_points}; waited {self._wait_seconds}s for room"
            )
        self._update_limit()

    # --- the sender's side ------------------------------------------------

    def drain(self) -> tuple[list[Item], int]:
        """Everything pending, in order, and the weight mark to report delivered afterwards."""
        with self._lock:
            self._seal_all()
            items, self._sealed = self._sealed, []
            self._drained = self._total
            self._update_limit()
            return items, self._total

    def delivered(self, mark: int) -> None:
        """The sender delivered everything drained up to ``mark``."""
        with self._lock:
            self._delivered = max(self._delivered, mark)
            self._update_limit()
            self._changed.notify_all()

    def fail(self, error: BaseException) -> None:
        """The sender stopped for good; waiting callers get a DeliveryError."""
        with self._lock:
            self._failure = error
            self._limit = 0
            self._changed.notify_all()

    def mark(self) -> int:
        """The weight appended so far: flush waits until this much is delivered."""
        with self._lock:
            return self._total

    def pending(self) -> int:
        """Weight appended and not yet delivered."""
        with self._lock:
            return self._total - self._delivered

    def wait_delivered(self, mark: int, timeout_seconds: float) -> bool:
        """Block until ``mark`` is delivered (True), the sender failed, or the timeout (False)."""
        with self._lock:
            self._changed.wait_for(lambda: self._delivered >= mark or self._failure is not None, timeout_seconds)
            if self._delivered < mark and self._failure is not None:
                raise DeliveryError(f"the run's sender has stopped: {self._failure}") from self._failure
            return self._delivered >= mark

    def _update_limit(self) -> None:
        if self._failure is not None:
            self._limit = 0
        else:
            self._limit = min(self._drained + self._flush_points, self._delivered + self._max_points)

    def _seal_all(self) -> None:
        self._seal_all_rows()
        for columns in self._columns.values():
            if columns.times:
                self._seal(columns)

    def _seal(self, columns: PendingPoints) -> None:
        if not columns.times:
            return
        ordinals = range(columns.first, columns.count)
        steps = ordinals if columns.steps is None else columns.steps
        self._sealed.append(SealedPoints(columns.name, columns.kind, columns.values, steps, columns.times, ordinals))
        columns.values = _new_values(columns.kind)
        columns.steps = None
        columns.times = array("d")
        columns.first = ordinals.stop
        self._set_fast(columns, columns.kind == "float" and not self._closed)
