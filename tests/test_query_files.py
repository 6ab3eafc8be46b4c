"""Run files through the query service: streamed upload, listing, download, name checks, size limit."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest_asyncio
import yarl
from aiohttp import web

from ops.stack import free_port
from query import LocalArtifactStore, StoredBlob, create_app
from runstream.config import Settings


async def put(
    url: str, data: Any, *, headers: dict[str, str] | None = None, encoded: bool = False
) -> tuple[int, dict[str, Any]]:
    target = yarl.URL(url, encoded=True) if encoded else url
    if isinstance(data, bytes):
        data = io.BytesIO(data)  # aiohttp warns about large raw bytes bodies
    async with aiohttp.ClientSession() as session, session.put(target, data=data, headers=headers) as resp:
        assert resp.content_type == "application/json"
        return resp.status, orjson.loads(await resp.read())


async def download(url: str, *, encoded: bool = False) -> tuple[int, str, bytes, dict[str, str]]:
    target = yarl.URL(url, encoded=True) if encoded else url
    async with aiohttp.ClientSession() as session, session.get(target) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read(), dict(resp.headers)


def blobs(root: Path) -> set[str]:
    return {p.name for p in (root / "sha256").rglob("*") if p.is_file()}


async def test_upload_download_round_trip(query_service: str, settings: Settings, db: asyncpg.Pool) -> None:
    run_id = uuid.uuid4()  # nothing ingested for this run yet: uploads are still accepted
    content = os.urandom(3 * 1024 * 1024 + 17)
    digest = hashlib.sha256(content).hexdigest()
    base = f"{query_service}/api/runs/{run_id}/files"
    status, body = await put(f"{base}/outputs/model.bin", content, headers={"Content-Type": "application/x-model"})
    assert status == 201
    assert body == {
        "name": "outputs/model.bin",
        "size": len(content),
        "digest": digest,
        "content_type": "application/x-model",
        "created_at": body["created_at"],
    }
    status, ctype, data, headers = await download(f"{base}/outputs/model.bin")
    assert (status, ctype, data) == (200, "application/x-model", content)
    assert headers["Content-Disposition"] == "attachment; filename*=UTF-8''model.bin"
    assert headers["X-Content-Type-Options"] == "nosniff"

    # Content type guessed from the name when the client sends none.
    status, body = await put(f"{base}/plot.png", b"\x89PNG fake", headers={"Content-Type": ""})
    assert status == 201 and body["content_type"] == "image/png"
    status, ctype, data, headers = await download(f"{base}/plot.png")
    assert (status, ctype, data) == (200, "image/png", b"\x89PNG fake")
    assert headers["Content-Disposition"].startswith("inline")

    # Logs, code and configs open as text in the browser; HTML and SVG never do.
    shown = {"logs/driver.log": "", "train.py": "", "conf.yaml": "", "page.html": "", "pic.svg": ""}
    texts = f"{query_service}/api/runs/{uuid.uuid4()}/files"
    for name in shown:
        assert (await put(f"{texts}/{name}", b"<script>alert(1)</script>", headers={"Content-Type": ""}))[0] == 201
        _, ctype, _, headers = await download(f"{texts}/{name}")
        shown[name] = f"{ctype} {headers['Content-Disposition'].split(';')[0]}"
    assert shown == {
        "logs/driver.log": "text/plain; charset=utf-8 inline",
        "train.py": "text/plain; charset=utf-8 inline",
        "conf.yaml": "text/plain; charset=utf-8 inline",
        "page.html": "text/html attachment",
        "pic.svg": "image/svg+xml attachment",
    }

    # A name with spaces and non-ASCII characters survives percent-encoding.
    status, body = await put(f"{base}/r%C3%A9sum%C3%A9%20final.txt", b"hi", headers={"Content-Type": "text/plain"})
    assert status == 201 and body["name"] == "résumé final.txt"
    assert (await download(f"{base}/r%C3%A9sum%C3%A9%20final.txt"))[2] == b"hi"

    async with aiohttp.ClientSession() as session, session.get(base) as resp:
        assert resp.status == 200
        listing = orjson.loads(await resp.read())
    assert [(f["name"], f["size"], f["content_type"]) for f in listing["files"]] == [
        ("outputs/model.bin", len(content), "application/x-model"),
        ("plot.png", 9, "image/png"),
        ("résumé final.txt", 2, "text/plain"),
    ]
    # The files table maps (run, name) to the content's digest, and the blob is under it.
    stored = await db.fetchval("SELECT digest FROM files WHERE run_id = $1 AND name = $2", run_id, "outputs/model.bin")
    assert stored == digest
    assert (settings.artifacts_dir / "sha256" / digest[:2] / digest).read_bytes() == content


async def test_streamed_upload_without_length(query_service: str) -> None:
    run_id = uuid.uuid4()
    chunks = [os.urandom(100_000) for _ in range(20)]

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    status, meta = await put(f"{query_service}/api/runs/{run_id}/files/stream.bin", body())
    assert status == 201 and meta["size"] == 2_000_000
    assert meta["digest"] == hashlib.sha256(b"".join(chunks)).hexdigest()
    status, _, data, _ = await download(f"{query_service}/api/runs/{run_id}/files/stream.bin")
    assert status == 200 and data == b"".join(chunks)


async def test_same_content_is_stored_once_and_reupload_rules(query_service: str, settings: Settings) -> None:
    run_a, run_b = uuid.uuid4(), uuid.uuid4()
    content = b"shared content " + uuid.uuid4().bytes
    digest = hashlib.sha256(content).hexdigest()
    before = blobs(settings.artifacts_dir)
    for run_id, name in ((run_a, "a.txt"), (run_b, "b.txt"), (run_b, "copy/b.txt")):
        status, body = await put(f"{query_service}/api/runs/{run_id}/files/{name}", content)
        assert status == 201 and body["digest"] == digest
    assert blobs(settings.artifacts_dir) - before == {digest}

    url = f"{query_service}/api/runs/{run_a}/files/a.txt"
    # The same content again (a client retry) is accepted as is.
    status, body = await put(url, content)
    assert status == 201 and body["digest"] == digest
    # Other content under a taken name is a conflict unless overwrite is asked for.
    status, body = await put(url, b"different")
    assert status == 409 and body["error"]["code"] == "file_exists" and body["error"]["parameter"] == "name"
    assert (await download(url))[2] == content
    status, body = await put(url + "?overwrite=true", b"different")
    assert status == 201 and body["size"] == 9
    assert (await download(url))[2] == b"different"
    status, body = await put(url + "?overwrite=maybe", b"x")
    assert status == 400 and body["error"]["parameter"] == "overwrite"


TRAVERSALS = [
    "../x",
    "a/../../x",
    "%2e%2e%2fx",
    "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "a%2f..%2f..%2fx",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "a%00b",
    "a%0ab",
    "a%5cb",
    "..%5c..%5cwindows",
    "./x",
    "a//b",
    "x" * 1025,
]


async def test_bad_file_names_are_rejected(query_service: str, settings: Settings) -> None:
    run_id = uuid.uuid4()
    base = f"{query_service}/api/runs/{run_id}/files/"
    before = blobs(settings.artifacts_dir)
    for name in TRAVERSALS:
        status, body = await put(base + name, b"evil", encoded=True)
        assert status == 400, name
        assert body["error"]["code"] == "bad_file_name" and body["error"]["parameter"] == "name", name
        status, ctype, data, _ = await download(base + name, encoded=True)
        assert status == 400 and ctype == "application/json", name
    assert blobs(settings.artifacts_dir) == before
    async with aiohttp.ClientSession() as session, session.get(base.rstrip("/")) as resp:
        assert orjson.loads(await resp.read()) == {"files": []}
    # 1024 characters is still a valid name.
    status, body = await put(base + "y" * 1024, b"ok")
    assert status == 201 and body["name"] == "y" * 1024


async def test_file_errors(query_service: str) -> None:
    run_id = uuid.uuid4()
    status, ctype, data, _ = await download(f"{query_service}/api/runs/{run_id}/files/nothing.txt")
    assert status == 404 and orjson.loads(data)["error"]["code"] == "file_not_found"
    status, body = await put(f"{query_service}/api/runs/not-a-run/files/a.txt", b"x")
    assert status == 400 and body["error"]["parameter"] == "run_id"
    status, body = await put(f"{query_service}/api/runs/{run_id}/files/a.txt", b"x", headers={"Content-Type": "???"})
    assert status == 400 and body["error"]["parameter"] == "Content-Type"


# --- size limit: an in-process app on a real socket with a small limit ------------


@pytest_asyncio.fixture(scope="module")
async def small_limit_service(settings: Settings, tmp_path_factory: Any) -> AsyncIterator[tuple[str, Path]]:
    artifacts = tmp_path_factory.mktemp("small-artifacts")
    app = create_app(dataclasses.replace(settings, artifacts_dir=artifacts, max_upload_bytes=1000))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}", artifacts
    finally:
        await runner.cleanup()


async def test_upload_size_limit(small_limit_service: tuple[str, Path]) -> None:
    url, artifacts = small_limit_service
    base = f"{url}/api/runs/{uuid.uuid4()}/files"
    status, body = await put(f"{base}/exact.bin", b"x" * 1000)
    assert status == 201 and body["size"] == 1000
    # Declared too large: refused before reading.
    status, body = await put(f"{base}/big.bin", b"x" * 1001)
    assert status == 413 and body["error"]["code"] == "payload_too_large"

    async def stream() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 300

    # Not declared (chunked): refused once it passes the limit, and nothing is kept.
    status, body = await put(f"{base}/streamed.bin", stream())
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert list((artifacts / "tmp").iterdir()) == []
    assert blobs(artifacts) == {hashlib.sha256(b"x" * 1000).hexdigest()}
    async with aiohttp.ClientSession() as session, session.get(base) as resp:
        assert [f["name"] for f in orjson.loads(await resp.read())["files"]] == ["exact.bin"]


# --- unexpected errors: a store that breaks, plugged in at the store seam ---------


class _BrokenStore(LocalArtifactStore):
    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        raise RuntimeError("disk on fire: /secret/path")


async def test_unexpected_error_is_500_without_details(settings: Settings, tmp_path: Path) -> None:
    app = create_app(settings, artifact_store=_BrokenStore(tmp_path))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        status, body = await put(f"http://127.0.0.1:{port}/api/runs/{uuid.uuid4()}/files/a.txt", b"x")
    finally:
        await runner.cleanup()
    assert status == 500
    assert body == {"error": {"code": "internal", "message": "internal server error", "parameter": None}}


async def test_concurrent_uploads_of_one_new_name_never_overwrite_silently(query_service: str) -> None:
    run_id = uuid.uuid4()
    url = f"{query_service}/api/runs/{run_id}/files/race.bin"
    contents = [f"writer {i}".encode() * 1000 for i in range(8)]
    results = await asyncio.gather(*(put(url, c) for c in contents))
    winners = [contents[i] for i, (status, _) in enumerate(results) if status == 201]
    # Exactly one writer wins; every other one is told so (409), and what is stored is the winner's.
    assert len(winners) == 1
    assert sorted(status for status, _ in results) == [201] + [409] * 7
    assert (await download(url))[2] == winners[0]


async def test_download_from_an_offset_with_range(query_service: str) -> None:
    """What a log follower needs: the bytes after what it has already shown."""
    url = f"{query_service}/api/runs/{uuid.uuid4()}/files/logs/driver.log"
    assert (await put(url, b"line 1\nline 2\n", headers={"Content-Type": "text/plain"}))[0] == 201
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Range": "bytes=7-"}) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == "bytes 7-13/14"
            assert await resp.read() == b"line 2\n"
        async with session.get(url, headers={"Range": "bytes=14-"}) as resp:
            assert resp.status == 416  # nothing new yet
