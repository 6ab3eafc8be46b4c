"""The Azure ML v1 surface on runs started by logging, against the real stack (issue 12, section 2).

Tags and properties as v1 stores them (str) and on finished runs, through
the original object and a re-attached one; the workspace's v1 identity;
``get_details()`` with v1's keys; the run family (``create_children``,
``parent``, ``type``) and the listings' filters; batch file calls; the
notebook views (``_repr_html_``, ``RunDetails``, a run page framed by a
notebook's origin); run files without the driver log's storage parts.
"""

from __future__ import annotations

import asyncio
import html.parser
import io
import json
import math
import re
import socket
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser

from producer import (
    Experiment,
    MetricTypeError,
    MetricValueError,
    Run,
    RunDetails,
    UnsupportedError,
    UsageError,
    Workspace,
    WorkspaceConfigError,
)
from runstream.config import Settings
from tests.azure_support import settled
from tests.test_producer import topic, workspace  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("ingest_worker", "query_service")

V1_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _experiment(ws: Workspace, stem: str) -> Experiment:
    return Experiment(ws, f"{stem}-{uuid.uuid4().hex[:8]}")


async def test_tag_and_property_values_are_stored_as_v1_strings(workspace: Workspace) -> None:  # noqa: F811
    run = _experiment(workspace, "v1-tags").start_logging(outputs=None)
    run.tag("rank", 1)
    run.tag("flag", True)
    run.tag("ratio", 0.5)
    run.tag("plain")
    run.tag("text", "yes")
    run.set_tags({"count": np.int64(3), "nan": math.nan})
    run.add_properties({"epochs": 10, "owner": "me"})
    expected_tags = {
        "rank": "1",
        "flag": "True",
        "ratio": "0.5",
        "plain": None,
        "text": "yes",
        "count": "3",
        "nan": "nan",
    }
    assert run.get_tags() == expected_tags
    run.complete()
    stored = Run(run.experiment, run.id)  # what any reader gets from the service
    await settled(stored.get_tags, lambda tags: tags == expected_tags, "the tags stored as str")
    await settled(stored.get_properties, lambda p: p == {"epochs": "10", "owner": "me"}, "the properties as str")


async def test_tags_and_properties_on_a_finished_run_through_either_object(workspace: Workspace) -> None:  # noqa: F811
    run = _experiment(workspace, "v1-late").start_logging(outputs=None)
    run.log("loss", 0.5)
    run.complete()
    run.tag("reviewed", "yes")  # v1 allows it on a finished run
    run.add_properties({"verdict": "good"})
    attached = Run(run.experiment, run.id)
    attached.tag("Competition Rank", 1)
    attached.add_properties({"by": "ci"})
    assert attached.get_tags()["Competition Rank"] == "1"

    everything = {"reviewed": "yes", "Competition Rank": "1"}
    reader = Run(run.experiment, run.id)
    await settled(reader.get_tags, lambda tags: tags == everything, "tags set after the end, by both objects")
    await settled(reader.get_properties, lambda p: p == {"verdict": "good", "by": "ci"}, "late properties")
    # Properties stay immutable, whichever object tries: the attached one reads the stored ones first.
    with pytest.raises(MetricValueError, match="'verdict': property is already 'good'"):
        Run(run.experiment, run.id).add_properties({"verdict": "bad"})
    with pytest.raises(MetricValueError, match="already"):
        run.add_properties({"by": "someone else"})
    assert reader.get_status() == "Completed" and reader.get_metrics() == {"loss": 0.5}


def test_workspace_has_v1_identity(settings: Settings, tmp_path: Path, topic: str) -> None:  # noqa: F811
    local = Workspace.from_settings(settings)
    assert (local.name, local.subscription_id, local.resource_group, local.location) == (
        "runstream",
        "local",
        "local",
        "local",
    )
    # Azure's own config.json, as downloaded from the portal, names the workspace; the connection stays ours.
    folder = tmp_path / "project" / ".azureml"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps({"subscription_id": "0000-sub", "resource_group": "ml-rg", "workspace_name": "ml-ws"})
    )
    env = settings.as_env()
    from_azure = Workspace.from_config(tmp_path / "project", env=env)
    assert (from_azure.name, from_azure.subscription_id, from_azure.resource_group) == ("ml-ws", "0000-sub", "ml-rg")
    assert from_azure.query_url == settings.query_url and from_azure.kafka_bootstrap == settings.kafka_bootstrap
    by_file = Workspace.from_config(folder / "config.json", env=env)
    assert by_file.name == "ml-ws"
    named = Workspace.from_config(env={**env, "RUNSTREAM_WORKSPACE_NAME": "team", "RUNSTREAM_LOCATION": "lab"})
    assert (named.name, named.location) == ("team", "lab")
    # The child of a submitted run resolves the same identity.
    assert Workspace.from_config(env={**env, **named.as_env()}).name == "team"

    positional = Workspace("sub-1", "rg-1", "ws-1")
    assert (positional.subscription_id, positional.resource_group, positional.name) == ("sub-1", "rg-1", "ws-1")
    got = Workspace.get("other-ws", subscription_id="sub-2", resource_group="rg-2")
    assert (got.name, got.subscription_id, got.resource_group) == ("other-ws", "sub-2", "rg-2")
    with pytest.raises(WorkspaceConfigError, match="name must be a non-empty str"):
        Workspace("sub", "rg", "  ")


async def test_get_details_has_v1_keys(workspace: Workspace) -> None:  # noqa: F811
    run = _experiment(workspace, "v1-details").start_logging(outputs=None)
    run.tag("t", "v")
    run.add_properties({"p": "q"})
    running = await settled(run.get_details, lambda d: d["status"] == "Running", "the running run's details")
    assert "endTimeUtc" not in running  # v1: absent while the run goes on
    run.complete()
    details = await asyncio_wait(run)
    for key in ("runId", "target", "status", "startTimeUtc", "endTimeUtc", "properties", "tags"):
        assert key in details, key
    assert details["runId"] == run.id and details["target"] == "sdk" and details["status"] == "Completed"
    assert V1_TIME.match(details["startTimeUtc"]) and V1_TIME.match(details["endTimeUtc"])
    assert details["startTimeUtc"] <= details["endTimeUtc"]
    assert details["properties"] == {"p": "q"} and details["tags"] == {"t": "v"}
    assert details["inputDatasets"] == [] and details["outputDatasets"] == []
    assert details["runDefinition"] == {} and details["logFiles"] == {} and details["submittedBy"] is None
    # runstream's own keys stay.
    assert details["id"] == run.id and details["producer"]["pending"] == 0 and details["ended_at"]
    with_logs = run.get_details_with_logs()
    assert with_logs["logFiles"] == {} and with_logs["runId"] == run.id


async def asyncio_wait(run: Run) -> dict[str, Any]:
    # v1's positional order: show_output, wait_post_processing, raise_on_error.
    return await asyncio.to_thread(run.wait_for_completion, False, True, True, timeout_seconds=90)


async def test_create_children_parent_and_filters(workspace: Workspace) -> None:  # noqa: F811
    experiment = _experiment(workspace, "v1-children")
    parent = experiment.start_logging(outputs=None)
    numbered = parent.create_children(count=3)
    tagged = parent.create_children(tag_key="lr", tag_values=[0.1, 0.01])
    assert all(child.parent is parent or child.parent.id == parent.id for child in numbered + tagged)
    assert [c.get_tags() for c in numbered] == [{"azureml.batch_child_number": str(i)} for i in range(3)]
    assert [c.get_tags() for c in tagged] == [{"lr": "0.1"}, {"lr": "0.01"}]
    assert numbered[0].parent is numbered[0].parent  # read once, kept
    grandchild = tagged[0].child_run("deeper")
    grandchild.tag("lr", "0.1")
    for problem, call in [
        ("Either count or tag_key", lambda: parent.create_children()),
        ("count can not be set", lambda: parent.create_children(count=1, tag_key="k", tag_values=[1])),
        ("tag_key must not be null", lambda: parent.create_children(tag_values=[1])),
        ("more than 100", lambda: parent.create_children(count=101)),
    ]:
        with pytest.raises(UsageError, match=problem):
            call()
    for run in (grandchild, *numbered, *tagged, parent):
        run.complete()
    everyone = {parent.id, grandchild.id, *(c.id for c in numbered + tagged)}

    def listed(**filters: Any) -> set[str]:
        return {r.id for r in experiment.get_runs(**filters)}

    await settled(lambda: listed(include_children=True), lambda ids: ids == everyone, "every run listed")
    assert listed() == {parent.id}  # v1: top-level runs unless include_children
    assert listed(include_children=True, tags="lr") == {tagged[0].id, tagged[1].id, grandchild.id}
    assert listed(include_children=True, tags={"lr": "0.1"}) == {tagged[0].id, grandchild.id}
    assert listed(include_children=True, tags={"azureml.batch_child_number": "2"}) == {numbered[2].id}
    assert {c.id for c in parent.get_children(tags="lr")} == {tagged[0].id, tagged[1].id}
    assert {c.id for c in parent.get_children(recursive=True, tags={"lr": "0.1"})} == {tagged[0].id, grandchild.id}
    assert [c.id for c in parent.get_children()] == [c.id for c in numbered + tagged]  # oldest first
    attached = Run(experiment, grandchild.id)
    assert attached.parent is not None and attached.parent.id == tagged[0].id
    assert attached.parent.parent is not None and attached.parent.parent.id == parent.id
    assert Run(experiment, parent.id).parent is None
    assert Run(experiment, parent.id).type is None  # a run started by logging: v1 gives it no script type
    with pytest.raises(UsageError, match="keys with ':'"):
        list(experiment.get_runs(tags="a:b"))


async def test_upload_files_and_download_files(workspace: Workspace, tmp_path: Path) -> None:  # noqa: F811
    run = _experiment(workspace, "v1-files").start_logging(outputs=None)
    sources = []
    for name in ("a.txt", "b.txt", "deep/c.txt"):
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}")
        sources.append(path)
    with pytest.raises(TypeError, match="equal lengths"):
        run.upload_files(names=["data/a.txt"], paths=sources)
    run.upload_files(names=["data/a.txt", "data/b.txt", "data/deep/c.txt"], paths=sources)
    run.upload_file("other.txt", io.BytesIO(b"other"))
    run.complete()
    assert set(run.get_file_names()) == {"data/a.txt", "data/b.txt", "data/deep/c.txt", "other.txt"}

    got = run.download_files(prefix="data", output_directory=tmp_path / "kept")
    assert sorted(p.relative_to(tmp_path / "kept").as_posix() for p in got) == [
        "data/a.txt",
        "data/b.txt",
        "data/deep/c.txt",
    ]
    assert (tmp_path / "kept" / "data" / "deep" / "c.txt").read_text() == "content of deep/c.txt"
    bare = run.download_files(prefix="data/", output_directory=tmp_path / "bare", append_prefix=False)
    assert sorted(p.relative_to(tmp_path / "bare").as_posix() for p in bare) == ["a.txt", "b.txt", "deep/c.txt"]
    every = run.download_files(output_directory=tmp_path / "all")
    assert len(every) == 4 and (tmp_path / "all" / "other.txt").read_bytes() == b"other"
    chosen = [tmp_path / "x1", tmp_path / "x2", tmp_path / "x3"]
    run.download_files(prefix="data", output_paths=chosen)
    assert [p.read_text() for p in chosen] == ["content of a.txt", "content of b.txt", "content of deep/c.txt"]
    with pytest.raises(ValueError, match="output_paths must name 3 distinct files"):
        run.download_files(prefix="data", output_paths=chosen[:2])


async def test_file_names_are_the_runs_files_not_the_driver_logs_parts(
    workspace: Workspace,  # noqa: F811
    query_service: str,
) -> None:
    run = _experiment(workspace, "v1-parts").start_logging(outputs=None)
    run.upload_file("notes.txt", io.BytesIO(b"n"))
    for offset, chunk in ((0, b"first line\n"), (11, b"second line\n")):
        request = urllib.request.Request(
            f"{query_service}/api/runs/{run.id}/logs/driver?offset={offset}", data=chunk, method="PUT"
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - the test's service
            assert resp.status in (200, 201)
    assert run.get_file_names() == ["notes.txt"]  # the log's two stored parts are not files of the run
    with urllib.request.urlopen(f"{query_service}/api/runs/{run.id}/files", timeout=10) as resp:  # noqa: S310
        assert [f["name"] for f in json.loads(resp.read())["files"]] == ["notes.txt"]
    run.complete()


class _Cells(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.cells: list[str] = []
        self.links: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("th", "td"):
            self._in = tag
            (self.headers if tag == "th" else self.cells).append("")
        if tag == "a":
            self.links.append(dict(attrs)["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "th":
            self.headers[-1] += data
        elif self._in == "td":
            self.cells[-1] += data


def _cells(text: str) -> _Cells:
    parsed = _Cells()
    parsed.feed(text)
    return parsed


async def test_run_and_experiment_display_as_v1_tables_escaped(settings: Settings, topic: str) -> None:  # noqa: F811
    ws = Workspace.from_settings(replace(settings, workspace_name="<i>lab</i>"))
    hostile = f'<script>alert("x")</script>&{uuid.uuid4().hex[:6]}'
    experiment = Experiment(ws, hostile)
    run = experiment.start_logging(outputs=None)
    shown = run._repr_html_()
    assert "<script>" not in shown and "&lt;script&gt;" in shown
    table = _cells(shown)
    assert table.headers == ["Experiment", "Id", "Type", "Status", "Details Page", "Docs Page"]
    assert table.cells[:2] == [hostile, run.id] and table.cells[3] in ("Running", "")
    assert table.links[0] == run.get_portal_url()
    run.complete()
    await settled(run.get_status, lambda status: status == "Completed", "the run stored")
    assert _cells(run._repr_html_()).cells[3] == "Completed"

    view = experiment._repr_html_()
    assert "<i>" not in view and "&lt;i&gt;lab&lt;/i&gt;" in view
    table = _cells(view)
    assert table.headers == ["Name", "Workspace", "Report Page", "Docs Page"]
    assert table.cells[:2] == [hostile, "<i>lab</i>"]
    with urllib.request.urlopen(table.links[0], timeout=10) as page:  # noqa: S310 - the test's service
        assert page.status == 200


async def test_run_details_shows_the_run_page_inline_or_its_link(
    workspace: Workspace,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = _experiment(workspace, "v1-widget").start_logging(outputs=None)
    frame = RunDetails(run).show()  # IPython's IFrame, displayed
    assert frame.src == run.get_portal_url()
    assert f'src="{run.get_portal_url()}"' in frame._repr_html_() and 'width="100%"' in frame._repr_html_()
    monkeypatch.setitem(sys.modules, "IPython.display", None)  # a Python without IPython
    assert RunDetails(run).show() == run.get_portal_url()
    assert run.get_portal_url() in capsys.readouterr().out
    data = await settled(RunDetails(run).get_widget_data, lambda d: d["details"]["runId"] == run.id, "widget data")
    assert data["metrics"] == {} and data["details"]["status"] == "Running"
    run.complete()


@pytest.fixture
def notebook_origin() -> Iterator[tuple[str, dict[str, str]]]:
    """A page on another local origin (as Jupyter's), serving ``pages[path]``: the notebook's side of a frame."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", pages
    finally:
        server.shutdown()
        server.server_close()


async def test_a_local_notebook_shows_the_run_page_in_a_frame(
    workspace: Workspace,  # noqa: F811
    browser: Browser,
    notebook_origin: tuple[str, dict[str, str]],
) -> None:
    run = _experiment(workspace, "v1-frame").start_logging(outputs=None)
    run.log("loss", 0.25)
    run.complete()
    await settled(run.get_status, lambda s: s == "Completed", "the run stored")
    origin, pages = notebook_origin
    # What RunDetails(run).show() puts in a notebook: an IFrame of the portal URL.
    pages["/notebook"] = f'<iframe id="details" src="{run.get_portal_url()}" width="100%" height="600"></iframe>'
    page = await browser.new_page()
    try:
        await page.goto(f"{origin}/notebook")
        frame = await (await page.wait_for_selector("#details")).content_frame()
        assert frame is not None
        await frame.wait_for_selector("#run")
        assert run.id in await frame.content()
    finally:
        await page.close()
    with urllib.request.urlopen(run.get_portal_url(), timeout=10) as resp:  # noqa: S310 - the test's service
        assert "frame-ancestors 'self' http://localhost:* http://127.0.0.1:*" in resp.headers["Content-Security-Policy"]
    base = run.get_portal_url().split("/runs/")[0]
    with urllib.request.urlopen(f"{base}/", timeout=10) as resp:  # noqa: S310 - other pages stay unframeable
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


async def test_run_get_and_v1_attributes(workspace: Workspace) -> None:  # noqa: F811
    experiment = _experiment(workspace, "v1-attributes")
    run = experiment.start_logging(display_name="sweep", outputs=None)
    run.tag("k", "v")
    run.add_properties({"p": "1"})
    run.complete()
    found = await settled(lambda: Run.get(workspace, run.id), lambda r: r.id == run.id, "Run.get")
    assert found.experiment.name == experiment.name and found.name == "sweep"
    assert (found.status, found.tags, found.properties) == ("Completed", {"k": "v"}, {"p": "1"})
    for call in (
        lambda: run.log_confusion_matrix("cm", {}),
        lambda: run.log_accuracy_table("at", {}),
        lambda: run.log_predictions("pr", {}),
        lambda: run.log_residuals("re", {}),
        lambda: run.remove_tags(["k"]),
    ):
        with pytest.raises(UnsupportedError, match="log_table|never removed"):
            call()
    with pytest.raises(UnsupportedError, match="no model registry"):
        run.register_model("model", "outputs/model.pkl")


async def test_display_name_and_description_are_set_as_in_v1_and_read_back_at_once(
    workspace: Workspace,  # noqa: F811
) -> None:
    experiment = _experiment(workspace, "v1-describe")
    run = experiment.start_logging(display_name="first", outputs=None)
    run.display_name = "lr 0.1, seed 3"
    run.description = "baseline for the sweep"
    run.log("loss", 0.5)
    run.complete()
    # Reads right after the writes see them, from any object of this process (read-your-writes).
    attached = Run(experiment, run.id)
    assert await asyncio.to_thread(lambda: (attached.display_name, attached.description)) == (
        "lr 0.1, seed 3",
        "baseline for the sweep",
    )
    attached.description = "reviewed: keep"  # a finished run takes it, as in v1
    found = await asyncio.to_thread(workspace.get_run, run.id)
    assert (found.id, found.name, found.description) == (run.id, "lr 0.1, seed 3", "reviewed: keep")
    assert experiment.name in await asyncio.to_thread(lambda: workspace.experiments)
    assert workspace.experiments[experiment.name].name == experiment.name
    details = await asyncio.to_thread(run._reads.details)
    assert (details["display_name"], details["description"]) == ("lr 0.1, seed 3", "reviewed: keep")
    with pytest.raises(MetricTypeError, match="'description'.*str"):
        run.description = 3  # type: ignore[assignment]
    with pytest.raises((MetricTypeError, MetricValueError), match="display"):
        run.display_name = ""


async def test_the_rest_of_v1s_everyday_surface(
    workspace: Workspace,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Calls v1 scripts make beside logging: Run.list, Experiment.list, get_detailed_status,
    fail(error_code=), get_metrics(run_type=, populate=), get_all_logs, get_secret(s),
    upload_file(datastore_name=), the workspace's details and write_config."""
    experiment = _experiment(workspace, "v1-rest")
    parent = experiment.start_logging(outputs=None)
    parent.log("loss", 0.5)
    child = parent.child_run("child")
    child.log("loss", 0.25)
    child.complete()
    source = tmp_path / "driver.txt"
    source.write_text("line one\n")
    parent.upload_file("logs/driver.txt", source, datastore_name="workspaceartifactstore")
    parent.upload_file("outputs/note.txt", io.BytesIO(b"note"))
    assert parent.get_detailed_status() == {"status": "Running", "details": None}

    assert parent.get_metrics(recursive=True, populate=True) == {parent.id: {"loss": 0.5}, child.id: {"loss": 0.25}}
    assert parent.get_metrics(recursive=True, run_type="azureml.scriptrun") == {}  # neither was submitted
    with pytest.raises(UsageError, match="recursive=True"):
        parent.get_metrics(run_type="azureml.scriptrun")

    logs = parent.get_all_logs(tmp_path / "logs-here")
    assert logs == [str(tmp_path / "logs-here" / "logs" / "driver.txt")]
    assert Path(logs[0]).read_text() == "line one\n"

    monkeypatch.setenv("V1_REST_SECRET", "s3cret")
    assert parent.get_secret("V1_REST_SECRET") == "s3cret"
    assert parent.get_secrets(["V1_REST_SECRET", "V1_REST_ABSENT"]) == {
        "V1_REST_SECRET": "s3cret",
        "V1_REST_ABSENT": None,
    }
    with pytest.raises(UsageError, match="set the variable V1_REST_ABSENT"):
        parent.get_secret("V1_REST_ABSENT")
    with pytest.raises(TypeError):
        parent.get_secrets("V1_REST_SECRET")

    with pytest.raises(MetricTypeError, match="error_code"):
        parent.fail("boom", error_code=7)  # type: ignore[arg-type]  # a wrong type, on purpose
    parent.fail("boom", error_code="UserError")
    assert parent.get_detailed_status() == {"status": "Failed", "details": None}
    assert parent.get_details()["error"] == {"message": "boom", "code": "UserError"}

    assert [r.id for r in Run.list(experiment)] == [parent.id]  # top-level only, as get_runs
    assert {r.id for r in Run.list(experiment, include_children=True)} == {parent.id, child.id}
    assert [r.id for r in Run.list(experiment, status="Failed", include_children=True)] == [parent.id]
    assert [e.name for e in Experiment.list(workspace, experiment_name=experiment.name)] == [experiment.name]
    assert experiment.name in {e.name for e in Experiment.list(workspace)}
    assert experiment.id == Experiment(workspace, experiment.name).id != _experiment(workspace, "other").id
    assert experiment.get_docs_url().endswith("/api/openapi.json")

    details = workspace.get_details()
    assert details["name"] == workspace.name and details["id"].endswith(f"/workspaces/{workspace.name}")
    written = workspace.write_config(tmp_path / "project")
    assert written == tmp_path / "project" / ".azureml" / "config.json"
    doc = json.loads(written.read_text())
    assert doc["workspace_name"] == workspace.name and doc["query_url"] == workspace.query_url
    assert not {k for k in doc if "token" in k or "password" in k}  # never a secret
    again = Workspace.from_config(tmp_path / "project")
    assert (again.name, again.query_url, again.kafka_bootstrap) == (
        workspace.name,
        workspace.query_url,
        workspace.kafka_bootstrap,
    )
    assert workspace.tags == {}
