"""The query service's JSON API on the real PostgreSQL: run details, get_metrics shapes, listings."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import orjson

import query
from runstream.events import decode_json_value
from tests.support import eventually
from tests.test_query_seed import get, seed_entries, seed_run, seed_scalars

NAN = {"$float": "NaN"}
INF = {"$float": "Infinity"}
NINF = {"$float": "-Infinity"}


def test_public_names_are_pinned() -> None:
    assert sorted(query.__all__) == sorted(
        [
            "DEFAULT_MAX_UPLOAD_BYTES",
            "ArtifactStore",
            "BadRequest",
            "Blob",
            "Conflict",
            "Forbidden",
            "LocalArtifactStore",
            "NotFound",
            "PayloadTooLarge",
            "QueryError",
            "StoredBlob",
            "Unauthorized",
            "Unavailable",
            "create_app",
            "serve",
        ]
    )
    assert query.DEFAULT_MAX_UPLOAD_BYTES == 1 << 30
    assert issubclass(query.BadRequest, ValueError) and issubclass(query.BadRequest, query.QueryError)


async def test_health(query_service: str) -> None:
    assert await get(f"{query_service}/health") == (200, {"status": "ok"})


# --- run details ------------------------------------------------------------


async def test_run_details_exact(query_service: str, db: asyncpg.Pool) -> None:
    parent = await seed_run(db, experiment="details")
    created = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    run_id = await seed_run(
        db,
        experiment="details",
        display_name="sweep α=0.1",
        parent_id=parent,
        status="Failed",
        created_at=created,
        started_at=created + timedelta(seconds=1),
        ended_at=created + timedelta(minutes=5),
        heartbeat_at=created + timedelta(minutes=4, seconds=30),
        error={"message": "boom", "type": "ValueError"},
        tags={"team": "vision", "flag": None},
        properties={"git": "abc123"},
    )
    status, body = await get(f"{query_service}/api/runs/{run_id}")
    assert status == 200
    assert body == {
        "id": str(run_id),
        "experiment": "details",
        "display_name": "sweep α=0.1",
        "description": None,
        "parent_id": str(parent),
        "status": "Failed",
        "created_at": "2026-03-01T12:00:00.250000Z",
        "started_at": "2026-03-01T12:00:01.250000Z",
        "ended_at": "2026-03-01T12:05:00.250000Z",
        "heartbeat_at": "2026-03-01T12:04:30.250000Z",
        "error": {"message": "boom", "type": "ValueError"},
        "tags": {"team": "vision", "flag": None},
        "properties": {"git": "abc123"},
    }
    # Python reads the times back exactly.
    assert datetime.fromisoformat(body["created_at"]) == created


async def test_run_details_nulls(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, experiment="details", created_at=datetime(2026, 1, 1, tzinfo=UTC))
    status, body = await get(f"{query_service}/api/runs/{run_id}")
    assert status == 200
    assert body["created_at"] == "2026-01-01T00:00:00Z"
    assert [body[k] for k in ("display_name", "parent_id", "started_at", "ended_at", "heartbeat_at", "error")] == [
        None
    ] * 6
    assert body["tags"] == {} and body["properties"] == {}


async def test_run_not_found_and_bad_id(query_service: str) -> None:
    missing = uuid.uuid4()
    assert await get(f"{query_service}/api/runs/{missing}") == (
        404,
        {"error": {"code": "run_not_found", "message": f"no run {missing}", "parameter": "run_id"}},
    )
    for bad in ("not-a-uuid", "1234", "x" * 300, "%00"):
        status, body = await get(f"{query_service}/api/runs/{bad}")
        assert status == 400, bad
        assert body["error"]["code"] == "bad_run_id" and body["error"]["parameter"] == "run_id"
        status, body = await get(f"{query_service}/api/runs/{bad}/metrics")
        assert status == 400 and body["error"]["parameter"] == "run_id"
    status, body = await get(f"{query_service}/api/runs/{missing}/metrics")
    assert status == 404 and body["error"]["code"] == "run_not_found"


async def test_unknown_route_and_method_are_json(query_service: str) -> None:
    status, body = await get(f"{query_service}/api/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"


# --- get_metrics shapes -----------------------------------------------------


async def test_scalar_shapes(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    await seed_scalars(db, run_id, "once", "float", [0.5])
    # Stored out of order, two points in one clock tick told apart by ordinal.
    await seed_scalars(
        db,
        run_id,
        "loss",
        "float",
        [3.0, 2.0, 1.5, 1.25],
        times=[10.0, 11.0, 11.0, 12.0],
        ordinals=[0, 1, 2, 3],
        insert_order=[3, 2, 0, 1],
    )
    await seed_scalars(db, run_id, "epoch", "int", [1, 2, 3, 2**40])
    await seed_scalars(db, run_id, "one_int", "int", [7])
    await seed_scalars(db, run_id, "converged", "bool", [False, True])
    await seed_scalars(db, run_id, "phase", "str", ["warmup", "train", "eval"])
    await seed_scalars(db, run_id, "weird", "float", [math.nan, math.inf, -math.inf, -0.0, 1e-300])
    await seed_scalars(db, run_id, "one_nan", "float", [math.nan])
    status, body = await get(f"{query_service}/api/runs/{run_id}/metrics")
    assert status == 200
    assert body == {
        "once": 0.5,
        "loss": [3.0, 2.0, 1.5, 1.25],
        "epoch": [1, 2, 3, 2**40],
        "one_int": 7,
        "converged": [False, True],
        "phase": ["warmup", "train", "eval"],
        "weird": [NAN, INF, NINF, -0.0, 1e-300],
        "one_nan": NAN,
    }
    assert all(type(v) is int for v in body["epoch"]) and type(body["one_int"]) is int
    assert all(type(v) is bool for v in body["converged"])
    decoded = decode_json_value(body["weird"])
    assert math.isnan(decoded[0]) and decoded[1:3] == [math.inf, -math.inf]
    assert math.copysign(1.0, decoded[3]) == -1.0


async def test_list_row_table_image_shapes(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    await seed_entries(db, run_id, "alphas", "list", [[0.1, 0.2, NAN]])
    await seed_entries(db, run_id, "lists", "list", [[1, 2], ["a"], []])
    await seed_entries(db, run_id, "single_row", "row", [{"x": 1, "y": 0.4}])
    await seed_entries(
        db,
        run_id,
        "rows",
        "row",
        [{"alpha": 0.1, "mse": 2.5}, {"alpha": 0.2, "mse": INF}, {"alpha": 0.3, "mse": 1.0, "r2": 0.9}],
    )
    await seed_entries(db, run_id, "table", "table", [{"x": [1, 2, 3], "y": [0.6, 0.7, 0.89]}])
    await seed_entries(db, run_id, "tables", "table", [{"x": [1, 2]}, {"x": [3], "z": ["c"]}])
    await seed_entries(db, run_id, "plot", "image", ["plot.png"])
    await seed_entries(db, run_id, "plots", "image", [{"file": "a.png"}, {"file": "b.png"}])
    status, body = await get(f"{query_service}/api/runs/{run_id}/metrics")
    assert status == 200
    assert body == {
        "alphas": [0.1, 0.2, NAN],
        "lists": [[1, 2], ["a"], []],
        "single_row": {"x": 1, "y": 0.4},
        "rows": {"alpha": [0.1, 0.2, 0.3], "mse": [2.5, INF, 1.0], "r2": [None, None, 0.9]},
        "table": {"x": [1, 2, 3], "y": [0.6, 0.7, 0.89]},
        "tables": {"x": [1, 2, 3], "z": [None, None, "c"]},
        "plot": "plot.png",
        "plots": ["a.png", "b.png"],
    }


async def test_metrics_by_name(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    await seed_scalars(db, run_id, "acc", "float", [0.1, 0.9])
    await seed_scalars(db, run_id, "loss/train", "float", [1.0])
    base = f"{query_service}/api/runs/{run_id}/metrics"
    assert await get(f"{base}?name=acc") == (200, {"acc": [0.1, 0.9]})
    assert await get(f"{base}?name=loss%2Ftrain") == (200, {"loss/train": 1.0})
    assert await get(f"{base}?name=missing") == (200, {})
    for bad, code in (("", "bad_metric_name"), ("a%00b", "bad_metric_name"), ("x" * 256, "bad_metric_name")):
        status, body = await get(f"{base}?name={bad}")
        assert status == 400 and body["error"] == {
            "code": code,
            "message": body["error"]["message"],
            "parameter": "name",
        }
    status, body = await get(f"{base}?name=a&name=b")
    assert status == 400 and body["error"]["parameter"] == "name"


async def test_metrics_of_run_without_metrics_and_before_run_started(query_service: str, db: asyncpg.Pool) -> None:
    empty = await seed_run(db)
    assert await get(f"{query_service}/api/runs/{empty}/metrics") == (200, {})
    # Points from a second process may be stored before the run's start is.
    early = uuid.uuid4()
    await seed_scalars(db, early, "x", "float", [1.0, 2.0])
    assert await get(f"{query_service}/api/runs/{early}/metrics") == (200, {"x": [1.0, 2.0]})


async def test_large_series_in_order(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    values = [float(i) * 0.5 for i in range(100_000)]
    await seed_scalars(db, run_id, "big", "float", values)
    status, body = await get(f"{query_service}/api/runs/{run_id}/metrics?name=big")
    assert status == 200 and body["big"] == values


# --- listings ---------------------------------------------------------------


async def test_experiments_and_runs_listing(query_service: str, db: asyncpg.Pool) -> None:
    name = f"listing-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 5, 1, tzinfo=UTC)
    ids = [await seed_run(db, experiment=name, created_at=start + timedelta(minutes=i)) for i in range(7)]
    await seed_run(db, experiment=name + "-other")
    status, body = await get(f"{query_service}/api/experiments")
    assert status == 200
    mine = [e for e in body["experiments"] if e["name"] == name]
    assert mine == [
        {
            "name": name,
            "run_count": 7,
            "created_at": mine[0]["created_at"],
            "last_activity": "2026-05-01T00:06:00Z",
        }
    ]

    seen: list[str] = []
    url = f"{query_service}/api/runs?experiment={name}&limit=3"
    pages = 0
    while True:
        status, body = await get(url)
        assert status == 200
        assert len(body["runs"]) <= 3
        seen += [r["id"] for r in body["runs"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        url = f"{query_service}/api/runs?experiment={name}&limit=3&cursor={body['next_cursor']}"
    assert pages == 3
    assert seen == [str(i) for i in reversed(ids)]
    assert body["runs"][0]["experiment"] == name and set(body["runs"][0]) == {
        "id",
        "experiment",
        "display_name",
        "description",
        "parent_id",
        "status",
        "created_at",
        "started_at",
        "ended_at",
        "heartbeat_at",
        "error",
        "tags",
        "properties",
    }


async def test_runs_listing_filters_and_bad_input(query_service: str, db: asyncpg.Pool) -> None:
    name = f"filter-{uuid.uuid4().hex[:8]}"
    done = await seed_run(db, experiment=name, status="Completed")
    await seed_run(db, experiment=name, status="Running")
    status, body = await get(f"{query_service}/api/runs?experiment={name}&status=Completed")
    assert status == 200 and [r["id"] for r in body["runs"]] == [str(done)]
    assert await get(f"{query_service}/api/runs?experiment=nope-{name}") == (200, {"runs": [], "next_cursor": None})
    for query_string, parameter in (
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=100000", "limit"),
        ("limit=1&limit=2", "limit"),
        ("cursor=garbage", "cursor"),
        ("cursor=WyJ4IiwieSJd", "cursor"),  # base64 of ["x","y"]
    ):
        status, body = await get(f"{query_service}/api/runs?{query_string}")
        assert status == 400, query_string
        assert body["error"]["parameter"] == parameter


async def test_runs_listing_tags_children_and_latest_metrics(query_service: str, db: asyncpg.Pool) -> None:
    name = f"search-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 6, 1, tzinfo=UTC)
    parent = await seed_run(db, experiment=name, created_at=start, tags={"team": "vision", "sweep": None})
    child_a = await seed_run(
        db, experiment=name, parent_id=parent, created_at=start + timedelta(seconds=1), tags={"team": "nlp"}
    )
    child_b = await seed_run(db, experiment=name, parent_id=parent, created_at=start + timedelta(seconds=2))
    await seed_scalars(db, child_a, "loss", "float", [3.0, 2.0, math.inf], times=[1.0, 2.0, 3.0])
    await seed_scalars(db, child_a, "epoch", "int", [1, 2], times=[1.0, 2.0])
    await seed_scalars(db, child_a, "phase", "str", ["train", "eval"])
    await seed_entries(db, child_a, "table", "table", [{"x": [1]}])

    async def ids(query_string: str) -> list[str]:
        status, body = await get(f"{query_service}/api/runs?experiment={name}&{query_string}")
        assert status == 200, body
        return [r["id"] for r in body["runs"]]

    assert await ids("tag=team:vision") == [str(parent)]
    assert await ids("tag=team") == [str(child_a), str(parent)]
    assert await ids("tag=sweep") == [str(parent)]
    assert await ids("tag=team:nlp&tag=team") == [str(child_a)]
    assert await ids("tag=team:none") == []
    assert await ids(f"parent={parent}") == [str(child_b), str(child_a)]
    status, body = await get(f"{query_service}/api/runs?experiment={name}&include=metrics")
    assert [r["metrics"] for r in body["runs"]] == [
        {},
        {"epoch": 2, "loss": {"$float": "Infinity"}, "phase": "eval"},
        {},
    ]
    for query_string, parameter in (("tag=:x", "tag"), ("parent=nope", "parent"), ("include=everything", "include")):
        status, body = await get(f"{query_service}/api/runs?{query_string}")
        assert (status, body["error"]["parameter"]) == (400, parameter), query_string


async def test_metrics_recursive(query_service: str, db: asyncpg.Pool) -> None:
    start = datetime(2026, 7, 1, tzinfo=UTC)
    root = await seed_run(db, created_at=start)
    child_b = await seed_run(db, parent_id=root, created_at=start + timedelta(seconds=2))
    child_a = await seed_run(db, parent_id=root, created_at=start + timedelta(seconds=1))
    grandchild = await seed_run(db, parent_id=child_a, created_at=start + timedelta(seconds=3))
    await seed_scalars(db, root, "loss", "float", [1.0, 0.5])
    await seed_scalars(db, child_a, "loss", "float", [2.0])
    await seed_scalars(db, child_a, "acc", "float", [0.9])
    await seed_scalars(db, grandchild, "loss", "float", [math.nan])
    status, body = await get(f"{query_service}/api/runs/{root}/metrics?recursive=true")
    assert status == 200
    assert list(body.items()) == [
        (str(root), {"loss": [1.0, 0.5]}),
        (str(child_a), {"acc": 0.9, "loss": 2.0}),
        (str(child_b), {}),
        (str(grandchild), {"loss": NAN}),
    ]
    status, body = await get(f"{query_service}/api/runs/{child_a}/metrics?recursive=1&name=loss")
    assert body == {str(child_a): {"loss": 2.0}, str(grandchild): {"loss": NAN}}
    assert await get(f"{query_service}/api/runs/{root}/metrics?recursive=false") == (200, {"loss": [1.0, 0.5]})
    status, body = await get(f"{query_service}/api/runs/{root}/metrics?recursive=yes")
    assert (status, body["error"]["parameter"]) == (400, "recursive")


async def test_runs_search_by_metric_with_metric_sort_and_pages(query_service: str, db: asyncpg.Pool) -> None:
    name = f"metric-search-{uuid.uuid4().hex[:8]}"
    start = datetime(2026, 8, 1, tzinfo=UTC)
    accuracy = [0.5, 0.95, 0.7, 0.95, 0.99, None, 0.91, math.nan]  # None: the run never logged it
    runs = []
    for i, last in enumerate(accuracy):
        run_id = await seed_run(db, experiment=name, created_at=start + timedelta(minutes=i))
        if last is not None:
            await seed_scalars(db, run_id, "accuracy", "float", [0.1, last])
            await seed_scalars(db, run_id, "loss", "float", [10.0 - i, 1.0])
        runs.append(str(run_id))

    async def ids(query_string: str, limit: int = 100) -> list[str]:
        seen: list[str] = []
        url = f"{query_service}/api/runs?experiment={name}&limit={limit}&{query_string}"
        while True:
            status, body = await get(url)
            assert status == 200, body
            seen += [r["id"] for r in body["runs"]]
            if body["next_cursor"] is None:
                return seen
            url = (
                f"{query_service}/api/runs?experiment={name}&limit={limit}&{query_string}&cursor={body['next_cursor']}"
            )

    assert await ids("where=accuracy%3E0.9") == [runs[6], runs[4], runs[3], runs[1]]
    assert await ids("where=last(accuracy)%3E%3D0.95&where=max(loss)%3C9") == [runs[4], runs[3]]
    assert await ids("where=min(loss)=1") == [runs[i] for i in (7, 6, 4, 3, 2, 1, 0)]
    # By last accuracy, best first; ties newest first; runs without the metric or with NaN last.
    # The same order page by page, whatever the page size.
    best_first = [runs[i] for i in (4, 3, 1, 6, 2, 0, 7, 5)]
    for limit in (1, 2, 3, 100):
        assert await ids("sort=-last(accuracy)", limit) == best_first, limit
    assert await ids("sort=last(accuracy)", 3) == [runs[i] for i in (0, 2, 6, 1, 3, 4, 5, 7)]
    assert await ids("sort=created_at", 3) == runs
    assert await ids("sort=-max(loss)&where=loss%3C100", 2) == [runs[i] for i in (0, 1, 2, 3, 4, 6, 7)]
    after = (start + timedelta(minutes=2)).isoformat()
    before = (start + timedelta(minutes=4)).isoformat().replace("+00:00", "Z")
    assert await ids(f"started_after={after}&started_before={before}".replace("+", "%2B")) == [
        runs[4],
        runs[3],
        runs[2],
    ]

    for query_string, parameter in (
        ("where=accuracy", "where"),
        ("where=accuracy%3Ehigh", "where"),
        ("where=accuracy%3Enan", "where"),
        ("where=%3E1", "where"),
        ("sort=accuracy", "sort"),
        ("sort=median(accuracy)", "sort"),
        ("started_after=yesterday", "started_after"),
        ("sort=-last(accuracy)&cursor=WyJ4IiwieSJd", "cursor"),
    ):
        status, body = await get(f"{query_service}/api/runs?{query_string}")
        assert (status, body["error"]["parameter"]) == (400, parameter), query_string


async def test_dropped_database_connections_are_503_then_recover(query_service: str, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db)
    url = f"{query_service}/api/runs/{run_id}/files/locked.txt"
    async with aiohttp.ClientSession() as client:
        async with client.put(url, data=b"first") as resp:
            assert resp.status == 201
        async with db.acquire() as conn, conn.transaction():
            # Hold the file's row so the service's next write waits inside PostgreSQL ...
            await conn.execute("SELECT 1 FROM files WHERE run_id = $1 AND name = 'locked.txt' FOR UPDATE", run_id)
            pending = asyncio.ensure_future(client.put(url + "?overwrite=true", data=b"second"))

            async def waiting_backends() -> list[int]:
                rows = await db.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'runstream-query'"
                    " AND datname = current_database() AND wait_event_type = 'Lock'"
                )
                return [r["pid"] for r in rows]

            pids = await eventually(waiting_backends, bool, timeout_seconds=20, what="a query backend waiting")
            # ... then PostgreSQL ends that connection (as on a restart or failover).
            await db.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
            resp = await asyncio.wait_for(pending, 20)
            body = orjson.loads(await resp.read())
            resp.release()
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        assert body == {
            "error": {
                "code": "database_unavailable",
                "message": "the database is unavailable; retry shortly",
                "parameter": None,
            }
        }
        # The pool replaces the connection: the retry succeeds.
        async with client.put(url + "?overwrite=true", data=b"second") as resp:
            assert resp.status == 201
        async with client.get(url) as resp:
            assert await resp.read() == b"second"
