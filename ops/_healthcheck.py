"""``runstream healthcheck``: the container image's ``HEALTHCHECK``, for whichever service it runs.

The same image runs ``query``, ``ingest`` and ``migrate``; the check finds
which from the container's first process (``/proc/1/cmdline``), unless told,
and asks that service's ``/ready`` on loopback: the query service's (the
database answers, the schema is this code's) or ingest's (a member of the
group, storing what it reads). A one-shot command (``migrate``,
``gc-artifacts``) is healthy while it runs. Exit 0 healthy, 1 not, as Docker
wants; one line says why.
"""

from __future__ import annotations

from pathlib import Path

from ops.stack._health import http_json
from runstream.config import Settings

__all__ = ["check", "running_service"]

SERVICES = ("query", "ingest")


def running_service(cmdline: Path = Path("/proc/1/cmdline")) -> str | None:
    """``query`` or ``ingest`` if the container's first process runs it (its last such word)."""
    try:
        words = cmdline.read_bytes().split(b"\0")
    except OSError:
        return None
    found = [w.decode() for w in words if w.decode(errors="replace") in SERVICES]
    return found[-1] if found else None


def check(settings: Settings, service: str | None) -> tuple[bool, str]:
    service = service or running_service()
    if service is None:
        return True, "no long-running service in this container (a one-shot command): nothing to check"
    port = settings.query_port if service == "query" else settings.ingest_metrics_port
    url = f"http://127.0.0.1:{port}/ready"
    status, body = http_json(url)
    reasons = body.get("reasons", []) if isinstance(body, dict) else []
    if status == 200:
        return True, f"{service} ready ({url})"
    why = "; ".join(reasons) if reasons else ("no answer" if status == 0 else f"HTTP {status}")
    return False, f"{service} not ready ({url}): {why}"
