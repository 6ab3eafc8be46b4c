"""The driver log of a submitted run: appended while the script runs, followed by wait_for_completion."""

from __future__ import annotations

import asyncio
import io
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.stack import free_port
from producer import Experiment, Run, ScriptRunConfig, Workspace
from query._driver_log import _complete_utf8
from runstream.config import Settings
from tests.support import eventually, wait_http_ok
from tests.test_producer import topic, workspace  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("ingest_worker", "query_service")


async def call(method: str, url: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = io.BytesIO(body) if body is not None else None
    async with aiohttp.ClientSession() as session, session.request(method, url, data=data) as resp:
        assert resp.content_type == "application/json"
        return resp.status, orjson.loads(await resp.read())


_SCRIPT = """\
import pathlib, sys, time
for i in range(3):
    print(f"line {i}", flush=True)
    time.sleep(0.3)
print("to stderr", file=sys.stderr, flush=True)
deadline = time.monotonic() + 120
while not pathlib.Path("go").exists():  # the test says when to go on
    if time.monotonic() > deadline:
        sys.exit("never told to go on")
    time.sleep(0.05)
for i in range(3, 6):
    print(f"line {i}", flush=True)
    time.sleep(0.3)
"""


def go(run: Run) -> None:
    """Tell the submitted script to go on, in the directory it runs in (its snapshot)."""
    assert run._script is not None
    (run._script.plan.cwd / "go").touch()


def script(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(_SCRIPT)
    return source


async def first_lines(url: str) -> dict[str, Any]:
    """The log once the blocked script's first lines are in (they can only have come by the periodic appends)."""

    async def probe() -> dict[str, Any]:
        status, page = await call("GET", url)
        return page if status == 200 else {}

    page = await eventually(probe, lambda p: "to stderr" in p.get("text", ""), what="appended log")
    assert page["text"] == "line 0\nline 1\nline 2\nto stderr\n"
    assert page["terminal"] is False and page["done"] is False and page["status"] in (None, "Running")
    return page


async def test_show_output_follows_the_log_from_the_service_while_the_script_runs(
    workspace: Workspace,  # noqa: F811
    query_service: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = script(tmp_path)
    run = Experiment(workspace, "driver-log").submit(ScriptRunConfig(source, "train.py"))
    url = f"{query_service}/api/runs/{run.id}/logs/driver"
    await first_lines(url)
    go(run)

    details = await asyncio.to_thread(
        run.wait_for_completion, show_output=True, timeout_seconds=120, poll_interval_seconds=0.1
    )
    assert details["status"] == "Completed"
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [f"RunId: {run.id}", f"Web View: {run.get_portal_url()}"]
    assert lines[2:9] == ["line 0", "line 1", "line 2", "to stderr", "line 3", "line 4", "line 5"]
    assert lines[-1] == "Status: Completed"

    status, page = await call("GET", url)
    assert status == 200 and page["terminal"] is True and page["done"] is True
    whole = await asyncio.to_thread(run.download_file, "logs/driver.log", tmp_path / "driver.log")
    assert page["text"] == whole.read_text() and page["size"] == page["next_offset"] == whole.stat().st_size


async def test_appends_missed_while_the_service_is_down_arrive_when_it_is_back(
    settings: Settings,
    workspace: Workspace,  # noqa: F811
    spawn: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    # The run's query service is not there yet when the script starts printing.
    later = replace(settings, query_port=free_port())
    later = replace(later, query_url=f"http://127.0.0.1:{later.query_port}")
    source = script(tmp_path)
    run = Experiment(Workspace.from_settings(later), "driver-log").submit(ScriptRunConfig(source, "train.py"))
    appender = run._script._log if run._script is not None else None

    async def append_failed() -> bool:
        return appender is not None and appender.error is not None

    await eventually(append_failed, bool, what="an append that found no service")
    await wait_http_ok(f"{later.query_url}/health", spawn("query", later))
    await first_lines(f"{later.query_url}/api/runs/{run.id}/logs/driver")
    go(run)
    details = await asyncio.to_thread(run.wait_for_completion, timeout_seconds=120, poll_interval_seconds=0.1)
    assert details["status"] == "Completed"
    status, page = await call("GET", f"{later.query_url}/api/runs/{run.id}/logs/driver")
    assert page["done"] and page["text"].splitlines() == [
        *(f"line {i}" for i in range(3)),
        "to stderr",
        *(f"line {i}" for i in range(3, 6)),
    ]


async def test_appends_and_reads_by_offset(query_service: str) -> None:
    url = f"{query_service}/api/runs/{uuid.uuid4()}/logs/driver"  # a run ingest has not seen: appends still go in
    first = "héllo\n".encode()
    assert await call("PUT", f"{url}?offset=0", first) == (201, {"offset": 0, "next_offset": len(first)})
    # A repeat (say after a lost answer) is a no-op; other bytes at that offset, or any other offset, are refused.
    assert await call("PUT", f"{url}?offset=0", first) == (201, {"offset": 0, "next_offset": len(first)})
    for offset, body in ((0, b"other\n"), (3, b"x"), (len(first) + 1, b"x")):
        status, error = await call("PUT", f"{url}?offset={offset}", body)
        assert status == 409 and error["error"]["parameter"] in ("offset", "name")
    # "wö|rld": the second append ends inside a character.
    assert (await call("PUT", f"{url}?offset={len(first)}", b"w\xc3"))[0] == 201
    status, page = await call("GET", url)
    assert (status, page["text"], page["size"]) == (200, "héllo\nw", len(first) + 2)
    assert page["next_offset"] == len(first) + 1  # the cut character comes with the next read
    assert (page["status"], page["terminal"], page["done"]) == (None, False, False)
    assert (await call("PUT", f"{url}?offset={len(first) + 2}", b"\xb6rld\n"))[0] == 201
    status, page = await call("GET", f"{url}?offset={page['next_offset']}")
    assert page["text"] == "örld\n" and page["next_offset"] == page["size"] == len(first) + 7
    status, page = await call("GET", f"{url}?offset=1")
    assert page["text"] == "éllo\nwörld\n"

    # Pages of 4 bytes put together are the whole log.
    text, offset = "", 0
    while offset < page["size"]:
        status, part = await call("GET", f"{url}?offset={offset}&limit=4")
        assert status == 200 and 0 < part["next_offset"] - offset <= 4
        text, offset = text + part["text"], part["next_offset"]
    assert text == "héllo\nwörld\n"
    # At the end: nothing new yet, not an error.
    status, page = await call("GET", f"{url}?offset={offset}")
    assert (status, page["text"], page["next_offset"]) == (200, "", offset)


async def test_bad_offsets_and_unknown_runs(query_service: str) -> None:
    base = f"{query_service}/api/runs"
    url = f"{base}/{uuid.uuid4()}/logs/driver"
    assert (await call("PUT", f"{url}?offset=0", b"0123456789"))[0] == 201
    for query, message in (
        ("offset=-1", "not a non-negative integer"),
        ("offset=abc", "not a non-negative integer"),
        ("offset=1.5", "not a non-negative integer"),
        ("offset=11", "beyond the end of the log (10 bytes)"),
        ("offset=0&limit=3", "between 4 and"),
    ):
        status, error = await call("GET", f"{url}?{query}")
        assert status == 400 and message in error["error"]["message"], (query, error)
        assert error["error"]["parameter"] == query.rsplit("&", 1)[-1].split("=")[0]
    for query, body in (("", b"x"), ("?offset=-1", b"x"), ("?offset=10", b"")):
        status, error = await call("PUT", f"{url}{query}", body)
        assert status == 400 and error["error"]["parameter"] in ("offset", "body"), (query, error)
    # The parts are the log's alone: the files API cannot write (or overwrite) one.
    status, error = await call("PUT", f"{url.rsplit('/logs/', 1)[0]}/files/logs/driver.log.parts/{0:016d}", b"x")
    assert (status, error["error"]["code"]) == (400, "bad_file_name")
    status, error = await call("GET", f"{base}/{uuid.uuid4()}/logs/driver")
    assert (status, error["error"]["code"]) == (404, "run_not_found")
    status, error = await call("GET", f"{base}/not-a-run/logs/driver")
    assert (status, error["error"]["code"]) == (400, "bad_run_id")


def test_a_run_without_a_driver_log_prints_none(workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    run = Experiment(workspace, "driver-log").start_logging(outputs=None)
    run.complete()
    assert run.wait_for_completion(show_output=True, timeout_seconds=120, poll_interval_seconds=0.1)["status"] == (
        "Completed"
    )
    assert capsys.readouterr().out.splitlines()[2:] == [
        "Execution Summary",
        "=================",
        f"RunId: {run.id}",
        "Status: Completed",
    ]


@given(st.text(), st.data())
def test_a_read_never_ends_inside_a_character(text: str, data: st.DataObject) -> None:
    encoded = text.encode()
    cut = data.draw(st.integers(0, len(encoded)))
    kept = _complete_utf8(encoded[:cut])
    # What is kept decodes cleanly; only the beginning of a character cut in two is held back.
    assert text.startswith(encoded[:kept].decode("utf-8"))
    at_boundary = cut == len(encoded) or encoded[cut] & 0xC0 != 0x80
    assert kept == cut if at_boundary else 0 < cut - kept <= 3
