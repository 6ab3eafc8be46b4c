"""Which batches of a producer session ingest has seen: exact dedupe, checked sequence numbers.

A producer session numbers its batches 1, 2, 3... without gaps (the SDK's
sender; a batch split on MessageSizeTooLarge gets consecutive numbers, spool
replay and ``runstream sync`` resend the same bytes, a forked process gets a
new session). Ingest keeps, per session (``producer_sessions``):

* ``last_seq``: every seq up to it has been seen (stored, or dead-lettered for
  its content: a bad batch still uses up its number);
* ``ahead``: the seqs seen above ``last_seq + 1``, as ranges. Batches arrive in
  order within a partition, so this is empty except around a partition change
  or a replaced topic, when a session's batches may be read out of order;
  the ranges make the dedupe exact all the same, where a high-water mark would
  take the late ones for duplicates;
* ``epoch``: the topic incarnation (:mod:`ingest._incarnation`) of its last
  update;
* ``floor``: the seqs up to it that were unseen when the topic was replaced
  have been counted as lost already (see below).

A batch is a *duplicate* iff its seq was seen. A seq more than
:data:`MAX_SEQ_GAP` above ``last_seq`` cannot come from a producer that numbers
without gaps: it is refused (``seq_gap``) and changes nothing, so a forged
``seq = 2**63 - 1`` cannot make a live session's later batches look like
duplicates. Legitimate gaps exist only where Kafka lost records: when the
topic was replaced (a new epoch), a session's first batch in the new epoch may
jump up to :data:`MAX_REANCHOR_GAP`, and the seqs it skips are counted as
lost at once: that is what an operator needs to hear when it happens. They
are not all lost, though: the new topic need not hold a session's batches in
seq order (a send still in an old producer client's hands can land after the
spool's replay of later ones), so a skipped seq that arrives later is stored
and counted as *recovered*. Gaps of up to :data:`SEQ_PATIENCE` seqs stay open
for that; a longer one is closed at once. Should a gap ever stay open while
the session goes on (ingest knew of no data loss), it is given up once
:data:`SEQ_PATIENCE` later batches are seen, and counted too, rather than
refusing the session's data for ever.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, NamedTuple

__all__ = ["MAX_REANCHOR_GAP", "MAX_SEQ_GAP", "SEQ_PATIENCE", "Marked", "SessionState", "Verdict"]

#: How far above the last seq a batch may be. Ordered delivery makes it 1; the
#: room is for batches read out of order around a partition change.
MAX_SEQ_GAP: Final = 10_000
#: How far a session's first batch after Kafka lost data may jump (more than any
#: session could have published; 2**63 - 1 is still refused).
MAX_REANCHOR_GAP: Final = 2**40
#: Batches seen above a gap before the gap is given up as lost.
SEQ_PATIENCE: Final = 1_000


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    GAP = "gap"


class Marked(NamedTuple):
    """What marking a seq changed in the count of lost ones."""

    lost: int  # seqs given up as lost
    recovered: int  # seqs counted lost at a topic change that arrived after all


@dataclass(slots=True)
class SessionState:
    """One session's seen seqs (see the module docstring); ``epoch`` 0: nothing stored yet."""

    run_id: str
    last_seq: int = 0
    ahead: list[int] = field(default_factory=list)  # [lo, hi, lo, hi, ...], sorted, disjoint, lo > last_seq + 1
    epoch: int = 0
    floor: int = 0

    def copy(self) -> SessionState:
        return SessionState(self.run_id, self.last_seq, list(self.ahead), self.epoch, self.floor)

    @property
    def max_seq(self) -> int:
        return self.ahead[-1] if self.ahead else self.last_seq

    def seen(self, seq: int) -> bool:
        if seq <= self.last_seq:
            return True
        i = bisect.bisect_right(self.ahead, seq)
        # Inside a range when seq falls after a lo (odd insertion point), or on a hi.
        return i % 2 == 1 or (i > 0 and self.ahead[i - 1] == seq)

    def verdict(self, seq: int, epoch: int) -> Verdict:
        """What to do with a batch numbered ``seq`` read in topic epoch ``epoch``."""
        if self.seen(seq):
            return Verdict.DUPLICATE
        limit = MAX_REANCHOR_GAP if self._reanchors(epoch) else MAX_SEQ_GAP
        if seq - self.last_seq <= limit:
            return Verdict.NEW
        if self._ahead_count() >= SEQ_PATIENCE and seq - self.max_seq <= MAX_SEQ_GAP:
            return Verdict.NEW  # the session goes on past a gap that never filled
        return Verdict.GAP

    def mark(self, seq: int, epoch: int) -> Marked:
        """Record ``seq`` (its verdict was NEW) as seen; say what that did to the lost count."""
        lost = 0
        recovered = int(seq <= self.floor)  # unseen (its verdict was NEW), so counted lost before
        if self._reanchors(epoch) and seq > self.last_seq + 1:
            # The first batch since Kafka lost data: the seqs below it that were
            # not seen went with the old topic, or come later in the new one.
            counted = max(self.last_seq, self.floor)
            lost += max(0, seq - 1 - counted - self._seen_between(counted, seq))
            self.floor = max(self.floor, seq - 1)
            if seq - self.last_seq > SEQ_PATIENCE:  # too wide to keep open
                self._split(seq)
                self.last_seq = seq - 1
        self.epoch = max(self.epoch, epoch)
        self._insert(seq)
        while self.ahead and self.ahead[-1] - self.last_seq > MAX_SEQ_GAP:
            # A gap the session has long gone past (see verdict): give it up. Its
            # part up to ``floor`` was counted at the topic change.
            lost += max(0, self.ahead[0] - 1 - max(self.last_seq, self.floor))
            self.last_seq = self.ahead[1]
            del self.ahead[:2]
        return Marked(lost, recovered)

    def _seen_between(self, low: int, high: int) -> int:
        """How many seqs above ``low`` and below ``high`` (unseen itself) ``ahead`` holds."""
        ranges = self.ahead
        return sum(max(0, min(ranges[i + 1], high - 1) - max(ranges[i], low + 1) + 1) for i in range(0, len(ranges), 2))

    def _reanchors(self, epoch: int) -> bool:
        # A session stored in an earlier epoch, or a new one once Kafka has lost data at least once.
        return self.epoch < epoch and (self.epoch > 0 or epoch > 1)

    def _ahead_count(self) -> int:
        return _count(self.ahead)

    def _split(self, seq: int) -> list[int]:
        """Remove and return the ranges below ``seq``."""
        i = bisect.bisect_left(self.ahead[::2], seq) * 2
        below, self.ahead = self.ahead[:i], self.ahead[i:]
        return below

    def _insert(self, seq: int) -> None:
        ranges = self.ahead
        i = bisect.bisect_left(ranges[::2], seq) * 2  # index of the first range starting after seq
        joins_before = i > 0 and ranges[i - 1] == seq - 1
        joins_after = i < len(ranges) and ranges[i] == seq + 1
        if joins_before and joins_after:
            ranges[i - 1 : i + 1] = []  # seq fills the hole between two ranges
        elif joins_before:
            ranges[i - 1] = seq
        elif joins_after:
            ranges[i] = seq
        else:
            ranges[i:i] = [seq, seq]
        if ranges and ranges[0] == self.last_seq + 1:
            self.last_seq = ranges[1]
            del ranges[:2]


def _count(ranges: list[int]) -> int:
    return sum(ranges[i + 1] - ranges[i] + 1 for i in range(0, len(ranges), 2))
