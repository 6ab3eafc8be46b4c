"""Two query replicas on one PostgreSQL and one object store (issue 16), as two real processes:
a file uploaded through one is downloaded through the other, a live stream on the other shows what
ingest stores, and a browser session opened on one is honoured by the other (same cookie secret)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from ops.stack import free_port
from runstream.config import Settings
from tests.s3_server import S3Server
from tests.support import eventually, wait_http_ok
from tests.test_ingest_support import new_id, produce_all, raw, scalars, started

READ_TOKEN = "replica-read-" + "r" * 32
WRITE_TOKEN = "replica-write-" + "w" * 32
COOKIE_SECRET = "replica-cookies-" + "c" * 32


async def _replicas(settings: Settings, s3_server: S3Server, spawn: Callable[..., Any]) -> list[str]:
    shared = Settings.from_env(
        {
            **settings.as_env(),
            **s3_server.env(s3_server.new_bucket(), prefix="replicas"),
            "RUNSTREAM_TOKEN": READ_TOKEN,
            "RUNSTREAM_WRITE_TOKEN": WRITE_TOKEN,
            "RUNSTREAM_COOKIE_SECRET": COOKIE_SECRET,
        }
    )
    urls = []
    for _ in range(2):
        port = free_port()
        replica = dataclasses.replace(shared, query_port=port, query_url=f"http://127.0.0.1:{port}")
        proc = spawn("query", replica)
        await wait_http_ok(f"{replica.query_url}/ready", proc)
        urls.append(replica.query_url)
    return urls


async def test_two_replicas_share_files_streams_and_sessions(
    settings: Settings, s3_server: S3Server, spawn: Callable[..., Any], ingest_worker: Any
) -> None:
    a, b = await _replicas(settings, s3_server, spawn)
    run, session = new_id(), new_id()
    await produce_all(settings, settings.topic, [(run, raw(run, session, 1, started(time=time.time())))])
    write = {"Authorization": f"Bearer {WRITE_TOKEN}"}
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    content = os.urandom(3 << 20)
    async with aiohttp.ClientSession() as client:
        # Uploaded on A, downloaded (whole and in part) on B.
        async with client.put(
            f"{a}/api/runs/{run}/files/outputs/model.bin", data=io.BytesIO(content), headers=write
        ) as r:
            assert r.status == 201, await r.text()
        async with client.get(f"{b}/api/runs/{run}/files/outputs/model.bin", headers=read) as r:
            assert r.status == 200 and hashlib.sha256(await r.read()).digest() == hashlib.sha256(content).digest()
        async with client.get(
            f"{b}/api/runs/{run}/files/outputs/model.bin", headers={**read, "Range": "bytes=5-9"}
        ) as r:
            assert (r.status, await r.read()) == (206, content[5:10])

        # A live stream on B sees the points ingest stores, whichever replica anyone else talks to.
        async with client.get(f"{b}/api/runs/{run}/stream", headers=read) as stream:
            assert stream.status == 200
            batch = raw(run, session, 2, scalars("loss", "float", [0.5, 0.25]))
            await produce_all(settings, settings.topic, [(run, batch)])
            seen = await _points(stream, "loss", 2)
            assert seen == [0.5, 0.25]

    # A browser signs in on A; its cookie opens the API and pages on B.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.post(f"{a}/login", data={"token": READ_TOKEN, "next": "/"}, allow_redirects=False) as r:
            assert r.status == 303
        assert len(browser.cookie_jar) == 1
        async with browser.get(f"{b}/api/runs/{run}") as r:
            assert r.status == 200 and (await r.json())["id"] == run
        async with browser.get(f"{b}/api/runs/{uuid.UUID(run)}/files") as r:
            assert [f["name"] for f in (await r.json())["files"]] == ["outputs/model.bin"]


async def _points(stream: aiohttp.ClientResponse, name: str, count: int) -> list[float]:
    """Values of ``name`` from the stream's ``points`` events until ``count`` arrived (or the deadline)."""
    values: list[float] = []
    event = ""

    async def next_line() -> bytes:
        return await stream.content.readline()

    async def more() -> list[float]:
        nonlocal event
        line = (await next_line()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event == "points":
            values.extend(orjson.loads(line[len("data: ") :])["metrics"].get(name, {}).get("values", []))
        return values

    return await eventually(more, lambda got: len(got) >= count, interval_seconds=0, what=f"{count} points of {name}")
