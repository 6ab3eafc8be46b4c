"""runstream.client and the `runstream runs|metrics` commands against the real stack; exports round-trip bit-exactly."""

from __future__ import annotations

import asyncio
import csv
import math
import os
import struct
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaProducer

import runstream.client
from runstream.client import Client, RequestRefused, parse_filter, parse_order_by
from runstream.config import Settings
from runstream.kafka import client_options
from tests.support import eventually
from tests.test_ingest_support import T0, new_id, raw, scalars, started, status

ROOT = Path(__file__).resolve().parent.parent
#: Every float64 a CSV could get wrong: NaN, both infinities, negative zero, a subnormal, 0.1 + 0.2.
ACC_A = [0.5, math.nan, math.inf, -math.inf, -0.0, 5e-324, 0.1 + 0.2]


def bits(values: list[float]) -> list[int]:
    """Each float's bytes, NaN as one canonical NaN (JSON and the CSV carry "a NaN", not its payload)."""
    return [struct.unpack("<Q", struct.pack("<d", math.nan if math.isnan(v) else v))[0] for v in values]


def test_the_client_module_exports_exactly_its_names() -> None:
    assert sorted(runstream.client.__all__) == sorted(
        ["Client", "ClientError", "RequestRefused", "ServiceUnavailable", "parse_filter", "parse_order_by"]
    )


def test_filters_and_orders_become_the_services_parameters_or_errors_naming_the_position() -> None:
    assert parse_filter("metrics.acc > 0.5 and min(metrics.`val loss`) <= 1e-3 AND tags.team = 'a b' and tags.x") == [
        ("where", "acc>0.5"),
        ("where", "min(val loss)<=0.001"),
        ("tag", "team:a b"),
        ("tag", "x"),
    ]
    assert parse_filter("properties.lr = \"0.1\" and status = 'Failed'") == [
        ("property", "lr:0.1"),
        ("status", "Failed"),
    ]
    assert parse_order_by(["metrics.acc DESC"]) == "-last(acc)"
    assert parse_order_by("min(metrics.loss)") == "min(loss)"
    assert parse_order_by("created_at asc") == "created_at"
    with pytest.raises(ValueError, match="position 22"):
        parse_filter("metrics.acc > 0.5 and nonsense")
    with pytest.raises(ValueError, match="expected .and. at position 17"):
        parse_filter("metrics.acc > 0.5 or tags.x")
    with pytest.raises(ValueError, match="position 0"):
        parse_order_by("acc")


@pytest.fixture(scope="module")
async def experiment(settings: Settings, ingest_worker: Any, query_service: str, db: asyncpg.Pool) -> dict[str, str]:
    """Three stored runs of a new experiment, and a file of the first: ``{"name", "a", "b", "c"}``."""
    name = f"client-{uuid.uuid4().hex[:8]}"
    a, b, c = new_id(), new_id(), new_id()
    runs = {
        a: [
            started(name, display_name="alpha"),
            {"type": "tags", "time": T0, "tags": {"team": "cv"}},
            {"type": "properties", "time": T0, "properties": {"lr": "0.1"}},
            scalars("acc", "float", ACC_A),
            scalars("phase", "str", ["warm", "train"]),
            scalars("epoch", "int", [0, 1, 2]),
            status("Completed", T0 + 10),
        ],
        b: [
            started(name, display_name="beta"),
            {"type": "tags", "time": T0, "tags": {"team": "nlp"}},
            scalars("acc", "float", [0.95]),
        ],
        c: [started(name, display_name="gamma", time=T0 + 1), scalars("acc", "float", [0.2])],
    }
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        for run_id, events in runs.items():
            await producer.send_and_wait(settings.topic, raw(run_id, new_id(), 1, *events), key=run_id.encode())
    finally:
        await producer.stop()
    await eventually(
        lambda: db.fetchval("SELECT count(*) FROM series WHERE run_id = ANY($1::uuid[])", [a, b, c]),
        lambda n: n == 5,
        what="the runs stored",
    )
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{query_service}/api/runs/{a}/files/outputs/model.txt", data=b"weights") as resp:
            assert resp.status == 201
    return {"name": name, "a": a, "b": b, "c": c}


async def test_search_runs_is_a_dataframe_with_metrics_tags_and_properties(
    query_service: str, experiment: dict[str, str]
) -> None:
    client = Client(query_service)
    frame = await asyncio.to_thread(client.search_runs, experiment["name"], order_by=["metrics.acc DESC"])
    assert list(frame.run_id) == [experiment["b"], experiment["a"], experiment["c"]]
    assert list(frame.display_name) == ["beta", "alpha", "gamma"]
    assert {"metrics.acc", "metrics.epoch", "metrics.phase", "tags.team", "properties.lr", "status"} <= set(frame)
    row = frame[frame.run_id == experiment["a"]].iloc[0]
    assert row["metrics.acc"] == 0.1 + 0.2 and row["metrics.phase"] == "train" and row["tags.team"] == "cv"
    assert row["properties.lr"] == "0.1" and row["status"] == "Completed" and str(row.created_at.tz) == "UTC"
    chosen = await asyncio.to_thread(
        client.search_runs, experiment["name"], filter="metrics.acc > 0.25 and tags.team = 'cv'"
    )
    assert list(chosen.run_id) == [experiment["a"]]
    empty = await asyncio.to_thread(client.search_runs, experiment["name"], filter="metrics.acc > 5")
    assert len(empty) == 0 and "run_id" in empty


async def test_get_series_is_exact_as_numpy_and_pandas(query_service: str, experiment: dict[str, str]) -> None:
    client = Client(query_service)
    array = await asyncio.to_thread(client.get_series, experiment["a"], "acc")
    assert array.dtype.names == ("step", "time", "value")
    assert array["step"].tolist() == list(range(len(ACC_A))) and bits(array["value"].tolist()) == bits(ACC_A)
    frame = await asyncio.to_thread(client.get_series, experiment["a"], "phase", as_="pandas")
    assert list(frame.value) == ["warm", "train"] and list(frame.step) == [0, 1]
    with pytest.raises(RequestRefused) as refused:
        await asyncio.to_thread(client.get_series, experiment["a"], "nope")
    assert refused.value.status == 404 and refused.value.parameter == "name"
    with pytest.raises(RequestRefused) as refused:
        await asyncio.to_thread(client.get_run, "not-a-run")
    assert refused.value.status == 400 and refused.value.parameter == "run_id"


async def test_download_artifacts(query_service: str, experiment: dict[str, str], tmp_path: Path) -> None:
    client = Client(query_service)
    folder = await asyncio.to_thread(client.download_artifacts, experiment["a"], "outputs", tmp_path)
    assert folder == tmp_path / "outputs" and (folder / "model.txt").read_bytes() == b"weights"
    with pytest.raises(RequestRefused):
        await asyncio.to_thread(client.download_artifacts, experiment["a"], "missing", tmp_path)


async def _cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ops.cli",
        *args,
        env={**os.environ, **settings.as_env(), "PYTHONPATH": str(ROOT), "COLUMNS": "100"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_runs_ls_show_and_bad_input(settings: Settings, experiment: dict[str, str]) -> None:
    name = experiment["name"]
    code, out, _ = await _cli(
        settings, "runs", "ls", "--experiment", name, "--sort", "metrics.acc DESC", "--format", "csv"
    )
    rows = list(csv.DictReader(out.splitlines()))
    assert code == 0 and [r["run_id"] for r in rows] == [experiment["b"], experiment["a"], experiment["c"]]
    assert float(rows[1]["metrics.acc"]) == 0.1 + 0.2 and rows[1]["tags.team"] == "cv"
    code, out, _ = await _cli(settings, "runs", "ls", "--experiment", name, "--filter", "tags.team", "--format", "json")
    assert code == 0 and {orjson.loads(line)["run_id"] for line in out.splitlines()} == {
        experiment["a"],
        experiment["b"],
    }
    code, out, _ = await _cli(settings, "runs", "ls", "--experiment", name)
    assert code == 0 and all(len(line) <= 100 for line in out.splitlines()) and "alpha" in out
    code, out, _ = await _cli(settings, "runs", "show", experiment["a"])
    assert code == 0 and "Completed" in out and "team" in out and "acc" in out
    code, _, err = await _cli(settings, "runs", "ls", "--filter", "metrics.acc >> 1")
    assert code == 2 and "position 0" in err
    code, _, err = await _cli(settings, "runs", "show", "nope")
    assert code == 2 and "run_id" in err
    code, out, _ = await _cli(settings, "--version")
    assert code == 0 and out.startswith("runstream ")
    code, out, _ = await _cli(settings, "metrics", "tail", experiment["a"], "acc")
    assert code == 0 and out.splitlines()[0] == f"# {experiment['a']} Completed"


async def test_exports_round_trip_bit_exactly(settings: Settings, experiment: dict[str, str], tmp_path: Path) -> None:
    name = experiment["name"]
    code, out, _ = await _cli(settings, "runs", "export", "--experiment", name)
    assert code == 0
    rows = list(csv.DictReader(out.splitlines()))
    acc = [float(r["value"]) for r in rows if r["run_id"] == experiment["a"] and r["metric"] == "acc"]
    assert bits(acc) == bits(ACC_A)
    assert [r["text"] for r in rows if r["metric"] == "phase"] == ["warm", "train"]
    assert len(rows) == len(ACC_A) + 2 + 3 + 1 + 1
    target = tmp_path / "points.parquet"
    code, _, _ = await _cli(
        settings, "runs", "export", "--experiment", name, "--format", "parquet", "--output", str(target)
    )
    table = pq.read_table(target).to_pydict()
    picked = [
        i
        for i, (r, m) in enumerate(zip(table["run_id"], table["metric"], strict=True))
        if (r, m) == (experiment["a"], "acc")
    ]
    assert code == 0 and bits([table["value"][i] for i in picked]) == bits(ACC_A)
    assert [table["step"][i] for i in picked] == list(range(len(ACC_A)))
    assert np.array_equal([table["time"][i] for i in picked], [T0 + i for i in range(len(ACC_A))])
    code, _, err = await _cli(settings, "runs", "export", "--experiment", name, "--format", "parquet")
    assert code == 2 and "--output" in err
