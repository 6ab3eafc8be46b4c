"""Artifacts in an S3-compatible object store, against a real one (moto's server, checking signatures):
the SigV4 signer, streamed multipart uploads, ranged downloads through the HTTP API, and collection."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest

from query._artifact_gc import collect_artifacts
from query._artifacts import ABANDONED_UPLOAD_SECONDS
from query._errors import PayloadTooLarge
from query._s3 import EMPTY_SHA256, S3Error, sign
from query._s3_artifacts import DigestLocks, S3ArtifactStore
from query._stores import open_store
from runstream.config import ConfigError, S3Settings, Settings
from tests.s3_server import S3Server
from tests.support import eventually
from tests.test_operations import serving

MIB = 1 << 20
PART = 5 * MIB  # S3's smallest part (moto enforces it too)


def test_signature_matches_the_aws_documentation_example() -> None:
    """'GET Object' of the SigV4 documentation for S3 (examplebucket, test.txt, Range: bytes=0-9)."""
    header = sign(
        method="GET",
        host="examplebucket.s3.amazonaws.com",
        path="/test.txt",
        query={},
        headers={"Range": "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": "20130524T000000Z"},
        payload_sha256=EMPTY_SHA256,
        when=datetime(2013, 5, 24, tzinfo=UTC),
        region="us-east-1",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    assert header.endswith("Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date" in header


def test_settings_name_what_is_missing() -> None:
    env = {"RUNSTREAM_ARTIFACTS_URL": "s3://bucket/runs"}
    with pytest.raises(ConfigError, match="needs credentials"):
        Settings.from_env(env)
    with pytest.raises(ConfigError, match="only s3://"):
        Settings.from_env({"RUNSTREAM_ARTIFACTS_URL": "/var/lib/artifacts"})
    env |= {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s"}
    aws = Settings.from_env(env).s3
    assert aws is not None and (aws.bucket, aws.prefix, aws.addressing_style) == ("bucket", "runs", "virtual")
    minio = Settings.from_env({**env, "RUNSTREAM_S3_ENDPOINT_URL": "http://minio:9000"}).s3
    assert minio is not None and minio.addressing_style == "path"  # MinIO's default


def _store(server: S3Server, bucket: str, settings: Settings, **options: object) -> S3ArtifactStore:
    s3 = S3Settings.from_env(server.env(bucket)["RUNSTREAM_ARTIFACTS_URL"], server.env(bucket))
    return S3ArtifactStore(s3, locks=DigestLocks(settings.database_url), **options)  # type: ignore[arg-type]


@pytest.fixture
async def store(s3_server: S3Server, settings: Settings) -> AsyncIterator[S3ArtifactStore]:
    store = _store(s3_server, s3_server.new_bucket(), settings, part_bytes=PART)
    await store.start()
    try:
        yield store
    finally:
        await store.stop()


async def chunks(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read_all(store: S3ArtifactStore, digest: str, offset: int = 0, length: int | None = None) -> bytes:
    blob = await store.get(digest)
    return b"".join([c async for c in store.read(blob, offset=offset, length=length)])


async def leftovers(store: S3ArtifactStore) -> tuple[list[str], list[str]]:
    """(temporary objects, unfinished multipart uploads) under the store's tmp/."""
    objects = [o.key async for o in store.client.list_objects(f"{store.settings.prefix}/tmp/")]
    uploads = [u.key async for u in store.client.list_multipart_uploads(f"{store.settings.prefix}/tmp/")]
    return objects, uploads


async def test_uploads_are_content_addressed_multipart_and_read_by_range(store: S3ArtifactStore) -> None:
    small, large = os.urandom(1000), os.urandom(12 * MIB + 123)  # one PUT; three parts
    for data in (small, large, large):
        stored = await store.put(chunks(data), max_bytes=1 << 30)
        assert (stored.digest, stored.size) == (hashlib.sha256(data).hexdigest(), len(data))
    keys = sorted([o.key async for o in store.client.list_objects(f"{store.settings.prefix}/sha256/")])
    assert keys == sorted(
        f"artifacts/sha256/{d[:2]}/{d}" for d in {hashlib.sha256(small).hexdigest(), hashlib.sha256(large).hexdigest()}
    )
    digest = hashlib.sha256(large).hexdigest()
    assert await read_all(store, digest) == large
    assert await read_all(store, digest, offset=PART - 10, length=20) == large[PART - 10 : PART + 10]
    assert await read_all(store, digest, offset=len(large) - 1) == large[-1:]
    assert await leftovers(store) == ([], [])


async def test_a_refused_or_cancelled_upload_leaves_nothing(store: S3ArtifactStore) -> None:
    with pytest.raises(PayloadTooLarge):
        await store.put(chunks(os.urandom(11 * MIB)), max_bytes=10 * MIB)  # two parts sent, then too large
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield os.urandom(MIB)
            started.set()

    upload = asyncio.create_task(store.put(endless(), max_bytes=1 << 30))
    await started.wait()
    await eventually(lambda: leftovers(store), lambda left: len(left[1]) == 1, what="a multipart upload in flight")
    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await upload
    assert await leftovers(store) == ([], [])
    assert [o async for o in store.client.list_objects(f"{store.settings.prefix}/sha256/")] == []


async def test_a_large_commit_copies_in_parts(s3_server: S3Server, settings: Settings) -> None:
    store = _store(s3_server, s3_server.new_bucket(), settings, part_bytes=PART, max_copy_bytes=6 * MIB)
    await store.start()
    try:
        data = os.urandom(13 * MIB)
        stored = await store.put(chunks(data), max_bytes=1 << 30)
        assert await read_all(store, stored.digest) == data
    finally:
        await store.stop()


async def test_a_wrong_secret_is_refused_by_the_server(s3_server: S3Server, settings: Settings) -> None:
    bucket = s3_server.new_bucket()
    s3 = dataclasses.replace(
        S3Settings.from_env(f"s3://{bucket}/a", s3_server.env(bucket)), secret_access_key_value="not-the-secret"
    )
    store = S3ArtifactStore(s3, locks=DigestLocks(settings.database_url))
    await store.start()
    try:
        with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
            await store.put(chunks(b"x"), max_bytes=10)
    finally:
        await store.stop()


async def _record(db: asyncpg.Pool, digest: str, size: int) -> None:
    await db.execute(
        "INSERT INTO files (run_id, name, digest, size, content_type) VALUES ($1, 'f', $2, $3, 'text/plain')",
        uuid.uuid4(),
        digest,
        size,
    )


async def test_collection_deletes_only_old_unreferenced_blobs_and_abandoned_uploads(
    s3_server: S3Server, settings: Settings, db: asyncpg.Pool
) -> None:
    bucket = s3_server.new_bucket()
    kept, garbage = os.urandom(100), os.urandom(200)
    writer = _store(s3_server, bucket, settings)
    await writer.start()
    try:
        for data in (kept, garbage):
            await writer.put(chunks(data), max_bytes=1000)
        await _record(db, hashlib.sha256(kept).hexdigest(), len(kept))
        abandoned = await writer.client.create_multipart_upload("artifacts/tmp/dead-process")
        await writer.client.put_object("artifacts/tmp/dead-process-2", b"partial")
        server_now = await writer.client.server_time()
    finally:
        await writer.stop()

    async def two_days_later() -> float:  # the stand-in for time passing: collection's clock
        return server_now + 2 * ABANDONED_UPLOAD_SECONDS

    collector = _store(s3_server, bucket, settings, clock=two_days_later)
    report = await collect_artifacts(settings.database_url, collector, unknown_run_min_age_seconds=86400)
    assert (report.blobs, report.bytes - len(b"partial"), report.abandoned_uploads) == (1, 200, 2)
    await collector.start()
    try:
        assert await read_all(collector, hashlib.sha256(kept).hexdigest()) == kept
        with pytest.raises(LookupError):
            await collector.get(hashlib.sha256(garbage).hexdigest())
        assert await leftovers(collector) == ([], [])
        assert abandoned
    finally:
        await collector.stop()


async def test_collection_keeps_a_blob_committed_again_while_it_looks(
    s3_server: S3Server, settings: Settings, db: asyncpg.Pool
) -> None:
    """The race the digest locks close: an upload of the same content commits (copies) while the
    collector has listed the blob as old and unreferenced; the collector must keep it."""
    store = _store(s3_server, s3_server.new_bucket(), settings)
    await store.start()
    try:
        data = os.urandom(300)
        digest = (await store.put(chunks(data), max_bytes=1000)).digest
        key = f"artifacts/sha256/{digest[:2]}/{digest}"
        first = (await store.client.head_object(key)).last_modified  # type: ignore[union-attr]
        # LastModified counts whole seconds: the recommit must be stamped later than the first commit.
        await eventually(store.client.server_time, lambda now: now >= first + 1.5, what="a second later")
        await store.client.put_object("artifacts/tmp/recommit", data)

        async def clock() -> float:  # the cutoff falls between the two commits
            return first + 0.5 + 3600

        collector = _store(s3_server, store.settings.bucket, settings, clock=clock)
        async with store._locks.hold(digest, exclusive=False):  # an upload committing
            pass_ = asyncio.create_task(collect_artifacts(settings.database_url, collector))
            await eventually(lambda: _waiting_locks(db), lambda n: n == 1, what="the collector waiting for the lock")
            await store.client.copy_object("artifacts/tmp/recommit", key)  # the commit, under the lock
        report = await pass_
        assert (report.blobs, report.too_new) == (0, 1)
        assert await read_all(store, digest) == data
    finally:
        await store.stop()


async def _waiting_locks(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))


async def test_the_http_api_streams_ranges_from_the_object_store(
    s3_server: S3Server, settings: Settings, db: asyncpg.Pool
) -> None:
    bucket = s3_server.new_bucket()
    s3_settings = Settings.from_env({**settings.as_env(), **s3_server.env(bucket)})
    assert isinstance(open_store(s3_settings), S3ArtifactStore)
    data = os.urandom(6 * MIB)
    url_of = f"/api/runs/{uuid.uuid4()}/files/model.bin"
    async with serving(s3_settings) as url, aiohttp.ClientSession() as session:
        async with session.put(url + url_of, data=io.BytesIO(data)) as resp:
            assert resp.status == 201, await resp.text()
            digest = (await resp.json())["digest"]
        async with session.get(url + url_of, headers={"Range": "bytes=100-199"}) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
            assert await resp.read() == data[100:200]
        async with session.get(url + url_of, headers={"Range": "bytes=-10"}) as resp:
            assert (resp.status, await resp.read()) == (206, data[-10:])
        async with session.get(url + url_of, headers={"Range": f"bytes={len(data)}-"}) as resp:
            assert resp.status == 416 and resp.headers["Content-Range"] == f"bytes */{len(data)}"
        async with session.get(url + url_of) as resp:
            assert resp.status == 200 and resp.headers["ETag"] == f'"{digest}"'
            assert hashlib.sha256(await resp.read()).hexdigest() == digest
        async with session.get(url + url_of, headers={"If-None-Match": f'"{digest}"'}) as resp:
            assert resp.status == 304
