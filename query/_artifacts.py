"""Artifact storage: file contents addressed by their SHA-256.

The web layer streams an upload into :meth:`ArtifactStore.put`, which returns
the digest and size; the ``files`` table maps (run, name) to that digest, so
the same content uploaded under many names or runs is stored once.
:class:`query._s3_artifacts.S3ArtifactStore` implements the same methods on
an S3-compatible object store (``RUNSTREAM_ARTIFACTS_URL``);
:func:`query._stores.open_store` picks the one the settings name.

:class:`LocalArtifactStore` lays blobs out as ``<root>/sha256/ab/abcdef...``;
an upload is written to ``<root>/tmp/`` first and renamed into place only once
complete and within the size limit, so a reader never sees a partial blob.

Blobs that no ``files`` row references any more (a file overwritten, an
experiment dropped) are removed by :meth:`ArtifactStore.collect`; see
:meth:`LocalArtifactStore.collect` for why that never races with an upload.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from ._errors import NotFound, PayloadTooLarge

__all__ = [
    "ABANDONED_UPLOAD_SECONDS",
    "DIGEST_PATTERN",
    "RECORD_WITHIN_SECONDS",
    "ArtifactStore",
    "Blob",
    "Collected",
    "LocalArtifactStore",
    "Referenced",
    "StoredBlob",
    "check_min_age",
]

#: The longest an upload may take from committing its blob to committing the
#: ``files`` row that references it; the web layer abandons the row after that.
#: Blob collection keeps anything committed more recently than a multiple of it.
RECORD_WITHIN_SECONDS: Final = 60.0
#: A temp file in ``tmp/`` untouched this long is an upload whose process died
#: (SIGKILL, power loss: the ``finally`` that discards it never ran). A live
#: upload touches its file at least every ``_WRITE_BYTES``; one that idles for a
#: day has long been given up by its client.
ABANDONED_UPLOAD_SECONDS: Final = 86400.0

#: A blob's name: its SHA-256 in lower-case hex.
DIGEST_PATTERN: Final = re.compile(r"^[0-9a-f]{64}$")
_DIGEST: Final = DIGEST_PATTERN
# Writes are batched to about this size so each thread hop moves a useful amount.
_WRITE_BYTES: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class Collected:
    """What one :meth:`ArtifactStore.collect` pass removed (and kept because it was too new).

    ``abandoned_uploads`` counts the partial uploads of processes that died;
    ``bytes`` includes them.
    """

    blobs: int = 0
    bytes: int = 0
    too_new: int = 0
    abandoned_uploads: int = 0


#: Given candidate digests, answers those still referenced (by a query run after it is called).
Referenced = Callable[[Collection[str]], Awaitable[set[str]]]


@dataclass(frozen=True, slots=True)
class Blob:
    """A stored blob for reading; ``path`` is set when it is a local file (served with sendfile)."""

    digest: str
    size: int
    path: Path | None = None


class ArtifactStore(abc.ABC):
    """Content-addressed blob storage; ``start()`` prepares it, ``stop()`` is idempotent."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (create directories, open clients)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release what ``start`` acquired."""

    @abc.abstractmethod
    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        """Store the stream; :class:`PayloadTooLarge` if it exceeds ``max_bytes`` (nothing is kept)."""

    @abc.abstractmethod
    async def get(self, digest: str) -> Blob:
        """The blob with ``digest``; :class:`NotFound` if absent."""

    @abc.abstractmethod
    def read(
        self, blob: Blob, *, offset: int = 0, length: int | None = None, chunk_bytes: int = 1 << 16
    ) -> AsyncIterator[bytes]:
        """``length`` bytes of the blob's content (default: all) from byte ``offset`` on, as chunks."""

    @abc.abstractmethod
    async def collect(self, referenced: Referenced, *, min_age_seconds: float) -> Collected:
        """Delete blobs committed over ``min_age_seconds`` ago that ``referenced`` does not name,
        and uploads abandoned over :data:`ABANDONED_UPLOAD_SECONDS` ago.

        ``min_age_seconds`` must exceed :data:`RECORD_WITHIN_SECONDS` (by at
        least as much again) so that a blob whose ``files`` row is still being
        written is never a candidate.
        """


class LocalArtifactStore(ArtifactStore):
    """Blobs as files under a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def start(self) -> None:
        await asyncio.to_thread(self._make_dirs)

    def _make_dirs(self) -> None:
        for sub in ("sha256", "tmp", "trash"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        temp = self.root / "tmp" / uuid.uuid4().hex
        hasher = hashlib.sha256()
        size = 0
        pending: list[bytes] = []
        pending_bytes = 0
        out = await asyncio.to_thread(temp.open, "xb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"upload exceeds the limit of {max_bytes} bytes", parameter="body")
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= _WRITE_BYTES:
                    await asyncio.to_thread(_write, out, hasher, pending)
                    pending, pending_bytes = [], 0
            await asyncio.to_thread(_write, out, hasher, pending)
            await asyncio.to_thread(_close_synced, out)
            digest = hasher.hexdigest()
            await asyncio.to_thread(self._commit, temp, digest)
            return StoredBlob(digest, size)
        except BaseException:
            # Failed, cancelled or too large: nothing of the upload may remain.
            await asyncio.shield(asyncio.to_thread(_discard, out, temp))
            raise

    def _commit(self, temp: Path, digest: str) -> None:
        # Every commit puts a fresh inode with a fresh mtime in place, even over
        # identical content: collection reads that mtime as "committed at".
        final = self._path(digest)
        final.parent.mkdir(exist_ok=True)
        os.utime(temp)
        os.replace(temp, final)

    async def get(self, digest: str) -> Blob:
        if not _DIGEST.match(digest):
            raise NotFound(f"no blob {digest[:80]!r}", code="blob_not_found")
        path = self._path(digest)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from the artifact store", code="blob_not_found") from None
        return Blob(digest, size, path)

    async def read(
        self, blob: Blob, *, offset: int = 0, length: int | None = None, chunk_bytes: int = 1 << 16
    ) -> AsyncIterator[bytes]:
        path = blob.path or self._path(blob.digest)
        left = blob.size - offset if length is None else length
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            handle.seek(offset)
            while left > 0 and (chunk := await asyncio.to_thread(handle.read, min(chunk_bytes, left))):
                left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def collect(self, referenced: Referenced, *, min_age_seconds: float) -> Collected:
        """Delete unreferenced blobs; safe while uploads run, in this process or any other.

        An upload commits its blob (a fresh inode, mtime = now) and then has
        :data:`RECORD_WITHIN_SECONDS` to commit its ``files`` row, or the row is
        abandoned. A pass that starts at ``t0``:

        1. lists the blobs whose mtime is before ``t0 - min_age_seconds``;
        2. asks ``referenced`` which of them a row names (a query that starts
           after ``t0``, so it sees every row committed before ``t0``);
        3. moves each unreferenced one into ``trash/`` (atomic), looks at the
           mtime of the inode it moved, and deletes it only if that is still
           before ``t0 - min_age_seconds``, else moves it back.

        The inode deleted in 3 was committed before ``t0 - min_age_seconds``; any
        upload that committed it had its row in by ``t0 - min_age_seconds +
        RECORD_WITHIN_SECONDS < t0``, so step 2 saw that row, unless it has been
        deleted or overwritten since, and then the blob is garbage. An upload
        that commits the same content after step 1 renames a new inode into
        place: if that lands before the move in 3, the moved inode is new and is
        put back; if after, it is untouched. Uploads still streaming live in
        ``tmp/``, which collection only clears of files untouched for
        :data:`ABANDONED_UPLOAD_SECONDS`. The argument assumes the wall
        clock does not step back by ``min_age_seconds - RECORD_WITHIN_SECONDS``
        during a pass.
        """
        check_min_age(min_age_seconds)
        now = time.time()
        cutoff = now - min_age_seconds
        abandoned, removed_bytes = await asyncio.to_thread(self._remove_abandoned_uploads, now)
        await asyncio.to_thread(self._restore_trash)
        old = await asyncio.to_thread(self._older_than, cutoff)
        kept = await referenced(list(old))
        removed = too_new = 0
        for digest in old.keys() - kept:
            outcome, size = await asyncio.to_thread(self._delete_if_older, digest, cutoff)
            if outcome == "deleted":
                removed += 1
                removed_bytes += size
            elif outcome == "kept":
                too_new += 1
        return Collected(removed, removed_bytes, too_new, abandoned)

    def _remove_abandoned_uploads(self, now: float) -> tuple[int, int]:
        count = size = 0
        for entry in (self.root / "tmp").iterdir():
            with contextlib.suppress(FileNotFoundError):  # its upload just ended
                stat = entry.stat()
                if stat.st_mtime < now - ABANDONED_UPLOAD_SECONDS:
                    entry.unlink()
                    count += 1
                    size += stat.st_size
        return count, size

    def _restore_trash(self) -> None:
        # A pass that died between its move and its decision left the blob here:
        # put it back, and this pass decides again.
        for entry in (self.root / "trash").iterdir():
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                os.link(entry, self._path(entry.name.split(".", 1)[0]))
            entry.unlink(missing_ok=True)

    def _older_than(self, cutoff: float) -> dict[str, int]:
        """``{digest: size}`` of the blobs whose mtime is before ``cutoff``."""
        old = {}
        for entry in (self.root / "sha256").glob("??/*"):
            stat = entry.stat()
            if _DIGEST.match(entry.name) and stat.st_mtime < cutoff:
                old[entry.name] = stat.st_size
        return old

    def _delete_if_older(self, digest: str, cutoff: float) -> tuple[str, int]:
        """Delete the blob if the inode in place is older than ``cutoff``: ("deleted" | "kept" | "gone", size)."""
        final = self._path(digest)
        trash = self.root / "trash" / f"{digest}.{uuid.uuid4().hex}"
        try:
            os.rename(final, trash)
            stat = trash.stat()
        except FileNotFoundError:
            return "gone", 0  # a concurrent pass took it (or, from trash, put it back)
        if stat.st_mtime < cutoff:
            trash.unlink(missing_ok=True)
            return "deleted", stat.st_size
        # Committed again since it was listed: put it back unless a newer commit already did.
        with contextlib.suppress(FileExistsError, FileNotFoundError):
            os.link(trash, final)
        trash.unlink(missing_ok=True)
        return "kept", stat.st_size


def check_min_age(min_age_seconds: float) -> None:
    """Refuse a collection age that could take a blob whose ``files`` row is still being written."""
    if not min_age_seconds >= 2 * RECORD_WITHIN_SECONDS:
        raise ValueError(f"min_age_seconds must be at least {2 * RECORD_WITHIN_SECONDS:g}, got {min_age_seconds}")


def _write(out: BinaryIO, hasher: hashlib._Hash, chunks: list[bytes]) -> None:
    for chunk in chunks:
        hasher.update(chunk)
        out.write(chunk)


def _close_synced(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()


def _discard(out: BinaryIO, temp: Path) -> None:
    out.close()
    temp.unlink(missing_ok=True)
