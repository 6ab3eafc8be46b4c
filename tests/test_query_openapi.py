"""The OpenAPI document matches the app's routes, and random input against it never gets a 5xx."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import asyncpg
import orjson
import pytest_asyncio
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from query import create_app
from query._openapi import SPEC
from runstream.config import Settings
from tests.test_query_seed import get, seed_entries, seed_run, seed_scalars


def _route_paths(app_settings: Settings) -> set[tuple[str, str]]:
    app = create_app(app_settings)
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)
        if route.method != "HEAD" and path.startswith(("/api", "/health")):
            found.add((route.method.lower(), path))
    return found


def test_spec_describes_exactly_the_api_routes(settings: Settings) -> None:
    described = {(method, path) for path, item in SPEC["paths"].items() for method in item}
    assert described == _route_paths(settings)


async def test_spec_is_served(query_service: str) -> None:
    assert await get(f"{query_service}/api/openapi.json") == (200, orjson.loads(orjson.dumps(SPEC)))


@pytest_asyncio.fixture(scope="module")
async def known_run(db: asyncpg.Pool) -> str:
    run_id = await seed_run(db, experiment="fuzz")
    await seed_scalars(db, run_id, "loss", "float", [1.0, float("nan"), 0.5])
    await seed_scalars(db, run_id, "phase", "str", ["a"])
    await seed_entries(db, run_id, "table", "table", [{"x": [1, 2]}])
    return str(run_id)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_scalar_text = st.one_of(
    _text,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["loss", "phase", "table", "", "..", "true", "WzEsMl0", "-1", "0", "2"]),
)


def _value_for(param: dict[str, Any], run_id: str) -> st.SearchStrategy[str]:
    if param["name"] in ("run_id", "run"):
        return st.one_of(st.just(run_id), st.uuids().map(str), _text)
    return _scalar_text


def _request(base: str, method: str, path: str, params: dict[str, str], body: bytes | None) -> int:
    query = urllib.parse.urlencode(params)
    url = base + path + ("?" + query if query else "")
    req = urllib.request.Request(url, data=body, method=method.upper())  # noqa: S310 - local test service
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        assert exc.code < 500, (method, url, payload[:500])
        if exc.headers.get_content_type() == "application/json":
            error = orjson.loads(payload)["error"]
            assert set(error) == {"code", "message", "parameter"}
        return exc.code


_OPERATIONS = [(path, method, op) for path, item in SPEC["paths"].items() for method, op in item.items()]


@st.composite
def _calls(draw: st.DrawFn, run_id: str) -> tuple[str, str, dict[str, str], bytes | None]:
    path, method, op = draw(st.sampled_from(_OPERATIONS))
    params: dict[str, str] = {}
    for param in op.get("parameters", []):
        if param["in"] == "path":
            value = draw(_value_for(param, run_id))
            path = path.replace(
                "{" + param["name"] + "}", urllib.parse.quote(value, safe="/" if param["name"] == "name" else "")
            )
        elif param["required"] or draw(st.booleans()):
            params[param["name"]] = draw(_value_for(param, run_id))
    body = draw(st.binary(max_size=64)) if method == "put" else None
    return method, path, params, body


def test_random_requests_never_get_a_5xx(query_service: str, known_run: str) -> None:
    @hypothesis_settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_calls(known_run))
    def check(call: tuple[str, str, dict[str, str], bytes | None]) -> None:
        method, path, params, body = call
        status = _request(query_service, method, path, params, body)
        assert status < 500

    check()


def test_every_documented_get_answers_for_a_known_run(query_service: str, known_run: str) -> None:
    for path, method, op in _OPERATIONS:
        if method != "get":
            continue
        params = {p["name"]: "loss" for p in op.get("parameters", []) if p["in"] == "query" and p["required"]}
        if "run" in params:
            params["run"] = known_run
        if "experiment" in params:
            params["experiment"] = "fuzz"
        if path == "/api/changes/stream":
            params["run"] = known_run  # experiment or run is required: one of two, which the document cannot say
        concrete = path.replace("{run_id}", known_run).replace("{name}", "missing.txt")
        status = _request(query_service, method, concrete, params, None)
        assert status == (404 if concrete.endswith("missing.txt") else 200), path
    assert uuid.UUID(known_run)
