"""Read-your-writes: every read of the query service sees what this process wrote before it.

``run.log()`` returns once the point is in a buffer; the sender publishes it
to Kafka a moment later and ingest stores it a moment after that. A read made
in between (``run.complete(); run.get_metrics()``) would see some of the
run's data and not the rest, an answer that looks complete and is not. So
every read the SDK makes names what this process wrote and waits, bounded,
until ingest has stored it:

1. The :class:`Ledger` (one per process, :data:`LEDGER`) knows the producer
   sessions this process wrote with, by run, and for each the last ``seq`` it
   published (:attr:`producer._sender.Sender.seq`) and the highest seq the
   query service has confirmed stored.
2. A read covers runs: the run itself, or the children or the experiment's
   runs written here for a listing. Its sessions with buffered data are
   flushed first (in parallel), so their writes are in Kafka, or in the spool
   while Kafka is away, and their seqs final for this read.
3. The sessions not yet confirmed up to their seq go with the request as a
   read-after token (:mod:`runstream.consistency`), with ``Prefer: wait`` set
   to the time left. The query service answers once ingest has stored every
   listed seq (``producer_sessions.last_seq``, written in the transaction
   that stores the data), so the answer holds all of it.
4. On success the seqs count as confirmed, and the next read sends only what
   is new: a run read twice after ``complete()`` waits once, and a read of a
   run this process only attached to, without writing, sends no token at all.

The wait is bounded by ``LoggingOptions.read_consistency_seconds``
(``RUNSTREAM_READ_CONSISTENCY_SECONDS``, default 30 s) for flushing and
waiting together. Past it the read raises :class:`ReadConsistencyError`,
saying per session what ingest has stored against what the read needs, and
whether the rest is still in this process (undelivered, or spooled while Kafka
is unreachable). It never returns a partial answer. A token of more than
:data:`~runstream.consistency.MAX_READ_AFTER_SESSIONS` sessions (a listing of
hundreds of runs written here) is sent in several requests: all but the last
to ``GET /api/read-after``, the last with the read itself.

Every read of a run's or an experiment's data goes through :class:`Reader`
(``Run._reader()``): give it the runs the read covers. A new read method must
too, or it can answer without this process's latest writes.

A submitted script is another process, yet v1's flow reads what it wrote
right after ``wait_for_completion()`` (``get_metrics()``, ``get_children()``).
Its records for the submitted run itself come before the run's final status
on the run's partition, but the child runs it creates sit on other
partitions. So the script's process hands its ledger over: at exit it writes
its sessions to the directory named by :data:`ENV_HANDOFF_DIR`
(:func:`write_handoff`, one file per process, forked ones included), and the
submitter adopts them (:meth:`Ledger.adopt_handoff`) before it publishes the
final status; its reads then wait for them as for its own.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from producer._errors import QueryServiceError, ReadConsistencyError, SessionLag
from producer._http import Params, QueryClient
from producer._sender import Sender
from runstream.consistency import (
    INGEST_BEHIND,
    MAX_READ_AFTER_SESSIONS,
    MAX_READ_WAIT_SECONDS,
    PREFER_HEADER,
    READ_AFTER_HEADER,
    format_read_after,
    format_wait,
)

__all__ = ["ENV_HANDOFF_DIR", "LEDGER", "Ledger", "Reader", "write_handoff"]

#: In a submitted script's environment: the directory its processes leave their sessions in at exit.
ENV_HANDOFF_DIR = "RUNSTREAM_SESSIONS_HANDOFF"

T = TypeVar("T")
#: A request made with the given headers and socket timeout.
Request = Callable[[dict[str, str], float], T]


@dataclass(slots=True, eq=False)
class _Session:
    """One producer session of this process, as reads need it."""

    run_id: str
    session_id: str
    #: The live sender; None once retired (its run ended, or it is a forked parent's).
    sender: Sender | None
    #: Once retired: its last seq and what it left undelivered or spooled.
    seq: int = 0
    undelivered: int = 0
    spooled: int = 0
    spool: str | None = None
    #: The highest seq the query service has confirmed stored.
    confirmed: int = 0

    def required(self) -> int:
        return self.sender.seq if self.sender is not None else self.seq

    def retire(self, *, keep_local: bool) -> None:
        sender = self.sender
        if sender is None:
            return
        self.seq = sender.seq
        if keep_local:
            self.undelivered, self.spooled, self.spool = _held(sender)
        self.sender = None

    def held(self) -> tuple[int, int, str | None]:
        """(undelivered, spooled, spool file): what of this session is still in its process."""
        if self.sender is not None:
            return _held(self.sender)
        return self.undelivered, self.spooled, self.spool

    def lag(self, required: int, stored: int | None) -> SessionLag:
        """How far this session is from ``required``, ingest having stored up to ``stored``."""
        return SessionLag(self.run_id, self.session_id, required, stored, *self.held())


def _held(sender: Sender) -> tuple[int, int, str | None]:
    """(undelivered, spooled, spool file) of a session: what is still in this process."""
    spooled = max(0, sender.spooled - sender.replayed)
    spool = sender.spool_left.path if sender.spool_left is not None else None
    return sender.buffer.pending(), spooled, str(spool) if spool is not None else None


class Ledger:
    """The producer sessions this process wrote with, by run, and which runs they belong to.

    Sessions join when their sender starts (the first write), are retired when
    their run ends (keeping their last seq, not the sender), and leave once
    retired and confirmed stored: they can add nothing more to a token. The
    parent and experiment of every run written here are kept, for listings.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, list[_Session]] = {}
        self._by_session: dict[str, _Session] = {}
        self._experiments: dict[str, set[str]] = {}
        self._children: dict[str, set[str]] = {}

    def add(self, sender: Sender, *, experiment: str, parent_id: str | None) -> None:
        """A session whose sender just started, writing to ``sender.run_id``."""
        run_id = sender.run_id
        with self._lock:
            session = _Session(run_id, sender.session_id, sender)
            self._by_session[session.session_id] = session
            self._runs.setdefault(run_id, []).append(session)
            self._experiments.setdefault(experiment, set()).add(run_id)
            if parent_id is not None:
                self._children.setdefault(parent_id, set()).add(run_id)

    def retire(self, sender: Sender) -> None:
        """The session's sender has stopped: keep its last seq and what it could not deliver."""
        session = self._by_session.get(sender.session_id)
        if session is not None:
            session.retire(keep_local=True)

    def after_fork_in_child(self) -> None:
        """In a forked child the parent's senders are not ours to flush: keep only their seqs."""
        self._lock = threading.Lock()  # the parent's may have been held at the fork
        for session in self._by_session.values():
            session.retire(keep_local=False)

    def sessions(self, run_ids: Iterable[str]) -> list[_Session]:
        with self._lock:
            return [s for run_id in set(run_ids) for s in self._runs.get(run_id, ())]

    def children(self, run_id: str) -> set[str]:
        """The runs written here whose parent is ``run_id``."""
        with self._lock:
            return set(self._children.get(run_id, ()))

    def descendants(self, run_id: str) -> set[str]:
        """Children, grandchildren... of ``run_id`` among the runs written here."""
        found: set[str] = set()
        frontier = [run_id]
        with self._lock:
            while frontier:
                fresh = self._children.get(frontier.pop(), set()) - found - {run_id}
                found |= fresh
                frontier += fresh
        return found

    def experiment_runs(self, experiment: str) -> set[str]:
        """The runs of ``experiment`` written here."""
        with self._lock:
            return set(self._experiments.get(experiment, ()))

    def confirm(self, sessions: Iterable[_Session], seqs: dict[str, int]) -> None:
        """The query service has stored these seqs: later tokens leave them out."""
        with self._lock:
            for session in sessions:
                seq = seqs.get(session.session_id)
                if seq is None:
                    continue
                session.confirmed = max(session.confirmed, seq)
                if session.sender is None and session.confirmed >= session.seq and not session.undelivered:
                    self._forget(session)

    def export(self) -> list[dict[str, Any]]:
        """Every session not yet confirmed stored, with its run's experiment and parent (see :func:`write_handoff`)."""
        with self._lock:
            experiments = {run: name for name, runs in self._experiments.items() for run in runs}
            parents = {child: parent for parent, children in self._children.items() for child in children}
            return [
                {
                    "run": s.run_id,
                    "session": s.session_id,
                    "seq": s.required(),
                    "experiment": experiments.get(s.run_id),
                    "parent": parents.get(s.run_id),
                    **dict(zip(("undelivered", "spooled", "spool"), s.held(), strict=True)),
                }
                for s in self._by_session.values()
                if s.required() > s.confirmed
            ]

    def adopt(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Another process's sessions (its :meth:`export`), retired: reads here wait for them too."""
        with self._lock:
            for entry in entries:
                run_id, session_id, seq = entry["run"], entry["session"], int(entry["seq"])
                session = self._by_session.get(session_id)
                if session is None:
                    session = _Session(run_id, session_id, None)
                    self._by_session[session_id] = session
                    self._runs.setdefault(run_id, []).append(session)
                if session.sender is None:
                    session.seq = max(session.seq, seq)
                    session.undelivered, session.spooled = int(entry["undelivered"]), int(entry["spooled"])
                    session.spool = entry["spool"]
                if entry.get("experiment"):
                    self._experiments.setdefault(entry["experiment"], set()).add(run_id)
                if entry.get("parent"):
                    self._children.setdefault(entry["parent"], set()).add(run_id)

    def adopt_handoff(self, directory: Path) -> None:
        """Adopt what a submitted script's processes left in ``directory``, then remove it."""
        for path in sorted(directory.glob("*.json")):
            try:
                entries = json.loads(path.read_bytes())
                self.adopt(entries)
            except (OSError, ValueError, TypeError, KeyError):
                continue  # a process killed while writing: its data may simply not be waited for
            finally:
                path.unlink(missing_ok=True)

    def _forget(self, session: _Session) -> None:
        self._by_session.pop(session.session_id, None)
        kept = [s for s in self._runs.get(session.run_id, ()) if s is not session]
        if kept:
            self._runs[session.run_id] = kept
        else:
            self._runs.pop(session.run_id, None)


#: This process's ledger (:mod:`producer._process` resets it in a forked child).
LEDGER = Ledger()


def write_handoff() -> None:
    """At exit of a submitted script's process: leave its sessions for the submitter (see the module doc)."""
    directory = os.environ.get(ENV_HANDOFF_DIR)
    entries = LEDGER.export() if directory else []
    if not directory or not entries:
        return
    target = Path(directory) / f"{os.getpid()}.json"
    partial = target.with_suffix(".part")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(entries, out)
        os.replace(partial, target)
    except OSError:
        return  # the submitter's reads then wait only for what it wrote itself


class Reader:
    """Reads of the query service that see this process's writes to the runs they cover."""

    def __init__(self, http: QueryClient, wait_seconds: float, ledger: Ledger = LEDGER) -> None:
        self._http = http
        self._wait = wait_seconds
        self._ledger = ledger

    def get_json(self, path: str, params: Params | None = None, *, runs: Collection[str]) -> Any:
        """``GET path`` once ingest has stored what this process wrote to ``runs``."""
        return self._read(
            f"GET {path}",
            runs,
            lambda headers, timeout: self._http.get_json(path, params, headers=headers, timeout_seconds=timeout),
        )

    def get_bytes(self, path: str, *, runs: Collection[str]) -> bytes:
        """A small file's content once ingest has stored what this process wrote to ``runs``."""
        return self._read(
            f"GET {path}",
            runs,
            lambda headers, timeout: self._http.get_bytes(path, headers=headers, timeout_seconds=timeout),
        )

    def download(self, path: str, destination: Path, *, runs: Collection[str]) -> None:
        """Download ``path`` to ``destination`` once ingest has stored what this process wrote to ``runs``."""
        self._read(
            f"GET {path}",
            runs,
            lambda headers, timeout: self._http.download(path, destination, headers=headers, timeout_seconds=timeout),
        )

    def pages(self, path: str, params: Params, *, runs: Collection[str]) -> Iterator[dict[str, Any]]:
        """Every page of a listing that follows ``next_cursor``; the first waits, so all see the writes."""
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        page = self.get_json(path, pairs, runs=runs)
        while True:
            yield page
            cursor = page.get("next_cursor")
            if not cursor:
                return
            page = self._http.get_json(path, [*pairs, ("cursor", cursor)])

    def _read(self, what: str, runs: Collection[str], request: Request[T]) -> T:
        started = time.monotonic()
        deadline = started + self._wait
        sessions = self._ledger.sessions(runs) if runs else []
        self._flush(what, sessions, started, deadline)
        token = {s.session_id: seq for s in sessions if (seq := s.required()) > s.confirmed}
        if not token:
            return request({}, self._http.timeout_seconds)
        pairs = list(token.items())
        chunks = [dict(pairs[n : n + MAX_READ_AFTER_SESSIONS]) for n in range(0, len(pairs), MAX_READ_AFTER_SESSIONS)]
        try:
            for chunk in chunks[:-1]:
                self._with_token(chunk, deadline, self._barrier)
            result = self._with_token(chunks[-1], deadline, request)
        except QueryServiceError as exc:
            if exc.code != INGEST_BEHIND:
                raise
            raise self._behind(what, sessions, token, exc, time.monotonic() - started) from None
        self._ledger.confirm(sessions, token)
        return result

    def _flush(self, what: str, sessions: list[_Session], started: float, deadline: float) -> None:
        """Deliver what the sessions buffered (all at once); raise if some is still here at the deadline.

        A session whose run ended with data it never delivered (no spool, and
        Kafka away past ``complete()``'s timeout) can never be read whole:
        that raises at once.
        """
        lost = [s for s in sessions if s.sender is None and s.undelivered]
        if lost:
            raise ReadConsistencyError(what, 0.0, [s.lag(s.required(), None) for s in lost])
        marks: list[tuple[_Session, Sender, int]] = []
        for session in sessions:
            sender = session.sender
            if sender is not None and sender.buffer.pending():
                marks.append((session, sender, sender.buffer.mark()))
                sender.wake()
        late = [
            session
            for session, sender, mark in marks
            if not sender.buffer.wait_delivered(mark, max(0.0, deadline - time.monotonic()))
        ]
        if late:
            lag = [s.lag(s.required(), None) for s in late]
            raise ReadConsistencyError(what, time.monotonic() - started, lag)

    def _barrier(self, headers: dict[str, str], timeout: float) -> None:
        self._http.get_json("/api/read-after", headers=headers, timeout_seconds=timeout)

    def _with_token(self, token: dict[str, int], deadline: float, request: Request[T]) -> T:
        """``request`` with the token; asked again while the service's cap on a wait is below ours."""
        while True:
            left = max(0.0, deadline - time.monotonic())
            wait = min(left, MAX_READ_WAIT_SECONDS)
            headers = {READ_AFTER_HEADER: format_read_after(token), PREFER_HEADER: format_wait(wait)}
            try:
                return request(headers, wait + self._http.timeout_seconds)
            except QueryServiceError as exc:
                if exc.code != INGEST_BEHIND or left <= wait:
                    raise

    @staticmethod
    def _behind(
        what: str, sessions: list[_Session], token: dict[str, int], exc: QueryServiceError, waited: float
    ) -> ReadConsistencyError:
        stored: dict[str, int] = {}
        body = exc.body if isinstance(exc.body, dict) else {}
        for entry in (body.get("lag") or {}).get("sessions") or ():
            if isinstance(entry, dict) and isinstance(entry.get("stored_seq"), int):
                stored[str(entry.get("session"))] = entry["stored_seq"]
        # The service lists the sessions still behind; the others are stored (or in a chunk not asked).
        behind = [s for s in sessions if s.session_id in stored] or [s for s in sessions if s.session_id in token]
        return ReadConsistencyError(
            what, waited, [s.lag(token[s.session_id], stored.get(s.session_id)) for s in behind]
        )
