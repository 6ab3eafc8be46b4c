"""A token bucket per key (a client address): a burst of ``attempts``, refilled evenly over ``window_seconds``.

Used for ``/login``: a client gets :data:`~._limits.LOGIN_ATTEMPTS` guesses at
once, then one every ``window / attempts`` seconds, so guessing a 32-byte
token stays hopeless and a person who mistypes is hardly slowed. An attempt
takes its token *before* the guess is checked, so parallel guesses cannot
slip past the count.

The table of buckets is bounded (``max_keys``): past it, the bucket used
least recently is forgotten (by then it has usually refilled, and a full
bucket is what a new one starts as).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """``take(key)`` spends one attempt: 0.0 when allowed, else the seconds until one is."""

    def __init__(
        self,
        *,
        attempts: int,
        window_seconds: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if attempts < 1 or not window_seconds > 0 or max_keys < 1:
            raise ValueError("attempts and max_keys must be at least 1 and window_seconds positive")
        self._capacity = float(attempts)
        self._rate = attempts / window_seconds  # tokens per second
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def _tokens(self, key: str, now: float) -> float:
        found = self._buckets.get(key)
        if found is None:
            return self._capacity
        tokens, at = found
        return min(self._capacity, tokens + (now - at) * self._rate)

    def take(self, key: str) -> float:
        now = self._clock()
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            # Still recently used: a client kept out must not be forgotten (and refilled) first.
            self._buckets.move_to_end(key)
            return (1.0 - tokens) / self._rate
        self._buckets[key] = (tokens - 1.0, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return 0.0
