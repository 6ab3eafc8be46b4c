"""The events topic's contract (docs/events.md): the schema holds for what the SDK really publishes, and a
Kafka-native consumer with the dedupe helper counts exactly what ingest stored, resent copies on the topic."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import jsonschema
import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import given
from hypothesis import strategies as st

import runstream.contract
from producer import Experiment, LoggingOptions, Workspace
from runstream.config import Settings
from runstream.contract import Deduplicator, EventError, decode_batch, event_schema
from runstream.events import STATUSES, BatchHeader
from runstream.kafka import client_options
from tests.fuzzing import examples, fuzz_settings
from tests.support import eventually
from tests.test_ingest_support import new_id, raw, scalars, started

ROOT = Path(__file__).resolve().parent.parent
EVENT_TYPES = {
    "run_started",
    "status",
    "heartbeat",
    "scalars",
    "list",
    "row",
    "table",
    "image",
    "tags",
    "properties",
    "run_updated",
}


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kafka_consumer_example", ROOT / "examples" / "kafka_consumer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


EXAMPLE = _example()
VALIDATOR = jsonschema.Draft202012Validator(event_schema(), format_checker=jsonschema.FormatChecker())


def test_the_contract_module_exports_exactly_its_names() -> None:
    assert sorted(runstream.contract.__all__) == sorted(
        [
            "EVENT_SCHEMA_FILE",
            "FORMAT_VERSION",
            "STATUSES",
            "TERMINAL_STATUSES",
            "Batch",
            "BatchHeader",
            "Deduplicator",
            "Event",
            "EventError",
            "decode_batch",
            "decode_json_value",
            "event_schema",
        ]
    )


def test_the_schema_is_valid_and_matches_the_format_constants() -> None:
    schema = event_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$defs"]["status"]["properties"]["status"]["enum"] == list(STATUSES)
    assert set(schema["$defs"]["event"]["properties"]["type"]["enum"]) == EVENT_TYPES
    asyncapi = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    ref = asyncapi["components"]["messages"]["batch"]["payload"]["schema"]["$ref"]
    assert (ROOT / "docs" / ref).resolve() == ROOT / "runstream" / "events.schema.json"


@pytest.mark.parametrize(
    "value",
    [
        {"v": 3, "run": new_id(), "session": new_id(), "seq": 1, "events": []},
        {"v": 2, "run": "not-a-uuid", "session": new_id(), "seq": 1, "events": []},
        {"v": 2, "run": new_id(), "session": new_id(), "seq": 0, "events": []},
        {"v": 2, "run": new_id(), "session": new_id(), "seq": 1, "events": [{"type": "nope", "time": 1.0}]},
        {"v": 2, "run": new_id(), "session": new_id(), "seq": 1, "events": [{"type": "status", "time": 1.0}]},
        {
            "v": 2,
            "run": new_id(),
            "session": new_id(),
            "seq": 1,
            "events": [{"type": "status", "time": 1.0, "status": "Sleeping", "error": None}],
        },
    ],
)
def test_what_the_decoder_refuses_the_schema_refuses(value: dict[str, Any]) -> None:
    with pytest.raises(EventError):
        decode_batch(orjson.dumps(value))
    assert not VALIDATOR.is_valid(value)


def test_the_deduplicator_drops_seen_seqs_in_any_order() -> None:
    a, b = new_id(), new_id()
    dedupe = Deduplicator()
    seqs = [(a, 1), (a, 3), (b, 1), (a, 2), (a, 3), (a, 1), (b, 1), (a, 4)]
    assert [dedupe.accept(BatchHeader("run", s, q)) for s, q in seqs] == [1, 1, 1, 1, 0, 0, 0, 1]
    assert dedupe.duplicates == 3 and len(dedupe) == 2
    assert dedupe.state() == {a: [4], b: [1]}
    dedupe.accept(BatchHeader("run", b, 3))
    restored = Deduplicator.from_state(orjson.loads(orjson.dumps(dedupe.state())))
    assert restored.seen(b, 3) and not restored.seen(b, 2) and restored.seen(a, 4) and not restored.seen(a, 5)
    with pytest.raises(ValueError, match="session"):
        Deduplicator.from_state({a: []})


@pytest.mark.fuzz
@fuzz_settings(examples(200))
@given(st.lists(st.tuples(st.sampled_from(["s1", "s2", "s3"]), st.integers(1, 40)), max_size=120))
def test_the_deduplicator_accepts_each_session_and_seq_exactly_once(batches: list[tuple[str, int]]) -> None:
    """Any order, any number of copies (a partition change, spool replays): the first copy only, as ingest."""
    dedupe = Deduplicator()
    accepted = [(s, q) for s, q in batches if dedupe.accept(BatchHeader("run", s, q))]
    assert accepted == list(dict.fromkeys(batches))
    assert dedupe.duplicates == len(batches) - len(accepted)
    restored = Deduplicator.from_state(dedupe.state())
    assert all(restored.seen(s, q) == ((s, q) in set(batches)) for s in ("s1", "s2", "s3") for q in range(1, 42))


async def _records(settings: Settings, run_ids: set[str]) -> list[bytes]:
    """Every record value on the topic keyed by one of ``run_ids`` (the example's reader), in offset order."""
    keys = {run_id.encode() for run_id in run_ids}
    return [record.value async for record in EXAMPLE.records(settings) if record.key in keys]


@pytest.fixture(scope="module")
async def published(
    settings: Settings, db: asyncpg.Pool, ingest_worker: Any, query_service: str, tmp_path_factory: Any
) -> str:
    """A run that used every event type through the SDK, completed and stored; returns its id."""
    options = LoggingOptions(heartbeat_interval_seconds=0.05)
    run = Experiment(Workspace.from_settings(settings, options=options), "contract").start_logging()
    image = tmp_path_factory.mktemp("img") / "plot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    for step, value in enumerate([0.5, math.nan, math.inf, -math.inf, 1e-300]):
        run.log("loss", value, step=step, description="training loss" if step == 0 else "")
    await asyncio.to_thread(run.flush)
    for step in range(3):
        run.log("epoch", step)
        run.log("done", step == 2)
        run.log("phase", f"p{step}")
    await asyncio.to_thread(run.flush)
    for i in range(50):  # steps 10, 12, 14...: an even progression
        run.log("lr", 1 / (i + 1), step=10 + 2 * i)
    run.log_list("hist", [1, 2.5, math.nan, None, "x"])
    run.log_row("eval", acc=0.9, worst=-math.inf, note="ok")
    run.log_table("cm", {"a": [1, 2], "b": [math.inf, 0.0]})
    run.log_image("sample", path=str(image))
    run.tag("team", "vision")
    run.tag("flag")
    run.add_properties({"lr0": 0.1})
    run.display_name = "contract run"
    run.description = "every event type"
    await eventually(lambda: _heartbeats(run), lambda n: n > 0, timeout_seconds=30, what="a heartbeat published")
    await asyncio.to_thread(run.complete)
    await eventually(
        lambda: db.fetchval("SELECT status FROM runs WHERE id = $1", run.id),
        lambda status: status == "Completed",
        timeout_seconds=90,
        what="the run stored as Completed",
    )
    return str(run.id)


async def _heartbeats(run: Any) -> int:
    details = await asyncio.to_thread(run.get_details)
    return int(details["producer"]["heartbeats"])


async def test_every_record_the_sdk_publishes_matches_the_schema(settings: Settings, published: str) -> None:
    values = await _records(settings, {published})
    seen_types: set[str] = set()
    for value in values:
        doc = orjson.loads(value)
        errors = sorted(VALIDATOR.iter_errors(doc), key=str)
        assert not errors, f"{errors[0].message} at {list(errors[0].absolute_path)}"
        decode_batch(value)  # and the decoder agrees
        seen_types |= {e["type"] for e in doc["events"]}
        assert {e.get("kind") for e in doc["events"] if e["type"] == "scalars"} <= {"float", "int", "bool", "str"}
    assert seen_types == EVENT_TYPES


async def _stored_points(db: asyncpg.Pool, run_id: str) -> dict[tuple[str, str], int]:
    rows = await db.fetch("SELECT name, point_count FROM series WHERE run_id = $1 AND kind = 'scalar'", run_id)
    return {(run_id, r["name"]): r["point_count"] for r in rows}


async def _ingest_caught_up(db: asyncpg.Pool, settings: Settings, end: dict[int, int]) -> bool:
    rows = await db.fetch("SELECT partition, next_offset FROM consumer_offsets WHERE topic = $1", settings.topic)
    stored = {r["partition"]: r["next_offset"] for r in rows}
    return all(stored.get(p, 0) >= offset for p, offset in end.items() if offset > 0)


async def test_a_kafka_native_consumer_counts_what_ingest_stored_despite_resent_batches(
    settings: Settings, db: asyncpg.Pool, published: str
) -> None:
    # A second run whose batches arrive out of order and twice, as spool replay and retries make them.
    other, session = new_id(), new_id()
    batches = [
        raw(other, session, 1, started("contract"), scalars("acc", "float", [0.1, 0.2])),
        raw(other, session, 2, scalars("acc", "float", [0.3], first_step=2, first_ordinal=2)),
        raw(other, session, 3, scalars("acc", "float", [0.4, math.nan], first_step=3, first_ordinal=3)),
    ]
    resends = await _records(settings, {published})
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        out_of_order_twice = [batches[0], batches[2], batches[1], batches[1], batches[0]]
        for run_id, values in ((other, out_of_order_twice), (published, resends)):
            for value in values:
                await producer.send_and_wait(settings.topic, value=value, key=run_id.encode())
        end = {tp.partition: offset for tp, offset in (await _end_offsets(settings)).items()}
    finally:
        await producer.stop()
    await eventually(
        lambda: _ingest_caught_up(db, settings, end), bool, timeout_seconds=60, what="ingest read the resends"
    )
    tallies = {run_id: await EXAMPLE.count_points(settings, run_id=run_id) for run_id in (published, other)}
    for run_id, tally in tallies.items():
        stored = await _stored_points(db, run_id)
        assert dict(tally.points) == stored and sum(stored.values()) > 0
        assert tally.duplicates > 0 and tally.invalid == 0
    assert tallies[other].points[(other, "acc")] == 5


async def _end_offsets(settings: Settings) -> dict[TopicPartition, int]:
    partitions = await EXAMPLE.topic_partitions(settings)
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()
