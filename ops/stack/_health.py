"""Waiting for a service to answer on its health URL, and asking it how it is."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

__all__ = ["http_json", "http_ok", "wait_http_ok"]


def http_ok(url: str) -> bool:
    """True if ``url`` answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own loopback URL
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def http_json(url: str) -> tuple[int, Any]:
    """(status, JSON body) of a GET of ``url`` within 2 s; (0, None) when nothing answers.

    A health endpoint answers 503 with a body that says why: that body is returned too.
    """
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own loopback URL
            return int(resp.status), _json(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read())
    except (urllib.error.URLError, OSError):
        return 0, None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


async def wait_http_ok(
    url: str, *, alive: Callable[[], bool], exited_message: str, timeout_seconds: float = 60.0
) -> None:
    """Return once ``url`` answers 200; raise ``RuntimeError(exited_message)`` as soon as ``alive()`` is false.

    Checking the process between polls turns a service that crashed at start
    into an error at once, instead of a timeout a minute later.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while not await loop.run_in_executor(None, http_ok, url):
        if not alive():
            raise RuntimeError(exited_message)
        if loop.time() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout_seconds}s")
        await asyncio.sleep(0.2)
