"""A paced background load: a producer process (:mod:`bench.workers.rs_paced`) logging at a set rate.

It starts a run per repetition and says so (:meth:`PacedLoad.next_run`),
logs once told to (:meth:`PacedLoad.go`) for ``seconds`` over 20 metrics plus
a probe point every ``probe_interval`` seconds, completes the run and reports
what it logged (:meth:`PacedLoad.done`). The freshness figure polls its
probes; the read-your-writes figure measures beside it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

from bench.proc import next_message
from bench.workers.rs_paced import paced
from runstream.config import Settings

__all__ = ["PacedLoad"]


class PacedLoad:
    """``async with PacedLoad(settings, rate, seconds, reps)``: the producer process for ``reps`` runs."""

    def __init__(self, settings: Settings, rate: int, seconds: float, reps: int, probe_interval: float) -> None:
        mp = multiprocessing.get_context("spawn")
        self._queue, self._go = mp.Queue(), mp.Queue()
        self._proc = mp.Process(
            target=paced,
            args=(settings.as_env(), rate, seconds, probe_interval, reps, self._queue, self._go),
            daemon=True,
        )

    async def __aenter__(self) -> PacedLoad:
        self._proc.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self._proc.join, 60)

    async def next_run(self) -> str:
        """The id of the next repetition's run, once it is started."""
        return str((await self._message())["run_id"])

    def go(self) -> None:
        self._go.put("go")

    async def done(self) -> dict[str, Any]:
        """``{"probes", "points"}`` logged by the repetition, once its run is complete."""
        return await self._message()

    async def _message(self) -> dict[str, Any]:
        return await next_message(self._queue, [self._proc], "paced producer")
