"""Whole series kept decoded in memory, so a chart's next answer starts from columns, not from PostgreSQL.

Reading a series of a million points costs about 30 ms of fetching its chunks
(PostgreSQL reads their blobs out of TOAST) and 15 ms of decoding before any
answer is built; M4 over the decoded columns is about 10 ms. A chart asks for
the same series again and again: another width, a zoom, a compare page after
the run page. A series read whole is therefore kept here, keyed by its id and
its run's *data version* (:meth:`._series.SeriesReader.data_version`, read
before the points), and served only while that version is unchanged: never
stale, and a finished run's series stays until it is pushed out.

Memory is bounded by points (24 bytes each: step, time and value columns;
ordinals stay progressions), least recently used first out; a series larger
than the whole budget is not kept.
"""

from __future__ import annotations

from collections import OrderedDict

from ._points import LazyPointColumns

__all__ = ["DecodedSeries"]


class DecodedSeries:
    """Decoded series by id, each with the data version it was read at, within ``max_points`` in all."""

    def __init__(self, *, max_points: int) -> None:
        self._max_points = max_points
        self._series: OrderedDict[int, tuple[tuple[int, int], LazyPointColumns]] = OrderedDict()
        self._points = 0
        self.hits = 0
        self.misses = 0

    @property
    def points(self) -> int:
        """Points held now."""
        return self._points

    def get(self, series_id: int, version: tuple[int, int]) -> LazyPointColumns | None:
        """The series as read at ``version``, or ``None``; the caller's to slice, never to change."""
        held = self._series.get(series_id)
        if held is None or held[0] != version:
            self.misses += 1
            return None
        self._series.move_to_end(series_id)
        self.hits += 1
        return held[1].shared()

    def put(self, series_id: int, version: tuple[int, int], points: LazyPointColumns) -> None:
        """Keep ``points`` (the whole series, in order, read after ``version`` was) if they fit the budget."""
        self._forget(series_id)
        if len(points) > self._max_points or points.values.dtype.kind == "O":
            return  # too big, or text: strings are not the 24 bytes a point the budget counts
        points.steps  # noqa: B018 - computed once here, not by every answer built from the entry
        self._series[series_id] = (version, points.shared())
        self._points += len(points)
        while self._points > self._max_points:
            self._forget(next(iter(self._series)))

    def _forget(self, series_id: int) -> None:
        held = self._series.pop(series_id, None)
        if held is not None:
            self._points -= len(held[1])
