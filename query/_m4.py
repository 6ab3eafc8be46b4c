"""M4 downsampling (Jugel et al., VLDB 2014): per bucket of the x-axis, its first, last, lowest and highest point.

A line chart drawn from those four points per pixel column is the chart of
every point, so a downsampled series loses nothing a reader could see. The
buckets are equal spans of the x-axis being drawn (steps, or times), bucket
``k`` holding the points with ``floor((x - start) / width) == k``.

``max_points`` asks for *at most* that many points, and as near to it as the
data allows (at least 90% of it): where the logging pace is uneven, equal
buckets are often empty, and a monotone stretch yields two points per bucket,
not four, so the number of buckets cannot be fixed in advance. The width is
therefore searched for:

* the points are first reduced to *fine* buckets whose width is a power of two
  (an integer of at least 1 on the step axis), about 8 per requested point, whose
  edges are found by binary search; each fine bucket's minimum and maximum
  position then cost a few O(n) numpy passes, which is the whole cost for a
  long series;
* a width of ``m`` fine widths merges every ``m`` consecutive fine buckets, and
  the M4 of the merged bucket follows from the fine ones alone (first of the
  first, last of the last, least of the minima, greatest of the maxima); so
  ``m`` is bisected over the fine aggregates, a few thousand rows, not n points;
* when even ``m = 1`` keeps too few (a very sparse axis) the fine width is
  halved and the search repeats.

Because both widths are powers of two times integers, ``floor(floor(d / f) / m)``
equals ``floor(d / (m * f))`` exactly: the bucket of a point is the documented
one, with no rounding at the edges.

When no grid keeps at least 90% of ``max_points`` (a few tiny ``max_points``,
where merges move in steps of four points; or an axis whose points crowd into
a sliver of its span, a run resumed hours later on the time axis), the M4
points are *filled* to about 95% of ``max_points`` with further points, drawn
evenly from the finest grid's M4 points, then from any: adding real points
never hides one, so the chart stays exact, and ``max_points`` keeps its
promise of 90-100%. :attr:`Buckets.filled` counts them.

Among equal values the earliest point is the minimum and the latest the
maximum. A NaN is its bucket's maximum (as PostgreSQL sorts NaN above every
number) rather than vanishing; ±Inf are extremes like any other value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["Buckets", "m4"]

#: Fine buckets per requested point: enough for merges to land within 10% of it.
_FINE_PER_POINT: Final = 8
#: Fine-width halvings tried when the axis is too sparse for the first fine grid.
_REFINEMENTS: Final = 6
#: A result of at least this share of ``max_points`` ends the search.
_ENOUGH: Final = 0.9
#: The share each try of the search aims at, and how many tries before it bisects.
_AIM: Final = 0.95
_TRIES: Final = 4

Positions = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Buckets:
    """The grid a downsampled answer used: bucket k holds ``start + k * width <= x < start + (k + 1) * width``.

    ``filled`` points of the answer are not its buckets' M4 points but added to keep 90% of ``max_points``.
    """

    start: float
    width: float
    filled: int = 0


@dataclass(frozen=True, slots=True)
class _Fine:
    """Per occupied fine bucket: its index on the grid, first and last position, and min and max (value, position)."""

    index: Positions
    first: Positions
    last: Positions
    low: Floats
    low_at: Positions
    high: Floats
    high_at: Positions


def m4(x: npt.NDArray[Any], values: Floats, max_points: int, *, integral: bool) -> tuple[Positions, Buckets]:
    """Positions (ascending) of the points to keep, and the buckets they were chosen by.

    ``x`` is ascending (int64 steps or float64 times); ``integral`` axes (steps) get buckets at
    least one unit wide.
    ``len(x) > max_points >= 2``.
    """
    start = float(x[0])
    span = float(x[-1]) - start
    # The fine width: a power of two, about _FINE_PER_POINT fine buckets per point asked for.
    exponent = math.ceil(math.log2(span / (max_points * _FINE_PER_POINT))) if span > 0 else 0
    if integral:
        exponent = max(exponent, 0)
    enough = math.ceil(_ENOUGH * max_points)
    kept, width, finest = _attempt(x, values, start, exponent, max_points)
    for _ in range(_REFINEMENTS):
        # Too few kept: a sparse axis, or merges too coarse to land near max_points. A finer grid may help.
        if len(kept) >= enough or span == 0 or (integral and exponent == 0):
            break
        exponent -= 1
        finer, finer_width, finest = _attempt(x, values, start, exponent, max_points)
        if len(finer) > len(kept):
            kept, width = finer, finer_width
    if len(kept) >= enough:
        return kept, Buckets(start, width)
    filled = _fill(kept, _merge(finest, 1), len(x), max(enough, min(max_points, round(_AIM * max_points))))
    return filled, Buckets(start, width, len(filled) - len(kept))


def _fill(kept: Positions, finest: Positions, n: int, wanted: int) -> Positions:
    """``kept`` and further positions up to ``wanted`` (< ``n``): spread evenly over ``finest`` (the finest
    grid's M4 positions) not kept yet, then, when those are too few, over every other position."""
    extra = np.setdiff1d(finest, kept, assume_unique=True)
    if len(kept) + len(extra) < wanted:
        kept = np.union1d(kept, extra)
        extra = np.setdiff1d(np.arange(n, dtype=np.int64), kept, assume_unique=True)
    # Evenly spaced picks from an ascending array at least as long as the picks are distinct.
    picks = np.linspace(0, len(extra) - 1, wanted - len(kept)).round().astype(np.int64)
    filled: Positions = np.union1d(kept, extra[picks])
    return filled


def _attempt(
    x: npt.NDArray[Any], values: Floats, start: float, exponent: int, max_points: int
) -> tuple[Positions, float, _Fine]:
    """M4 on the fine grid of ``2**exponent``: the kept positions, their bucket width, and the fine grid
    (whose own M4, ``_merge(fine, 1)``, holds every merge's positions)."""
    fine_width = math.ldexp(1.0, exponent)
    fine = _fine(x, values, start, fine_width)
    kept, m = _search(fine, max_points)
    return kept, m * fine_width, fine


def _fine(x: npt.NDArray[Any], values: Floats, start: float, width: float) -> _Fine:
    """Fine buckets found by binary search of their edges in ``x`` (ascending), not by a pass over every point.

    The first point of bucket k or later is the first with ``x - start >= k * width``: that is
    ``floor((x - start) / width) >= k`` exactly, as ``width`` is a power of two (and on the step
    axis an integer, compared as integers).
    """
    n = len(x)
    buckets = int((x[-1] - start) // width) + 1
    edges = np.arange(1, buckets, dtype=np.int64)
    if x.dtype.kind in "iu":
        bounds = _integer_edges(x, int(start) + edges * int(width))
    else:
        bounds = np.searchsorted(x - start, edges * width)
    all_starts = np.concatenate(([0], bounds))
    occupied = np.concatenate((bounds, [n])) > all_starts
    starts = all_starts[occupied]
    counts = np.diff(starts, append=n)
    if len(starts) > 1 and bool((counts[:-1] == counts[0]).all()) and not bool(np.isnan(values).any()):
        low_at, high_at = _regular_extremes(values, int(counts[0]), starts)
        low, high = values[low_at], values[high_at]
    else:
        # fmin skips NaN (NaN only when the whole bucket is NaN); maximum keeps it: NaN is the bucket's max.
        low = np.fmin.reduceat(values, starts)
        high = np.maximum.reduceat(values, starts)
        low_at = _first_match(values, low, starts, counts)
        high_at = _last_match(values, high, starts, counts)
    return _Fine(np.flatnonzero(occupied), starts, starts + counts - 1, low, low_at, high, high_at)


def _integer_edges(x: Positions, edges: Positions) -> Positions:
    """``np.searchsorted(x, edges)``; for steps 0, 1, 2, ... (the usual axis) guessed and checked instead.

    A guess ``g`` is the answer exactly when ``x[g - 1] < edge <= x[g]``, which costs one look per edge.
    """
    n = len(x)
    if n - 1 == int(x[-1]) - int(x[0]):
        guess: Positions = np.clip(edges - x[0], 0, n)
        inside = (guess > 0) & (guess < n)
        inner, wanted = guess[inside], edges[inside]
        if (
            bool((x[inner - 1] < wanted).all())
            and bool((x[inner] >= wanted).all())
            and bool((x[0] >= edges[guess == 0]).all())
            and bool((x[-1] < edges[guess == n]).all())
        ):
            return guess
    found: Positions = np.searchsorted(x, edges)
    return found


def _regular_extremes(values: Floats, size: int, starts: Positions) -> tuple[Positions, Positions]:
    """Positions of each bucket's first lowest and last highest value, when every bucket but the last
    holds ``size`` points and no value is NaN: one ``argmin`` and one ``argmax`` over the buckets as rows."""
    full = len(starts) - 1
    rows, tail = values[: full * size].reshape(full, size), values[full * size :]
    low_at = np.append(np.argmin(rows, axis=1), np.argmin(tail))
    # argmax finds the first of equals; over each row reversed, that is the last.
    high_at = np.append(size - 1 - np.argmax(rows[:, ::-1], axis=1), len(tail) - 1 - np.argmax(tail[::-1]))
    return low_at + starts, high_at + starts


def _matches(values: Floats, extremes: Floats, counts: Positions) -> Positions:
    """Where ``values`` equal their group's extreme (NaN matching NaN), ascending."""
    match = values == np.repeat(extremes, counts)
    nan = np.isnan(extremes)
    if nan.any():
        match |= np.isnan(values) & np.repeat(nan, counts)
    return np.flatnonzero(match)


def _first_match(values: Floats, extremes: Floats, starts: Positions, counts: Positions) -> Positions:
    hits = _matches(values, extremes, counts)
    return hits[np.searchsorted(hits, starts)]


def _last_match(values: Floats, extremes: Floats, starts: Positions, counts: Positions) -> Positions:
    hits = _matches(values, extremes, counts)
    return hits[np.searchsorted(hits, starts + counts) - 1]


def _search(fine: _Fine, max_points: int) -> tuple[Positions, int]:
    """The kept positions of a merge ``m`` that keeps 90-100% of ``max_points`` (or the narrowest within it), and ``m``.

    The count falls roughly as 1/m, so each try aims at 95% by that rule (two or three tries, usually);
    if that does not settle, ``m`` is bisected between the tries that kept too many and too few.
    """
    last = int(fine.index[-1]) + 1  # one bucket for all: at most four points
    if max_points < 4:
        kept = _merge(fine, last)
        if len(kept) > max_points:  # fewer than four points asked for: the extremes of the whole range
            return np.union1d(fine.low_at[:1], fine.high_at[-1:])[:max_points], last
        return kept, last
    over, fits = 0, last  # the widest m known to keep too many, the narrowest known to fit
    best = None
    m = min(last, max(1, (3 * last) // max_points))
    for _ in range(_TRIES):
        kept = _merge(fine, m)
        if len(kept) <= max_points:
            fits, best = m, kept
            if len(kept) >= _ENOUGH * max_points:
                return kept, m
        else:
            over = m
        aim = max(over + 1, min(fits - 1, round(m * len(kept) / (_AIM * max_points))))
        if aim <= over or aim >= fits:
            break
        m = aim
    while fits - over > 1:
        middle = (over + fits) // 2
        candidate = _merge(fine, middle)
        if len(candidate) <= max_points:
            fits, best = middle, candidate
        else:
            over = middle
    return (best if best is not None else _merge(fine, fits)), fits


def _merge(fine: _Fine, m: int) -> Positions:
    """The M4 positions with buckets of ``m`` fine buckets each."""
    group = fine.index // m
    starts = np.concatenate(([0], np.flatnonzero(np.diff(group)) + 1))
    counts = np.diff(starts, append=len(group))
    low = np.fmin.reduceat(fine.low, starts)
    high = np.maximum.reduceat(fine.high, starts)
    low_at = fine.low_at[_first_match(fine.low, low, starts, counts)]
    high_at = fine.high_at[_last_match(fine.high, high, starts, counts)]
    ends = starts + counts - 1
    # Within a bucket first <= the extremes <= last, and buckets follow each other: its four in a row,
    # rows end to end, are ascending already; only repeats (a point that is two corners) go.
    corners: Positions = np.stack(
        (fine.first[starts], np.minimum(low_at, high_at), np.maximum(low_at, high_at), fine.last[ends]), axis=1
    ).ravel()
    kept: Positions = corners[np.concatenate(([True], np.diff(corners) != 0))]
    return kept
