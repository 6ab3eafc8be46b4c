"""Bad input: every error names the metric and the problem, and nothing is buffered.

Also the workspace's configuration: config file, environment, token.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from producer import (
    MAX_NAME_CHARS,
    MAX_STRING_CHARS,
    Experiment,
    LoggingOptions,
    MetricTypeError,
    MetricValueError,
    Run,
    RunClosedError,
    Workspace,
    WorkspaceConfigError,
)
from runstream.config import ConfigError, Settings
from tests.test_producer import consume_run, events_of, points, topic, workspace  # noqa: F401 - fixtures
from tests.test_producer_query import Figure

Call = Callable[[Run], Any]


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


TYPE_ERRORS: list[tuple[str, Call, str]] = [
    ("list", lambda r: r.log("m", [1.0, 2.0]), "use log_list"),
    ("tuple", lambda r: r.log("m", (1.0,)), "use log_list"),
    ("generator", lambda r: r.log("m", (x for x in range(3))), "use log_list"),
    ("ndarray", lambda r: r.log("m", np.arange(3.0)), "use log_list"),
    ("dict", lambda r: r.log("m", {"a": 1}), "log_row"),
    ("None", lambda r: r.log("m", None), "got NoneType"),
    ("bytes", lambda r: r.log("m", b"x"), "got bytes"),
    ("object", lambda r: r.log("m", object()), "got object"),
    ("name type", lambda r: r.log(3, 1.0), "must be a str"),
    ("float step", lambda r: r.log("m", 1.0, step=1.5), "step must be an int"),
    ("bool step", lambda r: r.log("m", 1.0, step=True), "step must be an int"),
    ("list of str", lambda r: r.log_list("m", "abc"), "takes a list"),
    ("list of dict", lambda r: r.log_list("m", [{"a": 1}]), "got a dict"),
    ("row value", lambda r: r.log_row("m", x=[1, 2]), "per column, got a list; use log_table() for columns of several"),
    ("list cell", lambda r: r.log_list("m", [[1.0]]), "log_list() takes values that are each a bool"),
    ("table cell", lambda r: r.log_table("m", {"a": [(1,)]}), "log_table() takes columns of values that are each"),
    ("0-d list", lambda r: r.log_list("m", np.array(1.0)), "log_list() takes a list of values, got a 0-d ndarray"),
    ("0-d column", lambda r: r.log_table("m", {"a": np.array(1)}), "log_table() column 'a' takes a list of values"),
    ("column type", lambda r: r.log_table("m", {3: [1]}), "column name must be a str, got int"),  # type: ignore[dict-item]
    ("table not dict", lambda r: r.log_table("m", [1, 2]), "dict of columns"),
    ("table column", lambda r: r.log_table("m", {"a": 5}), "column 'a' takes a list of values, got int"),
    ("plot", lambda r: r.log_image("m", plot=object()), "matplotlib"),
    # Azure ML v1 stores str(value); a value that cannot be one, or None as a property, is refused.
    ("tag value", lambda r: r.tag("m", Unprintable()), "tag value of type Unprintable cannot be converted to str"),
    ("property value", lambda r: r.add_properties({"m": None}), "property value must be a str"),
    (
        "property conversion",
        lambda r: r.add_properties({"m": Unprintable()}),
        "property value of type Unprintable cannot be converted",
    ),
    ("fail details", lambda r: r.fail(3.5), "fail() takes"),
    ("description", lambda r: r.log("m", 1.0, description=3), "description must be a str"),
    ("row description", lambda r: r.log_row("m", description=b"x", a=1), "description must be a str"),
]

VALUE_ERRORS: list[tuple[str, Call, str]] = [
    ("empty name", lambda r: r.log("", 1.0), "name is empty"),
    ("long name", lambda r: r.log("m" * (MAX_NAME_CHARS + 1), 1.0), f"more than {MAX_NAME_CHARS}"),
    ("newline", lambda r: r.log("m\nx", 1.0), "control character '\\n'"),
    ("nul", lambda r: r.log("m\x00", 1.0), "control character"),
    ("long string", lambda r: r.log("m", "x" * (MAX_STRING_CHARS + 1)), f"more than {MAX_STRING_CHARS}"),
    ("huge int", lambda r: r.log("m", 2**63), "cannot be stored exactly"),
    # Scalar series are float64: past 2**53 an int would read back rounded.
    ("inexact int", lambda r: r.log("m", 2**53 + 1), "log it as a float or a string"),
    ("inexact negative", lambda r: r.log("m", -(2**62)), "cannot be stored exactly"),
    ("inexact numpy int", lambda r: r.log("m", np.uint64(2**64 - 1)), "cannot be stored exactly"),
    ("huge cell", lambda r: r.log_list("m", [2**64]), "does not fit in 64 bits"),
    # PostgreSQL text and jsonb cannot hold NUL: the record would be refused whole.
    ("nul value", lambda r: r.log("m", "a\x00b"), "string value contains NUL"),
    ("nul tag value", lambda r: r.tag("m", "a\x00b"), "tag value contains NUL"),
    ("nul property", lambda r: r.add_properties({"m": "\x00"}), "property value contains NUL"),
    ("nul description", lambda r: r.log_row("m", description="\x00", a=1), "description contains NUL"),
    ("nul details", lambda r: r.fail({"m": ["\x00"]}), "a string in fail() details contains NUL"),
    # numpy's str_ hides trailing NULs from str() and .item(): the check must see them (issue 19's CI failure).
    ("nul numpy value", lambda r: r.log("m", np.str_("a\x00")), "string value contains NUL"),
    ("nul numpy tag value", lambda r: r.tag("m", np.str_("\x00")), "tag value contains NUL"),
    ("nul numpy property", lambda r: r.add_properties({"m": np.str_("\x00")}), "property value contains NUL"),
    ("nul numpy description", lambda r: r.log("m", 1.0, description=np.str_("d\x00")), "description contains NUL"),
    # A lone surrogate has no UTF-8 form: the record could not be encoded at all.
    ("surrogate value", lambda r: r.log("m", "a\ud800b"), "lone surrogate '\\ud800', which is not valid UTF-8"),
    ("surrogate name", lambda r: r.log("m\udfff", 1.0), "metric name contains the lone surrogate"),
    ("surrogate cell", lambda r: r.log_list("m", ["\udc80"]), "string value contains the lone surrogate"),
    ("surrogate row", lambda r: r.log_row("m", a=np.str_("\ud800")), "string value contains the lone surrogate"),
    ("surrogate column", lambda r: r.log_table("m", {"\ud800": [1]}), "column name contains the lone surrogate"),
    ("surrogate tag", lambda r: r.tag("m\ud800"), "tag name contains the lone surrogate"),
    ("surrogate tag value", lambda r: r.set_tags({"m": "\ud800"}), "tag value contains the lone surrogate"),
    ("surrogate property", lambda r: r.add_properties({"m": "\ud800"}), "property value contains the lone surrogate"),
    ("surrogate description", lambda r: r.log("m", 1.0, description="\udbff"), "description contains the lone"),
    ("surrogate file", lambda r: r.upload_file("m\ud800", __file__), "file name contains the lone surrogate"),
    ("surrogate details", lambda r: r.fail("\ud800"), "a string in fail() details contains the lone surrogate"),
    ("huge step", lambda r: r.log("m", 1.0, step=2**64), "does not fit in 64 bits"),
    ("unequal table", lambda r: r.log_table("m", {"a": [1, 2], "b": [1]}), "differ in length (a=2, b=1)"),
    ("empty table", lambda r: r.log_table("m", {}), "at least one column"),
    ("empty row", lambda r: r.log_row("m"), "at least one column"),
    ("image both", lambda r: r.log_image("m", path="x.png", plot=object()), "exactly one of path or plot"),
    ("image neither", lambda r: r.log_image("m"), "exactly one of path or plot"),
    ("image missing", lambda r: r.log_image("m", path="/nonexistent/x.png"), "is not a file"),
    ("column name", lambda r: r.log_row("m", **{"": 1}), "column name is empty: ''"),
    ("tag name", lambda r: r.tag("", "v"), "tag name is empty"),
    ("file name", lambda r: r.upload_file("../m", __file__), "relative path"),
    ("absolute file", lambda r: r.upload_file("/m", __file__), "relative path"),
    ("missing file", lambda r: r.upload_file("m", "/nonexistent"), "is not a file"),
    ("huge list", lambda r: r.log_list("m", ["x" * 4000] * 3000), "exceeds the limit"),
    ("long description", lambda r: r.log("m", 1.0, description="d" * (MAX_STRING_CHARS + 1)), "more than"),
]


#: Cases whose error names something other than the metric 'm': the bad name itself, a file, the details.
NAMED_OTHERWISE: dict[str, str] = {
    "empty name": "",
    "long name": "m" * 40 + "...",
    "newline": "m\nx",
    "nul": "m\x00",
    "file name": "../m",
    "absolute file": "/m",
    "tag name": "",
    "nul details": "error_details",
    "surrogate name": "m\udfff",
    "surrogate tag": "m\ud800",
    "surrogate file": "m\ud800",
    "surrogate details": "error_details",
}


@pytest.fixture
def run(workspace: Workspace) -> Iterator[Run]:  # noqa: F811 - the imported fixture
    opened = Experiment(workspace, "validation").start_logging(outputs=None)
    yield opened
    # Left open, a run heartbeats until the interpreter exits, when the session's broker is gone.
    with contextlib.suppress(RunClosedError):
        opened.complete()


@pytest.mark.parametrize(("case", "call", "message"), TYPE_ERRORS, ids=[c[0] for c in TYPE_ERRORS])
def test_type_errors_name_the_metric(run: Run, case: str, call: Call, message: str) -> None:
    with pytest.raises(MetricTypeError) as info:
        call(run)
    assert isinstance(info.value, TypeError)
    assert message in str(info.value)
    if case not in ("name type", "fail details"):
        assert info.value.metric == "m" and "'m'" in str(info.value)
    run.complete()


@pytest.mark.parametrize(("case", "call", "message"), VALUE_ERRORS, ids=[c[0] for c in VALUE_ERRORS])
def test_value_errors_name_the_metric(run: Run, case: str, call: Call, message: str) -> None:
    with pytest.raises(MetricValueError) as info:
        call(run)
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)
    assert info.value.metric == NAMED_OTHERWISE.get(case, "m")
    run.complete()


async def test_rejected_values_are_not_buffered(settings: Settings, run: Run) -> None:
    run.log("m", 1.0)
    for _, call, _ in TYPE_ERRORS + VALUE_ERRORS:
        with pytest.raises((TypeError, ValueError)):
            call(run)
    run.log("m", 2.0)
    run.complete()
    events = events_of(await consume_run(settings, run.id))
    assert points(events, "m") == [(0, 0, 1.0), (1, 1, 2.0)]
    kinds = [e["type"] for e in events]
    assert kinds == ["run_started", "status", "scalars", "status"]


async def test_a_bad_entry_logs_none_of_its_dict(settings: Settings, run: Run) -> None:
    run.log_metrics({"a": 1.0, "b": 2})
    bad: list[tuple[Any, Any, type[Exception], str, str]] = [
        ({"a": 3.0, "b": [1.0]}, None, MetricTypeError, "b", "log_metrics() takes values that are each a bool"),
        ({"a": 3.0, "": 1.0}, None, MetricValueError, "", "name is empty"),
        ({"a": 3.0, "b": "x"}, None, MetricTypeError, "b", "already logged as int scalars"),
        ({"a": 3.0, "c": 2**60}, None, MetricValueError, "c", "cannot be stored exactly"),
        ({"a": 3.0, 5: 1.0}, None, MetricTypeError, "5", "name must be a str, got int"),
        ({"a": 3.0, "b": 4.0}, 1.5, MetricTypeError, "a", "step must be an int"),
        ([("a", 3.0)], None, MetricTypeError, "[('a', 3.0)]", "log_metrics() takes a dict of names to values"),
    ]
    for metrics, step, error, metric, message in bad:
        with pytest.raises(error, match=re.escape(message)) as info:
            run.log_metrics(metrics, step)
        assert info.value.metric == metric  # type: ignore[attr-defined]
    run.log_metrics({"a": 4.0, "b": 5.0})
    run.complete()
    with pytest.raises(RunClosedError, match="log_metrics"):
        run.log_metrics({"a": 6.0})
    events = events_of(await consume_run(settings, run.id))
    assert points(events, "a") == [(0, 0, 1.0), (1, 1, 4.0)]
    assert points(events, "b") == [(0, 0, 2), (1, 1, 5.0)]
    assert not points(events, "c")


def test_properties_are_add_only(run: Run) -> None:
    run.add_properties({"owner": "me"})
    with pytest.raises(MetricValueError, match="'owner': property is already 'me'"):
        run.add_properties({"owner": "you", "other": "x"})
    assert run._properties == {"owner": "me"}  # the bad call added nothing
    run.complete()


def test_non_finite_values_are_accepted(run: Run) -> None:
    for value in (math.nan, math.inf, -math.inf, np.float32("nan")):
        run.log("m", value)
    run.log_list("l", [math.nan, math.inf])
    run.log_row("r", a=-math.inf)
    run.complete()


KIND_CHANGES: list[tuple[str, Call, str]] = [
    ("str", lambda r: r.log("m", "a"), "already logged as float scalars, cannot take str scalars"),
    ("bool", lambda r: r.log("m", True), "cannot take bool scalars"),
    ("list", lambda r: r.log_list("m", [1.0]), "cannot take list entries"),
    ("row", lambda r: r.log_row("m", a=1.0), "cannot take row entries"),
    ("table", lambda r: r.log_table("m", {"a": [1.0]}), "cannot take table entries"),
    ("image", lambda r: r.log_image("m", plot=Figure()), "cannot take images"),
]


@pytest.mark.usefixtures("ingest_worker", "query_service")
def test_a_metric_keeps_its_kind_and_the_batch_is_delivered(run: Run) -> None:
    """Ingest refuses a record that changes a series' kind, and the whole batch with it:
    the SDK refuses the call instead, naming the metric and both kinds."""
    run.log("m", 1.0)
    run.log("m", 2)  # int and float mix (the series is float)
    for _, call, message in KIND_CHANGES:
        with pytest.raises(MetricTypeError, match=re.escape(message)) as info:
            call(run)
        assert info.value.metric == "m"
    run.log_list("l", [1])
    with pytest.raises(MetricTypeError, match="'l': already logged as list entries, cannot take float scalars"):
        run.log("l", 1.0)
    run.log("m", 3.0, step=7)
    run.complete()
    assert run.wait_for_completion(timeout_seconds=60, poll_interval_seconds=0.1)["status"] == "Completed"
    assert run.get_metrics() == {"m": [1.0, 2.0, 3.0], "l": [1]}


@pytest.mark.usefixtures("ingest_worker", "query_service")
def test_strings_postgresql_cannot_store_are_refused_and_the_batch_is_delivered(run: Run) -> None:
    """A NUL in text or jsonb, or a lone surrogate anywhere, once lost the whole batch (or run):
    now the call raises, and the rest arrives. List, row and table cells are stored as json,
    which keeps a NUL (as the escape \\u0000): those are accepted and read back exactly."""
    run.log("ok", 1.0)
    refused: list[Callable[[], Any]] = [
        lambda: run.log("nul", "a\x00b"),
        lambda: run.log("s", "a\ud800b"),
        lambda: run.tag("k\ud800", "x"),
        lambda: run.tag("k", "a\x00"),
        lambda: run.add_properties({"p": "\x00"}),
    ]
    for call in refused:
        with pytest.raises(MetricValueError):
            call()
    run.log_list("cells", ["a\x00b", "\x00"])
    run.log_row("row", a="\x00")
    run.log_table("table", {"a": ["x\x00", "y"]})
    run.log_list("numpy cells", [np.str_("a\x00"), np.str_("\x00")])  # str() of these would drop the NULs
    run.log("exact", 2**53)
    run.complete()
    assert run.wait_for_completion(timeout_seconds=60, poll_interval_seconds=0.1)["status"] == "Completed"
    assert run.get_metrics() == {
        "ok": 1.0,
        "cells": ["a\x00b", "\x00"],
        "row": {"a": "\x00"},
        "table": {"a": ["x\x00", "y"]},
        "numpy cells": ["a\x00", "\x00"],
        "exact": 2**53,
    }
    assert run.get_tags() == {} and run.get_properties() == {}


@pytest.mark.usefixtures("ingest_worker", "query_service")
def test_an_exception_text_postgresql_cannot_store_fails_the_run_escaped(run: Run) -> None:
    """A with-block's exception fails the run on the way out, where raising would hide it:
    its text is escaped instead (a message or dict given to fail() on purpose is refused)."""
    with pytest.raises(ValueError, match="bad"), run:
        raise ValueError("bad \x00 and \ud800")
    details = run.wait_for_completion(timeout_seconds=60, poll_interval_seconds=0.1, raise_on_error=False)
    assert details["status"] == "Failed"
    assert details["error"]["message"] == "bad \\x00 and \\ud800"


# --- workspace -------------------------------------------------------------


def test_from_config_reads_the_file_and_takes_the_token_from_env(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"kafka_bootstrap": "k:1", "query_url": "http://q:2/", "topic": "t", "token": "from-file"})
    )
    secret = "secret-" + "s" * 32
    env = {"RUNSTREAM_HOME": str(tmp_path), "RUNSTREAM_TOKEN": secret, "RUNSTREAM_KAFKA_BOOTSTRAP": "env:9"}
    ws = Workspace.from_config(env=env)
    assert (ws.kafka_bootstrap, ws.query_url, ws.topic, ws.token) == ("k:1", "http://q:2", "t", secret)
    assert "secret" not in repr(ws)
    assert Workspace.from_config(tmp_path, env={}).token is None  # never from the file
    assert Workspace.from_config(tmp_path / "config.json", env={}).kafka_bootstrap == "k:1"


def test_from_config_without_a_file_uses_the_environment(tmp_path: Path) -> None:
    env = {"RUNSTREAM_HOME": str(tmp_path), "RUNSTREAM_KAFKA_PORT": "1234", "RUNSTREAM_TOPIC": "x"}
    ws = Workspace.from_config(env=env)
    assert (ws.kafka_bootstrap, ws.query_url, ws.topic) == ("127.0.0.1:1234", "http://127.0.0.1:28080", "x")
    assert (
        Workspace.from_config(env=ws.as_env() | {"RUNSTREAM_HOME": str(tmp_path)}).kafka_bootstrap == "127.0.0.1:1234"
    )


def test_from_config_errors(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceConfigError, match="does not exist"):
        Workspace.from_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(WorkspaceConfigError, match="cannot read"):
        Workspace.from_config(bad)
    bad.write_text(json.dumps({"topic": 3}))
    with pytest.raises(WorkspaceConfigError, match="topic must be a non-empty string"):
        Workspace.from_config(bad)
    with pytest.raises(WorkspaceConfigError, match="query_url"):
        Workspace(kafka_bootstrap="k:1", query_url="ftp://x")


def test_from_settings(settings: Settings) -> None:
    ws = Workspace.from_settings(settings)
    assert (ws.kafka_bootstrap, ws.query_url, ws.topic) == (
        settings.kafka_bootstrap,
        settings.query_url,
        settings.topic,
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"flush_points": 0}, "flush_points must be a positive int"),
        ({"max_buffered_points": 10, "flush_points": 100}, "below flush_points"),
        ({"flush_interval_seconds": 0}, "flush_interval_seconds must be a positive number"),
        ({"heartbeat_interval_seconds": -1}, "heartbeat_interval_seconds"),
        ({"compression": "brotli"}, "compression"),
    ],
)
def test_logging_options_are_validated(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkspaceConfigError, match=message):
        LoggingOptions(**overrides)


def test_experiment_name_is_validated(workspace: Workspace) -> None:  # noqa: F811
    with pytest.raises(MetricValueError, match="experiment name is empty"):
        Experiment(workspace, "")
    with pytest.raises(TypeError):
        Experiment("not a workspace", "x")  # type: ignore[arg-type]


def test_the_heartbeat_interval_is_a_setting_children_inherit(tmp_path: Path) -> None:
    env = {"RUNSTREAM_HOME": str(tmp_path), "RUNSTREAM_HEARTBEAT_SECONDS": "0.5"}
    ws = Workspace.from_config(env=env)
    assert ws.options.heartbeat_interval_seconds == 0.5
    # A submitted script's Run.get_context() builds its workspace from these.
    assert Workspace.from_config(env={**env, **ws.as_env()}).options.heartbeat_interval_seconds == 0.5
    with pytest.raises(ConfigError, match="RUNSTREAM_HEARTBEAT_SECONDS"):
        Workspace.from_config(env={**env, "RUNSTREAM_HEARTBEAT_SECONDS": "-1"})
