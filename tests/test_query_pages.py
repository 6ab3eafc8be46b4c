"""The HTML pages: experiments, an experiment's runs, and the run page the SDK links to."""

from __future__ import annotations

import html
import math
import re
import uuid

import aiohttp
import asyncpg

from runstream.events import DESCRIPTION_PREFIX
from tests.test_query_seed import get, get_text, seed_entries, seed_run, seed_scalars


async def test_run_page_shows_everything(query_service: str, db: asyncpg.Pool) -> None:
    experiment = f"pages-{uuid.uuid4().hex[:6]}"
    run_id = await seed_run(
        db,
        experiment=experiment,
        display_name="ridge <b>sweep</b>",
        status="Completed",
        tags={"owner": "ana", "<script>alert(1)</script>": "x"},
        properties={"git": "abc123"},
    )
    await seed_scalars(db, run_id, "mse", "float", [3.0, 2.0, math.nan, 1.0, math.inf])
    await seed_scalars(db, run_id, "alpha", "float", [0.5])
    await seed_scalars(db, run_id, "epoch", "int", list(range(5000)))
    await seed_scalars(db, run_id, "phase", "str", ["warmup", "train"])
    await seed_entries(db, run_id, "alphas", "list", [[0.1, 0.2, 0.3]])
    await seed_entries(db, run_id, "alpha vs mse", "row", [{"alpha": 0.1, "mse": 2.0}, {"alpha": 0.2, "mse": 1.0}])
    await seed_entries(db, run_id, "sine", "table", [{"angle": [0, 1, 2], "sine": [0.0, 0.84, 0.91]}])
    await seed_entries(db, run_id, "plot", "image", ["plot.png"])
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{query_service}/api/runs/{run_id}/files/outputs/model.pkl", data=b"model") as resp:
            assert resp.status == 201

    status, ctype, text = await get_text(f"{query_service}/runs/{run_id}")
    assert (status, ctype) == (200, "text/html")
    for name in ("mse", "alpha", "epoch", "phase", "alphas", "alpha vs mse", "sine", "plot"):
        assert f'data-metric="{html.escape(name)}"' in text, name
    assert text.count("<svg") >= 5  # mse, alpha, epoch, alphas, the row and table charts
    assert "Completed" in text and experiment in text and "abc123" in text and "owner" in text
    assert f'href="/api/runs/{run_id}/files/outputs/model.pkl"' in text
    assert "ridge &lt;b&gt;sweep&lt;/b&gt;" in text
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "warmup" in text and "train" in text
    # A finished run's page does not refresh itself.
    assert 'http-equiv="refresh"' not in text
    assert 'data-chart="mse"' in text and "/static/run.js" in text

    status, _, text = await get_text(f"{query_service}/experiments/{experiment}")
    assert status == 200 and f'href="/runs/{run_id}"' in text and "Completed" in text
    # Latest values as columns: mse ended on +Inf, epoch on 4999.
    assert ">epoch</a></th>" in text and "<td>4999</td>" in text and "<td>Infinity</td>" in text
    assert "sort=-last%28epoch%29" in text  # the column header sorts by it
    status, _, text = await get_text(f"{query_service}/experiments/{experiment}?status=Failed")
    assert status == 200 and "No runs." in text
    for query_string, found in (
        ("where=epoch%3E100", True),
        ("where=epoch%3E10000", False),
        ("tag=owner:ana", True),
        ("tag=owner:bob", False),
        ("sort=-last(epoch)", True),
        ("sort=created_at&status=Completed", True),
    ):
        status, _, text = await get_text(f"{query_service}/experiments/{experiment}?{query_string}")
        assert status == 200 and (f'href="/runs/{run_id}"' in text) == found, query_string
    status, body = await get(f"{query_service}/experiments/{experiment}?where=nonsense")
    assert (status, body["error"]["parameter"]) == (400, "where")
    status, _, text = await get_text(f"{query_service}/")
    assert status == 200 and f'href="/experiments/{experiment}"' in text


async def test_descriptions_show_under_their_metrics_not_as_properties(query_service: str, db: asyncpg.Pool) -> None:
    described = {
        DESCRIPTION_PREFIX + "loss": "training <b>loss</b>",
        DESCRIPTION_PREFIX + "sweep": "one row per alpha",
        DESCRIPTION_PREFIX + "never logged": "no metric of that name",
    }
    run_id = await seed_run(db, status="Completed", properties={"git": "abc123", **described})
    await seed_scalars(db, run_id, "loss", "float", [1.0, 0.5])
    await seed_scalars(db, run_id, "lr", "float", [0.1])
    await seed_entries(db, run_id, "sweep", "row", [{"alpha": 0.1, "mse": 2.0}])
    status, _, text = await get_text(f"{query_service}/runs/{run_id}")
    assert status == 200
    assert '<h3>loss</h3><p class="description">training &lt;b&gt;loss&lt;/b&gt;</p>' in text
    assert '<h3>sweep</h3><p class="description">one row per alpha</p>' in text
    assert "<h3>lr</h3><table>" in text and text.count('class="description"') == 2
    # The properties table keeps the user's own and drops the SDK's reserved keys.
    assert "<td>git</td><td>abc123</td>" in text
    assert DESCRIPTION_PREFIX not in text and "no metric of that name" not in text

    only_descriptions = await seed_run(db, status="Completed", properties=described)
    status, _, text = await get_text(f"{query_service}/runs/{only_descriptions}")
    assert status == 200 and "<h2>Properties</h2><p class=muted>none</p>" in text


async def append_log(query_service: str, run_id: uuid.UUID, *parts: bytes) -> None:
    """Append ``parts`` to the run's driver log the way the SDK does, one stored part each."""
    url, offset = f"{query_service}/api/runs/{run_id}/logs/driver", 0
    async with aiohttp.ClientSession() as session:
        for part in parts:
            async with session.put(f"{url}?offset={offset}", data=part) as resp:
                assert resp.status == 201, await resp.text()
            offset += len(part)


def driver_log(page: str) -> tuple[str, dict[str, str], str]:
    """The driver-log section's ``<pre>``: its unescaped text, its attributes, and the section's markup."""
    section = re.search(r'<section id="driver-log-section"[^>]*>.*?</section>', page, re.DOTALL)
    assert section is not None, "no driver log section"
    pre = re.search(r'<pre id="driver-log"([^>]*)>(.*?)</pre>', section[0], re.DOTALL)
    assert pre is not None
    attrs = dict(re.findall(r'\s([\w-]+)(?:="([^"]*)")?', pre[1]))
    return html.unescape(pre[2]), attrs, section[0]


async def test_run_page_shows_the_driver_log_and_hides_its_parts(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, status="Running")
    first = b"epoch 1 <script>alert(1)</script> & done\n"
    second = b"bad bytes \xff\xfe then \xc3\xa9\n"
    await append_log(query_service, run_id, first, second)
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{query_service}/api/runs/{run_id}/files/notes.txt", data=b"n") as resp:
            assert resp.status == 201

    status, _, text = await get_text(f"{query_service}/runs/{run_id}")
    assert status == 200
    shown, attrs, section = driver_log(text)
    assert shown == "epoch 1 <script>alert(1)</script> & done\nbad bytes \ufffd\ufffd then \u00e9\n"
    assert "<script>alert" not in text and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; done" in section
    # The whole log, so no note; a live run's log is followed from where the page's tail ends.
    assert attrs == {"data-next-offset": str(len(first + second)), "data-follow": ""}
    assert "<h2>Driver log</h2>" in section and "bytes</p>" not in section and " hidden" not in section
    # The parts are the log's storage, not files of the run: only the uploaded file is listed.
    assert "driver.log.parts" not in text and "notes.txt" in text
    # A character cut at the end waits for its rest: the tail stops before it, where run.js goes on.
    await append_log(query_service, run_id, first, second, b"caf\xc3")  # the first two again are no-ops
    status, _, text = await get_text(f"{query_service}/runs/{run_id}")
    shown, attrs, _ = driver_log(text)
    assert status == 200 and shown.endswith("\ncaf") and attrs["data-next-offset"] == str(len(first + second) + 3)

    # A live run without a log yet: an empty section, hidden until run.js has text for it.
    quiet = await seed_run(db, status="Running")
    status, _, text = await get_text(f"{query_service}/runs/{quiet}")
    shown, attrs, section = driver_log(text)
    assert (status, shown, attrs) == (200, "", {"data-next-offset": "0", "data-follow": ""})
    assert section.startswith('<section id="driver-log-section" hidden>')
    # A finished run without one has no section at all.
    done = await seed_run(db, status="Completed")
    status, _, text = await get_text(f"{query_service}/runs/{done}")
    assert status == 200 and "Driver log" not in text and 'id="driver-log' not in text


async def test_run_page_clips_a_long_driver_log_at_a_line_start(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, status="Completed")
    lines = [f"line {i:05d} {'x' * 40}\n".encode() for i in range(3000)]
    width, log = len(lines[0]), b"".join(lines)  # every line as long: 156,000 bytes
    # Two parts, the 64 KiB tail starting in the first.
    await append_log(query_service, run_id, log[:100_000], log[100_000:])
    status, _, text = await get_text(f"{query_service}/runs/{run_id}")
    assert status == 200
    shown, attrs, section = driver_log(text)
    # The last 64 KiB start inside a line; the tail begins at the next whole line.
    start = len(log) - 65_536
    first_line = start // width + 1
    assert start % width and shown == b"".join(lines[first_line:]).decode()
    kept = len(log) - first_line * width
    assert f'<p id="driver-log-clipped" class=muted>last {kept} of {len(log)} bytes</p>' in section
    assert attrs == {"data-next-offset": str(len(log))}  # finished: nothing to follow


async def test_a_long_driver_log_without_newlines_is_clipped_at_a_character(
    query_service: str, db: asyncpg.Pool
) -> None:
    run_id = await seed_run(db, status="Failed")
    log = "€".encode() * 30_000  # 90,000 bytes of 3-byte characters, no line to start at
    await append_log(query_service, run_id, log)
    status, _, text = await get_text(f"{query_service}/runs/{run_id}")
    shown, _, section = driver_log(text)
    # The 64 KiB cut falls in the middle of a character: the tail starts at the next one.
    assert status == 200 and shown == "€" * 21_845
    assert '<p id="driver-log-clipped" class=muted>last 65535 of 90000 bytes</p>' in section


async def test_running_run_page_refreshes(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, status="Running")
    status, _, text = await get_text(f"{query_service}/runs/{run_id}")
    # Without JavaScript it reloads itself; with it, run.js streams updates instead.
    assert status == 200 and '<noscript><meta http-equiv="refresh"' in text and "No metrics yet" in text


async def test_a_run_not_stored_yet_has_a_starting_page(query_service: str) -> None:
    """The SDK prints the portal URL before ingest stores the run: a browser sees "starting", never a 404."""
    fresh = uuid.uuid4()
    for headers in ({"Accept": "text/html"}, {}):
        status, ctype, text = await get_text(f"{query_service}/runs/{fresh}", headers=headers)
        assert (status, ctype) == (200, "text/html")
        assert f'<div id="run" data-run-id="{fresh}" data-starting>' in text
        assert '<span class="status Starting">Starting</span> waiting for the first data' in text
        # run.js follows the run's stream and reloads; without JavaScript the page reloads itself.
        assert '<script src="/static/run.js" defer></script>' in text
        assert '<noscript><meta http-equiv="refresh"' in text


async def test_page_errors(query_service: str) -> None:
    missing = uuid.uuid4()
    # A browser gets an HTML error page, any other client JSON.
    status, ctype, text = await get_text(f"{query_service}/no/such/{missing}", headers={"Accept": "text/html"})
    assert (status, ctype) == (404, "text/html") and str(missing) in text
    status, body = await get(f"{query_service}/api/runs/{missing}")
    assert status == 404 and body["error"]["code"] == "run_not_found"
    status, body = await get(f"{query_service}/runs/nope")
    assert status == 400 and body["error"]["parameter"] == "run_id"
    status, body = await get(f"{query_service}/experiments/no-such-experiment-{missing}")
    assert status == 404 and body["error"]["code"] == "experiment_not_found"
    status, ctype, text = await get_text(f"{query_service}/no/such/page", headers={"Accept": "text/html"})
    assert (status, ctype) == (404, "text/html")


async def test_static_assets_are_served(query_service: str) -> None:
    for path, ctype in (
        ("/static/run.js", "javascript"),
        ("/static/vendor/uplot/uPlot.iife.min.js", "javascript"),
        ("/static/vendor/uplot/uPlot.min.css", "text/css"),
        ("/static/vendor/uplot/LICENSE.txt", "text/plain"),
    ):
        status, got, text = await get_text(query_service + path)
        assert status == 200 and got.endswith(ctype), (path, got)
        assert text
    status, _, _ = await get_text(query_service + "/static/../_app.py")
    assert status in (403, 404)


async def test_compare_page(query_service: str, db: asyncpg.Pool) -> None:
    a = await seed_run(db, display_name="first <run>")
    b = await seed_run(db)
    status, ctype, text = await get_text(f"{query_service}/compare?name=loss&run={a}&run={b}")
    assert (status, ctype) == (200, "text/html")
    assert "first &lt;run&gt;" in text and "/static/compare.js" in text and str(b) in text
    # No metric named: the most logged one; no run: a page that says how to choose some.
    assert (await get_text(f"{query_service}/compare?run={a}"))[0] == 200
    status, ctype, text = await get_text(f"{query_service}/compare?name=loss")
    assert (status, ctype) == (200, "text/html") and "No runs are chosen yet" in text
    too_many = "&".join(f"run={uuid.uuid4()}" for _ in range(101))
    for query_string, parameter in (
        ("name=loss&run=nope", "run"),
        (f"name=%01&run={a}", "name"),
        (too_many, "run"),
    ):
        status, body = await get(f"{query_service}/compare?{query_string}")
        assert (status, body["error"]["parameter"]) == (400, parameter), query_string
