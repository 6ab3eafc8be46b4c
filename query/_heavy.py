"""Reads of many points: the budget checked before they start, and the turns they take.

See :mod:`._limits` for why: an answer of up to :data:`~._limits.MAX_RESPONSE_POINTS`
points (by the counts ingest keeps per series, before anything is read), and
at most :data:`~._limits.MAX_HEAVY_READS` such answers built at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ._errors import PayloadTooLarge, Unavailable
from ._limits import HEAVY_READ_WAIT_SECONDS, MAX_HEAVY_READS, MAX_RESPONSE_POINTS

__all__ = ["HeavyReads", "check_budget"]


def check_budget(points: int, what: str, *, parameter: str, advice: str) -> None:
    """413 ``too_many_points`` naming ``parameter`` when ``points`` exceed the budget of one answer."""
    if points > MAX_RESPONSE_POINTS:
        raise PayloadTooLarge(
            f"{what} would hold {points:,} points; one answer holds at most {MAX_RESPONSE_POINTS:,}: {advice}",
            code="too_many_points",
            parameter=parameter,
        )


class HeavyReads:
    """Turns for building answers that read points: ``async with heavy.turn(): ...``."""

    def __init__(self, slots: int = MAX_HEAVY_READS, *, wait_seconds: float = HEAVY_READ_WAIT_SECONDS) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._wait_seconds = wait_seconds

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            raise Unavailable(
                f"the service is busy reading points for other requests (waited {self._wait_seconds:g}s); retry",
                code="busy",
                retry_after=5,
            ) from None
        try:
            yield
        finally:
            self._slots.release()
