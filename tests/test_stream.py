"""runstream.stream: committed points and run changes, filtered, resumed across a killed query service with
nothing missed and nothing twice; bad filters are 400s naming the parameter."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

import runstream.stream
from ops.stack import free_port
from runstream.config import Settings
from runstream.kafka import client_options
from runstream.stream import NewPoints, RunChanged, Stream, StreamRefused, SyncStream
from tests.support import eventually, wait_http_ok
from tests.test_ingest_support import T0, new_id, raw, scalars, started, status
from tests.test_query_seed import get


def test_the_stream_module_exports_exactly_its_names() -> None:
    assert sorted(runstream.stream.__all__) == sorted(
        ["MetricPoints", "NewPoints", "RunChanged", "Stream", "StreamError", "StreamRefused", "SyncStream"]
    )


def acc(name: str, first: int, n: int) -> dict[str, Any]:
    """Points ``first .. first + n - 1`` of a metric: step i at time T0 + i, value i / 4 (NaN at step 7)."""
    values = [math.nan if i == 7 else i / 4 for i in range(first, first + n)]
    return scalars(name, "float", values, first_step=first, time=T0 + first, first_ordinal=first)


class Collector:
    """Reads a stream in the background; steps and values received per (run, metric)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.events: list[NewPoints | RunChanged] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.stream:
            self.events.append(event)

    def steps(self, run_id: str, metric: str) -> list[int]:
        return [s for e in self.points(run_id) if metric in e.metrics for s in e.metrics[metric].steps]

    def points(self, run_id: str) -> list[NewPoints]:
        return [e for e in self.events if isinstance(e, NewPoints) and e.run_id == run_id]

    def statuses(self, run_id: str) -> list[str]:
        return [e.status for e in self.events if isinstance(e, RunChanged) and e.run_id == run_id]

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.stream.stop()


async def _stored(db: asyncpg.Pool, run_id: str, metric: str) -> int:
    count = await db.fetchval("SELECT point_count FROM series WHERE run_id = $1 AND name = $2", run_id, metric)
    return int(count or 0)


async def test_a_stream_resumes_across_a_killed_query_service_missing_nothing_and_nothing_twice(
    settings: Settings, spawn: Callable[..., Any], ingest_worker: Any, db: asyncpg.Pool
) -> None:
    port = free_port()
    own = dataclasses.replace(settings, query_port=port, query_url=f"http://127.0.0.1:{port}")
    service = spawn("query", own)
    await wait_http_ok(f"{own.query_url}/health", service)
    experiment, tagged, untagged, session, other = (
        f"follow-{uuid.uuid4().hex[:8]}",
        new_id(),
        new_id(),
        new_id(),
        new_id(),
    )
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    seq = iter(range(1, 1000))

    async def send(*events: dict[str, Any]) -> None:
        await producer.send_and_wait(settings.topic, raw(tagged, session, next(seq), *events), key=tagged.encode())

    collector: Collector | None = None
    try:
        # Stored before the stream starts (from now): never delivered.
        tags = {"type": "tags", "time": T0, "tags": {"team": "a"}}
        await send(started(experiment), tags, status("Running", T0), acc("acc", 0, 3))
        await producer.send_and_wait(
            settings.topic, raw(untagged, other, 1, started(experiment), acc("acc", 0, 5)), key=untagged.encode()
        )
        await eventually(lambda: _stored(db, tagged, "acc"), lambda n: n == 3, what="the first points stored")
        stream = Stream(
            own.query_url,
            experiment=experiment,
            metrics=["acc*"],
            tags={"team": "a"},
            retry_seconds=0.1,
            max_retry_seconds=0.5,
        )
        collector = Collector(stream)
        await eventually(lambda: _async(collector.statuses(tagged)), lambda s: s == ["Running"], what="run seen")

        await send(acc("acc", 3, 3), acc("acc2", 0, 2), acc("loss", 0, 4))
        await send(acc("acc", 6, 2))
        await eventually(lambda: _async(collector.steps(tagged, "acc")), lambda s: len(s) >= 5, what="points")
        service.kill()
        service.wait()
        # While the service is down: more points, a run change.
        await send(acc("acc", 8, 4), acc("acc2", 2, 3))
        await send(acc("acc", 12, 1), status("Completed", T0 + 20))
        await eventually(lambda: _stored(db, tagged, "acc"), lambda n: n == 13, what="points stored meanwhile")
        service = spawn("query", own)
        await eventually(
            lambda: _async(collector.steps(tagged, "acc")), lambda s: len(s) >= 10, what="points after the restart"
        )
        await send(acc("acc", 13, 2))
        await eventually(
            lambda: _async(collector.steps(tagged, "acc")), lambda s: len(s) >= 12, what="points after the restart"
        )
        assert collector.steps(tagged, "acc") == list(range(3, 15))
        assert collector.steps(tagged, "acc2") == list(range(5))
        assert {m for e in collector.points(tagged) for m in e.metrics} == {"acc", "acc2"}  # not loss
        values = [v for e in collector.points(tagged) if "acc" in e.metrics for v in e.metrics["acc"].values]
        assert math.isnan(values[7 - 3]) and values[:4] == [0.75, 1.0, 1.25, 1.5]
        assert collector.statuses(tagged) == ["Running", "Completed"]
        assert not collector.points(untagged) and not collector.statuses(untagged)
        assert stream.reconnects >= 1
        cursor = stream.cursor
    finally:
        await producer.stop()
        if collector is not None:
            await collector.stop()

    # The sync wrapper, from the start; and resumed from its cursor, nothing again.
    with SyncStream(own.query_url, runs=[tagged], metrics=["acc"], start="start") as sync:
        received: dict[str, list[int]] = defaultdict(list)
        while len(received["acc"]) < 15:
            event = await asyncio.to_thread(sync.next_event, 30)
            assert event is not None
            if isinstance(event, NewPoints):
                received["acc"] += event.metrics["acc"].steps
        assert received["acc"] == list(range(15))
    with SyncStream(own.query_url, runs=[tagged], metrics=["acc"], cursor=cursor) as resumed:
        assert await asyncio.to_thread(resumed.next_event, 1.0) is None


async def _async(value: Any) -> Any:
    return value


@pytest.mark.parametrize(
    ("query", "parameter", "says"),
    [
        ("", "experiment", "experiment or run"),
        ("?experiment=", "experiment", "empty"),
        ("?experiment=x&metric=a[b", "metric", "position 1"),
        ("?experiment=x&metric=", "metric", "empty"),
        ("?experiment=x&tag=:v", "tag", "no key"),
        ("?run=nope", "run", "not a UUID"),
        ("?experiment=x&from=later", "from", "now, start"),
        ("?experiment=x&cursor=zzzz", "cursor", "not a cursor"),
    ],
)
async def test_bad_filters_are_400_naming_the_parameter(
    query_service: str, query: str, parameter: str, says: str
) -> None:
    status_code, body = await get(f"{query_service}/api/changes/stream{query}")
    assert status_code == 400 and body["error"]["parameter"] == parameter and says in body["error"]["message"]


async def test_a_bad_last_event_id_is_400_and_the_client_raises_refusals(query_service: str) -> None:
    url = f"{query_service}/api/changes/stream?experiment=x"
    async with aiohttp.ClientSession() as session, session.get(url, headers={"Last-Event-ID": "x"}) as resp:
        body = await resp.json()
    assert resp.status == 400 and body["error"]["parameter"] == "Last-Event-ID"
    async with Stream(query_service, experiment="x", metrics=["[oops"]) as stream:
        with pytest.raises(StreamRefused) as refused:
            await anext(stream)
    assert refused.value.status == 400 and refused.value.parameter == "metric"
    with pytest.raises(ValueError, match="experiment or runs"):
        Stream(query_service)
