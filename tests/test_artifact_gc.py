"""Artifact collection against the running query service: what goes, what stays, uploads in flight."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
import uuid
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import asyncpg
import pytest

from ingest import drop_experiment
from producer import Experiment, Workspace
from query import LocalArtifactStore
from query._artifact_gc import collect_artifacts
from query._artifacts import ABANDONED_UPLOAD_SECONDS
from runstream.config import Settings
from tests.support import eventually
from tests.test_cli import _cli
from tests.test_producer import topic, workspace  # noqa: F401 - fixtures
from tests.test_query_files import download, put

pytestmark = pytest.mark.usefixtures("ingest_worker", "query_service")

_TWO_HOURS = 7200


def blob_path(settings: Settings, content: bytes) -> Path:
    digest = hashlib.sha256(content).hexdigest()
    return settings.artifacts_dir / "sha256" / digest[:2] / digest


def committed_long_ago(settings: Settings, *contents: bytes) -> None:
    """Stand-in for the passage of time: the blobs look committed two hours ago."""
    past = time.time() - _TWO_HOURS
    for content in contents:
        os.utime(blob_path(settings, content), (past, past))


async def orphan(query_service: str, settings: Settings, content: bytes) -> None:
    """Store ``content``, overwrite it with other bytes, and age it: unreferenced and old."""
    url = f"{query_service}/api/runs/{uuid.uuid4()}/files/orphan.bin"
    assert (await put(url, content))[0] == 201
    assert (await put(f"{url}?overwrite=true", os.urandom(64)))[0] == 201
    committed_long_ago(settings, content)


async def test_overwritten_and_dropped_files_go_and_nothing_else(
    settings: Settings,
    query_service: str,
    db: asyncpg.Pool,
    workspace: Workspace,  # noqa: F811
) -> None:
    old, new, dropped_only, shared = (os.urandom(1000) for _ in range(4))
    kept = Experiment(workspace, f"gc-kept-{uuid.uuid4().hex[:8]}").start_logging(outputs=None)
    name = f"gc-dropped-{uuid.uuid4().hex[:8]}"
    gone = Experiment(workspace, name).start_logging(outputs=None)
    kept_url = f"{query_service}/api/runs/{kept.id}/files"
    assert (await put(f"{kept_url}/model.bin", old))[0] == 201
    assert (await put(f"{kept_url}/model.bin?overwrite=true", new))[0] == 201
    assert (await put(f"{kept_url}/shared.bin", shared))[0] == 201
    gone.upload_file("only.bin", io.BytesIO(dropped_only))
    gone.upload_file("shared.bin", io.BytesIO(shared))
    for run in (kept, gone):
        run.complete()
        await asyncio.to_thread(run.wait_for_completion, timeout_seconds=120, poll_interval_seconds=0.1)
    await drop_experiment(settings.database_url, name)
    store = LocalArtifactStore(settings.artifacts_dir)

    # Fresh garbage waits for its age: nothing of this test goes yet.
    report = await collect_artifacts(settings.database_url, store)
    assert all(blob_path(settings, c).exists() for c in (old, new, dropped_only, shared))

    committed_long_ago(settings, old, new, dropped_only, shared)
    await db.execute("UPDATE files SET created_at = now() - interval '2 days' WHERE run_id = $1", uuid.UUID(gone.id))
    report = await collect_artifacts(settings.database_url, store)
    assert (report.file_rows, report.blobs, report.bytes) == (2, 2, 2000)
    assert not blob_path(settings, old).exists() and not blob_path(settings, dropped_only).exists()
    assert await db.fetchval("SELECT count(*) FROM files WHERE run_id = $1", uuid.UUID(gone.id)) == 0
    assert (await download(f"{kept_url}/model.bin"))[2] == new
    assert (await download(f"{kept_url}/shared.bin"))[2] == shared


async def test_an_upload_streaming_during_collection_is_stored(settings: Settings, query_service: str) -> None:
    content = os.urandom(200_000)
    await orphan(query_service, settings, content)  # the worst case: this very content is garbage meanwhile
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield content[:100_000]
        await release.wait()
        yield content[100_000:]

    url = f"{query_service}/api/runs/{uuid.uuid4()}/files/in-flight.bin"
    upload = asyncio.create_task(put(url, body()))
    tmp = settings.artifacts_dir / "tmp"

    async def in_flight() -> list[Path]:
        return list(tmp.iterdir())

    # The store holds small writes back, so the temp file's existence is the sign.
    await eventually(in_flight, lambda temps: len(temps) == 1, what="the upload's temp file in tmp/")
    report = await collect_artifacts(settings.database_url, LocalArtifactStore(settings.artifacts_dir))
    assert report.blobs >= 1 and not blob_path(settings, content).exists()
    release.set()
    assert (await upload)[0] == 201
    assert (await download(url))[2] == content


async def test_a_blob_committed_again_while_collecting_is_put_back(
    settings: Settings, query_service: str, db: asyncpg.Pool
) -> None:
    content = os.urandom(5000)
    await orphan(query_service, settings, content)
    url = f"{query_service}/api/runs/{uuid.uuid4()}/files/again.bin"

    async def referenced(digests: Collection[str]) -> set[str]:
        rows = await db.fetch("SELECT DISTINCT digest FROM files WHERE digest = ANY($1::text[])", list(digests))
        # The same content is uploaded and recorded after the collector's snapshot, before its deletion.
        assert (await put(url, content))[0] == 201
        return {r["digest"] for r in rows}

    collected = await LocalArtifactStore(settings.artifacts_dir).collect(referenced, min_age_seconds=3600)
    assert collected.too_new == 1
    assert (await download(url))[2] == content


async def test_the_command(settings: Settings) -> None:
    code, out = await _cli(settings, "gc-artifacts")
    assert code == 0 and "blob(s)" in out, out
    code, out = await _cli(settings, "gc-artifacts", "--min-age-seconds", "5")
    assert code == 2 and "min_age_seconds must be at least 120" in out, out


async def test_a_blob_left_in_trash_by_a_pass_that_died_is_put_back(settings: Settings, query_service: str) -> None:
    content = os.urandom(3000)
    url = f"{query_service}/api/runs/{uuid.uuid4()}/files/kept.bin"
    assert (await put(url, content))[0] == 201
    final = blob_path(settings, content)
    # What a pass leaves when it dies between moving a blob aside and deciding on it.
    final.rename(settings.artifacts_dir / "trash" / f"{final.name}.{uuid.uuid4().hex}")
    await collect_artifacts(settings.database_url, LocalArtifactStore(settings.artifacts_dir))
    assert (await download(url))[2] == content
    assert not any((settings.artifacts_dir / "trash").iterdir())


async def test_an_upload_abandoned_by_a_dead_process_goes_after_a_day(settings: Settings) -> None:
    """What SIGKILL mid-upload leaves in tmp/: collected once untouched for a day, never sooner."""
    tmp = settings.artifacts_dir / "tmp"
    dead, recent = tmp / f"dead-{uuid.uuid4().hex}", tmp / f"recent-{uuid.uuid4().hex}"
    dead.write_bytes(os.urandom(700))
    recent.write_bytes(os.urandom(300))
    past = time.time() - ABANDONED_UPLOAD_SECONDS - 60
    os.utime(dead, (past, past))
    recent_past = time.time() - ABANDONED_UPLOAD_SECONDS + 600
    os.utime(recent, (recent_past, recent_past))
    try:
        report = await collect_artifacts(settings.database_url, LocalArtifactStore(settings.artifacts_dir))
        assert report.abandoned_uploads == 1 and report.bytes >= 700
        assert not dead.exists() and recent.exists()
    finally:
        recent.unlink(missing_ok=True)
    code, out = await _cli(settings, "gc-artifacts")
    assert code == 0 and "0 abandoned upload(s)" in out, out
