"""Drop resent copies of batches: the rule ingest applies, for anyone reading the events topic.

A producer session numbers its batches 1, 2, 3... without gaps, and a batch
sent again (a retry after a timeout, spool replay, ``runstream sync``) keeps
its number. So a batch is a *duplicate* iff its ``(session, seq)`` was seen
before, and a consumer that drops duplicates counts exactly what ingest stores
(docs/events.md).

Per session the :class:`Deduplicator` keeps a watermark (every seq up to it is
seen) and the few seqs seen above it: batches arrive in order within a
partition, so that set is empty except around a partition change. Memory is
one small entry per session; :meth:`Deduplicator.forget` drops a session
whose run has ended, and :meth:`Deduplicator.state` /
:meth:`Deduplicator.from_state` let a consumer checkpoint the seen seqs
beside its offsets (commit both together, as ingest does in one transaction).

Ingest additionally refuses a seq implausibly far ahead of its session
(a forged one; see ``ingest._sessions``); a consumer of a trusted topic does
not meet one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runstream.events import Batch, BatchHeader

__all__ = ["Deduplicator"]


@dataclass(slots=True)
class _Seen:
    last_seq: int = 0
    above: set[int] = field(default_factory=set)

    def add(self, seq: int) -> bool:
        if seq <= self.last_seq or seq in self.above:
            return False
        self.above.add(seq)
        while self.last_seq + 1 in self.above:
            self.last_seq += 1
            self.above.discard(self.last_seq)
        return True


class Deduplicator:
    """Remembers the ``(session, seq)`` of the batches seen; :meth:`accept` says whether one is new.

    ::

        dedupe = Deduplicator()
        for record in consumer:
            batch = decode_batch(record.value)
            if dedupe.accept(batch):
                handle(batch)          # each batch exactly once
    """

    def __init__(self) -> None:
        self._sessions: dict[str, _Seen] = {}
        #: Batches :meth:`accept` refused as already seen.
        self.duplicates = 0

    def accept(self, batch: Batch | BatchHeader) -> bool:
        """True the first time a batch's ``(session_id, seq)`` is seen (and marks it seen), else False."""
        if batch.seq < 1:
            raise ValueError(f"seq must be positive, got {batch.seq}")
        new = self._sessions.setdefault(batch.session_id, _Seen()).add(batch.seq)
        if not new:
            self.duplicates += 1
        return new

    def seen(self, session_id: str, seq: int) -> bool:
        """Whether the batch ``seq`` of ``session_id`` was accepted before."""
        state = self._sessions.get(session_id)
        return state is not None and (seq <= state.last_seq or seq in state.above)

    def forget(self, session_id: str) -> None:
        """Drop a session's state (its run ended and no copy of its batches can still come)."""
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        """The number of sessions remembered."""
        return len(self._sessions)

    def state(self) -> dict[str, list[int]]:
        """A JSON-able checkpoint: ``{session: [last_seq, seqs seen above it...]}``."""
        return {session: [s.last_seq, *sorted(s.above)] for session, s in self._sessions.items()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Deduplicator:
        """A deduplicator that remembers what :meth:`state` returned."""
        out = cls()
        for session, seqs in state.items():
            if not (isinstance(seqs, list) and seqs and all(type(s) is int and s >= 0 for s in seqs)):
                raise ValueError(f"session {session!r}: expected [last_seq, seqs above...], got {seqs!r}"[:200])
            out._sessions[str(session)] = _Seen(seqs[0], set(seqs[1:]))
        return out
