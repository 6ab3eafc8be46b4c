"""The ingest worker against real Kafka and PostgreSQL (the session's subprocess worker)."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from ingest import DroppedRuns, UnknownExperimentError, drop_experiment
from ingest._summary import summarize
from runstream.config import Settings
from runstream.events import CHANGED_RUNS_CHANNEL, FORMAT_VERSION
from runstream.kafka import client_options
from tests.fuzzing import SEED
from tests.support import eventually
from tests.test_ingest_support import (
    T0,
    dead_letters,
    new_id,
    points,
    raw,
    run_row,
    same_floats,
    scalars,
    send,
    started,
    status,
)


@pytest_asyncio.fixture(scope="session")
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    async with AIOKafkaProducer(**client_options(settings), acks="all") as p:
        yield p


async def _summaries(db: asyncpg.Pool, run: str, more: str = "") -> dict[str, tuple[Any, ...]]:
    """Each series' summary columns (and the ``more`` columns), by name."""
    rows = await db.fetch(
        "SELECT name, point_count, min_value, max_value, max_step, last_step, last_time, last_ordinal,"
        f" last_value, last_text{more} FROM series WHERE run_id = $1",  # noqa: S608 - constant columns
        run,
    )
    return {r["name"]: tuple(r)[1:] for r in rows}


async def test_scalars_of_every_kind_round_trip(
    settings: Settings, db: asyncpg.Pool, producer: AIOKafkaProducer, ingest_worker: Any
) -> None:
    run, session = new_id(), new_id()
    floats = [0.5, math.nan, math.inf, -math.inf, -0.0, 1e-300, 5e300]
    await send(
        producer,
        settings.topic,
        run,
        [
            raw(run, session, 1, started("exp-kinds"), scalars("loss", "float", floats[:3])),
            raw(
                run,
                session,
                2,
                scalars("loss", "float", floats[3:], first_step=3, first_ordinal=3),
                scalars("epoch", "int", [1, 2, -(2**62)]),
                scalars("ok", "bool", [True, False]),
                scalars("phase", "str", ["warmup", "", "train ✓"]),
            ),
            raw(run, session, 3, status("Completed", T0 + 100)),
        ],
    )

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
    assert (
        await db.fetchval("SELECT e.name FROM experiments e JOIN runs r ON r.experiment_id = e.id WHERE r.id = $1", run)
        == "exp-kinds"
    )
    history = await db.fetch("SELECT status, time FROM status_history WHERE run_id = $1 ORDER BY time", run)
    assert [(h["status"], h["time"].timestamp()) for h in history] == [("Running", T0), ("Completed", T0 + 100)]
    assert await db.fetchval("SELECT last_seq FROM producer_sessions WHERE session_id = $1", session) == 3
    assert row["seen_at"] is not None
    summary = await _summaries(db, run)
    assert summary == {
        "loss": (7, -0.0, 5e300, 6, 6, T0 + 3, 6, 5e300, None),
        "epoch": (3, float(-(2**62)), 2.0, 2, 2, T0 + 2, 2, float(-(2**62)), None),
        "ok": (2, 0.0, 1.0, 1, 1, T0 + 1, 1, 0.0, None),
        "phase": (3, None, None, 2, 2, T0 + 2, 2, None, "train ✓"),
    }


async def test_summaries_of_many_series_in_one_statement_equal_the_per_series_summary(
    settings: Settings, db: asyncpg.Pool, producer: AIOKafkaProducer, ingest_worker: Any
) -> None:
    """Every series' row after two batches (times out of order, NaN and ±Inf, a series with no finite value,
    text) holds what :func:`summarize` of all its stored points gives, its count and its least time."""
    rng = random.Random(SEED)
    run, session = new_id(), new_id()
    specials = [math.nan, math.inf, -math.inf]
    names = [f"m{i:03d}" for i in range(120)]

    def batch(seq: int) -> bytes:
        events = []
        for i, name in enumerate(names):
            n = rng.randint(1, 4)
            values = [
                rng.choice(specials) if i % 7 == 0 or rng.random() < 0.2 else rng.uniform(-9, 9) for _ in range(n)
            ]
            events.append(
                scalars(name, "float", values, first_step=rng.randint(0, 50), time=T0 + rng.randint(-20, 20) / 4)
            )
        events.append(scalars("phase", "str", [f"p{seq}"], time=T0 - seq))
        return raw(run, session, seq, *([started("exp-summaries")] if seq == 1 else []), *events)

    await send(producer, settings.topic, run, [batch(1), batch(2)])
    await _wait_session(db, session, 2)
    rows = await _summaries(db, run, ", first_time")
    for name in [*names, "phase"]:
        steps, times, ordinals, values, texts = zip(*await points(db, run, name), strict=True)
        is_text = name == "phase"
        expected = (*summarize(steps, times, ordinals, texts if is_text else values, is_text=is_text), min(times))
        assert repr(rows[name]) == repr(expected), name  # NaN equal to NaN
    assert rows["m000"][1:3] == (None, None)  # no finite value


async def _status_of(db: asyncpg.Pool, run: str) -> str | None:
    row = await run_row(db, run)
    return None if row is None else row["status"]


async def _wait_session(db: asyncpg.Pool, session: str, seq: int) -> None:
    async def last() -> int | None:
        return await db.fetchval("SELECT last_seq FROM producer_sessions WHERE session_id = $1", session)

    await eventually(last, lambda s: s is not None and s >= seq, what=f"session seq {seq} stored")


async def test_lists_rows_tables_images_keep_order_and_non_finite_values(
    settings: Settings, db: asyncpg.Pool, producer: AIOKafkaProducer, ingest_worker: Any
) -> None:
    run, session = new_id(), new_id()
    nan = {"$float": "NaN"}
    await send(
        producer,
        settings.topic,
        run,
        [
            raw(
                run,
                session,
                1,
                started(),
                {"type": "list", "name": "alphas", "time": T0, "values": [0.1, 1, nan, "x", None]},
                {
                    "type": "row",
                    "name": "fit",
                    "time": T0 + 1,
                    "columns": {"alpha": 0.1, "mse": {"$float": "Infinity"}},
                },
                {"type": "row", "name": "fit", "time": T0 + 1, "columns": {"alpha": 1.0, "mse": 2.5}},
            ),
            raw(
                run,
                session,
                2,
                {
                    "type": "table",
                    "name": "confusion",
                    "time": T0 + 2,
                    "columns": {"a": [1, 2], "b": [3, {"$float": "-Infinity"}]},
                },
                {"type": "image", "name": "sample", "time": T0 + 3, "file": "images/sample-0.png"},
                {"type": "row", "name": "fit", "time": T0 + 4, "columns": {"alpha": 10.0, "mse": 3.5}},
            ),
        ],
    )
    await _wait_session(db, session, 2)
    # A later flush continues each series' positions from what is stored.
    last_row = {"type": "row", "name": "fit", "time": T0 + 5, "columns": {"alpha": 100.0, "mse": 4.5}}
    await send(producer, settings.topic, run, [raw(run, session, 3, last_row)])
    await _wait_session(db, session, 3)
    rows = await db.fetch(
        "SELECT s.name, s.kind, s.value_type, e.time, e.position, e.value FROM series_entries e"
        " JOIN series s ON s.id = e.series_id WHERE s.run_id = $1 ORDER BY s.name, e.position",
        run,
    )
    got = [(r["name"], r["kind"], r["value_type"], r["time"], r["position"], orjson.loads(r["value"])) for r in rows]
    assert got == [
        ("alphas", "list", None, T0, 0, [0.1, 1, nan, "x", None]),
        ("confusion", "table", None, T0 + 2, 0, {"a": [1, 2], "b": [3, {"$float": "-Infinity"}]}),
        ("fit", "row", None, T0 + 1, 0, {"alpha": 0.1, "mse": {"$float": "Infinity"}}),
        ("fit", "row", None, T0 + 1, 1, {"alpha": 1.0, "mse": 2.5}),
        ("fit", "row", None, T0 + 4, 2, {"alpha": 10.0, "mse": 3.5}),
        ("fit", "row", None, T0 + 5, 3, {"alpha": 100.0, "mse": 4.5}),
        ("sample", "image", None, T0 + 3, 0, "images/sample-0.png"),
    ]
    counts = dict(await db.fetch("SELECT name, point_count FROM series WHERE run_id = $1", run))
    assert counts == {"alphas": 1, "confusion": 1, "fit": 4, "sample": 1}


async def test_tags_merge_and_properties_are_add_only(
    settings: Settings, db: asyncpg.Pool, producer: AIOKafkaProducer, ingest_worker: Any
) -> None:
    run, session = new_id(), new_id()
    await send(
        producer,
        settings.topic,
        run,
        [
            raw(
                run,
                session,
                1,
                started(),
                {"type": "tags", "time": T0, "tags": {"team": "vision", "flag": None}},
                {"type": "properties", "time": T0, "properties": {"lr": "0.1", "seed": "7"}},
            ),
            raw(
                run,
                session,
                2,
                {"type": "tags", "time": T0 + 1, "tags": {"team": "nlp", "new": "x"}},
                {"type": "properties", "time": T0 + 1, "properties": {"lr": "0.5", "batch": "32"}},
            ),
        ],
    )
    await _wait_session(db, session, 2)
    row = await run_row(db, run)
    assert row is not None
    assert orjson.loads(row["tags"]) == {"team": "nlp", "flag": None, "new": "x"}
    assert orjson.loads(row["properties"]) == {"lr": "0.1", "seed": "7", "batch": "32"}


async def test_status_never_moves_backwards(
    settings: Settings, db: asyncpg.Pool, producer: AIOKafkaProducer, ingest_worker: Any
) -> None:
    done, flaky, session1, session2 = new_id(), new_id(), new_id(), new_id()
    error = {"type": "RuntimeError", "message": "boom", "value": {"$float": "NaN"}}
    await send(
        producer,
        settings.topic,
        done,
        [
            raw(done, session1, 1, started()),
            raw(done, session1, 2, status("Failed", T0 + 10, error)),
            raw(
                done,
                session1,
                3,
                status("Running", T0 + 5),
                status("Completed", T0 + 11),
                {"type": "heartbeat", "time": T0 + 12},
                scalars("late", "float", [1.0]),
            ),
        ],
    )
    await send(
        producer,
        settings.topic,
        flaky,
        [
            raw(flaky, session2, 1, started()),
            raw(flaky, session2, 2, status("NotResponding", T0 + 60)),
            raw(flaky, session2, 3, {"type": "heartbeat", "time": T0 + 70}),
            raw(flaky, session2, 4, status("Starting", T0 + 71), status("Finalizing", T0 + 80)),
        ],
    )
    await _wait_session(db, session1, 3)
    await _wait_session(db, session2, 4)
    row = await run_row(db, done)
    assert row is not None
    assert row["status"] == "Failed"
    assert row["ended_at"].timestamp() == T0 + 10
    assert orjson.loads(row["error"]) == error
    assert row["heartbeat_at"].timestamp() == T0 + 12
    assert [p[3] for p in await points(db, done, "late")] == [1.0]  # late data is still stored
    history = await db.fetch("SELECT status, time FROM status_history WHERE run_id = $1 ORDER BY time", done)
    assert [(h["status"], h["time"].timestamp()) for h in history] == [("Running", T0), ("Failed", T0 + 10)]
    row = await run_row(db, flaky)
    assert row is not None
    assert row["status"] == "Finalizing"
    assert row["ended_at"] is None
    history = await db.fetch("SELECT status, time FROM status_history WHERE run_id = $1 ORDER BY time", flaky)
    assert [(h["status"], h["time"].timestamp()) for h in history] == [
        ("Running", T0),
        ("NotResponding", T0 + 60),
        ("Running", T0 + 70),
        ("Finalizing", T0 + 80),
    ]


async def test_a_resent_batch_is_stored_once(
    settings: Settings, db: asyncpg.Pool, producer: AIOKafkaProducer, ingest_worker: Any
) -> None:
    run, session = new_id(), new_id()
    first = raw(run, session, 1, started(), scalars("x", "float", [1.0, 2.0]))
    second = raw(run, session, 2, scalars("x", "float", [3.0], first_step=2, first_ordinal=2))
    # A replay of both, out of order, then one more new batch.
    await send(producer, settings.topic, run, [first, second, second, first])
    await send(producer, settings.topic, run, [raw(run, session, 3, scalars("x", "float", [4.0], first_step=3))])
    await _wait_session(db, session, 3)
    assert [(p[0], p[3]) for p in await points(db, run, "x")] == [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]
    assert await db.fetchval("SELECT count(*) FROM status_history WHERE run_id = $1", run) == 1


async def test_int_series_widens_to_float(
    settings: Settings, db: asyncpg.Pool, producer: AIOKafkaProducer, ingest_worker: Any
) -> None:
    run, session = new_id(), new_id()
    await send(
        producer,
        settings.topic,
        run,
        [
            raw(run, session, 1, started(), scalars("n", "int", [1, 2])),
            raw(run, session, 2, scalars("n", "float", [2.5], first_step=2, time=T0 + 2, first_ordinal=2)),
            raw(run, session, 3, scalars("n", "int", [4], first_step=3, time=T0 + 3, first_ordinal=3)),
        ],
    )
    await _wait_session(db, session, 3)
    assert await db.fetchval("SELECT value_type FROM series WHERE run_id = $1 AND name = 'n'", run) == "float"
    assert [(p[0], p[3]) for p in await points(db, run, "n")] == [(0, 1.0), (1, 2.0), (2, 2.5), (3, 4.0)]
    summary = await db.fetchrow(
        "SELECT point_count, min_value, max_value, last_step, last_value FROM series WHERE run_id = $1", run
    )
    assert tuple(summary) == (4, 1.0, 4.0, 3, 4.0)


async def test_bad_records_go_to_the_dead_letter_topic_and_good_ones_are_stored(
    settings: Settings, db: asyncpg.Pool, ingest_worker: Any
) -> None:
    run, session, stranger = new_id(), new_id(), new_id()
    good = [
        raw(run, session, 1, started(), scalars("x", "float", [1.0])),
        raw(run, session, 2, scalars("x", "float", [2.0], first_step=1)),
        raw(run, session, 3, scalars("x", "float", [3.0], first_step=2)),
        raw(run, session, 4, scalars("x", "float", [4.0], first_step=3)),
    ]

    def doc(**overrides: Any) -> bytes:
        base = {"v": FORMAT_VERSION, "run": run, "session": new_id(), "seq": 1, "events": []}
        return orjson.dumps({**base, **overrides})

    bad: list[tuple[bytes | None, str]] = [
        (bytes(range(256)), "not_json"),
        (b'{"v": 1, "run": ', "not_json"),
        (b"[1, 2, 3]", "bad_shape"),
        (None, "empty"),
        (doc(v=FORMAT_VERSION + 1), "bad_version"),
        (doc(run="not-a-uuid"), "bad_run_id"),
        (doc(session=17), "bad_session_id"),
        (doc(seq=0), "bad_shape"),
        (doc(events=[{"type": "telemetry", "time": T0}]), "bad_event_type"),
        (doc(events=[{"type": [], "time": T0}]), "bad_event_type"),  # an unhashable type is still an unknown one
        (doc(events=[{**scalars("x", "bool", [True]), "values": ["one"]}]), "bad_value"),
        (doc(events=[{"type": "tags", "time": T0, "tags": ["a"]}]), "bad_shape"),
        (doc(events=[{"type": "heartbeat", "time": "noon"}]), "bad_shape"),
        (doc(events=[{"type": "status", "time": T0, "status": "Sleeping"}]), "bad_status"),
        (doc(events=[{"type": "run_started", "time": T0, "experiment": "e", "parent": "nope"}]), "bad_run_id"),
        # int64 cannot even pack it; a progression can name it.
        (doc(events=[{**scalars("x", "float", [1.0]), "steps": {"from": 2**63, "step": 1}}]), "bad_value"),
        (doc(events=[scalars("x", "str", ["a"])]), "type_conflict"),
        (doc(events=[{"type": "list", "name": "x", "time": T0, "values": []}]), "type_conflict"),
        # PostgreSQL would refuse it: the decoder does first (the writer's fallback, db_rejected, is
        # tested in test_ingest_robustness.py).
        (doc(events=[scalars("bad\x00name", "float", [1.0])]), "bad_value"),
        (doc(run=stranger, events=[scalars("x", "float", [1.0])]), "unknown_run"),
        (b"x" * (8 * 1024 * 1024 + 1), "too_large"),
    ]
    expected: dict[tuple[int, int], str] = {}
    async with AIOKafkaProducer(**client_options(settings), max_request_size=20 * 1024 * 1024) as p:
        await send(p, settings.topic, run, good[:1])
        for i, (value, reason) in enumerate(bad):
            key = stranger if reason == "unknown_run" else run
            [where] = await send(p, settings.topic, key, [value])  # type: ignore[list-item]
            expected[where] = reason
            if i in (0, 7, 14):  # good records between the bad ones
                await send(p, settings.topic, run, [good[1 + i // 7]])
    await _wait_session(db, session, 4)
    assert [(p[0], p[3]) for p in await points(db, run, "x")] == [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]
    assert await run_row(db, stranger) is None
    assert await db.fetchval("SELECT count(*) FROM series WHERE run_id = $1", run) == 1
    letters = await dead_letters(settings, set(expected))
    assert {where: letter["reason"] for where, letter in letters.items()} == expected
    originals = {where: value for where, (value, _) in zip(expected, bad, strict=True)}
    assert all(letters[where]["value"] == originals[where] for where in expected)
    assert all(letter["message"] for letter in letters.values())


async def test_drop_experiment_deletes_its_runs_and_nothing_else(
    settings: Settings, db: asyncpg.Pool, producer: AIOKafkaProducer, ingest_worker: Any
) -> None:
    doomed, kept, s1, s2 = new_id(), new_id(), new_id(), new_id()
    name = f"doomed-{doomed[:8]}"
    await send(
        producer,
        settings.topic,
        doomed,
        [
            raw(
                doomed,
                s1,
                1,
                started(name),
                scalars("x", "float", [1.0, 2.0]),
                {"type": "list", "name": "l", "time": T0, "values": [1]},
                status("Completed", T0 + 1),
            ),
        ],
    )
    await send(
        producer, settings.topic, kept, [raw(kept, s2, 1, started(f"kept-{kept[:8]}"), scalars("x", "int", [3]))]
    )
    await _wait_session(db, s1, 1)
    await _wait_session(db, s2, 1)
    dropped = await drop_experiment(settings.database_url, name)
    assert dropped == DroppedRuns(runs=1, series=2, points=2, entries=1)
    assert await run_row(db, doomed) is None
    assert await db.fetchval("SELECT count(*) FROM series WHERE run_id = $1", doomed) == 0
    assert await db.fetchval("SELECT count(*) FROM status_history WHERE run_id = $1", doomed) == 0
    assert await db.fetchval("SELECT count(*) FROM experiments WHERE name = $1", name) == 0
    assert [p[3] for p in await points(db, kept, "x")] == [3.0]
    with pytest.raises(UnknownExperimentError):
        await drop_experiment(settings.database_url, name)


async def test_each_commit_notifies_the_runs_it_changed(
    settings: Settings, db: asyncpg.Pool, producer: AIOKafkaProducer, ingest_worker: Any
) -> None:
    heard: list[str] = []

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        heard.extend(payload.split(","))

    async def ids() -> list[str]:
        return list(heard)

    run, session = new_id(), new_id()
    async with db.acquire() as listener:
        await listener.add_listener(CHANGED_RUNS_CHANNEL, on_notify)
        try:
            await send(producer, settings.topic, run, [raw(run, session, 1, started(), scalars("x", "float", [1.0]))])
            await eventually(ids, lambda got: run in got, what="a notification naming the run")
            heard.clear()
            await send(producer, settings.topic, run, [raw(run, session, 2, status("Completed", T0 + 1))])
            await eventually(ids, lambda got: run in got, what="a notification of the status change")
        finally:
            await listener.remove_listener(CHANGED_RUNS_CHANNEL, on_notify)
