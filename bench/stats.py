"""Repetition: a figure is the median of several runs, reported with its min and max."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Stats", "percentile"]


@dataclass(frozen=True)
class Stats:
    """The values of one figure over its repetitions."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Stats:
        kept = tuple(float(v) for v in values)
        if not kept:
            raise ValueError("a figure needs at least one measured value")
        return cls(kept)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def to_json(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "n": len(self.values),
            "values": list(self.values),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Stats:
        return cls(tuple(doc["values"]))


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of unsorted samples."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
