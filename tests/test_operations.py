"""What an operator relies on (issue 16): readiness, Prometheus metrics, schema checks at start,
structured logs, ingest's metrics on any address and its lag while nothing is stored."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from ingest import IngestOptions, IngestWorker
from ops.stack import free_port
from query import create_app
from runstream.config import Settings
from runstream.schema import SchemaMismatchError, known_versions
from tests.conftest import Services
from tests.support import eventually
from tests.test_ingest_recovery import private
from tests.test_ingest_support import new_id, produce_all, raw, scalars, started
from tests.test_ingest_worker import own_database, proxied_database
from tests.test_query_seed import seed_run, seed_scalars

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "op3rator-" + "t" * 32


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


def samples(text: str) -> dict[str, float]:
    """Prometheus text format: ``{name{labels}: value}``."""
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


async def test_query_ready_is_public_and_metrics_need_the_token(settings: Settings, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, experiment="ops-metrics")
    await seed_scalars(db, run_id, "loss", "float", [float(i % 7) for i in range(5_000)])
    async with serving(dataclasses.replace(settings, token=TOKEN)) as url:
        status, body = await get(f"{url}/ready")  # a probe sends no token, by the pod's address
        assert status == 200
        assert json.loads(body) == {"status": "ok", "reasons": [], "schema_version": max(known_versions())}
        assert (await get(f"{url}/metrics"))[0] == 401
        assert (await get(f"{url}/api/runs/{run_id}", TOKEN))[0] == 200
        assert (await get(f"{url}/api/runs/{new_id()}", TOKEN))[0] == 404
        status, text = await get(f"{url}/metrics", TOKEN)
        assert status == 200
        got = samples(text)
        route = 'route="/api/runs/{run_id}"'
        assert got[f'runstream_query_request_seconds_count{{method="GET",{route},status="2xx"}}'] == 1
        assert got[f'runstream_query_request_seconds_count{{method="GET",{route},status="4xx"}}'] == 1
        assert got[f"runstream_query_response_bytes_count{{{route}}}"] == 2
        assert got[f"runstream_query_response_bytes_sum{{{route}}}"] > 100  # a run's details and an error body
        assert got['runstream_query_request_seconds_count{method="GET",route="/metrics",status="4xx"}'] == 1
        assert got["runstream_query_db_pool_max"] == 10
        assert "runstream_query_downsample_cache_hits_total" in got
        assert got["runstream_query_decoded_series_points"] == 0

        # A series read whole at two widths: PostgreSQL once, then the decoded series held in memory.
        for width in (100, 200):
            series = f"{url}/api/runs/{run_id}/series?name=loss&max_points={width}"
            assert (await get(series, TOKEN))[0] == 200
        got = samples((await get(f"{url}/metrics", TOKEN))[1])
        assert got["runstream_query_decoded_series_misses_total"] == 1
        assert got["runstream_query_decoded_series_hits_total"] == 1
        assert got["runstream_query_decoded_series_points"] == 5_000


async def test_query_counts_open_live_streams(settings: Settings, db: asyncpg.Pool) -> None:
    run_id = await seed_run(db, experiment="ops-sse")
    async with serving(settings) as url, aiohttp.ClientSession() as session:
        for route, path in [
            ("/api/runs/{run_id}/stream", f"/api/runs/{run_id}/stream"),
            ("/api/changes/stream", f"/api/changes/stream?run={run_id}"),
        ]:
            gauge = f'runstream_query_sse_clients{{route="{route}"}}'
            async with session.get(f"{url}{path}") as stream:
                assert stream.status == 200
                await stream.content.readline()  # the first event has begun: the stream is open
                assert samples((await get(f"{url}/metrics"))[1])[gauge] == 1
            # A client that leaves is noticed within seconds, not at the next keepalive (15 s).
            await eventually(
                lambda g=gauge: get(f"{url}/metrics"),
                lambda r, g=gauge: samples(r[1])[g] == 0,
                timeout_seconds=5,
                what=f"{route} closed",
            )


async def test_query_refuses_to_start_on_a_schema_it_does_not_know(settings: Settings, services: Services) -> None:
    async with own_database(services.admin_dsn, schema_version=3) as older:
        with pytest.raises(SchemaMismatchError, match="runstream migrate"):
            async with serving(dataclasses.replace(settings, database_url=older)):
                pass
    async with own_database(services.admin_dsn) as dsn:
        await _record_migration(dsn, 9999)
        with pytest.raises(SchemaMismatchError, match="newer than this runstream understands"):
            async with serving(dataclasses.replace(settings, database_url=dsn)):
                pass


async def test_query_turns_unready_when_the_schema_moves_under_it(settings: Settings, services: Services) -> None:
    """A migration applied by a newer release while this replica runs: out of the Service until replaced."""
    async with own_database(services.admin_dsn) as dsn, serving(dataclasses.replace(settings, database_url=dsn)) as url:
        assert (await get(f"{url}/ready"))[0] == 200
        await _record_migration(dsn, 9999)
        status, body = await get(f"{url}/ready")
        assert status == 503
        assert json.loads(body)["schema_version"] == 9999
        assert "newer than this runstream understands" in json.loads(body)["reasons"][0]
        assert (await get(f"{url}/health"))[0] == 200  # alive: a restart would not help


async def _record_migration(dsn: str, version: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, 'future.sql')", version)
    finally:
        await conn.close()


def _run_module(module: str, settings: Settings, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**settings.as_env(), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **env}
    return subprocess.run(
        [sys.executable, "-m", module], env=full, capture_output=True, text=True, timeout=120, check=False
    )


async def test_services_without_auto_migrate_refuse_an_unmigrated_database_in_json_logs(
    settings: Settings, services: Services
) -> None:
    """Production: `runstream migrate` is the one applier. A worker or a query service that finds the
    schema behind its code exits with one line saying so (here as JSON), and applies nothing."""
    async with own_database(services.admin_dsn, schema_version=2) as dsn:
        mine = dataclasses.replace(private(settings, "nomigrate"), database_url=dsn, auto_migrate=False)
        json_logs = {"RUNSTREAM_LOG_FORMAT": "json"}
        ingest, query = await asyncio.gather(
            asyncio.to_thread(_run_module, "ingest", mine, **json_logs),
            asyncio.to_thread(_run_module, "query", mine, **json_logs),
        )
        assert ingest.returncode == 2, ingest.stderr
        lines = [json.loads(line) for line in ingest.stderr.splitlines()]  # every line is one JSON object
        [error] = [line for line in lines if line["level"] == "ERROR"]
        assert error["component"] == "ingest" and "run `runstream migrate`" in error["message"]
        assert "missing 0003" in error["message"]
        assert query.returncode != 0 and "Traceback" not in query.stderr
        assert "run `runstream migrate`" in query.stderr
        conn = await asyncpg.connect(dsn)
        try:
            assert {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")} == {1, 2}
        finally:
            await conn.close()


async def test_ingest_binds_its_metrics_anywhere_and_reports_lag_while_storing_nothing(
    settings: Settings, services: Services
) -> None:
    """Metrics on RUNSTREAM_INGEST_METRICS_HOST (here 127.0.0.2, not 127.0.0.1); with PostgreSQL cut
    off, the lag follows the broker's end offsets although nothing is committed."""
    async with proxied_database(services.admin_dsn) as (_, proxy, proxied):
        mine = dataclasses.replace(
            private(settings, "lag"), database_url=proxied, ingest_metrics_host="127.0.0.2", topic_partitions=1
        )
        options = IngestOptions(
            lag_interval_seconds=0.1, retry_initial_seconds=0.05, retry_max_seconds=0.2, stop_timeout_seconds=1.0
        )
        base = f"http://127.0.0.2:{mine.ingest_metrics_port}"
        run, session = new_id(), new_id()
        async with IngestWorker(mine, options=options):
            with pytest.raises(aiohttp.ClientConnectionError):
                await get(f"http://127.0.0.1:{mine.ingest_metrics_port}/metrics")
            assert (await get(f"{base}/health"))[0] == 200
            await eventually(lambda: get(f"{base}/ready"), lambda r: r[0] == 200, what="joined the group")
            first = raw(run, session, 1, started(time=time.time()), scalars("x", "float", [1.0]))
            await produce_all(mine, mine.topic, [(run, first)])
            lag = 'runstream_ingest_consumer_lag{partition="0"}'
            await eventually(lambda: get(f"{base}/metrics"), lambda r: samples(r[1]).get(lag) == 0, what="stored")
            await proxy.cut()  # PostgreSQL unreachable: nothing more is stored
            batches = [(run, raw(run, session, seq, scalars("x", "float", [float(seq)]))) for seq in range(2, 52)]
            await produce_all(mine, mine.topic, batches)
            await eventually(
                lambda: get(f"{base}/metrics"), lambda r: samples(r[1]).get(lag) == 50, what="lag of 50 records"
            )
