"""The query service's side of read-your-writes: the ``Runstream-Read-After`` header.

Ingest is played by the tests: ``bump_session`` stores a session's last seq
and announces the run, as each ingest commit does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from ops.stack import free_port
from runstream.config import Settings
from runstream.consistency import (
    MAX_READ_AFTER_SESSIONS,
    MAX_READ_WAIT_SECONDS,
    format_read_after,
    format_wait,
    parse_read_after,
    parse_wait,
)
from runstream.events import CHANGED_RUNS_CHANNEL
from tests.support import wait_http_ok
from tests.test_query_seed import bump_session, seed_run, seed_scalars

HEADER = "Runstream-Read-After"


async def _get(url: str, headers: dict[str, str]) -> tuple[int, Any, float]:
    """Status, JSON body and seconds taken."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as client, client.get(url, headers=headers) as resp:
        body = orjson.loads(await resp.read())
        return resp.status, body, time.monotonic() - started


def _token(session: uuid.UUID, seq: int, wait: float) -> dict[str, str]:
    return {HEADER: f"{session}:{seq}", "Prefer": f"wait={wait}"}


@pytest.mark.parametrize("announced", [True, False], ids=["notified", "notification-lost"])
async def test_a_read_waits_until_ingest_has_stored_the_token(
    query_service: str, db: asyncpg.Pool, announced: bool
) -> None:
    """Held until the commit that stores seq 3; found by the NOTIFY or, if that is lost, the recheck (1 s)."""
    run_id = await seed_run(db, status="Running")
    session = uuid.uuid4()
    await bump_session(db, run_id, session, 1)
    read = asyncio.create_task(_get(f"{query_service}/api/runs/{run_id}", _token(session, 3, 30)))
    await asyncio.sleep(0.5)
    assert not read.done()  # seq 3 is not stored: the read is held
    async with db.acquire() as conn, conn.transaction():  # ingest's commit: the status and the seq together
        await conn.execute("UPDATE runs SET status = 'Completed' WHERE id = $1", run_id)
        await conn.execute("UPDATE producer_sessions SET last_seq = 3 WHERE session_id = $1", session)
        if announced:
            await conn.execute("SELECT pg_notify($1, $2)", CHANGED_RUNS_CHANNEL, str(run_id))
    status, body, took = await asyncio.wait_for(read, 10)
    assert (status, body["status"]) == (200, "Completed")
    assert took < 5


async def test_a_stored_token_is_answered_at_once(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, status="Running")
    await seed_scalars(db, run_id, "loss", "float", [1.0, 0.5])
    session = uuid.uuid4()
    await bump_session(db, run_id, session, 7)
    status, body, took = await _get(f"{query_service}/api/runs/{run_id}/metrics", _token(session, 7, 30))
    assert (status, body) == (200, {"loss": [1.0, 0.5]}) and took < 2
    status, body, _ = await _get(f"{query_service}/api/read-after", _token(session, 5, 30))
    assert (status, body) == (200, {"sessions": {str(session): 7}})
    status, body, _ = await _get(f"{query_service}/api/read-after", {})
    assert (status, body) == (200, {"sessions": {}})


async def test_the_wait_runs_out_with_the_lag(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, status="Running")
    behind, unknown, done = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await bump_session(db, run_id, behind, 2)
    await bump_session(db, run_id, done, 9)
    headers = {HEADER: f"{behind}:5,{unknown}:1,{done}:9", "Prefer": "respond-async, wait=0.5"}
    status, body, took = await _get(f"{query_service}/api/runs/{run_id}", headers)
    assert status == 503 and 0.5 <= took < 5
    assert body["error"]["code"] == "ingest_behind" and body["error"]["parameter"] == HEADER
    lag = body["lag"]
    assert 0.5 <= lag["waited_seconds"] < 5
    assert sorted(lag["sessions"], key=lambda s: s["required_seq"]) == [
        {"session": str(unknown), "stored_seq": 0, "required_seq": 1},
        {"session": str(behind), "stored_seq": 2, "required_seq": 5},
    ]
    assert f"session {behind} stored up to seq 2, needs 5" in body["error"]["message"]
    # Zero waits not at all: a reader that may not wait learns at once.
    status, body, took = await _get(f"{query_service}/api/runs/{run_id}", _token(behind, 5, 0))
    assert status == 503 and took < 2


@pytest.mark.parametrize(
    ("headers", "parameter"),
    [
        ({HEADER: "not-a-token"}, HEADER),
        ({HEADER: f"{uuid.uuid4()}"}, HEADER),
        ({HEADER: "0000:1"}, HEADER),
        ({HEADER: f"{uuid.uuid4()}:0"}, HEADER),
        ({HEADER: f"{uuid.uuid4()}:-3"}, HEADER),
        ({HEADER: f"{uuid.uuid4()}:²"}, HEADER),
        ({HEADER: f"{uuid.uuid4()}:{'9' * 5000}"}, HEADER),
        ({HEADER: f"{uuid.uuid4()}:{2**63}"}, HEADER),
        ({HEADER: ",".join(f"{uuid.uuid4()}:1" for _ in range(MAX_READ_AFTER_SESSIONS + 1))}, HEADER),
        ({HEADER: f"{uuid.uuid4()}:1", "Prefer": "wait=-1"}, "Prefer"),
        ({HEADER: f"{uuid.uuid4()}:1", "Prefer": "wait=soon"}, "Prefer"),
        ({HEADER: f"{uuid.uuid4()}:1", "Prefer": "wait=nan"}, "Prefer"),
    ],
)
async def test_a_malformed_token_is_a_400_naming_the_header(
    query_service: str, headers: dict[str, str], parameter: str
) -> None:
    status, body, _ = await _get(f"{query_service}/api/runs/{uuid.uuid4()}", headers)
    assert status == 400 and body["error"]["parameter"] == parameter
    assert body["error"]["code"] in ("bad_read_after", "bad_wait")


async def test_a_token_on_a_write_is_ignored(query_service: str) -> None:
    never = {HEADER: f"{uuid.uuid4()}:1", "Prefer": "wait=30"}
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as client,
        client.put(f"{query_service}/api/runs/{uuid.uuid4()}/files/a.txt", data=b"x", headers=never) as resp,
    ):
        assert resp.status == 201
    assert time.monotonic() - started < 5


async def test_a_stranger_cannot_make_the_service_wait(settings: Settings, spawn: Callable[..., Any]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn("query", dataclasses.replace(settings, token="s3cret-" + "x" * 32, query_port=port, query_url=url))
    await wait_http_ok(f"{url}/health", proc)
    status, body, took = await _get(f"{url}/api/runs/{uuid.uuid4()}", _token(uuid.uuid4(), 1, 30))
    assert status == 401 and "error" in body and took < 5


def test_the_token_format_round_trips() -> None:
    sessions = {str(uuid.uuid4()): i + 1 for i in range(MAX_READ_AFTER_SESSIONS)}
    text = format_read_after(sessions)
    assert parse_read_after(text) == sessions and len(text) < 8190  # one header line
    with pytest.raises(ValueError, match="1..100 sessions"):
        format_read_after({**sessions, str(uuid.uuid4()): 1})
    one = str(uuid.uuid4())
    assert parse_read_after(f" {one.upper()}:3 , {one}:9") == {one: 9}  # the highest seq of a session
    assert parse_wait(format_wait(12.5)) == 12.5 and parse_wait(format_wait(-1)) == 0.0
    assert parse_wait(None) == parse_wait("respond-async") == parse_wait("wait=1e9") == MAX_READ_WAIT_SECONDS
