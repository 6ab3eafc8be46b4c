"""What one flush writes, worked out in memory before any SQL runs.

The planner walks the flush's records in consumption order against the state
read at the start of the transaction (runs, series, producer sessions) and
folds them into a :class:`Plan`: new experiments and runs, one final update per
run, status history, series to create or widen, and the columns to COPY.

Each record's seq is first checked against its producer session
(:mod:`ingest._sessions`: a duplicate is dropped, a seq far beyond the
session's is refused as ``seq_gap``), then its content *checked* against that
state without changing it, then *applied*; a record that cannot be stored
(events for a run nobody started, a metric whose type clashes with its series)
becomes a dead letter as a whole and leaves no trace in the plan but its seq,
so the records around it are unaffected. A batch for a run that is started
only later in the same flush (read from another partition, around a
partition change) gets a second try at the end of the flush.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson

from runstream.chunks import PointColumns
from runstream.events import (
    EVENT_TYPES,
    TERMINAL_STATUSES,
    Batch,
    BatchHeader,
    DecodedEvent,
    encode_json_value,
    widened_kind,
)

from ._decoder import DeadLetter, Decoded
from ._sessions import SessionState, Verdict
from ._status import accepts

__all__ = ["Plan", "RunState", "RunUpdate", "SeriesKey", "SeriesState", "build_plan"]

SeriesKey = tuple[str, str]  # (run id, series name)


@dataclass(slots=True)
class RunState:
    """What the planner needs to know about a stored run."""

    status: str


@dataclass(slots=True)
class SeriesState:
    """A series as stored (``id`` set) or as this flush will create it."""

    id: int | None
    kind: str
    value_type: str | None
    next_position: int = 0


@dataclass(slots=True)
class RunUpdate:
    """The net effect of a flush on one existing or new run."""

    status: str | None = None
    ended_at: float | None = None
    error: Any = None
    heartbeat_at: float | None = None
    tags: dict[str, str | None] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    display_name: str | None = None  # None: unchanged
    description: str | None = None


@dataclass(slots=True)
class NewRun:
    run_id: str
    experiment: str
    display_name: str | None
    parent_id: str | None
    time: float


@dataclass(slots=True)
class PointParts:
    """Points of one series in this flush: each event's :class:`PointColumns`, in order.

    The arrays are joined once, when the flush is written (:meth:`joined`),
    rather than appended to point by point.
    """

    parts: list[PointColumns] = field(default_factory=list)

    def joined(self, *, is_text: bool) -> PointColumns:
        """One set of columns: steps int64, times float64, ordinals int64, values float64 or a list of str."""
        if len(self.parts) == 1:  # with many live series, most series get one event per flush: nothing to join
            part = self.parts[0]
            one = list(part.values) if is_text else np.asarray(part.values, dtype=np.float64)
            return PointColumns(part.steps, part.times, part.ordinals, one)
        steps, times, ordinals, values = zip(*self.parts, strict=True)
        joined_values = [v for part in values for v in part] if is_text else np.concatenate(values, dtype=np.float64)
        return PointColumns(np.concatenate(steps), np.concatenate(times), np.concatenate(ordinals), joined_values)


@dataclass(slots=True)
class Plan:
    """Everything one transaction writes."""

    dead: list[DeadLetter] = field(default_factory=list)
    batches: int = 0
    duplicates: int = 0
    lost_seqs: int = 0  # seqs of sessions given up as lost (see _sessions)
    recovered_seqs: int = 0  # seqs counted lost before that arrived after all
    points: int = 0
    ignored_statuses: int = 0
    experiments: set[str] = field(default_factory=set)
    new_runs: dict[str, NewRun] = field(default_factory=dict)
    run_updates: dict[str, RunUpdate] = field(default_factory=dict)
    history: list[tuple[str, str, float, str | None]] = field(default_factory=list)
    series: dict[SeriesKey, SeriesState] = field(default_factory=dict)
    widened: set[SeriesKey] = field(default_factory=set)
    scalars: dict[SeriesKey, PointParts] = field(default_factory=dict)
    # (series key, time, position, JSON text)
    entries: list[tuple[SeriesKey, float, int, str]] = field(default_factory=list)
    # the sessions whose seen seqs changed, as they are now
    sessions: dict[str, SessionState] = field(default_factory=dict)


class _Reject(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def build_plan(
    records: Iterable[Decoded | DeadLetter],
    runs: Mapping[str, RunState],
    series: Mapping[SeriesKey, SeriesState],
    sessions: Mapping[str, SessionState],
    *,
    epoch: int = 1,
) -> Plan:
    """Fold ``records`` into a plan; the mappings are the stored state (not modified).

    ``epoch`` is the topic incarnation the records were read in (see _sessions).
    """
    plan = Plan()
    planner = _Planner(plan, dict(runs), series, sessions, epoch)
    for record in records:
        if isinstance(record, DeadLetter):
            planner.dead(record)
        else:
            planner.add(record)
    planner.retry_deferred()
    return plan


class _Planner:
    def __init__(
        self,
        plan: Plan,
        runs: dict[str, RunState],
        stored_series: Mapping[SeriesKey, SeriesState],
        stored_sessions: Mapping[str, SessionState],
        epoch: int,
    ) -> None:
        self.plan = plan
        self.runs = runs
        self.stored_series = stored_series
        self.stored_sessions = stored_sessions
        self.epoch = epoch
        self.deferred: list[Decoded] = []

    def dead(self, letter: DeadLetter) -> None:
        """A record the decoder refused: dead-lettered whatever its seq, which it used up if it had one."""
        self.plan.dead.append(letter)
        header = letter.header
        if (
            header is not None
            and self._session(header.session_id, header.run_id).verdict(header.seq, self.epoch) is Verdict.NEW
        ):
            self._mark(header.session_id, header.run_id, header.seq)

    def add(self, record: Decoded, *, last_try: bool = False) -> None:
        batch = record.batch
        verdict = self._session(batch.session_id, batch.run_id).verdict(batch.seq, self.epoch)
        if verdict is Verdict.DUPLICATE:
            self.plan.duplicates += 1
            return
        if verdict is Verdict.GAP:
            stored = self._session(batch.session_id, batch.run_id)
            self.plan.dead.append(
                DeadLetter(
                    record.source,
                    "seq_gap",
                    f"session {batch.session_id} numbers its batches without gaps: seq {batch.seq} is more than"
                    f" allowed above its last seq {stored.last_seq} (a forged or corrupt record)",
                    _header(batch),
                )
            )
            return
        try:
            self._check(batch.run_id, batch.events)
        except _Reject as exc:
            if exc.reason == "unknown_run" and not last_try:
                self.deferred.append(record)  # its run_started may come later in this flush
                return
            self.plan.dead.append(DeadLetter(record.source, exc.reason, str(exc), _header(batch)))
            self._mark(batch.session_id, batch.run_id, batch.seq)
            return
        self._mark(batch.session_id, batch.run_id, batch.seq)
        self.plan.batches += 1
        self.plan.points += record.points
        for event in batch.events:
            _APPLY[event["type"]](self, batch.run_id, event)
        if batch.run_id in self.runs:
            self._update(batch.run_id)  # every run heard from gets seen_at = now()
            self._resume(batch.run_id, batch.events)

    def retry_deferred(self) -> None:
        """Batches whose run was unknown when their turn came: started since, or dead letters."""
        deferred, self.deferred = self.deferred, []
        for record in deferred:
            self.add(record, last_try=True)

    def _session(self, session_id: str, run_id: str) -> SessionState:
        return self.plan.sessions.get(session_id) or self.stored_sessions.get(session_id) or SessionState(run_id)

    def _mark(self, session_id: str, run_id: str, seq: int) -> None:
        state = self.plan.sessions.get(session_id)
        if state is None:
            state = self.plan.sessions[session_id] = self._session(session_id, run_id).copy()
        marked = state.mark(seq, self.epoch)
        self.plan.lost_seqs += marked.lost
        self.plan.recovered_seqs += marked.recovered

    # --- checks (read-only) ---------------------------------------------------

    def _series_state(self, key: SeriesKey) -> SeriesState | None:
        return self.plan.series.get(key) or self.stored_series.get(key)

    def _check(self, run_id: str, events: list[DecodedEvent]) -> None:
        known = run_id in self.runs
        seen: dict[str, tuple[str, str | None]] = {}
        for event in events:
            kind = event["type"]
            if kind == "run_started":
                known = True
            elif not known:
                raise _Reject("unknown_run", f"run {run_id} has a {kind} event before any run_started")
            series = EVENT_TYPES[kind].series
            if series is None:
                continue
            wanted: tuple[str, str | None] = (series, event["kind"] if series == "scalar" else None)
            name = event["name"]
            state = self._series_state((run_id, name))
            have = seen.get(name) or ((state.kind, state.value_type) if state else None)
            seen[name] = _merge_types(run_id, name, have, wanted)

    # --- application ----------------------------------------------------------

    def _update(self, run_id: str) -> RunUpdate:
        update = self.plan.run_updates.get(run_id)
        if update is None:
            update = self.plan.run_updates[run_id] = RunUpdate()
        return update

    def _set_status(self, run_id: str, status: str, time: float, error: Any) -> None:
        state = self.runs[run_id]
        if not accepts(state.status, status):
            self.plan.ignored_statuses += 1
            return
        state.status = status
        update = self._update(run_id)
        update.status = status
        error_json = None if error is None else orjson.dumps(encode_json_value(error)).decode()
        if error is not None:
            update.error = error_json
        if status in TERMINAL_STATUSES:
            update.ended_at = time
        self.plan.history.append((run_id, status, time, error_json))

    def _resume(self, run_id: str, events: list[DecodedEvent]) -> None:
        """A NotResponding run that sends anything (but a status) is Running again."""
        if self.runs[run_id].status != "NotResponding" or not events:
            return
        if any(e["type"] == "status" for e in events):
            return  # the producer said what its status is
        times = [float(e["times"].max()) for e in events if e["type"] == "scalars" and len(e["times"])]
        times += [float(e["time"]) for e in events if "time" in e]
        if times:
            self._set_status(run_id, "Running", max(times), None)

    def _run_started(self, run_id: str, event: DecodedEvent) -> None:
        if run_id in self.runs:
            return  # a resumed or replayed start: the run and its status stand
        self.runs[run_id] = RunState("Running")
        self.plan.experiments.add(event["experiment"])
        self.plan.new_runs[run_id] = NewRun(
            run_id, event["experiment"], event.get("display_name"), event.get("parent"), float(event["time"])
        )
        self.plan.history.append((run_id, "Running", float(event["time"]), None))

    def _status(self, run_id: str, event: DecodedEvent) -> None:
        self._set_status(run_id, event["status"], float(event["time"]), event.get("error"))

    def _heartbeat(self, run_id: str, event: DecodedEvent) -> None:
        time = float(event["time"])
        update = self._update(run_id)
        if update.heartbeat_at is None or time > update.heartbeat_at:
            update.heartbeat_at = time
        if self.runs[run_id].status == "NotResponding":
            self._set_status(run_id, "Running", time, None)

    def _tags(self, run_id: str, event: DecodedEvent) -> None:
        self._update(run_id).tags.update(event["tags"])

    def _run_updated(self, run_id: str, event: DecodedEvent) -> None:
        update = self._update(run_id)  # the last of a flush wins: a run's events keep their order
        update.display_name = event.get("display_name", update.display_name)
        update.description = event.get("description", update.description)

    def _properties(self, run_id: str, event: DecodedEvent) -> None:
        props = self._update(run_id).properties
        for key, value in event["properties"].items():
            props.setdefault(key, value)  # add only: the first value wins

    def _series(self, key: SeriesKey, kind: str, value_type: str | None) -> SeriesState:
        state = self.plan.series.get(key)
        if state is None:
            stored = self.stored_series.get(key)
            if stored is None:
                state = SeriesState(None, kind, value_type)
            else:
                state = SeriesState(stored.id, stored.kind, stored.value_type, stored.next_position)
            self.plan.series[key] = state
        stored_type = state.value_type
        if kind == "scalar" and stored_type is not None and value_type is not None and stored_type != value_type:
            # _check let through only a change that widens (int to float): the stored points change type.
            state.value_type = widened_kind(stored_type, value_type)
            if state.value_type != stored_type:
                self.plan.widened.add(key)
        return state

    def _scalars(self, run_id: str, event: DecodedEvent) -> None:
        if not len(event["steps"]):
            return
        key = (run_id, event["name"])
        self._series(key, "scalar", event["kind"])
        columns = self.plan.scalars.get(key)
        if columns is None:
            columns = self.plan.scalars[key] = PointParts()
        columns.parts.append(PointColumns(event["steps"], event["times"], event["ordinals"], event["values"]))

    def _entry(self, run_id: str, event: DecodedEvent) -> None:
        spec = EVENT_TYPES[event["type"]]
        assert spec.series is not None and spec.entry is not None  # noqa: S101 - _APPLY sends only entries here
        state = self._series((run_id, event["name"]), spec.series, None)
        # Non-finite floats keep their wire encoding: jsonb cannot hold NaN.
        value = orjson.dumps(encode_json_value(event[spec.entry])).decode()
        self.plan.entries.append(((run_id, event["name"]), float(event["time"]), state.next_position, value))
        state.next_position += 1


def _header(batch: Batch) -> BatchHeader:
    return BatchHeader(batch.run_id, batch.session_id, batch.seq)


def _merge_types(
    run_id: str, name: str, have: tuple[str, str | None] | None, wanted: tuple[str, str | None]
) -> tuple[str, str | None]:
    if have is None or have == wanted:
        return wanted
    if have[0] == wanted[0] == "scalar" and have[1] is not None and wanted[1] is not None:
        kept = widened_kind(have[1], wanted[1])
        if kept is not None:
            return ("scalar", kept)
    raise _Reject(
        "type_conflict",
        f"run {run_id} series {name!r} holds {_describe(have)}, the record logs {_describe(wanted)}",
    )


def _describe(kind: tuple[str, str | None]) -> str:
    return f"{kind[1]} scalars" if kind[0] == "scalar" else f"{kind[0]} entries"


#: How each event type changes the plan: run-level types each their own way, every entry type as an entry.
_APPLY: Final = {
    "run_started": _Planner._run_started,
    "status": _Planner._status,
    "heartbeat": _Planner._heartbeat,
    "tags": _Planner._tags,
    "properties": _Planner._properties,
    "run_updated": _Planner._run_updated,
    "scalars": _Planner._scalars,
    **{kind: _Planner._entry for kind, spec in EVENT_TYPES.items() if spec.entry is not None},
}
