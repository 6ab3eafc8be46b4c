"""``/api/alerts``: alert rules (see :mod:`._alerts`); creating and deleting them are writes (the write token).

* ``POST /api/alerts`` with a JSON rule: ``{"kind", "experiment" and/or "run_id",
  "metric", "op", "threshold", "delta", "steps", "mode", "actions"}``; 201 with the rule;
* ``GET /api/alerts``: every rule with what it did (``fired``, ``last_fired_at``, ``last_error``);
  webhook secrets are never shown;
* ``DELETE /api/alerts/{rule_id}``.
"""

from __future__ import annotations

from typing import Final

import orjson
from aiohttp import web

from ._alerts import parse_rule, rule_json, starting_cursor
from ._errors import BadRequest, NotFound, PayloadTooLarge
from ._json import json_response
from ._state import DATABASE, LIVE

__all__ = ["MAX_RULE_BYTES", "routes"]

routes = web.RouteTableDef()
#: The largest rule body taken.
MAX_RULE_BYTES: Final = 16 * 1024
_COLUMNS: Final = (
    "id, experiment, run_id, metric, kind, op, threshold, delta, steps, mode, actions, fired, last_fired_at, last_error"
)


@routes.post("/api/alerts")
async def add_rule(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > MAX_RULE_BYTES:
        raise PayloadTooLarge(f"a rule is at most {MAX_RULE_BYTES} bytes", parameter="body")
    raw = await request.content.read(MAX_RULE_BYTES + 1)
    if len(raw) > MAX_RULE_BYTES:
        raise PayloadTooLarge(f"a rule is at most {MAX_RULE_BYTES} bytes", parameter="body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}", parameter="body") from None
    rule = parse_rule(body)
    pool = request.app[LIVE].pool
    # Judged from what is stored once the answer is sent: the evaluator's first round cannot be late.
    cursor = await starting_cursor(pool, request.app[DATABASE], rule)
    record = await pool.fetchrow(
        f"""
        INSERT INTO alert_rules (kind, experiment, run_id, metric, op, threshold, delta, steps, mode, actions, cursor)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {_COLUMNS}
        """,  # noqa: S608 - constant column list
        *(rule[k] for k in ("kind", "experiment", "run_id", "metric", "op", "threshold", "delta", "steps", "mode")),
        rule["actions"],
        cursor,
    )
    if record is None:  # pragma: no cover - INSERT ... RETURNING returns its row
        raise RuntimeError("the rule was not stored")
    return json_response(rule_json(record), status=201)


@routes.get("/api/alerts")
async def list_rules(request: web.Request) -> web.Response:
    records = await request.app[LIVE].pool.fetch(f"SELECT {_COLUMNS} FROM alert_rules ORDER BY id")  # noqa: S608
    return json_response({"rules": [rule_json(r) for r in records]})


@routes.delete("/api/alerts/{rule_id}")
async def delete_rule(request: web.Request) -> web.Response:
    raw = request.match_info["rule_id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise BadRequest(f"rule_id {raw[:40]!r} is not a rule number", parameter="rule_id")
    deleted = await request.app[LIVE].pool.fetchval("DELETE FROM alert_rules WHERE id = $1 RETURNING id", int(raw))
    if deleted is None:
        raise NotFound(f"no alert rule {raw}", code="rule_not_found", parameter="rule_id")
    return json_response({"deleted": int(raw)})
