"""Libraries' repeated log lines, collapsed: a few of each, then a count.

While a broker is down on purpose, aiokafka logs "Unable connect to node"
several times a second from every client; a failing test's captured log
would be thousands of those lines around the few that explain the failure.
pytest already keeps a test's log records to itself and shows them only when
it fails; this filter keeps the first :data:`KEEP` records of each message
(by logger, level and format string) per test and turns the rest into one
closing line saying how many were left out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Final

__all__ = ["KEEP", "RepeatedRecords"]

#: Records of one message shown per test before the rest are only counted.
KEEP: Final = 3

_Key = tuple[str, int, str]


class RepeatedRecords(logging.Filter):
    """Lets each (logger, level, message format) through :data:`KEEP` times, counting the rest."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: Counter[_Key] = Counter()
        self._lock = threading.Lock()  # the SDK's sender thread logs too

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        with self._lock:
            self._seen[key] += 1
            return self._seen[key] <= KEEP

    def left_out(self) -> dict[_Key, int]:
        with self._lock:
            return {key: n - KEEP for key, n in self._seen.items() if n > KEEP}

    @classmethod
    @contextlib.contextmanager
    def installed(cls, loggers: Iterable[str]) -> Iterator[RepeatedRecords]:
        """Filter ``loggers`` for the duration; at the end, log one line per collapsed message."""
        repeats = cls()
        targets = _family(tuple(loggers))
        for logger in targets:
            logger.addFilter(repeats)
        try:
            yield repeats
        finally:
            for logger in targets:
                logger.removeFilter(repeats)
            for (name, level, message), count in repeats.left_out().items():
                logging.getLogger(name).log(level, "(%d more records like %r left out)", count, message[:200])


def _family(prefixes: tuple[str, ...]) -> list[logging.Logger]:
    """The loggers named by ``prefixes`` and all their descendants that exist now.

    A logger's filters see only the records logged on it, not those its
    children propagate, so each module's logger (``aiokafka.conn``...) needs
    the filter itself; the libraries create them when imported.
    """
    names = [
        n for n in logging.Logger.manager.loggerDict if n in prefixes or n.startswith(tuple(p + "." for p in prefixes))
    ]
    return [logging.getLogger(n) for n in {*prefixes, *names}]
