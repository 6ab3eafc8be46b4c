"""One row of the results table: a runstream figure, its baseline, the ratio and the bar it must meet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from bench.stats import Stats

__all__ = ["Bar", "Row", "missing"]

Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Bar:
    """A target from the issues. ``kind``: ``max``/``min`` bound runstream's median,
    ``ratio`` bounds the ratio (how many times better than the baseline, or the
    fraction of it for a floor)."""

    kind: Literal["max", "min", "ratio"]
    target: float
    text: str

    def holds(self, median: float, ratio: float | None) -> bool | None:
        if self.kind == "max":
            return median <= self.target
        if self.kind == "min":
            return median >= self.target
        return None if ratio is None else ratio >= self.target


@dataclass
class Row:
    """A figure as the table shows it. ``ratio_kind``: ``times`` = how many times
    better runstream is than the baseline; ``fraction`` = runstream / baseline
    (for a floor such as raw COPY)."""

    key: str
    figure: str
    unit: str
    runstream: Stats | None = None
    baseline_name: str | None = None
    baseline: Stats | None = None
    ratio_kind: Literal["times", "fraction"] = "times"
    bars: list[Bar] = field(default_factory=list)
    note: str = ""
    missing: str = ""  # why runstream's side could not be measured
    baseline_missing: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def better(self) -> Better:
        """A rate (a unit per second) is better higher; times, sizes and memory lower."""
        return "higher" if self.unit.endswith("/s") else "lower"

    @property
    def ratio(self) -> float | None:
        if self.runstream is None or self.baseline is None:
            return None
        ours, theirs = self.runstream.median, self.baseline.median
        if self.ratio_kind == "fraction":
            return ours / theirs if theirs else None
        if self.better == "lower":
            return theirs / ours if ours else None
        return ours / theirs if theirs else None

    @property
    def verdict(self) -> str:
        if self.runstream is None:
            return "n/a"
        if not self.bars:
            return "info"
        results = [bar.holds(self.runstream.median, self.ratio) for bar in self.bars]
        if any(r is False for r in results):
            return "FAIL"
        if any(r is None for r in results):
            return "n/a"
        return "PASS"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "figure": self.figure,
            "unit": self.unit,
            "better": self.better,
            "runstream": None if self.runstream is None else self.runstream.to_json(),
            "baseline_name": self.baseline_name,
            "baseline": None if self.baseline is None else self.baseline.to_json(),
            "ratio_kind": self.ratio_kind,
            "ratio": self.ratio,
            "bars": [{"kind": b.kind, "target": b.target, "text": b.text} for b in self.bars],
            "verdict": self.verdict,
            "note": self.note,
            "missing": self.missing,
            "baseline_missing": self.baseline_missing,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Row:
        return cls(
            key=doc["key"],
            figure=doc["figure"],
            unit=doc["unit"],
            runstream=None if doc["runstream"] is None else Stats.from_json(doc["runstream"]),
            baseline_name=doc["baseline_name"],
            baseline=None if doc["baseline"] is None else Stats.from_json(doc["baseline"]),
            ratio_kind=doc["ratio_kind"],
            bars=[Bar(b["kind"], b["target"], b["text"]) for b in doc["bars"]],
            note=doc.get("note", ""),
            missing=doc.get("missing", ""),
            baseline_missing=doc.get("baseline_missing", ""),
            details=doc.get("details", {}),
        )


def missing(component: str) -> str:
    return f"n/a (component missing: {component})"
