"""Free TCP ports for services that other tools start (tests, benchmarks, chaos runs)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A port on 127.0.0.1 that is free now, below the kernel's ephemeral range.

    Why not ``bind(0)``: that port comes from the ephemeral range, and between
    choosing it and the service binding it, any outgoing connection may take it
    as its local port, then hold it for a minute in TIME_WAIT; the service's
    bind then fails with EADDRINUSE even with SO_REUSEADDR. Below the range no
    connection is ever given a port, so only listeners compete for these.
    A port is handed out once per process, so two services asked for together
    never get the same one.
    """
    high = _ephemeral_low()
    for _ in range(1_000):
        port = random.randrange(_LOWEST, high) if high > _LOWEST else 0  # noqa: S311 - not a secret
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port between {_LOWEST} and {high}")
