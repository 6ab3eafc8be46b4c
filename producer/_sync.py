"""``runstream sync``: publish what spools hold (offline runs, Kafka outages, killed processes).

Each session file is published in order with one idempotent producer, keyed
by its run id (the file's directory), then removed; an offline run's files are
uploaded to the query service, then removed. A file a live process still
holds (its flock) is skipped. Publishing a file twice is harmless: ingest
keeps the highest seq per session and drops what it already has.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producer import _spool
from producer._errors import DeliveryError, QueryServiceError
from producer._http import quote
from producer._sinks import KafkaSink, SharedProducer, is_fatal
from producer._workspace import Workspace

_ATTEMPTS = 5


@dataclass
class SyncResult:
    """What one ``sync_spool`` call did."""

    records: int = 0
    sessions: list[Path] = field(default_factory=list)  # session files published and removed
    files: list[str] = field(default_factory=list)  # "<run id>/<name>" uploaded
    skipped: list[Path] = field(default_factory=list)  # held by a live process


def sync_spool(path: str | os.PathLike[str] | None = None, *, workspace: Workspace | None = None) -> SyncResult:
    """Publish the spool under ``path`` (default ``<workspace home>/spool``): a spool, a run's directory or one file.

    Blocks until done; raises :class:`DeliveryError` if Kafka refuses a record
    after a few attempts (what was published so far stays published).
    """
    ws = workspace or Workspace.from_config()
    root = Path(path) if path is not None else ws.home / "spool"
    result = SyncResult()
    if not root.exists():
        return result
    # A thread of its own, so that callers inside an event loop can use it too.
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run(_publish_sessions(root, ws, result), errors))
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    _upload_files(root, ws, result)
    return result


def _run(coro: Coroutine[Any, Any, None], errors: list[BaseException]) -> None:
    try:
        asyncio.run(coro)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
        errors.append(exc)


async def _publish_sessions(root: Path, ws: Workspace, result: SyncResult) -> None:
    files = _spool.session_files(root)
    if not files:
        return
    # A producer of its own, on this thread's loop: sync also runs where no run was ever started.
    shared = SharedProducer(
        ws,
        compression=ws.options.compression,
        request_timeout_seconds=ws.options.request_timeout_seconds,
    )
    sink = KafkaSink(shared, ws.topic)
    await sink.open()
    try:
        for file in files:
            if _spool.is_locked(file):
                result.skipped.append(file)
                continue
            key = str(uuid.UUID(file.parent.name)).encode()
            try:
                for value, _ in _spool.read_records(file):
                    await _publish(sink, key, value)
                    result.records += 1
            except FileNotFoundError:
                # Its live process replayed it and removed it after we listed it
                # (it is unlocked between close and unlink): nothing left to do.
                continue
            file.unlink(missing_ok=True)
            result.sessions.append(file)
    finally:
        await sink.close()


async def _publish(sink: KafkaSink, key: bytes, value: bytes) -> None:
    for attempt in range(_ATTEMPTS):
        try:
            await sink.publish(key, value)
            return
        except Exception as exc:  # noqa: BLE001 - classified
            if is_fatal(exc) or attempt == _ATTEMPTS - 1:
                raise DeliveryError(f"sync: Kafka refused a spooled record: {exc!r}") from exc
            await asyncio.sleep(0.5 * (attempt + 1))


def _upload_files(root: Path, ws: Workspace, result: SyncResult) -> None:
    client = ws.query_client()
    run_dirs = [root] if (root / "files").is_dir() else [d for d in root.iterdir() if (d / "files").is_dir()]
    for run_dir in run_dirs:
        base = run_dir / "files"
        for file in sorted(p for p in base.rglob("*") if p.is_file()):
            name = file.relative_to(base).as_posix()
            with file.open("rb") as stream:
                try:
                    client.put(
                        f"/api/runs/{run_dir.name}/files/{quote(name)}",
                        stream,
                        file.stat().st_size,
                        "application/octet-stream",
                    )
                except QueryServiceError as exc:
                    if exc.status != 409:  # 409: uploaded by an earlier sync
                        raise
            file.unlink()
            result.files.append(f"{run_dir.name}/{name}")
