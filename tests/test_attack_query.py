"""Attacks on the query service (issue 14, "Secure by default"): each is tried on the real service and refused.

Every test starts ``python -m query`` processes with the settings under test
on the session's PostgreSQL and talks to them over HTTP (raw sockets where a
client library would not misbehave on purpose):

* ``next`` after sign-in never leaves the service, whatever its spelling;
* sessions expire, end at logout (every copy of the cookie), end for everyone
  when the cookie secret or the token changes, and are ``Secure`` over https;
* ``/login`` is rate-limited per client address; short secrets stop the start;
* a request body that trickles or stalls is cut off with 408;
* file names with bidi or zero-width characters are refused, by the service
  and by the SDK alike;
* crafted cursors, unknown filter values and unknown parameters are 400s
  naming the parameter;
* an answer over the points budget is refused before a point is read, and
  reads of many points take turns while light requests go on;
* without a token, foreign Host names (DNS rebinding) are refused; a write
  from another site's page is refused with or without one.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import pytest_asyncio
import yarl

from ops.stack import free_port
from producer._errors import MetricValueError
from producer._payloads import file_name as sdk_file_name
from query._limits import LOGIN_ATTEMPTS, MAX_HEAVY_READS, MAX_RESPONSE_POINTS
from query._openapi import SPEC
from query._sessions import COOKIE
from runstream.config import MIN_SECRET_BYTES, ConfigError, Settings
from runstream.events import STATUSES
from tests.support import eventually, wait_http_ok
from tests.test_query_seed import seed_run, seed_scalars

TOKEN = "attack-t0ken-" + "a" * 32
SECRET = "attack-cookie-secret-" + "c" * 32
ROOT = Path(__file__).resolve().parent.parent

Spawn = Callable[..., subprocess.Popen[bytes]]


@dataclasses.dataclass(frozen=True)
class Service:
    url: str
    proc: subprocess.Popen[bytes]
    settings: Settings

    @property
    def authority(self) -> str:
        return yarl.URL(self.url).authority


async def _start(spawn: Spawn, settings: Settings, **changes: Any) -> Service:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mine = dataclasses.replace(dataclasses.replace(settings, query_port=port, query_url=url), **changes)
    proc = spawn("query", mine)
    await wait_http_ok(f"{url}/health", proc)
    return Service(url, proc, mine)


def _stop(service: Service) -> None:
    service.proc.terminate()
    service.proc.wait(timeout=20)


async def _call(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    data: Any = None,
    token: str | None = None,
) -> tuple[int, Any, Any]:
    """(status, JSON or text body, headers) of one request, redirects not followed."""
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, yarl.URL(url, encoded=True), headers=headers, data=data, allow_redirects=False) as resp,
    ):
        raw = await resp.read()
        body = orjson.loads(raw) if resp.content_type == "application/json" else raw.decode(errors="replace")
        return resp.status, body, resp.headers


def _error(body: Any) -> tuple[str, str | None]:
    return body["error"]["code"], body["error"]["parameter"]


async def _login(
    service: Service, *, token: str = TOKEN, next_path: str = "/", client: str | None = None, **headers: str
) -> tuple[int, Any, Any]:
    """POST /login; ``client`` is the address a trusted proxy would report (X-Forwarded-For)."""
    sent = {k.replace("_", "-"): v for k, v in headers.items()}
    if client is not None:
        sent["X-Forwarded-For"] = client
    return await _call("POST", f"{service.url}/login", data={"token": token, "next": next_path}, headers=sent)


def _session_cookie(headers: Any) -> tuple[str, Any]:
    """(value, attributes) of the session cookie a response sets."""
    jar: SimpleCookie = SimpleCookie()
    for header in headers.getall("Set-Cookie", []):
        jar.load(header)
    morsel = jar[COOKIE]
    return morsel.value, morsel


async def _with_cookie(service: Service, cookie: str, path: str = "/api/experiments") -> int:
    status, _, _ = await _call("GET", service.url + path, headers={"Cookie": f"{COOKIE}={cookie}"})
    return status


@pytest_asyncio.fixture(scope="module")
async def secured(settings: Settings, spawn: Spawn, tmp_path_factory: pytest.TempPathFactory) -> Service:
    """Token, cookie secret, and 127.0.0.1 trusted as a proxy (so tests act as many clients through it)."""
    return await _start(
        spawn,
        settings,
        token=TOKEN,
        cookie_secret=SECRET,
        trusted_proxies=("127.0.0.1",),
        artifacts_dir=tmp_path_factory.mktemp("attack-secured"),
    )


@pytest_asyncio.fixture(scope="module")
async def open_service(settings: Settings, spawn: Spawn, tmp_path_factory: pytest.TempPathFactory) -> Service:
    """No token at all (reads and writes open), with one extra allowed name."""
    return await _start(
        spawn, settings, allowed_hosts=("runs.lan",), artifacts_dir=tmp_path_factory.mktemp("attack-open")
    )


@pytest_asyncio.fixture(scope="module")
async def known_run(db: asyncpg.Pool) -> uuid.UUID:
    run_id = await seed_run(db, experiment="attack", display_name="known")
    await seed_scalars(db, run_id, "loss", "float", [1.0, 0.5, 0.25])
    return run_id


# --- open redirect ------------------------------------------------------------------------

EVIL_NEXT = [
    "//evil.example/x",
    "///evil.example",
    "https://evil.example/",
    "https:evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "//user@evil.example",
    "//evil.example@127.0.0.1",
    "//%65vil.example",
    " //evil.example",
    "\t//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "/%09/evil.example",
    "/%2509/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\x00/evil.example",
    "/\x0b/evil.example",
    "/\x0c/evil.example",
    "/ /evil.example",
    "/%20/evil.example",
    "/%0a/evil.example",
    "/%0d%0a/evil.example",
    "/%00/evil.example",
    "/\u00a0/evil.example",
    "/\u3000/evil.example",
    "/%E3%80%80/evil.example",
    "/\u200b/evil.example",
    "/%E2%80%8B/evil.example",
    "/\u202e/evil.example",
    "/\ufeff/evil.example",
    "/%2F/evil.example",
    "/%2f%2fevil.example",
    "/%252F%252Fevil.example",
    "/%25252F%25252Fevil.example",
    "/%5Cevil.example",
    "/%5c%5cevil.example",
    "/..//evil.example",
    "/a/../..//evil.example",
    "/./%2F/evil.example",
    "/%2e%2e//evil.example",
    "/" + "a" * 5000,
]
GOOD_NEXT = ["/", "/runs/0b4f5a1e-1b8b-4a8a-9c1e-2f7b0e8c9d10", "/experiments/a%2Fb?status=Failed&sort=-created_at"]


async def test_next_after_sign_in_never_leaves_the_service(secured: Service) -> None:
    for i, evil in enumerate(EVIL_NEXT):
        status, _, headers = await _login(secured, next_path=evil, client=f"198.51.100.{i}")
        assert (status, headers.get("Location")) == (303, "/"), evil
        # The form carries only what it would follow.
        status, page, _ = await _call("GET", f"{secured.url}/login?next={urllib.parse.quote(evil, safe='')}")
        assert status == 200 and 'name="next" value="/"' in page, evil
    for i, good in enumerate(GOOD_NEXT):
        status, _, headers = await _login(secured, next_path=good, client=f"198.51.101.{i}")
        assert (status, headers["Location"]) == (303, good)


# --- sessions -----------------------------------------------------------------------------


async def test_session_cookies_are_http_only_strict_and_expire(settings: Settings, spawn: Spawn) -> None:
    service = await _start(spawn, settings, token=TOKEN, cookie_secret=SECRET, session_max_age_seconds=2.0)
    status, _, headers = await _login(service)
    assert status == 303
    cookie, attributes = _session_cookie(headers)
    assert attributes["httponly"] and attributes["samesite"] == "Strict" and attributes["path"] == "/"
    assert attributes["max-age"] == "2" and not attributes["secure"]
    assert TOKEN not in cookie and SECRET not in cookie
    assert await _with_cookie(service, cookie) == 200
    # The service refuses it after then, whatever a client does with Max-Age.

    async def probe() -> int:
        return await _with_cookie(service, cookie)

    await eventually(probe, lambda s: s == 401, timeout_seconds=30, what="the session expiring")


def _forge(cookie: str, expires: int, *, secret: str = SECRET, token: str = TOKEN) -> str:
    """The cookie with another expiry, signed as the service signs (so only the expiry is wrong)."""
    _, session_id, _, _ = cookie.split(".")
    key = hmac.new(secret.encode(), b"runstream session key v2\x00" + token.encode(), hashlib.sha256).digest()
    body = f"v2.{session_id}.{expires}"
    return f"{body}.{hmac.new(key, body.encode(), hashlib.sha256).hexdigest()}"


async def test_a_tampered_or_forged_cookie_opens_nothing(secured: Service) -> None:
    status, _, headers = await _login(secured, client="198.51.102.1")
    cookie, _ = _session_cookie(headers)
    assert await _with_cookie(secured, cookie) == 200
    version, session_id, expires, mac = cookie.split(".")
    later = str(int(expires) + 10**6)
    forged = [
        f"{version}.{session_id}.{later}.{mac}",  # a longer life, unsigned
        f"{version}.{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}.{expires}.{mac}",
        _forge(cookie, int(time.time()) - 1),  # signed with the right key, but expired
        _forge(cookie, int(expires), secret="another-secret-" + "x" * 32),
        "0" * 64,  # the old (v1) form: an HMAC of the token alone
        "v2.." + "." * 300,
        "",
    ]
    for value in forged:
        assert await _with_cookie(secured, value) == 401, value


async def test_logout_ends_the_session_for_every_copy_of_the_cookie(secured: Service, db: asyncpg.Pool) -> None:
    status, _, headers = await _login(secured, client="198.51.102.2")
    cookie, _ = _session_cookie(headers)
    copy = cookie  # what an attacker lifted from the browser earlier
    assert await _with_cookie(secured, cookie) == 200
    status, _, headers = await _call("POST", f"{secured.url}/logout", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert status == 303 and headers["Location"] == "/login"
    deleted, attributes = _session_cookie(headers)
    assert deleted == "" and attributes["max-age"] == "0"
    assert await _with_cookie(secured, copy) == 401
    assert await _with_cookie(secured, copy, "/") == 401
    revoked = await db.fetchval("SELECT count(*) FROM ui_sessions WHERE revoked_at IS NOT NULL")
    assert revoked >= 1


async def test_rotating_the_cookie_secret_or_the_token_signs_everyone_out(
    settings: Settings, spawn: Spawn, tmp_path: Path
) -> None:
    secret_file = tmp_path / "cookie-secret"
    secret_file.write_text("first-secret-" + "1" * 32 + "\n")
    secret_file.chmod(0o600)
    first = await _start(spawn, settings, token=TOKEN, cookie_secret_file=secret_file)
    _, _, headers = await _login(first)
    cookie, _ = _session_cookie(headers)
    assert await _with_cookie(first, cookie) == 200
    _stop(first)
    # The same secret after a restart: the session lives on (it is in PostgreSQL, signed by the file's secret).
    again = await _start(spawn, settings, token=TOKEN, cookie_secret_file=secret_file)
    assert await _with_cookie(again, cookie) == 200
    _stop(again)
    secret_file.write_text("second-secret-" + "2" * 32 + "\n")
    rotated = await _start(spawn, settings, token=TOKEN, cookie_secret_file=secret_file)
    assert await _with_cookie(rotated, cookie) == 401
    _, _, headers = await _login(rotated)
    fresh, _ = _session_cookie(headers)
    assert await _with_cookie(rotated, fresh) == 200
    _stop(rotated)
    # A new token does the same.
    new_token = "rotated-t0ken-" + "n" * 32
    retokened = await _start(spawn, settings, token=new_token, cookie_secret_file=secret_file)
    assert await _with_cookie(retokened, fresh) == 401
    _stop(retokened)


def _start_fails(settings: Settings, **env: str) -> str:
    """Run ``python -m query`` with these variables; it must exit at once. Returns what it said."""
    environ = {**os.environ, **settings.as_env(), "PYTHONPATH": str(ROOT), **env}
    environ["RUNSTREAM_QUERY_PORT"] = str(free_port())
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "query"], env=environ, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stderr


def test_a_cookie_secret_file_others_can_read_stops_the_start(settings: Settings, tmp_path: Path) -> None:
    secret_file = tmp_path / "cookie-secret"
    secret_file.write_text("s" * 40)
    secret_file.chmod(0o644)
    said = _start_fails(settings, RUNSTREAM_COOKIE_SECRET_FILE=str(secret_file))
    assert "RUNSTREAM_COOKIE_SECRET_FILE" in said and "chmod 600" in said and "Traceback" not in said
    secret_file.chmod(0o600)
    secret_file.write_text("short")
    said = _start_fails(settings, RUNSTREAM_COOKIE_SECRET_FILE=str(secret_file))
    assert "RUNSTREAM_COOKIE_SECRET_FILE" in said and f"at least {MIN_SECRET_BYTES}" in said


def test_short_tokens_and_secrets_stop_the_start(settings: Settings) -> None:
    for variable in ("RUNSTREAM_TOKEN", "RUNSTREAM_WRITE_TOKEN", "RUNSTREAM_COOKIE_SECRET"):
        short = "x" * (MIN_SECRET_BYTES - 1)
        said = _start_fails(settings, **{variable: short})
        assert variable in said and f"at least {MIN_SECRET_BYTES}" in said and short not in said, said
        with pytest.raises(ConfigError, match=variable):
            Settings.from_env({variable: short})
        # Bytes, not characters: 11 three-byte characters are 33 bytes.
        assert Settings.from_env({variable: "€" * 11})
        with pytest.raises(ConfigError, match=variable):
            Settings.from_env({variable: "€" * 10})
        field: dict[str, Any] = {variable.removeprefix("RUNSTREAM_").lower(): "s3cret"}
        with pytest.raises(ConfigError, match=variable):
            dataclasses.replace(settings, **field)


async def test_session_cookies_are_secure_when_the_browser_came_over_https(
    secured: Service, settings: Settings, spawn: Spawn
) -> None:
    # 127.0.0.1 is a trusted proxy of `secured`: its X-Forwarded-Proto is believed.
    _, _, headers = await _login(secured, client="198.51.103.1", X_Forwarded_Proto="https")
    assert _session_cookie(headers)[1]["secure"]
    _, _, headers = await _login(secured, client="198.51.103.2")
    assert not _session_cookie(headers)[1]["secure"]
    # From a peer that is not a trusted proxy, the header is anyone's word: not believed.
    untrusting = await _start(spawn, settings, token=TOKEN, cookie_secret=SECRET)
    _, _, headers = await _login(untrusting, X_Forwarded_Proto="https")
    assert not _session_cookie(headers)[1]["secure"]
    # A service whose public URL is https sets it whatever the request says.
    public = await _start(spawn, settings, token=TOKEN, cookie_secret=SECRET, query_url="https://runs.example.com")
    _, _, headers = await _login(public)
    assert _session_cookie(headers)[1]["secure"]


# --- sign-in rate limit -------------------------------------------------------------------


async def _guess_until_refused(service: Service, client: str | None) -> tuple[int, Any, Any]:
    for attempt in range(LOGIN_ATTEMPTS):
        status, _, _ = await _login(service, token=f"guess-{attempt}", client=client)
        assert status == 401, attempt
    return await _login(service, token="one-more-guess", client=client)


async def test_sign_in_is_rate_limited_per_client_address(secured: Service) -> None:
    status, body, headers = await _guess_until_refused(secured, "203.0.113.7")
    assert status == 429 and _error(body) == ("too_many_requests", "token")
    assert "try again" in body["error"]["message"]
    assert 1 <= int(headers["Retry-After"]) <= 60
    # The right token is not even looked at from that address now...
    status, _, _ = await _login(secured, client="203.0.113.7")
    assert status == 429
    # ...and a browser gets a page saying so.
    status, page, headers = await _call(
        "POST",
        f"{secured.url}/login",
        data={"token": TOKEN},
        headers={"X-Forwarded-For": "203.0.113.7", "Accept": "text/html"},
    )
    assert status == 429 and "Retry-After" in headers and "<html" in page.lower()
    # Another client is not affected.
    status, _, _ = await _login(secured, client="203.0.113.8")
    assert status == 303
    # IPv6: one subscriber's /64 is one client.
    await _guess_until_refused(secured, "2001:db8:1:2::1")
    status, _, _ = await _login(secured, client="2001:db8:1:2::ffff")
    assert status == 429
    assert (await _login(secured, client="2001:db8:1:3::1"))[0] == 303


async def test_a_forged_forwarded_for_does_not_escape_the_limit(settings: Settings, spawn: Spawn) -> None:
    untrusting = await _start(spawn, settings, token=TOKEN, cookie_secret=SECRET)
    for attempt in range(LOGIN_ATTEMPTS):
        status, _, _ = await _login(untrusting, token=f"guess-{attempt}", client=f"192.0.2.{attempt}")
        assert status == 401
    status, _, _ = await _login(untrusting, client="192.0.2.200")
    assert status == 429


# --- slow bodies --------------------------------------------------------------------------


async def _answer_to_stalled_body(url: str, head: bytes, first: bytes, *, trickle_seconds: float | None) -> bytes:
    """Send ``head`` and ``first``, then nothing (or a byte every ``trickle_seconds``); the server's answer."""
    target = yarl.URL(url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(head + first)
        await writer.drain()
        deadline = time.monotonic() + 30
        answer = b""
        while time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), timeout=trickle_seconds or 1.0)
            except TimeoutError:
                if trickle_seconds is not None:
                    writer.write(b"a")
                    await writer.drain()
                continue
            if not chunk:
                return answer  # the server closed the connection
            answer += chunk
        raise AssertionError(f"no answer to a stalled body in 30 s (got {answer[:200]!r})")
    finally:
        writer.close()


async def test_request_bodies_that_stall_or_trickle_are_cut_off(
    settings: Settings, spawn: Spawn, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    service = await _start(spawn, settings, token=TOKEN, body_timeout_seconds=2.0, artifacts_dir=artifacts)
    host = f"Host: {service.authority}\r\nAuthorization: Bearer {TOKEN}\r\n"
    run = uuid.uuid4()
    cases = {
        "stalled upload": (f"PUT /api/runs/{run}/files/a.bin HTTP/1.1\r\n{host}Content-Length: 100000\r\n\r\n", None),
        "trickled upload": (f"PUT /api/runs/{run}/files/b.bin HTTP/1.1\r\n{host}Content-Length: 100000\r\n\r\n", 0.2),
        "endless chunks": (
            f"PUT /api/runs/{run}/files/c.bin HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            None,
        ),
        "stalled log append": (
            f"PUT /api/runs/{run}/logs/driver?offset=0 HTTP/1.1\r\n{host}Content-Length: 1000\r\n\r\n",
            None,
        ),
        "stalled sign-in": (
            f"POST /login HTTP/1.1\r\nHost: {service.authority}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\ntoken=",
            None,
        ),
    }
    # At once: each waits out the body time limit, and they must not hold each other up either.
    answers = await asyncio.gather(
        *(
            _answer_to_stalled_body(service.url, head.encode(), b"0123456789", trickle_seconds=trickle)
            for head, trickle in cases.values()
        )
    )
    for what, answer in zip(cases, answers, strict=True):
        assert answer.startswith(b"HTTP/1.1 408"), (what, answer[:300])
        body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert _error(body) == ("request_timeout", "body"), what
        assert b"Connection: close" in answer, what

    async def leftovers() -> list[Path]:
        return [p for p in artifacts.rglob("*") if p.is_file()]

    await eventually(leftovers, lambda found: not found, what="no trace of the cut-off uploads")
    # A body that keeps coming is not cut off.
    status, body, _ = await _call(
        "PUT", f"{service.url}/api/runs/{run}/files/whole.bin", data=b"z" * (1 << 20), token=TOKEN
    )
    assert status == 201 and body["size"] == 1 << 20


# --- file names ---------------------------------------------------------------------------

HIDDEN = [
    "\u202e",  # right-to-left override: invoice<RLO>gpj.exe reads invoice.exe.jpg... backwards
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u2028",
    "\u2029",
    "\x85",
    "\U000e0041",
]


async def test_file_names_with_bidi_or_zero_width_characters_are_refused(
    secured: Service, known_run: uuid.UUID
) -> None:
    for char in HIDDEN:
        name = f"invoice{char}gpj.exe"
        url = f"{secured.url}/api/runs/{known_run}/files/{urllib.parse.quote(name, safe='')}"
        for method in ("PUT", "GET"):
            status, body, _ = await _call(method, url, data=b"x" if method == "PUT" else None, token=TOKEN)
            assert status == 400 and _error(body) == ("bad_file_name", "name"), (char, method, body)
            assert f"U+{ord(char):04X}" in body["error"]["message"]
        # The SDK refuses the same names, by the same rule (runstream.names).
        with pytest.raises(MetricValueError, match=f"U\\+{ord(char):04X}"):
            sdk_file_name(name)
    fine = "résumé/日本語 ok.txt"
    status, body, _ = await _call(
        "PUT", f"{secured.url}/api/runs/{known_run}/files/{urllib.parse.quote(fine)}", data=b"ok", token=TOKEN
    )
    assert status == 201 and body["name"] == fine == sdk_file_name(fine)


# --- cursors, filters and parameters -------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(*fields: Any) -> str:
    return _b64(orjson.dumps(list(fields)))


WHEN = "2026-01-01T00:00:00+00:00"
SOME_ID = "0b4f5a1e-1b8b-4a8a-9c1e-2f7b0e8c9d10"
#: Run-list cursors no sort accepts.
BAD_RUN_CURSORS = [
    _cursor(None, WHEN, 123),  # a run id that is not a string: was AttributeError, 500
    _cursor(None, WHEN, None),
    _cursor(None, WHEN, ["x"]),
    _cursor(None, "9999-12-31T23:59:59-01:00", SOME_ID),  # past year 9999 in UTC: was OverflowError, 500
    _cursor(None, "0001-01-01T00:00:00+01:00", SOME_ID),
    _cursor(None, 1767225600, SOME_ID),
    _cursor(None, "2026-01-01T00:00:00", SOME_ID),  # no zone
    _cursor(None, "yesterday", SOME_ID),
    _cursor(None, WHEN, "not-a-uuid"),
    _cursor(None, WHEN, SOME_ID, "extra"),
    _cursor(None, WHEN),
    _cursor({"a": 1}, WHEN, SOME_ID),
    _cursor(True, WHEN, SOME_ID),
    _cursor("not a number", WHEN, SOME_ID),
    _b64(b'[1e999999, "2026-01-01T00:00:00+00:00", "' + SOME_ID.encode() + b'"]'),
    _b64(orjson.dumps({"value": None})),
    _b64(orjson.dumps("x")),
    _b64(b"null"),
    _b64(b"[1, 2"),
    _b64("\u00e9".encode()),
    "",
    "=",
    "!!!!",
    "%%",
    "é",
    "A" * 5000,
]
#: Cursors that are well formed but that this service would never issue: any answer but a 5xx.
ODD_RUN_CURSORS = [
    _b64(b'[123456789012345678901234567890123456789, "2026-01-01T00:00:00+00:00", "' + SOME_ID.encode() + b'"]'),
    _cursor("NaN", WHEN, SOME_ID),
    _cursor("-inf", WHEN, SOME_ID),
    _cursor(None, "0001-01-01T00:00:00+00:00", SOME_ID),
    _cursor(None, "9999-12-31T23:59:59.999999+00:00", SOME_ID),
    _cursor(None, WHEN, SOME_ID.upper()),
]
BAD_POINT_CURSORS = [
    _cursor(1.0),
    _cursor("x", 1),
    _cursor(None, 1),
    _cursor(True, 1),
    _cursor(1.0, True),
    _cursor(1.0, 1.5),
    _cursor(1.0, "1"),
    _cursor(1.0, 1, 2),
    _b64(b"[1.0, 123456789012345678901234567890]"),
    _b64(b"[1e999999, 1]"),
    _b64(b"[123456789012345678901234567890123456789012345678901234567890e300, 1]"),
    _b64(b"{}"),
    "",
    "!!!!",
    "A" * 5000,
]


async def test_crafted_cursors_are_400_naming_the_cursor(secured: Service, known_run: uuid.UUID) -> None:
    pages = [
        "/api/runs?cursor={}",
        "/api/runs?experiment=attack&sort=created_at&cursor={}",
        "/api/runs?sort=-last(loss)&cursor={}",
        "/api/runs?sort=max(loss)&include=metrics&cursor={}",
    ]
    for template in pages:
        for cursor in BAD_RUN_CURSORS:
            status, body, _ = await _call("GET", secured.url + template.format(urllib.parse.quote(cursor)), token=TOKEN)
            assert status == 400 and _error(body) == ("bad_cursor", "cursor"), (template, cursor, body)
        for cursor in ODD_RUN_CURSORS:
            status, body, _ = await _call("GET", secured.url + template.format(urllib.parse.quote(cursor)), token=TOKEN)
            assert status in (200, 400) and isinstance(body, dict), (template, cursor, body)
    # The experiment page takes the same cursors, and says so in a page.
    status, page, _ = await _call(
        "GET",
        f"{secured.url}/experiments/attack?cursor={_cursor(None, WHEN, 123)}",
        headers={"Accept": "text/html"},
        token=TOKEN,
    )
    assert status == 400 and "cursor" in page
    for cursor in BAD_POINT_CURSORS:
        url = f"{secured.url}/api/runs/{known_run}/series?name=loss&cursor={urllib.parse.quote(cursor)}"
        status, body, _ = await _call("GET", url, token=TOKEN)
        assert status == 400 and _error(body) == ("bad_cursor", "cursor"), (cursor, body)


async def test_filter_values_that_mean_nothing_are_400(secured: Service) -> None:
    cases = [
        ("/api/runs?status=Bogus", "status"),
        ("/api/runs?status=", "status"),
        ("/api/runs?status=completed", "status"),  # statuses are case-sensitive names
        ("/api/runs?name=", "name"),
        (f"/api/runs?name={'n' * 256}", "name"),
        ("/api/runs?experiment=", "experiment"),
        ("/api/runs?started_after=9999-12-31T23:59:59-01:00", "started_after"),
        ("/api/runs?started_before=not-a-time", "started_before"),
        ("/api/runs?limit=0", "limit"),
        ("/api/runs?where=loss", "where"),
        ("/api/runs?sort=bogus", "sort"),
        ("/api/runs?tag=:x", "tag"),
        ("/api/runs?parent=x", "parent"),
        ("/api/runs?include=everything", "include"),
        ("/api/series?run=x&name=loss", "run"),
        (f"/api/series?run={SOME_ID}&name=loss&max_points=", "max_points"),
        (f"/api/runs/{SOME_ID}/series?name=loss&max_points=1", "max_points"),
        (f"/api/runs/{SOME_ID}/series?name=loss&start_step=1.5", "start_step"),
        (f"/api/runs/{SOME_ID}/series?name=loss&end_time=inf", "end_time"),
        (f"/api/runs/{SOME_ID}/metrics?recursive=maybe", "recursive"),
        (f"/api/runs/{SOME_ID}/logs/driver?limit=1", "limit"),
        ("/api/stream?experiment=", "experiment"),
    ]
    for path, parameter in cases:
        status, body, _ = await _call("GET", secured.url + path, token=TOKEN)
        assert status == 400 and body["error"]["parameter"] == parameter, (path, body)
    status, body, _ = await _call("GET", f"{secured.url}/api/runs?status=Bogus", token=TOKEN)
    assert all(s in body["error"]["message"] for s in STATUSES)
    status, page, _ = await _call(
        "GET", f"{secured.url}/experiments/attack?status=Bogus", headers={"Accept": "text/html"}, token=TOKEN
    )
    assert status == 400 and "status" in page


async def test_runs_are_found_by_a_part_of_their_name(secured: Service, db: asyncpg.Pool) -> None:
    experiment = f"names-{uuid.uuid4().hex[:6]}"
    ids = {
        name: await seed_run(db, experiment=experiment, display_name=name)
        for name in ("Alpha-%_1", "alpha beta", "gamma", "ALPHA\\x")
    }
    await seed_run(db, experiment=experiment)  # no display name

    async def found(text: str) -> set[str]:
        query = urllib.parse.urlencode({"experiment": experiment, "name": text})
        status, body, _ = await _call("GET", f"{secured.url}/api/runs?{query}", token=TOKEN)
        assert status == 200, body
        return {r["display_name"] for r in body["runs"]}

    assert await found("alpha") == {"Alpha-%_1", "alpha beta", "ALPHA\\x"}
    assert await found("%_") == {"Alpha-%_1"}  # no wildcards
    assert await found("_") == {"Alpha-%_1"}
    assert await found("\\") == {"ALPHA\\x"}
    assert await found("a b") == {"alpha beta"}
    assert await found("delta") == set()
    assert set(ids)


async def test_parameters_an_operation_does_not_take_are_400(secured: Service, known_run: uuid.UUID) -> None:
    checked = 0
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            required = {
                p["name"]: {"run": str(known_run), "experiment": "attack", "offset": "0"}.get(p["name"], "loss")
                for p in op.get("parameters", [])
                if p["in"] == "query" and p["required"]
            }
            concrete = path.replace("{run_id}", str(known_run)).replace("{name}", "never.txt").replace("{rule_id}", "1")
            query = urllib.parse.urlencode({**required, "bogus": "1"})
            status, body, _ = await _call(method.upper(), f"{secured.url}{concrete}?{query}", data=b"x", token=TOKEN)
            assert status == 400 and _error(body) == ("unknown_parameter", "bogus"), (method, path, body)
            checked += 1
    assert checked == sum(len(item) for item in SPEC["paths"].values())
    status, body, _ = await _call("GET", f"{secured.url}/api/files?x=1", token=TOKEN)
    assert status == 404  # no route: nothing to say about its parameters
    repeated = [
        ("/api/runs?status=Completed&status=Failed", "status"),
        (f"/api/runs/{known_run}/metrics?recursive=true&recursive=false", "recursive"),
        (f"/api/runs/{known_run}/logs/driver?offset=0&offset=5", "offset"),
        (f"/api/runs/{known_run}/series?name=loss&name=acc", "name"),
    ]
    for path, parameter in repeated:
        status, body, _ = await _call("GET", secured.url + path, token=TOKEN)
        assert status == 400 and _error(body) == ("repeated_parameter", parameter), (path, body)
    # What may repeat, may.
    status, _, _ = await _call("GET", f"{secured.url}/api/runs?tag=a&tag=b&where=loss>0&where=loss<2", token=TOKEN)
    assert status == 200


# --- the points budget and heavy reads ---------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def big_runs(db: asyncpg.Pool) -> list[uuid.UUID]:
    """Three runs of 400,000 points of ``big``; the first also has two metrics of 350,000 (1.1M in that run)."""
    runs = []
    for _ in range(3):
        run_id = await seed_run(db, experiment="attack-big")
        await seed_scalars(db, run_id, "big", "float", [float(i % 97) for i in range(400_000)], chunk_points=10_000)
        runs.append(run_id)
    for name in ("wide_a", "wide_b"):
        await seed_scalars(db, runs[0], name, "float", [1.0] * 350_000, chunk_points=10_000)
    return runs


class _PointsLocked:
    """Holds an exclusive lock on ``point_chunks``: a request that reads a point waits until it is released."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> _PointsLocked:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.execute("BEGIN; LOCK TABLE point_chunks IN ACCESS EXCLUSIVE MODE")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._conn is not None
        await self._conn.execute("ROLLBACK")
        await self._conn.close()


async def test_answers_over_the_points_budget_are_refused_before_a_point_is_read(
    secured: Service, settings: Settings, big_runs: list[uuid.UUID]
) -> None:
    runs = "&".join(f"run={r}" for r in big_runs)
    over = [
        (f"/api/series?name=big&limit=1000000&{runs}", "limit", "1,200,000"),  # 3 x 400,000
        (f"/api/series?name=big&limit=400000&{runs}", "limit", "1,200,000"),
        (f"/api/runs/{big_runs[0]}/metrics", "name", "1,100,000"),  # 400,000 + 2 x 350,000
        (f"/api/runs/{big_runs[0]}/metrics?recursive=true", "name", "1,100,000"),
    ]
    async with _PointsLocked(settings.database_url):
        for path, parameter, held in over:
            status, body, _ = await asyncio.wait_for(_call("GET", secured.url + path, token=TOKEN), 20)
            assert status == 413 and _error(body) == ("too_many_points", parameter), (path, body)
            message = body["error"]["message"]
            assert f"{MAX_RESPONSE_POINTS:,}" in message and held in message, message
    # Within the budget, the same reads answer in full.
    within = [
        (f"/api/series?name=big&limit=300000&{runs}", 3 * 300_000),
        (f"/api/series?name=big&max_points=1000&{runs}", 3 * 1000),
        (f"/api/runs/{big_runs[1]}/series?name=big&limit=1000000", 400_000),
    ]
    for path, points in within:
        status, body, _ = await _call("GET", secured.url + path, token=TOKEN)
        assert status == 200, body
        got = sum(len(s["values"]) for s in body["series"]) if "series" in body else len(body["values"])
        assert got == points or ("max_points" in path and 0 < got <= points), (path, got)
    status, body, _ = await _call("GET", f"{secured.url}/api/runs/{big_runs[0]}/metrics?name=wide_a", token=TOKEN)
    assert status == 200 and len(body["wide_a"]) == 350_000


async def test_reads_of_many_points_take_turns_while_light_requests_go_on(
    secured: Service, settings: Settings, db: asyncpg.Pool, big_runs: list[uuid.UUID]
) -> None:
    async def waiting_on_points() -> int:
        # Page reads only (query/_points.first_points' statement): other readers of points, such as
        # the alert evaluator following the rules earlier tests left, wait on the lock as well.
        count: int = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'runstream-query'"
            " AND datname = current_database() AND wait_event_type = 'Lock'"
            " AND query LIKE '%c.time_end FROM point_chunks c WHERE%'"
        )
        return count

    # A run of its own: the big runs' series may already be held decoded by earlier reads
    # (query/_decoded.py), and a held series is answered without touching PostgreSQL.
    fresh = await seed_run(db, experiment="attack-big")
    await seed_scalars(db, fresh, "big", "float", [float(i % 89) for i in range(200_000)], chunk_points=10_000)
    held = f"{secured.url}/api/runs/{big_runs[1]}/series?name=big&limit=1000000"
    status, body, _ = await _call("GET", held, token=TOKEN)
    assert status == 200 and len(body["values"]) == 400_000
    heavy = f"{secured.url}/api/runs/{fresh}/series?name=big&limit=100000"
    async with _PointsLocked(settings.database_url):
        # The series just read whole is answered from memory, the points table locked or not.
        status, body, _ = await asyncio.wait_for(_call("GET", held, token=TOKEN), 20)
        assert status == 200 and len(body["values"]) == 400_000 and body["values"][96:98] == [96.0, 0.0]
        reads = [asyncio.create_task(_call("GET", heavy, token=TOKEN)) for _ in range(MAX_HEAVY_READS + 2)]
        await eventually(waiting_on_points, lambda n: n >= MAX_HEAVY_READS, what="reads waiting on the points")
        # Meanwhile light requests are answered...
        for path in ("/health", f"/api/runs/{big_runs[1]}", "/api/experiments"):
            status, _, _ = await asyncio.wait_for(_call("GET", secured.url + path, token=TOKEN), 10)
            assert status == 200, path
        # ...and the reads beyond the bound wait for a turn without touching PostgreSQL.
        waiting = await db.fetch(
            "SELECT query, backend_start FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND application_name = 'runstream-query' AND datname = current_database()"
        )
        assert await waiting_on_points() == MAX_HEAVY_READS, [dict(w) for w in waiting]
        assert not any(task.done() for task in reads)
    answers = await asyncio.wait_for(asyncio.gather(*reads), 60)
    assert [a[0] for a in answers] == [200] * len(reads)
    assert all(len(a[1]["values"]) == 100_000 and a[1]["values"][88:90] == [88.0, 0.0] for a in answers)


# --- Host and Origin ----------------------------------------------------------------------


async def test_without_a_token_foreign_host_names_are_refused(
    open_service: Service, secured: Service, known_run: uuid.UUID
) -> None:
    port = yarl.URL(open_service.url).port
    refused = [
        "evil.example",
        f"evil.example:{port}",
        "localhost.evil.example",
        f"127.0.0.1.nip.io:{port}",
        "[2001:db8::1]",
        "10.0.0.1",
        "0.0.0.0",
        "",
    ]
    allowed = [f"localhost:{port}", f"127.0.0.1:{port}", "127.1.2.3", f"[::1]:{port}", "app.localhost", "runs.lan"]
    paths = ["/api/experiments", f"/api/runs/{known_run}", f"/api/runs/{known_run}/metrics", "/", f"/runs/{known_run}"]
    for host in refused:
        for path in paths:
            status, body, _ = await _call("GET", open_service.url + path, headers={"Host": host})
            assert status == 403 and _error(body) == ("host_not_allowed", "Host"), (host, path, body)
        status, _, _ = await _call("GET", f"{open_service.url}/health", headers={"Host": host})
        assert status == 200  # a probe by the pod's address still works; it tells nothing
    for host in [*allowed, "LOCALHOST.", "Runs.Lan:8080"]:
        status, _, _ = await _call("GET", f"{open_service.url}/api/runs/{known_run}", headers={"Host": host})
        assert status == 200, host
    # A rebound page cannot write either, and nothing is stored.
    status, body, _ = await _call(
        "PUT", f"{open_service.url}/api/runs/{known_run}/files/rebound.txt", data=b"x", headers={"Host": "evil.example"}
    )
    assert status == 403 and _error(body)[0] == "host_not_allowed"
    status, body, _ = await _call("GET", f"{open_service.url}/api/runs/{known_run}/files")
    assert "rebound.txt" not in {f["name"] for f in body["files"]}
    # With a read token there is nothing a rebound page could send: any Host is answered.
    status, _, _ = await _call(
        "GET", f"{secured.url}/api/experiments", headers={"Host": "runs.example.com"}, token=TOKEN
    )
    assert status == 200


async def test_writes_from_another_sites_page_are_refused(
    open_service: Service, secured: Service, known_run: uuid.UUID
) -> None:
    url = f"{open_service.url}/api/runs/{known_run}/files"
    for i, headers in enumerate(
        [
            {"Origin": "http://evil.example"},
            {"Origin": f"http://evil.example:{yarl.URL(open_service.url).port}"},
            {"Origin": "null"},
            {"Origin": "http://localhost:1"},
            {"Origin": "file://"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": open_service.url, "Sec-Fetch-Site": "cross-site"},
        ]
    ):
        status, body, _ = await _call("PUT", f"{url}/csrf-{i}.txt", data=b"x", headers=headers)
        assert status == 403 and _error(body) == ("cross_origin", "Origin"), (headers, body)
    status, body, _ = await _call("GET", url)
    assert not [f for f in body["files"] if f["name"].startswith("csrf-")]
    # The service's own pages, and clients that send no Origin (scripts, the SDK), write as before.
    for i, headers in enumerate([{"Origin": open_service.url}, {"Sec-Fetch-Site": "same-origin"}, {}]):
        status, _, _ = await _call("PUT", f"{url}/own-{i}.txt", data=b"x", headers=headers)
        assert status == 201, headers
    # Sign-in and sign-out forms from elsewhere (login CSRF) too, token or not.
    for path in ("/login", "/logout"):
        status, body, _ = await _call(
            "POST", secured.url + path, data={"token": TOKEN}, headers={"Origin": "https://evil.example"}
        )
        assert status == 403 and _error(body)[0] == "cross_origin", path
