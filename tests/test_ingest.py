"""The ingest worker against real Kafka and PostgreSQL (the session's subprocess worker)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from runstream.config import Settings
from tests.support import eventually
from tests.test_ingest_support import T0, new_id, points, raw, run_row, same_floats, scalars, send, started, status


@pytest_asyncio.fixture(scope="session")
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    async with AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all") as p:
        yield p


async def test_scalars_of_every_kind_round_trip(
    settings: Settings, db: asyncpg.Pool, producer: AIOKafkaProducer, ingest_worker: Any
) -> None:
    run, session = new_id(), new_id()
    floats = [0.5, math.nan, math.inf, -math.inf, -0.0, 1e-300, 5e300]
    await send(producer, settings.topic, run, [
        raw(run, session, 1, started("exp-kinds"), scalars("loss", "float", floats[:3])),
        raw(run, session, 2, scalars("loss", "float", floats[3:], first_step=3, first_ordinal=3),
            scalars("epoch", "int", [1, 2, -(2**62)]), scalars("ok", "bool", [True, False]),
            scalars("phase", "str", ["warmup", "", "train ✓"])),
        raw(run, session, 3, status("Completed", T0 + 100)),
    ])

    async def completed() -> str | None:
        row = await run_row(db, run)
        return None if row is None else row["status"]

    await eventually(completed, lambda s: s == "Completed", what="run completed")
    loss = await points(db, run, "loss")
    assert [p[0] for p in loss] == list(range(7))
    assert [p[1] for p in loss] == [T0 + i for i in [0, 1, 2, 0, 1, 2, 3]]
    assert same_floats([p[3] for p in loss], floats)
    assert all(p[4] is None for p in loss)
    assert [(p[0], p[3]) for p in await points(db, run, "epoch")] == [(0, 1.0), (1, 2.0), (2, float(-(2**62)))]
    assert [p[3] for p in await points(db, run, "ok")] == [1.0, 0.0]
    assert [(p[3], p[4]) for p in await points(db, run, "phase")] == [(None, "warmup"), (None, ""), (None, "train ✓")]
    types = dict(await db.fetch("SELECT name, value_type FROM series WHERE run_id = $1 AND kind = 'scalar'", run))
    assert types == {"loss": "float", "epoch": "int", "ok": "bool", "phase": "str"}
    row = await run_row(db, run)
    assert row is not None
    assert row["display_name"] == "a run"
    assert row["started_at"].timestamp() == T0 and row["created_at"].timestamp() == T0
    assert row["ended_at"].timestamp() == T0 + 100
    assert await db.fetchval("SELECT e.name FROM experiments e JOIN runs r ON r.experiment_id = e.id WHERE r.id = $1", run) == "exp-kinds"
    history = await db.fetch("SELECT status, time FROM status_history WHERE run_id = $1 ORDER BY time", run)
    assert [(h["status"], h["time"].timestamp()) for h in history] == [("Running", T0), ("Completed", T0 + 100)]
    assert await db.fetchval("SELECT last_seq FROM producer_sessions WHERE session_id = $1", session) == 3
