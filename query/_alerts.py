"""Alert rules: conditions on runs' metrics and status, evaluated as ingest stores data, and their actions.

A rule watches the runs of an experiment and/or one run (``alert_rules``,
migration 0017) for one of:

* ``nonfinite``: a metric's value is NaN or ±Inf;
* ``threshold``: a metric's value ``op`` a number (``> >= < <=``);
* ``plateau``: a metric has not improved by more than ``delta`` within
  ``steps`` steps of its best (``mode`` ``min``: lower is better, ``max``);
* ``not_responding``: a run's status is NotResponding.

It fires once per *episode*: when its condition starts to hold for a run
(and metric), not again until the condition has stopped holding (a finite
value, a value back across the threshold, an improvement, a heartbeat).

Actions, each optional: a ``webhook`` (a JSON POST signed with HMAC-SHA256
of the body under the rule's secret, header ``Runstream-Signature:
sha256=<hex>``, retried with backoff, the last failure recorded on the rule
as ``last_error``), a ``tag`` on the run, and ``cancel``: the run's status
becomes CancelRequested, which the training process sees through
``run.should_stop()``. Webhooks are sent in the background: a slow or failing
receiver holds up neither ingest nor the other rules.

Evaluation. One :class:`AlertEvaluator` per query service reads what each
rule watches with a :class:`._follow.Follower`, so a rule sees every stored
point once, in order; its cursor and per-run state are written back after
each round, so a restart of the service resumes where it stopped and fires
nothing twice. With several query replicas, the one holding a PostgreSQL
advisory lock evaluates.
"""

# ruff: noqa: S608 - constant SQL; every value is a $n parameter.

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import operator
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import asyncpg
import orjson

from runstream.events import decode_json_value
from runstream.tasks import cancel_and_wait

from ._db import Database
from ._errors import BadRequest
from ._follow import FollowCursor, Follower, FollowFilter, parse_metric_pattern
from ._live import LiveEvent, LiveHub
from ._validate import parse_run_id

__all__ = [
    "ALERT_KINDS",
    "SIGNATURE_HEADER",
    "AlertEvaluator",
    "AlertRule",
    "parse_rule",
    "rule_json",
    "starting_cursor",
]

ALERT_KINDS: Final = ("nonfinite", "threshold", "plateau", "not_responding")
SIGNATURE_HEADER: Final = "Runstream-Signature"
_OPS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
#: Webhook attempts and the wait before each retry (seconds).
WEBHOOK_BACKOFF_SECONDS: Final = (0.5, 1.0, 2.0, 4.0)
_WEBHOOK_TIMEOUT_SECONDS: Final = 10.0
_LOCK_KEY: Final = 0x616C7274  # "alrt": any fixed key shared by every query replica
_log = logging.getLogger("query.alerts")


@dataclass(frozen=True, slots=True)
class AlertRule:
    id: int
    experiment: str | None
    run_id: str | None
    metric: str | None
    kind: str
    op: str | None
    threshold: float | None
    delta: float | None
    steps: int | None
    mode: str | None
    actions: dict[str, Any]
    cursor: str | None
    state: dict[str, Any]

    @property
    def follow(self) -> FollowFilter:
        return _follow_filter(self.experiment, self.run_id, self.metric)


def _follow_filter(experiment: str | None, run_id: str | uuid.UUID | None, metric: str | None) -> FollowFilter:
    return FollowFilter(
        experiment=experiment,
        run_ids=(uuid.UUID(str(run_id)),) if run_id else (),
        metrics=(parse_metric_pattern(metric),) if metric else (),
    )


async def starting_cursor(pool: asyncpg.Pool, db: Database, rule: Mapping[str, Any]) -> str:
    """The cursor of a new rule (columns as :func:`parse_rule` returns them): what is stored now is not judged."""
    follower = Follower(pool, db, _follow_filter(rule["experiment"], rule["run_id"], rule["metric"]), None)
    await follower.start_at_end()
    await follower.poll()  # the runs as they are now: a run already NotResponding is not a new episode
    return follower.cursor.encode()


_RULE_COLUMNS: Final = "id, experiment, run_id, metric, kind, op, threshold, delta, steps, mode, actions, cursor, state"


def _rule(record: asyncpg.Record) -> AlertRule:
    values = dict(record)
    values["run_id"] = str(values["run_id"]) if values["run_id"] is not None else None
    return AlertRule(**values)


def rule_json(record: asyncpg.Record) -> dict[str, Any]:
    """A rule as the API shows it: no webhook secret, no evaluator state."""
    out = {k: record[k] for k in ("id", "experiment", "metric", "kind", "op", "threshold", "delta", "steps", "mode")}
    out["run_id"] = str(record["run_id"]) if record["run_id"] is not None else None
    actions = dict(record["actions"])
    if "webhook" in actions:
        actions["webhook"] = {"url": actions["webhook"]["url"]}
    out |= {"actions": actions, "fired": record["fired"], "last_error": record["last_error"]}
    out["last_fired_at"] = record["last_fired_at"].isoformat() if record["last_fired_at"] else None
    return out


def _number(body: Mapping[str, Any], key: str) -> float:
    value = body.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise BadRequest(f"{key} must be a finite number, got {value!r}"[:200], parameter=key)
    return float(value)


#: The longest text a rule's fields may hold (names, URLs, secrets, tag values).
MAX_RULE_TEXT_CHARS: Final = 2048
#: The most steps a plateau rule may wait (inside PostgreSQL's bigint, with room for step arithmetic).
MAX_PLATEAU_STEPS: Final = 2**62


def _check_texts(value: Any, path: str) -> None:
    """Refuse a NUL (PostgreSQL text and jsonb cannot hold one) or an overlong string anywhere in the body."""
    if isinstance(value, str):
        if "\x00" in value or len(value) > MAX_RULE_TEXT_CHARS:
            raise BadRequest(f"{path} holds a NUL or is over {MAX_RULE_TEXT_CHARS} characters", parameter=path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_texts(key, path)
            _check_texts(item, f"{path}.{key}" if path != "body" else str(key)[:40])
    elif isinstance(value, list):
        for item in value:
            _check_texts(item, path)


def parse_rule(body: Any) -> dict[str, Any]:
    """The columns of a new rule from a JSON body; BadRequest naming the field that is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", parameter="body")
    _check_texts(body, "body")
    kind = body.get("kind")
    if kind not in ALERT_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(ALERT_KINDS)}, got {kind!r}"[:200], parameter="kind")
    experiment, run = body.get("experiment"), body.get("run_id")
    if experiment is None and run is None:
        raise BadRequest("give experiment or run_id (or both)", parameter="experiment")
    if experiment is not None and (not isinstance(experiment, str) or not experiment):
        raise BadRequest("experiment must be a non-empty string", parameter="experiment")
    rule: dict[str, Any] = {"kind": kind, "experiment": experiment, "metric": None, "op": None, "threshold": None}
    rule |= {"delta": None, "steps": None, "mode": None, "run_id": None}
    if run is not None:
        rule["run_id"] = parse_run_id(str(run), "run_id")
    if kind != "not_responding":
        metric = body.get("metric")
        if not isinstance(metric, str):
            raise BadRequest("metric (a name or glob) is required for this kind", parameter="metric")
        parse_metric_pattern(metric)
        rule["metric"] = metric
    if kind == "threshold":
        if not isinstance(body.get("op"), str) or body["op"] not in _OPS:
            raise BadRequest(f"op must be one of {' '.join(_OPS)}", parameter="op")
        rule |= {"op": body["op"], "threshold": _number(body, "threshold")}
    if kind == "plateau":
        steps = body.get("steps")
        if type(steps) is not int or not 1 <= steps <= MAX_PLATEAU_STEPS:
            raise BadRequest(f"steps must be an integer from 1 to {MAX_PLATEAU_STEPS}", parameter="steps")
        mode = body.get("mode", "min")
        if mode not in ("min", "max"):
            raise BadRequest("mode must be 'min' (lower is better) or 'max'", parameter="mode")
        rule |= {"steps": steps, "mode": mode, "delta": _number({"delta": body.get("delta", 0.0)}, "delta")}
    rule["actions"] = _actions(body.get("actions"))
    return rule


def _actions(actions: Any) -> dict[str, Any]:
    if not isinstance(actions, dict) or not actions or set(actions) - {"webhook", "tag", "cancel"}:
        raise BadRequest("actions must be an object of webhook, tag and/or cancel", parameter="actions")
    out: dict[str, Any] = {}
    if (hook := actions.get("webhook")) is not None:
        url, secret = (hook.get("url"), hook.get("secret")) if isinstance(hook, dict) else (None, None)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadRequest("actions.webhook.url must be an http(s) URL", parameter="actions.webhook.url")
        if not isinstance(secret, str) or len(secret) < 16:
            raise BadRequest(
                "actions.webhook.secret must be at least 16 characters", parameter="actions.webhook.secret"
            )
        out["webhook"] = {"url": url, "secret": secret}
    if (tag := actions.get("tag")) is not None:
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str) or not tag["key"]:
            raise BadRequest("actions.tag must be {'key': str, 'value': str}", parameter="actions.tag")
        out["tag"] = {"key": tag["key"], "value": str(tag.get("value", ""))}
    if actions.get("cancel") is not None:
        if actions["cancel"] is not True:
            raise BadRequest("actions.cancel must be true when given", parameter="actions.cancel")
        out["cancel"] = True
    return out


@dataclass(frozen=True, slots=True)
class _Firing:
    rule: AlertRule
    run_id: str
    metric: str | None
    step: int | None
    value: Any
    detail: str


class AlertEvaluator:
    """Evaluates every rule as ingest stores data; ``start()``/``stop()`` with the app."""

    def __init__(self, pool: asyncpg.Pool, db: Database, hub: LiveHub) -> None:
        self._pool = pool
        self._db = db
        self._hub = hub
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="alerts")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for sending in list(self._sending):
            await cancel_and_wait(sending)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        """Hold the evaluator's lock (one replica evaluates), then evaluate on every change."""
        while True:
            try:
                async with self._pool.acquire() as conn:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
                        try:
                            await self._evaluate_forever()
                        finally:
                            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                                await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                _log.warning("alerts: evaluation failed (%s); retrying", exc)
            await asyncio.sleep(self._hub.fallback_seconds)

    async def _evaluate_forever(self) -> None:
        while True:
            changed = self._hub.changed()
            records = await self._pool.fetch(f"SELECT {_RULE_COLUMNS} FROM alert_rules ORDER BY id")
            for record in records:
                await self.evaluate(_rule(record))
            await asyncio.sleep(self._hub.interval_seconds)
            if not changed.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self._hub.fallback_seconds)

    async def evaluate(self, rule: AlertRule) -> None:
        """One round of one rule: read what is new, fire what starts to hold, store the progress."""
        cursor = FollowCursor.decode(rule.cursor) if rule.cursor else None
        follower = Follower(self._pool, self._db, rule.follow, cursor)
        if cursor is None:
            await follower.start_at_end()  # a rule added without a cursor (by hand) judges from now on
        state = dict(rule.state)
        firings: list[_Firing] = []
        for event, _ in await follower.poll():
            firings += _judge(rule, event, state)
        for firing in firings:
            await self._act(firing)
        await self._pool.execute(
            """
            UPDATE alert_rules SET cursor = $2, state = $3, fired = fired + $4,
                last_fired_at = CASE WHEN $4 > 0 THEN now() ELSE last_fired_at END
            WHERE id = $1
            """,
            rule.id,
            follower.cursor.encode(),
            state,
            len(firings),
        )

    async def _act(self, firing: _Firing) -> None:
        actions, run_id = firing.rule.actions, uuid.UUID(firing.run_id)
        if "tag" in actions:
            tag = {actions["tag"]["key"]: actions["tag"]["value"]}
            await self._pool.execute("UPDATE runs SET tags = tags || $2::jsonb WHERE id = $1", run_id, tag)
        if actions.get("cancel"):
            await self._pool.execute(
                """
                WITH changed AS (
                    UPDATE runs SET status = 'CancelRequested'
                    WHERE id = $1 AND status NOT IN ('CancelRequested', 'Completed', 'Failed', 'Canceled')
                    RETURNING id
                )
                INSERT INTO status_history (run_id, status, time) SELECT id, 'CancelRequested', now() FROM changed
                """,
                run_id,
            )
        if "webhook" in actions:
            task = asyncio.create_task(self._post(firing), name=f"alert-webhook-{firing.rule.id}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _post(self, firing: _Firing) -> None:
        hook = firing.rule.actions["webhook"]
        body = orjson.dumps(_payload(firing), option=orjson.OPT_SERIALIZE_NUMPY)
        signature = "sha256=" + hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_WEBHOOK_TIMEOUT_SECONDS))
        error = "no attempt"
        for wait in (0.0, *WEBHOOK_BACKOFF_SECONDS):
            await asyncio.sleep(wait)
            try:
                async with self._session.post(hook["url"], data=body, headers=headers) as resp:
                    if resp.status < 300:
                        return
                    error = f"{hook['url']} answered {resp.status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{hook['url']}: {type(exc).__name__}: {exc}"
        _log.warning("alert rule %d: webhook failed: %s", firing.rule.id, error)
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            await self._pool.execute("UPDATE alert_rules SET last_error = $2 WHERE id = $1", firing.rule.id, error)


def _payload(firing: _Firing) -> dict[str, Any]:
    value = firing.value
    if isinstance(value, float) and not math.isfinite(value):
        value = {"$float": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    return {
        "rule_id": firing.rule.id,
        "kind": firing.rule.kind,
        "run_id": firing.run_id,
        "metric": firing.metric,
        "step": firing.step,
        "value": value,
        "detail": firing.detail,
        "fired_at": time.time(),
    }


def _judge(rule: AlertRule, event: LiveEvent, state: dict[str, Any]) -> list[_Firing]:
    """The firings an event causes; updates ``state`` ({key: {"on": bool, ...}}) as it goes."""
    if rule.kind == "not_responding":
        if event.kind != "run":
            return []
        run_id, status = event.data["id"], event.data["status"]
        return _episode(rule, state, run_id, None, None, status, status == "NotResponding", "the run is NotResponding")
    if event.kind != "points":
        return []
    out = []
    for metric, series in event.data["metrics"].items():
        for step, value in zip(series["steps"], decode_json_value(series["values"]), strict=True):
            holds, detail = _holds(rule, state.setdefault(f"{event.data['run_id']}/{metric}", {}), step, value)
            out += _episode(rule, state, event.data["run_id"], metric, step, value, holds, detail)
    return out


def _episode(
    rule: AlertRule,
    state: dict[str, Any],
    run_id: str,
    metric: str | None,
    step: int | None,
    value: Any,
    holds: bool | None,
    detail: str,
) -> list[_Firing]:
    """A firing when the condition starts to hold (``None``: the point says nothing either way)."""
    entry = state.setdefault(f"{run_id}/{metric}" if metric else run_id, {})
    was = entry.get("on", False)
    if holds is None or holds == was:
        return []
    entry["on"] = holds
    return [_Firing(rule, run_id, metric, step, value, detail)] if holds else []


def _holds(rule: AlertRule, entry: dict[str, Any], step: int, value: Any) -> tuple[bool | None, str]:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None, ""  # text and bool metrics have no numeric condition
    value = float(value)
    if rule.kind == "nonfinite":
        return not math.isfinite(value), f"value {value!r} at step {step}"
    if rule.kind == "threshold":
        if math.isnan(value):
            return None, ""
        if rule.op is None or rule.threshold is None:
            return None, ""  # parse_rule sets both; a row edited by hand without them judges nothing
        return _OPS[rule.op](value, rule.threshold), f"{value!r} {rule.op} {rule.threshold!r} at step {step}"
    return _plateau(rule, entry, step, value)


def _plateau(rule: AlertRule, entry: dict[str, Any], step: int, value: float) -> tuple[bool | None, str]:
    if not math.isfinite(value):
        return None, ""
    sign = 1.0 if rule.mode == "min" else -1.0
    best = entry.get("best")
    if best is None or sign * (best - value) > (rule.delta or 0.0):
        entry["best"], entry["best_step"] = value, step
        return False, ""
    waited = step - int(entry["best_step"])
    return waited >= (rule.steps or 1), f"no improvement by {rule.delta!r} on {best!r} in {waited} steps"
