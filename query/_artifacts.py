"""Artifact storage: file contents addressed by their SHA-256.

The web layer streams an upload into :meth:`ArtifactStore.put`, which returns
the digest and size; the ``files`` table maps (run, name) to that digest, so
the same content uploaded under many names or runs is stored once. A store for
an S3-compatible service implements the same three methods.

:class:`LocalArtifactStore` lays blobs out as ``<root>/sha256/ab/abcdef...``;
an upload is written to ``<root>/tmp/`` first and renamed into place only once
complete and within the size limit, so a reader never sees a partial blob.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from ._errors import NotFound, PayloadTooLarge

__all__ = ["ArtifactStore", "Blob", "LocalArtifactStore", "StoredBlob"]

_DIGEST: Final = re.compile(r"^[0-9a-f]{64}$")
# Writes are batched to about this size so each thread hop moves a useful amount.
_WRITE_BYTES: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: str
    size: int


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
    def read(self, blob: Blob, *, chunk_bytes: int = 1 << 16) -> AsyncIterator[bytes]:
        """The blob's content as chunks."""


class LocalArtifactStore(ArtifactStore):
    """Blobs as files under a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def start(self) -> None:
        await asyncio.to_thread(self._make_dirs)

    def _make_dirs(self) -> None:
        (self.root / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

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
        final = self._path(digest)
        if final.exists():
            temp.unlink()
            return
        final.parent.mkdir(exist_ok=True)
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

    async def read(self, blob: Blob, *, chunk_bytes: int = 1 << 16) -> AsyncIterator[bytes]:
        path = blob.path or self._path(blob.digest)
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_bytes):
                yield chunk
        finally:
            handle.close()


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
