"""The local spool: records that could not (yet) go to Kafka, on disk, in order.

Layout, under ``<RUNSTREAM_HOME>/spool``::

    <run id>/<session id>.jsonl      records of one producer session, in seq order
    <run id>/files/<name>            files of an offline run, to upload

Each line is ``<crc32 of the record, 8 hex digits> <record>\\n``, the record
being exactly the bytes that go to Kafka (orjson writes no newlines). A line
cut short by a crash (no newline at the end of the file) is ignored; a line
whose checksum does not match raises :class:`SpoolCorruptError`. A writer holds
an exclusive ``flock`` on its file, so ``sync`` never publishes a file that a
live process is still appending to. Republishing a record is harmless: ingest
drops a batch whose seq it already stored for the session.
"""

from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from producer._errors import ProducerError

SUFFIX = ".jsonl"
SYNCED_SUFFIX = ".synced"


class SpoolCorruptError(ProducerError, ValueError):
    """A spool line whose checksum does not match its record."""


def _line(value: bytes) -> bytes:
    return b"%08x " % zlib.crc32(value) + value + b"\n"


def private_dirs(path: Path) -> None:
    """``path`` and any missing parent, each made 0700: a spool holds a run's data, not for other users."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)


def write_private(path: Path, data: bytes) -> None:
    """``data`` as the file ``path`` (0600), its missing directories made 0700."""
    private_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


class SpoolWriter:
    """Appends records to one session's spool file; ``open`` / idempotent ``close``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.records = 0

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open(self) -> None:
        if self._fd is not None:
            return
        private_dirs(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def append(self, value: bytes) -> None:
        """Write one record and fsync it: once this returns, the record survives a crash.

        If the disk refuses (full, read-only), whatever part of the line got
        written is cut off again, so a later append after a retry does not
        continue a torn line; the OSError reaches the caller.
        """
        self.open()
        assert self._fd is not None  # noqa: S101 - opened above
        end = os.lseek(self._fd, 0, os.SEEK_END)
        view = memoryview(_line(value))
        try:
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, end)
            raise
        self.records += 1

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # also releases the flock


def read_records(path: Path, offset: int = 0) -> Iterator[tuple[bytes, int]]:
    """``(record, offset after it)`` for each complete line from ``offset`` on."""
    with path.open("rb") as file:
        file.seek(offset)
        for number, line in enumerate(file, start=1):
            if not line.endswith(b"\n"):
                return  # torn by a crash mid-write: the record was never acknowledged
            offset += len(line)
            checksum, _, value = line[:-1].partition(b" ")
            try:
                expected = int(checksum, 16)
            except ValueError:
                expected = -1
            if expected != zlib.crc32(value):
                raise SpoolCorruptError(f"{path}: line {number} after offset {offset - len(line)} fails its checksum")
            yield value, offset


def is_locked(path: Path) -> bool:
    """Whether a live writer holds ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return False


def session_files(root: Path) -> list[Path]:
    """Spool files under ``root`` (a spool directory, a run's directory or one file), oldest first."""
    if root.is_file():
        return [root]
    found = [p for p in root.rglob(f"*{SUFFIX}") if "files" not in p.relative_to(root).parts[:-1]]
    dated = []
    for path in found:
        try:
            dated.append((path.stat().st_mtime, str(path), path))
        except FileNotFoundError:
            continue  # removed by its live process since the listing: handled by its owner
    return [path for _, _, path in sorted(dated)]
