"""Bearer-token auth: with RUNSTREAM_TOKEN set, everything but /health needs the token."""

from __future__ import annotations

import base64
import dataclasses
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest_asyncio
from aiohttp import web

from ops.stack import free_port
from query import create_app
from runstream.config import Settings
from tests.support import wait_http_ok
from tests.test_query_seed import seed_run, seed_scalars

TOKEN = "s3cret-" + "x" * 32
READ_TOKEN = "r3ad-" + "r" * 32
WRITE_TOKEN = "wr1te-" + "w" * 32


@pytest_asyncio.fixture(scope="module")
async def secured(settings: Settings, spawn: Callable[..., Any]) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn("query", dataclasses.replace(settings, token=TOKEN, query_port=port, query_url=url))
    await wait_http_ok(f"{url}/health", proc)
    return url


async def request(method: str, url: str, token: str | None = None, header: str | None = None) -> tuple[int, Any, str]:
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as session, session.request(method, url, headers=headers, data=b"x") as resp:
        body = await resp.read()
        parsed = orjson.loads(body) if resp.content_type == "application/json" else body.decode()
        return resp.status, parsed, resp.headers.get("WWW-Authenticate", "")


async def test_health_needs_no_token(secured: str) -> None:
    status, body, _ = await request("GET", f"{secured}/health")
    assert (status, body) == (200, {"status": "ok"})


async def test_every_route_needs_the_token(secured: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, experiment="auth")
    await seed_scalars(db, run_id, "acc", "float", [0.5])
    routes = [  # (method, path, status with the right token)
        ("GET", f"/api/runs/{run_id}", 200),
        ("GET", f"/api/runs/{run_id}/metrics", 200),
        ("PUT", f"/api/runs/{run_id}/files/a.txt", 201),
        ("GET", f"/api/runs/{run_id}/files", 200),
        ("GET", f"/api/runs/{run_id}/files/a.txt", 200),
        ("GET", "/api/experiments", 200),
        ("GET", "/api/runs?experiment=auth", 200),
        ("GET", "/", 200),
        ("GET", "/experiments/auth", 200),
        ("GET", f"/runs/{run_id}", 200),
        ("GET", "/api/no-such-route", 404),  # no route discovery without the token
        ("GET", "/api/runs/not-a-uuid", 400),  # nor input checks
    ]
    for method, path, _ in routes:
        for header, code in (
            (None, "missing_token"),
            ("Bearer wrong", "bad_token"),
            (f"Bearer {TOKEN[:-1]}", "bad_token"),
            (f"Bearer {TOKEN}-and-more", "bad_token"),
            (f"Basic {base64.b64encode(TOKEN.encode()).decode()}", "bad_token"),
            (TOKEN, "bad_token"),
            ("Bearer ", "bad_token"),
        ):
            status, body, challenge = await request(method, secured + path, header=header)
            assert status == 401, (method, path, header)
            assert body == {"error": {"code": code, "message": body["error"]["message"], "parameter": None}}
            assert challenge.startswith("Bearer")

    for method, path, want in routes:
        status, body, _ = await request(method, secured + path, token=TOKEN)
        assert status == want, (method, path, body)
    status, body, _ = await request("GET", f"{secured}/api/runs/{run_id}/metrics", header=f"bearer {TOKEN}")
    assert (status, body) == (200, {"acc": 0.5})


async def test_open_service_needs_no_token(query_service: str) -> None:
    status, body, _ = await request("GET", f"{query_service}/api/runs/{uuid.uuid4()}")
    assert status == 404 and body["error"]["code"] == "run_not_found"


async def test_browser_login_sets_a_session_cookie(secured: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, experiment="auth")
    page = f"/runs/{run_id}"
    html = {"Accept": "text/html"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(secured + page, headers=html, allow_redirects=False) as resp:
            assert resp.status == 303
            assert urllib.parse.unquote(resp.headers["Location"]) == f"/login?next=/runs/{run_id}"
        async with browser.get(secured + resp.headers["Location"], headers=html) as resp:
            assert resp.status == 200 and 'name="token"' in await resp.text()
        async with browser.post(
            f"{secured}/login", data={"token": "wrong", "next": page}, allow_redirects=False
        ) as resp:
            assert resp.status == 401 and "not valid" in await resp.text()
        assert len(browser.cookie_jar) == 0
        async with browser.post(f"{secured}/login", data={"token": TOKEN, "next": page}, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == page
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
        # The cookie opens the pages, the API and the event stream (which cannot send headers).
        async with browser.get(secured + page, headers=html) as resp:
            assert resp.status == 200 and str(run_id) in await resp.text()
        async with browser.get(f"{secured}/api/runs/{run_id}") as resp:
            assert resp.status == 200
        async with browser.get(f"{secured}/api/runs/{run_id}/stream") as resp:
            assert resp.status == 200 and resp.content_type == "text/event-stream"
        async with browser.post(f"{secured}/logout", allow_redirects=False) as resp:
            assert resp.status == 303
        async with browser.get(f"{secured}/api/runs/{run_id}") as resp:
            assert resp.status == 401

    async with aiohttp.ClientSession() as client:
        # No open redirect, whatever "next" says.
        for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            async with client.post(
                f"{secured}/login", data={"token": TOKEN, "next": evil}, allow_redirects=False
            ) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/", evil
        # A forged cookie is worth nothing.
        async with client.get(
            f"{secured}/api/runs/{run_id}", headers={"Cookie": "runstream_session=" + "0" * 64}
        ) as resp:
            assert resp.status == 401
        # Static assets (the chart library, the page script) need no token.
        async with client.get(f"{secured}/static/run.js") as resp:
            assert resp.status == 200


async def _serve(app_settings: Settings, write_token: str) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_app(dataclasses.replace(app_settings, write_token=write_token)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def test_separate_write_token(settings: Settings, db: asyncpg.Pool, tmp_path: Path) -> None:
    run_id = await seed_run(db, experiment="auth")
    app_settings = dataclasses.replace(settings, token=READ_TOKEN, artifacts_dir=tmp_path)
    runner, url = await _serve(app_settings, WRITE_TOKEN)
    try:
        file_url = f"{url}/api/runs/{run_id}/files/a.txt"
        for token, want in ((None, 401), (READ_TOKEN, 200), (WRITE_TOKEN, 200), ("nope", 401)):
            assert (await request("GET", f"{url}/api/runs/{run_id}", token))[0] == want, token
        for token, want, code in (
            (None, 401, "missing_token"),
            (READ_TOKEN, 403, "forbidden"),
            ("nope", 401, "bad_token"),
        ):
            status, body, _ = await request("PUT", file_url, token)
            assert (status, body["error"]["code"]) == (want, code), token
        assert (await request("PUT", file_url, WRITE_TOKEN))[0] == 201
        assert (await request("GET", file_url, READ_TOKEN))[0] == 200
    finally:
        await runner.cleanup()

    # Only a write token: reads are open, writes are not.
    runner, url = await _serve(dataclasses.replace(app_settings, token=None), WRITE_TOKEN)
    try:
        assert (await request("GET", f"{url}/api/runs/{run_id}"))[0] == 200
        assert (await request("PUT", f"{url}/api/runs/{run_id}/files/b.txt"))[0] == 401
        assert (await request("PUT", f"{url}/api/runs/{run_id}/files/b.txt", WRITE_TOKEN))[0] == 201
    finally:
        await runner.cleanup()
