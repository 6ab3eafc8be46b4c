"""Artifacts in an S3-compatible object store (``RUNSTREAM_ARTIFACTS_URL=s3://bucket/prefix``).

The same content-addressed layout as the local store, as object keys::

    <prefix>/sha256/ab/abcdef...      committed blobs
    <prefix>/tmp/<uuid>               an upload until it is committed

**Upload** (:meth:`S3ArtifactStore.put`): the body is hashed as it streams
and sent to ``tmp/<uuid>`` in parts of :data:`PART_BYTES` (a multipart
upload; one part in flight while the next fills, so an upload holds at most
two parts in memory), or in one PUT when it is smaller than a part. Only once
it is complete and within the size limit is it *committed*: copied, inside
the store, to its digest's key. S3 has no rename; the copy gives the blob a
fresh ``LastModified``, which collection reads as "committed at", like the
local store's mtime. A failed, cancelled or oversized upload is aborted and
leaves nothing but, if the process dies, a temporary object or an unfinished
multipart upload, which collection removes after :data:`ABANDONED_UPLOAD_SECONDS`.

**Download** (:meth:`S3ArtifactStore.read`): a ranged GET, streamed.

**Collection** (:meth:`S3ArtifactStore.collect`): the local store's argument
relies on an atomic rename to take a blob out of place and look at what it
took. S3 cannot do that, so the commit's copy and collection's look-and-delete
exclude each other through a PostgreSQL advisory lock per digest
(:class:`DigestLocks`; every replica and ``gc-artifacts`` reach the same
database): the copy holds it shared, the collector exclusive while it reads
the blob's ``LastModified`` and deletes it only if that is still before the
cutoff. A copy made before the collector's look shows a fresh
``LastModified`` - unless it is older than the cutoff, and then its
``files`` row was committed :data:`RECORD_WITHIN_SECONDS` after it, before
the pass began, and the pass saw it; a copy after the delete puts the blob
back. Times are the store's own clock (its ``Date`` header), the one that
stamps ``LastModified``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Final

import asyncpg

from runstream.config import S3Settings

from ._artifacts import (
    ABANDONED_UPLOAD_SECONDS,
    DIGEST_PATTERN,
    ArtifactStore,
    Blob,
    Collected,
    Referenced,
    StoredBlob,
    check_min_age,
)
from ._errors import NotFound, PayloadTooLarge
from ._s3 import S3Client

__all__ = ["MAX_COPY_BYTES", "PART_BYTES", "DigestLocks", "S3ArtifactStore"]

#: Size of a multipart upload's parts: S3 wants 5 MiB at least (but the last), 10,000 parts at most.
PART_BYTES: Final = 8 << 20
#: The largest object one CopyObject may copy; beyond, the commit copies in parts (UploadPartCopy).
MAX_COPY_BYTES: Final = 5 << 30
_COPY_PART_BYTES: Final = 1 << 30
#: An arbitrary fixed namespace for the digest locks (pg_advisory_lock(int, int)'s first key).
_LOCK_SPACE: Final = 0x61727466  # "artf"


class DigestLocks:
    """Per-digest advisory locks in PostgreSQL, held on a connection of a small pool of their own."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._dsn, min_size=0, max_size=4)

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @contextlib.asynccontextmanager
    async def hold(self, digest: str, *, exclusive: bool) -> AsyncIterator[None]:
        """The lock on ``digest``; raises if the connection (and so the lock) was lost meanwhile."""
        if self._pool is None:
            raise RuntimeError("the digest locks are not started")
        key = int.from_bytes(bytes.fromhex(digest)[:4], "big", signed=True)
        kind = "" if exclusive else "_shared"
        async with self._pool.acquire() as conn:
            await conn.execute(f"SELECT pg_advisory_lock{kind}($1, $2)", _LOCK_SPACE, key)
            try:
                yield
            finally:
                if not await conn.fetchval(f"SELECT pg_advisory_unlock{kind}($1, $2)", _LOCK_SPACE, key):
                    raise RuntimeError(f"the lock on blob {digest} was lost while it was held")


class S3ArtifactStore(ArtifactStore):
    """Blobs as objects of one bucket under one prefix; ``locks`` shared with every other writer and collector."""

    def __init__(
        self,
        settings: S3Settings,
        *,
        locks: DigestLocks,
        clock: Callable[[], Awaitable[float]] | None = None,
        part_bytes: int = PART_BYTES,
        max_copy_bytes: int = MAX_COPY_BYTES,
    ) -> None:
        """``clock`` gives collection its "now" (default: the store's own clock)."""
        self.settings = settings
        self.client = S3Client(settings)
        self._locks = locks
        self._clock = clock or self.client.server_time
        self._part_bytes = part_bytes
        self._max_copy_bytes = max_copy_bytes
        base = settings.prefix
        self._root = f"{base}/" if base else ""

    async def start(self) -> None:
        await self.client.start()
        await self._locks.start()

    async def stop(self) -> None:
        await self._locks.stop()
        await self.client.stop()

    def _key(self, digest: str) -> str:
        return f"{self._root}sha256/{digest[:2]}/{digest}"

    @property
    def _tmp(self) -> str:
        return f"{self._root}tmp/"

    # --- writing ------------------------------------------------------------------------

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        temp = f"{self._tmp}{uuid.uuid4().hex}"
        upload = _PartUpload(self.client, temp, self._part_bytes)
        hasher = hashlib.sha256()
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"upload exceeds the limit of {max_bytes} bytes", parameter="body")
                hasher.update(chunk)
                await upload.add(chunk)
            await upload.finish()
            digest = hasher.hexdigest()
            async with self._locks.hold(digest, exclusive=False):
                await self._copy(temp, self._key(digest), size)
        except BaseException:
            # Failed, cancelled or too large: nothing of the upload may remain.
            await asyncio.shield(upload.discard())
            raise
        await asyncio.shield(self.client.delete_object(temp))
        return StoredBlob(digest, size)

    async def _copy(self, source: str, key: str, size: int) -> None:
        if size <= self._max_copy_bytes:
            await self.client.copy_object(source, key)
            return
        upload_id = await self.client.create_multipart_upload(key)
        try:
            etags = []
            step = max(self._part_bytes, min(_COPY_PART_BYTES, self._max_copy_bytes))
            for number, first in enumerate(range(0, size, step), 1):
                last = min(size, first + step) - 1
                etags.append(await self.client.upload_part_copy(source, key, upload_id, number, first, last))
            await self.client.complete_multipart_upload(key, upload_id, etags)
        except BaseException:
            await asyncio.shield(self.client.abort_multipart_upload(key, upload_id))
            raise

    # --- reading ------------------------------------------------------------------------

    async def get(self, digest: str) -> Blob:
        if not DIGEST_PATTERN.match(digest):
            raise NotFound(f"no blob {digest[:80]!r}", code="blob_not_found")
        info = await self.client.head_object(self._key(digest))
        if info is None:
            raise NotFound(f"blob {digest} is missing from the artifact store", code="blob_not_found")
        return Blob(digest, info.size)

    async def read(
        self, blob: Blob, *, offset: int = 0, length: int | None = None, chunk_bytes: int = 1 << 16
    ) -> AsyncIterator[bytes]:
        length = blob.size - offset if length is None else length
        if length <= 0:
            return
        async for chunk in self.client.get_object(
            self._key(blob.digest), first=offset, last=offset + length - 1, chunk_bytes=chunk_bytes
        ):
            yield chunk

    # --- collection ---------------------------------------------------------------------

    async def collect(self, referenced: Referenced, *, min_age_seconds: float) -> Collected:
        """Delete unreferenced blobs committed before ``now - min_age_seconds`` (see the module's argument)."""
        check_min_age(min_age_seconds)
        now = await self._clock()
        cutoff = now - min_age_seconds
        abandoned, removed_bytes = await self._remove_abandoned_uploads(now)
        old = {
            info.key.rsplit("/", 1)[1]: info.size
            async for info in self.client.list_objects(f"{self._root}sha256/")
            if info.last_modified < cutoff and DIGEST_PATTERN.match(info.key.rsplit("/", 1)[1])
        }
        kept = await referenced(list(old))
        removed = too_new = 0
        for digest in old.keys() - kept:
            async with self._locks.hold(digest, exclusive=True):
                info = await self.client.head_object(self._key(digest))
                if info is None:
                    continue  # a concurrent pass took it
                if info.last_modified >= cutoff:
                    too_new += 1  # committed again since it was listed
                    continue
                await self.client.delete_object(self._key(digest))
            removed += 1
            removed_bytes += info.size
        return Collected(removed, removed_bytes, too_new, abandoned)

    async def _remove_abandoned_uploads(self, now: float) -> tuple[int, int]:
        """Temporary objects and unfinished multipart uploads older than a day: their process died."""
        count = size = 0
        before = now - ABANDONED_UPLOAD_SECONDS
        async for upload in self.client.list_multipart_uploads(self._tmp):
            if upload.initiated < before:
                await self.client.abort_multipart_upload(upload.key, upload.upload_id)
                count += 1
        async for info in self.client.list_objects(self._tmp):
            if info.last_modified < before:
                await self.client.delete_object(info.key)
                count += 1
                size += info.size
        return count, size


class _PartUpload:
    """The temporary object: one PUT if it stays under a part, else a multipart upload, one part in flight."""

    def __init__(self, client: S3Client, key: str, part_bytes: int) -> None:
        self._client, self._key, self._part_bytes = client, key, part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._sending: asyncio.Task[str] | None = None
        self._etags: list[str] = []

    async def add(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= self._part_bytes:
            part = bytes(self._buffer[: self._part_bytes])
            del self._buffer[: self._part_bytes]
            await self._send(part)

    async def _send(self, part: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = await self._client.create_multipart_upload(self._key)
        if self._sending is not None:
            self._etags.append(await self._sending)  # one part in flight: memory stays at two parts
        number = len(self._etags) + 1
        self._sending = asyncio.create_task(self._client.upload_part(self._key, self._upload_id, number, part))

    async def finish(self) -> None:
        if self._upload_id is None:
            await self._client.put_object(self._key, bytes(self._buffer))
            return
        if self._buffer:
            await self._send(bytes(self._buffer))
            self._buffer.clear()
        if self._sending is not None:
            self._etags.append(await self._sending)
            self._sending = None
        await self._client.complete_multipart_upload(self._key, self._upload_id, self._etags)
        self._upload_id = None

    async def discard(self) -> None:
        if self._sending is not None:
            self._sending.cancel()
            with contextlib.suppress(BaseException):
                await self._sending
        with contextlib.suppress(Exception):  # best effort: collection removes what is left after a day
            if self._upload_id is not None:
                await self._client.abort_multipart_upload(self._key, self._upload_id)
            await self._client.delete_object(self._key)
