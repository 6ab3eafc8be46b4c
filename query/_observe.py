"""What an operator watches: ``/ready`` for the orchestrator, ``/metrics`` for Prometheus.

``GET /ready`` (public, like ``/health``: a probe carries no token) answers
200 when this replica can serve: PostgreSQL answers within
:data:`READY_TIMEOUT_SECONDS` and holds exactly the migrations this code
knows (:func:`runstream.schema.schema_problem`); otherwise 503 with the
reasons. ``/health`` stays the liveness probe: the process answers at all.
A replica whose database is away is *not ready* (taken out of the Service),
not dead (a restart would not bring the database back).

``GET /metrics`` (needs the read token when one is set, like every other
route) is Prometheus's text format, from a registry of this app's own:

===========================================  =========================================================
``runstream_query_request_seconds``          histogram by ``method``, ``route`` (the route's pattern,
                                             never the raw path) and ``status`` class (2xx, 4xx...)
``runstream_query_response_bytes``           histogram of body sizes by ``route``
``runstream_query_requests_in_flight``       gauge
``runstream_query_sse_clients``              gauge of open live streams by ``route``
``runstream_query_downsample_cache_*``       hits and misses of the downsampled-series cache, points it holds
``runstream_query_db_pool_*``                connections of the PostgreSQL pool: open, idle, maximum
===========================================  =========================================================

A live stream is counted in the latency histogram when it ends (its
duration), and in ``sse_clients`` while it is open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from runstream.schema import applied_versions, schema_problem

from ._json import json_response
from ._state import SERIES

__all__ = ["DB_POOL", "QUERY_METRICS", "READY_TIMEOUT_SECONDS", "QueryMetrics", "metrics_middleware", "routes"]

READY_TIMEOUT_SECONDS: Final = 2.0
#: Routes whose responses are live streams (Server-Sent Events).
_STREAM_ROUTES: Final = frozenset({"/api/runs/{run_id}/stream", "/api/stream", "/api/changes/stream"})
_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SIZE_BUCKETS: Final = tuple(float(4**k) for k in range(3, 16))  # 64 B .. 1 GiB

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
routes = web.RouteTableDef()


class QueryMetrics:
    """The query service's Prometheus metrics; one per app, so two apps in a process never clash."""

    def __init__(self, app: web.Application) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "runstream_query_request_seconds",
            "Time from a request's arrival to its response's end",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.sizes = Histogram(
            "runstream_query_response_bytes", "Bytes of response bodies", ["route"], buckets=_SIZE_BUCKETS, registry=r
        )
        self.in_flight = Gauge("runstream_query_requests_in_flight", "Requests being answered", registry=r)
        self.sse_clients = Gauge("runstream_query_sse_clients", "Open live streams", ["route"], registry=r)
        r.register(_AppCollector(app))

    def render(self) -> bytes:
        return generate_latest(self.registry)


QUERY_METRICS: Final = web.AppKey("query_metrics", QueryMetrics)
#: The app's PostgreSQL pool (opened in the app's cleanup context), for the probe and the pool gauges.
DB_POOL: Final = web.AppKey("db_pool", asyncpg.Pool)


class _AppCollector(Collector):
    """Figures read from the app's objects at scrape time: the series caches and the pool."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        series = self._app.get(SERIES)
        if series is not None:
            yield CounterMetricFamily(
                "runstream_query_downsample_cache_hits", "Downsampled answers served from the cache", series.cache_hits
            )
            yield CounterMetricFamily(
                "runstream_query_downsample_cache_misses",
                "Downsampled answers computed (not cached, or the series changed)",
                series.cache_misses,
            )
            yield GaugeMetricFamily(
                "runstream_query_downsample_cache_points", "Points held by the cache", series.cached_points
            )
            decoded = series.decoded
            yield CounterMetricFamily(
                "runstream_query_decoded_series_hits", "Reads of a whole series answered from memory", decoded.hits
            )
            yield CounterMetricFamily(
                "runstream_query_decoded_series_misses",
                "Reads of a whole series not held decoded (or changed since), which read PostgreSQL",
                decoded.misses,
            )
            yield GaugeMetricFamily(
                "runstream_query_decoded_series_points", "Points of whole series held decoded", decoded.points
            )
        pool = self._app.get(DB_POOL)
        if pool is not None:
            yield GaugeMetricFamily("runstream_query_db_pool_connections", "Open connections", pool.get_size())
            yield GaugeMetricFamily("runstream_query_db_pool_idle", "Idle connections", pool.get_idle_size())
            yield GaugeMetricFamily("runstream_query_db_pool_max", "Most connections", pool.get_max_size())


def _route(request: web.Request) -> str:
    # The pattern, never the path: one series per route, whatever ids or names clients send.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time every request and size every response (outermost, so errors are counted as answered)."""
    metrics = request.app[QUERY_METRICS]
    route = _route(request)
    started = time.perf_counter()
    status = 500
    response: web.StreamResponse | None = None
    stream = route in _STREAM_ROUTES
    metrics.in_flight.inc()
    if stream:
        metrics.sse_clients.labels(route).inc()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # the client went away (nginx's name for it)
        raise
    finally:
        metrics.in_flight.dec()
        if stream:
            metrics.sse_clients.labels(route).dec()
        metrics.latency.labels(request.method, route, f"{status // 100}xx").observe(time.perf_counter() - started)
        if response is not None:
            metrics.sizes.labels(route).observe(_body_bytes(response))


def _body_bytes(response: web.StreamResponse) -> int:
    if response.prepared:  # streamed by the handler: what it wrote
        return int(response.body_length)
    if isinstance(response, web.Response) and isinstance(response.body, bytes | bytearray):
        return len(response.body)
    return int(response.content_length or 0)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[QUERY_METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    """200 when PostgreSQL answers and holds this code's schema; 503 with the reasons otherwise."""
    reasons: list[str] = []
    applied: set[int] = set()
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with request.app[DB_POOL].acquire() as conn:
                applied = await applied_versions(conn)
    except (TimeoutError, OSError) as exc:
        reasons.append(f"PostgreSQL did not answer within {READY_TIMEOUT_SECONDS:g} s ({type(exc).__name__})")
    except Exception as exc:  # noqa: BLE001 - any database failure makes the replica unready, said in one line
        reasons.append(f"PostgreSQL refused: {type(exc).__name__}: {str(exc)[:200]}")
    else:
        if (problem := schema_problem(applied)) is not None:
            reasons.append(problem)
    body = {
        "status": "ok" if not reasons else "unready",
        "reasons": reasons,
        "schema_version": max(applied, default=None),
    }
    return json_response(body, status=200 if not reasons else 503)
