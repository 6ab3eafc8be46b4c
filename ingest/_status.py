"""The rules for run status changes: a status never moves backwards.

Statuses are ranked along a run's life. A change is applied when the new
status ranks at least as high as the current one, so late or replayed events
cannot undo progress; terminal statuses never change again. ``NotResponding``
shares ``Running``'s rank, so a run that resumes sending goes back to
``Running``, while ``Failed`` (a terminal status) is final.
"""

from __future__ import annotations

from typing import Final

from runstream.events import TERMINAL_STATUSES

__all__ = ["accepts"]

_RANK: Final = {
    "NotStarted": 0,
    "Queued": 1,
    "Starting": 2,
    "Running": 3,
    "NotResponding": 3,
    "Finalizing": 4,
    "CancelRequested": 4,
    "Completed": 5,
    "Failed": 5,
    "Canceled": 5,
}


def accepts(current: str | None, new: str) -> bool:
    """Whether a run in ``current`` (None: no run yet) moves to ``new``."""
    if current is None:
        return True
    if current == new or current in TERMINAL_STATUSES:
        return False
    return _RANK.get(new, -1) >= _RANK.get(current, -1)
