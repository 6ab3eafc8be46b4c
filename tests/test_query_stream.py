"""Live updates over Server-Sent Events: new points and status changes reach every subscriber."""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from ops.stack import free_port
from query import create_app
from runstream.config import Settings
from tests.support import eventually
from tests.test_ingest_support import new_id, produce_all, raw, scalars, started, status
from tests.test_query_seed import announce, append_points, bump_session, get, seed_run, seed_scalars

T0 = 1_700_000_000.0
DEADLINE_SECONDS = 15.0


class EventReader:
    """Parses ``event:``/``data:`` frames off an open SSE response."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def next(self) -> tuple[str, Any]:
        async def read() -> tuple[str, Any]:
            kind, data = "message", b""
            while True:
                line = (await self.resp.content.readline()).rstrip(b"\n")
                if not line:
                    if data:
                        return kind, orjson.loads(data)
                    continue
                if line.startswith(b"event: "):
                    kind = line[7:].decode()
                elif line.startswith(b"data: "):
                    data += line[6:]

        return await asyncio.wait_for(read(), DEADLINE_SECONDS)


async def test_stream_pushes_points_and_status(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, status="Running")
    session = uuid.uuid4()
    await seed_scalars(db, run_id, "loss", "float", [3.0, 2.0])
    await bump_session(db, run_id, session, 1)
    url = f"{query_service}/api/runs/{run_id}/stream"
    async with aiohttp.ClientSession() as client:
        async with client.get(url) as first, client.get(url) as second:
            assert first.status == 200 and first.content_type == "text/event-stream"
            readers = [EventReader(first), EventReader(second)]
            for reader in readers:
                kind, data = await reader.next()
                assert kind == "run" and data["id"] == str(run_id) and data["status"] == "Running"

            # Ingest stores a batch: two new points on the old series and a new series.
            await append_points(db, run_id, "loss", [(2, T0 + 2, 2, 1.5), (3, T0 + 3, 3, math.nan)])
            await seed_scalars(db, run_id, "epoch", "int", [1], times=[T0 + 3])
            await bump_session(db, run_id, session, 2)
            for reader in readers:
                kind, data = await reader.next()
                assert kind == "points"
                assert data == {
                    "run_id": str(run_id),
                    "metrics": {
                        "loss": {"steps": [2, 3], "times": [T0 + 2, T0 + 3], "values": [1.5, {"$float": "NaN"}]},
                        "epoch": {"steps": [0], "times": [T0 + 3], "values": [1]},
                    },
                }

            await db.execute("UPDATE runs SET status = 'Completed', ended_at = now() WHERE id = $1", run_id)
            await announce(db, run_id)
            for reader in readers:
                kind, data = await reader.next()
                assert kind == "run" and data["status"] == "Completed" and data["ended_at"] is not None


async def test_stream_starts_after_the_stored_last_point_and_catches_up_on_bursts(
    query_service: str, db: asyncpg.Pool
) -> None:
    run_id = await seed_run(db, status="Running")
    session = uuid.uuid4()
    # Stored to the microsecond: this last time rounds up, past the exact time the series summary keeps.
    await seed_scalars(db, run_id, "loss", "float", [3.0, 2.0], times=[T0, T0 + 1.0000006])
    await bump_session(db, run_id, session, 1)
    async with aiohttp.ClientSession() as client, client.get(f"{query_service}/api/runs/{run_id}/stream") as resp:
        reader = EventReader(resp)
        assert (await reader.next())[0] == "run"
        # More points in one batch than one event carries (10,000): the rest follow without further data.
        burst = [(2 + i, T0 + 2 + i, 2 + i, float(i)) for i in range(10_050)]
        await append_points(db, run_id, "loss", burst)
        await bump_session(db, run_id, session, 2)
        steps: list[int] = []
        while len(steps) < len(burst):
            kind, data = await reader.next()
            assert kind == "points"
            steps += data["metrics"]["loss"]["steps"]
        assert steps == [p[0] for p in burst]


async def test_a_run_not_stored_yet_streams_from_its_first_data(query_service: str, db: asyncpg.Pool) -> None:
    """A run page opened right after start_logging() follows the run's stream before ingest stores the run."""
    run_id = uuid.uuid4()
    async with aiohttp.ClientSession() as client, client.get(f"{query_service}/api/runs/{run_id}/stream") as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        reader = EventReader(resp)
        await seed_run(db, run_id=run_id, experiment="arrives-late", status="Running")  # and announces it
        kind, data = await reader.next()
        assert kind == "run" and (data["id"], data["status"], data["experiment"]) == (
            str(run_id),
            "Running",
            "arrives-late",
        )


async def test_stream_errors(query_service: str) -> None:
    status, body = await get(f"{query_service}/api/runs/nope/stream")
    assert status == 400 and body["error"]["parameter"] == "run_id"


async def test_experiment_stream_pushes_changed_and_new_runs(query_service: str, db: asyncpg.Pool) -> None:
    experiment = f"live-{uuid.uuid4().hex[:8]}"
    first = await seed_run(db, experiment=experiment, status="Running")
    await seed_run(db, experiment=experiment, status="Completed")
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{query_service}/api/stream?experiment={experiment}") as resp,
    ):
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        reader = EventReader(resp)
        await db.execute("UPDATE runs SET status = 'Failed', ended_at = now() WHERE id = $1", first)
        await announce(db, first)
        kind, data = await reader.next()
        assert kind == "runs" and data["experiment"] == experiment
        assert [(r["id"], r["status"]) for r in data["runs"]] == [(str(first), "Failed")]
        newcomer = await seed_run(db, experiment=experiment, status="Running")
        kind, data = await reader.next()
        assert [(r["id"], r["status"]) for r in data["runs"]] == [(str(newcomer), "Running")]


async def test_experiment_stream_errors(query_service: str) -> None:
    status, body = await get(f"{query_service}/api/stream")
    assert (status, body["error"]["parameter"]) == (400, "experiment")
    status, body = await get(f"{query_service}/api/stream?experiment=nothing-{uuid.uuid4()}")
    assert (status, body["error"]["code"]) == (404, "experiment_not_found")


async def test_streams_wake_on_ingest_notifications_not_on_polling(
    settings: Settings, db: asyncpg.Pool, ingest_worker: Any
) -> None:
    """With the fallback check an hour away, only ingest's NOTIFY can bring the news in time."""
    runner = web.AppRunner(create_app(settings, live_interval_seconds=0.05, live_fallback_seconds=3600))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    run, session = new_id(), new_id()

    async def publish(seq: int, *events: dict[str, Any]) -> None:
        await produce_all(settings, settings.topic, [(run, raw(run, session, seq, *events))])

    try:
        await publish(1, started(), scalars("x", "float", [1.0]))
        await eventually(lambda: db.fetchval("SELECT status FROM runs WHERE id = $1", run), lambda s: s == "Running")
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{port}/api/runs/{run}/stream") as resp,
        ):
            reader = EventReader(resp)
            assert (await reader.next())[0] == "run"
            await publish(2, scalars("x", "float", [2.0], first_step=1, time=T0 + 1, first_ordinal=1))
            kind, data = await reader.next()
            assert kind == "points" and data["metrics"]["x"]["values"] == [2.0]
            await publish(3, status("Completed", T0 + 5))
            kind, data = await reader.next()
            assert kind == "run" and data["status"] == "Completed"
    finally:
        await runner.cleanup()
