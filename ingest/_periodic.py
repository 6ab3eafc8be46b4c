"""A background job a worker runs every so often, with one lifecycle for all of them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from runstream.tasks import cancel_and_wait

__all__ = ["Periodic"]

log = logging.getLogger(__name__)

#: Failures a job survives until its next turn: PostgreSQL away or refusing.
_TRANSIENT = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Periodic:
    """Runs ``job`` every ``interval_seconds`` while ``ready()``, from ``start()`` to ``stop()``.

    A job that fails because PostgreSQL is unavailable is logged and tried
    again at its next turn; anything else is a bug and ends the task loudly.
    """

    def __init__(
        self,
        name: str,
        job: Callable[[], Awaitable[object]],
        *,
        interval_seconds: float,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self._name = name
        self._job = job
        self.interval_seconds = interval_seconds
        self._ready = ready
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            if self._ready():
                try:
                    await self._job()
                except _TRANSIENT as exc:
                    log.warning("%s failed (%r); next try in %.1fs", self._name, exc, self.interval_seconds)
            await asyncio.sleep(self.interval_seconds)
