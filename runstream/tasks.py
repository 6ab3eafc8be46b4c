"""Ending a background task: the one way every start()/stop() pair in runstream does it."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait until it has unwound, so stop() returns only when it is gone.

    A task that already ended with an error raises that error here: a crash is
    not swallowed by the shutdown that follows it.
    """
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
