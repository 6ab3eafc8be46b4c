"""Alert rules end to end: each kind fires once per episode, and its actions are seen (a signed webhook at a local
receiver, retried; a tag; a cancel request that the training loop sees through run.should_stop())."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from ops.stack import free_port
from producer import Experiment, Workspace
from runstream.client import Client, RequestRefused
from runstream.config import Settings
from runstream.kafka import client_options
from tests.support import eventually, wait_http_ok
from tests.test_client import _cli
from tests.test_ingest_support import T0, new_id, raw, scalars, started
from tests.test_query_seed import announce

SECRET = "a-webhook-secret-of-some-length"


class Receiver:
    """A local HTTP server that answers 500 to its first request, then 200; keeps every body it got."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((await request.read(), request.headers.get("Runstream-Signature", "")))
        return web.Response(status=500 if len(self.requests) == 1 else 200)

    def accepted(self) -> list[dict[str, Any]]:
        """The bodies answered 200 (the first request was refused, so retried)."""
        return [orjson.loads(body) for body, _ in self.requests[1:]]


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hook", found.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    found.url = f"http://127.0.0.1:{port}/hook"
    yield found
    await runner.cleanup()


async def _add(query_service: str, rule: dict[str, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(Client(query_service).add_alert_rule, rule)


async def _rule(query_service: str, rule_id: int) -> dict[str, Any]:
    rules = await asyncio.to_thread(Client(query_service).alert_rules)
    return next(r for r in rules if r["id"] == rule_id)


async def test_a_nan_fires_once_per_episode_signed_webhook_tag_and_should_stop(
    settings: Settings, ingest_worker: Any, query_service: str, db: asyncpg.Pool, receiver: Receiver
) -> None:
    run = Experiment(Workspace.from_settings(settings), "alerts-nan").start_logging()
    run.log("loss", 1.0)
    await asyncio.to_thread(run.flush)
    await eventually(lambda: db.fetchval("SELECT count(*) FROM series WHERE run_id = $1", run.id), lambda n: n == 1)
    actions = {"webhook": {"url": receiver.url, "secret": SECRET}, "tag": {"key": "alert", "value": "nan"}}
    rule = await _add(query_service, {"kind": "nonfinite", "run_id": run.id, "metric": "loss", "actions": actions})
    assert "secret" not in orjson.dumps(rule).decode() and rule["fired"] == 0
    cancel = await _add(
        query_service, {"kind": "nonfinite", "run_id": run.id, "metric": "l*", "actions": {"cancel": True}}
    )
    assert not await asyncio.to_thread(run.should_stop, max_age_seconds=0)

    for value in (math.nan, math.nan, 2.0, math.inf):  # steps 1-4: two episodes, from step 1 and from step 4
        run.log("loss", value)
    await asyncio.to_thread(run.flush)
    await eventually(lambda: _rule(query_service, rule["id"]), lambda r: r["fired"] == 2, what="two firings")
    await eventually(lambda: asyncio.to_thread(lambda: receiver.accepted()), lambda got: len(got) == 2, what="hooks")
    # Sent concurrently: the refused first one is retried after the second may have arrived.
    assert sorted((p["step"], orjson.dumps(p["value"]), p["run_id"]) for p in receiver.accepted()) == [
        (1, b'{"$float":"NaN"}', run.id),
        (4, b'{"$float":"Infinity"}', run.id),
    ]
    for body, signature in receiver.requests:
        assert signature == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert await asyncio.to_thread(run.should_stop, max_age_seconds=0)
    assert await asyncio.to_thread(run.get_status) == "CancelRequested"
    assert (await asyncio.to_thread(run.get_tags))["alert"] == "nan"
    assert (await _rule(query_service, cancel["id"]))["fired"] == 2
    await asyncio.to_thread(run.complete)


async def test_threshold_plateau_and_not_responding_each_fire_once(
    settings: Settings, ingest_worker: Any, query_service: str, db: asyncpg.Pool
) -> None:
    experiment, run_id, session = f"alerts-{uuid.uuid4().hex[:8]}", new_id(), new_id()
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    seq = iter(range(1, 100))

    async def send(*events: dict[str, Any]) -> None:
        await producer.send_and_wait(settings.topic, raw(run_id, session, next(seq), *events), key=run_id.encode())

    try:
        await send(started(experiment), scalars("acc", "float", [0.5]), scalars("loss", "float", [1.0]))
        await eventually(lambda: db.fetchval("SELECT count(*) FROM series WHERE run_id = $1", run_id), lambda n: n == 2)
        dead = f"http://127.0.0.1:{free_port()}/nobody"
        rules = [
            {"kind": "threshold", "metric": "acc", "op": ">", "threshold": 0.9, "actions": {"tag": {"key": "high"}}},
            {"kind": "plateau", "metric": "loss", "steps": 3, "delta": 0.1, "actions": {"tag": {"key": "flat"}}},
            {
                "kind": "not_responding",
                "actions": {"tag": {"key": "silent"}, "webhook": {"url": dead, "secret": SECRET}},
            },
        ]
        ids = [(await _add(query_service, {"experiment": experiment, **r}))["id"] for r in rules]
        # acc crosses 0.9 at step 1, stays above at 2, falls back at 3; loss improves by < 0.1 from step 1 on.
        accs, losses = [0.95, 0.97, 0.2], [0.95, 0.93, 0.92, 0.91]
        await send(
            scalars("acc", "float", accs, first_step=1, time=T0 + 1, first_ordinal=1),
            scalars("loss", "float", losses, first_step=1, time=T0 + 1, first_ordinal=1),
        )
        await eventually(
            lambda: db.fetchval("SELECT point_count FROM series WHERE run_id = $1 AND name = 'loss'", run_id),
            lambda n: n == 5,
            what="the points stored (storing a batch revives a NotResponding run)",
        )
        await db.execute("UPDATE runs SET status = 'NotResponding' WHERE id = $1", run_id)
        await announce(db, uuid.UUID(run_id))
        for rule_id in ids:
            await eventually(
                lambda rule_id=rule_id: _rule(query_service, rule_id), lambda r: r["fired"] == 1, what=f"rule {rule_id}"
            )
        tags = orjson.loads(await db.fetchval("SELECT tags::text FROM runs WHERE id = $1", run_id))
        assert {"high", "flat", "silent"} <= set(tags)
        failed = await eventually(
            lambda: _rule(query_service, ids[2]), lambda r: r["last_error"] is not None, what="the webhook's failure"
        )
        assert dead in failed["last_error"]
        await send(scalars("loss", "float", [0.905], first_step=5, time=T0 + 5, first_ordinal=5))
        await eventually(
            lambda: db.fetchval("SELECT max(max_step) FROM series WHERE run_id = $1", run_id), lambda s: s == 5
        )
        assert [(await _rule(query_service, i))["fired"] for i in ids] == [1, 1, 1]
    finally:
        await producer.stop()


@pytest.mark.parametrize(
    ("rule", "parameter"),
    [
        ({"kind": "sometimes", "experiment": "x", "actions": {"cancel": True}}, "kind"),
        ({"kind": "nonfinite", "metric": "loss", "actions": {"cancel": True}}, "experiment"),
        ({"kind": "threshold", "experiment": "x", "metric": "loss", "actions": {"cancel": True}}, "op"),
        ({"kind": "nonfinite", "experiment": "x", "metric": "a[b", "actions": {"cancel": True}}, "metric"),
        ({"kind": "plateau", "experiment": "x", "metric": "m", "steps": 0, "actions": {"cancel": True}}, "steps"),
        ({"kind": "nonfinite", "experiment": "x", "metric": "m", "actions": {}}, "actions"),
        (
            {
                "kind": "nonfinite",
                "experiment": "x",
                "metric": "m",
                "actions": {"webhook": {"url": "http://h", "secret": "s"}},
            },
            "actions.webhook.secret",
        ),
    ],
)
async def test_bad_rules_are_400_naming_the_field(query_service: str, rule: dict[str, Any], parameter: str) -> None:
    with pytest.raises(RequestRefused) as refused:
        await _add(query_service, rule)
    assert refused.value.status == 400 and refused.value.parameter == parameter


async def test_the_alerts_commands(settings: Settings, query_service: str) -> None:
    experiment = f"alerts-cli-{uuid.uuid4().hex[:8]}"
    code, out, _ = await _cli(
        settings, "alerts", "add", "--experiment", experiment, "--metric", "loss", "--nan", "--cancel"
    )
    assert code == 0 and out.startswith("added rule ")
    rule_id = out.split()[2].rstrip(":")
    code, out, _ = await _cli(settings, "alerts", "ls")
    assert code == 0 and any(line.split()[0] == rule_id and experiment in line for line in out.splitlines())
    code, _, err = await _cli(settings, "alerts", "add", "--experiment", experiment, "--metric", "loss", "--nan")
    assert code == 2 and "at least one action" in err
    code, _, err = await _cli(
        settings, "alerts", "add", "--experiment", experiment, "--metric", "a[", "--nan", "--cancel"
    )
    assert code == 2 and "position 1" in err
    code, out, _ = await _cli(settings, "alerts", "rm", rule_id)
    assert code == 0 and out == f"deleted rule {rule_id}\n"
    code, _, err = await _cli(settings, "alerts", "rm", rule_id)
    assert code == 2 and "no alert rule" in err


async def test_rules_survive_a_killed_query_service_without_missing_or_repeating_a_firing(
    settings: Settings, spawn: Any, ingest_worker: Any, db: asyncpg.Pool
) -> None:
    port = free_port()
    own = dataclasses.replace(settings, query_port=port, query_url=f"http://127.0.0.1:{port}")
    service = spawn("query", own)
    await wait_http_ok(f"{own.query_url}/health", service)
    run_id, session = new_id(), new_id()
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    seq, step = iter(range(1, 100)), iter(range(100))

    async def send(*values: float) -> None:
        first = next(step)
        for _ in values[1:]:
            next(step)
        event = scalars("loss", "float", list(values), first_step=first, time=T0 + first, first_ordinal=first)
        await producer.send_and_wait(settings.topic, raw(run_id, session, next(seq), event), key=run_id.encode())

    async def fired(rule_id: int) -> int:
        return int(await db.fetchval("SELECT fired FROM alert_rules WHERE id = $1", rule_id))

    try:
        await producer.send_and_wait(settings.topic, raw(run_id, session, next(seq), started("alerts-restart")))
        await eventually(lambda: db.fetchval("SELECT count(*) FROM runs WHERE id = $1", run_id), lambda n: n == 1)
        rule = await _add(
            own.query_url, {"kind": "nonfinite", "run_id": run_id, "metric": "loss", "actions": {"cancel": True}}
        )
        await send(1.0, math.nan)
        await eventually(lambda: fired(rule["id"]), lambda n: n == 1, what="the first firing")
        service.kill()
        service.wait()
        await send(math.nan, 2.0, math.inf)  # the same episode goes on, ends, and a second one starts
        await eventually(
            lambda: db.fetchval("SELECT point_count FROM series WHERE run_id = $1", run_id), lambda n: n == 5
        )
        service = spawn("query", own)
        await eventually(lambda: fired(rule["id"]), lambda n: n == 2, what="the firing while it was down")
        await send(3.0, math.nan)
        await eventually(lambda: fired(rule["id"]), lambda n: n == 3, what="a firing after the restart")
    finally:
        await producer.stop()
