"""A background job a worker runs every so often, with one lifecycle for all of them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka.errors import KafkaError

from runstream.tasks import cancel_and_wait

__all__ = ["Periodic"]

log = logging.getLogger(__name__)

#: Failures that are expected now and then: PostgreSQL or Kafka away or refusing.
_TRANSIENT = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError)


class Periodic:
    """Runs ``job`` every ``interval_seconds`` while ``ready()``, from ``start()`` to ``stop()``.

    A job that fails is tried again at its next turn: a service away is logged
    as a warning, anything else (a bug) with its traceback, and until a turn
    succeeds again ``error`` says what failed (the worker's health reports it),
    so a broken job is never silent and never ends the worker.
    """

    def __init__(
        self,
        name: str,
        job: Callable[[], Awaitable[object]],
        *,
        interval_seconds: float,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self._job = job
        self.interval_seconds = interval_seconds
        self._ready = ready
        self._task: asyncio.Task[None] | None = None
        self.name = name
        self.error: str | None = None
        # Since when (wall clock) every turn has failed, whatever the cause, and the last failure.
        self.failing_since: float | None = None
        self.last_failure: str | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            if self._ready():
                await self.run_once()
            await asyncio.sleep(self.interval_seconds)

    async def run_once(self) -> None:
        """One turn of the job; its failure is logged and kept in ``error``."""
        try:
            await self._job()
        except _TRANSIENT as exc:
            # A service away: the worker's health reports that through what stalls, not here.
            log.warning("%s failed (%r); next try in %.1fs", self.name, exc, self.interval_seconds)
            self._failed(exc)
        except Exception as exc:  # noqa: BLE001 - a bug in a job: reported, and the worker goes on
            log.exception("%s failed; next try in %.1fs", self.name, self.interval_seconds)
            self._failed(exc)
            self.error = repr(exc)
        else:
            self.error = self.failing_since = self.last_failure = None

    def _failed(self, exc: Exception) -> None:
        self.failing_since = self.failing_since or time.time()
        self.last_failure = repr(exc)
