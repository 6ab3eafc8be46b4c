"""Free TCP ports for services that other tools start (tests, benchmarks, chaos runs)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from runstream.config import Settings

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_handed_out: set[int] = set()
#: The local stack's default ports: never handed out, so tests and benchmarks leave `make demo`'s alone.
_STACK_DEFAULTS = frozenset(
    {
        Settings.kafka_port,
        Settings.kafka_controller_port,
        Settings.pg_port,
        Settings.query_port,
        Settings.ingest_metrics_port,
    }
)


class PortInUseError(RuntimeError):
    """A port the stack must listen on is held by another process; the message names its setting."""


def require_free_port(port: int, variable: str, what: str) -> None:
    """Raise :class:`PortInUseError` unless ``port`` can be bound on 127.0.0.1 now."""
    with socket.socket() as sock:
        # As the servers do: a closed connection's TIME_WAIT on the port does not stop them binding it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            raise PortInUseError(
                f"port {port} ({variable}, for {what}) is in use by another process: "
                f"stop it, or choose another port with {variable}"
            ) from None


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
        if port in _STACK_DEFAULTS:
            continue
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
