"""The worker's Prometheus metrics and the tiny HTTP server that exposes them and its readiness.

Each worker has its own registry, so several workers in one process (tests,
``--workers N``) never share or clash over counters. ``GET /ready`` answers
200 or 503 with the worker's health report (:mod:`ingest._health`) as JSON;
both endpoints refresh the health gauges first. ``GET /health`` answers 200
while the process serves at all: a liveness probe, which must not restart a
worker that waits for PostgreSQL (restarting would not help it).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ._health import Report

__all__ = ["IngestMetrics", "MetricsServer"]


class IngestMetrics:
    """Counters a worker keeps; names carry the ``runstream_ingest_`` prefix."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.points = Counter("runstream_ingest_points_written", "Scalar points committed to PostgreSQL", registry=r)
        self.batches = Counter("runstream_ingest_batches_written", "Event batches committed to PostgreSQL", registry=r)
        self.records = Counter("runstream_ingest_records_consumed", "Kafka records fetched", registry=r)
        self.flushes = Counter("runstream_ingest_flushes", "Committed write transactions", registry=r)
        self.duplicates = Counter(
            "runstream_ingest_duplicate_batches", "Batches dropped as already stored (same session and seq)", registry=r
        )
        self.already_stored = Counter(
            "runstream_ingest_records_already_stored",
            "Records skipped because their offset was already stored (rebalance or retry)",
            registry=r,
        )
        self.dead_letters = Counter(
            "runstream_ingest_dead_lettered_records", "Records sent to the dead-letter topic", ["reason"], registry=r
        )
        self.ignored_statuses = Counter(
            "runstream_ingest_ignored_status_changes", "Status events refused by the monotonic rules", registry=r
        )
        self.retries = Counter("runstream_ingest_retries", "Flushes retried after a failure", registry=r)
        self.write_seconds = Histogram(
            "runstream_ingest_write_seconds",
            "Duration of one committed flush",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.lag = Gauge(
            "runstream_ingest_consumer_lag", "Records behind the partition's high watermark", ["partition"], registry=r
        )

        self.assigned = Gauge(
            "runstream_ingest_assigned_partitions", "Partitions of the events topic this worker owns", registry=r
        )
        self.healthy = Gauge(
            "runstream_ingest_healthy", "1 while the worker makes progress and can dead-letter (see /ready)", registry=r
        )
        self.seconds_since_progress = Gauge(
            "runstream_ingest_seconds_since_progress",
            "Seconds since this worker last committed a flush (since its start before the first)",
            registry=r,
        )
        self.oldest_waiting_seconds = Gauge(
            "runstream_ingest_oldest_waiting_seconds",
            "Age of the oldest record the worker holds or writes (0 when it holds none)",
            registry=r,
        )
        self.dead_letter_topic_writable = Gauge(
            "runstream_ingest_dead_letter_topic_writable",
            "1 while the dead-letter topic takes dead letters; 0 while they are kept in PostgreSQL",
            registry=r,
        )
        self.dead_letters_held = Gauge(
            "runstream_ingest_dead_letters_held",
            "Dead letters kept in PostgreSQL for the dead-letter topic",
            registry=r,
        )
        self.held_partitions = Gauge(
            "runstream_ingest_held_partitions",
            "Added partitions this worker holds until the older ones are stored up to the change",
            registry=r,
        )
        self.topic_changes = Counter(
            "runstream_ingest_topic_changes",
            "Changes of the events topic ingest detected (new_topic, truncated, expired, partitions_added)",
            ["kind"],
            registry=r,
        )
        self.lost_batches = Counter(
            "runstream_ingest_lost_batches",
            "Batches of producer sessions given up as lost (seqs that went with records Kafka lost)",
            registry=r,
        )
        self.recovered_batches = Counter(
            "runstream_ingest_recovered_batches",
            "Batches counted as lost at a topic change that arrived in the new topic after all, and were stored",
            registry=r,
        )
        self.isolated = Counter(
            "runstream_ingest_isolated_records",
            "Records dead-lettered because writing them failed (found by bisecting a flush)",
            registry=r,
        )
        self.compacted_series = Counter(
            "runstream_ingest_compacted_series", "Series whose small chunks this worker merged", registry=r
        )
        self.compacted_points = Counter(
            "runstream_ingest_compacted_points", "Points in the small chunks this worker merged", registry=r
        )
        self.compaction_seconds = Counter(
            "runstream_ingest_compaction_seconds", "Time this worker spent in compaction batches", registry=r
        )

    def compacted(self, series: int, points: int, seconds: float) -> None:
        """Count one compaction batch (ingest._compaction)."""
        self.compacted_series.inc(series)
        self.compacted_points.inc(points)
        self.compaction_seconds.inc(seconds)

    def observe(self, report: Report) -> None:
        """Set the health gauges from a report."""
        body = report.body
        self.healthy.set(1 if report.ready else 0)
        self.seconds_since_progress.set(body["seconds_since_progress"] or 0)
        self.oldest_waiting_seconds.set(body["oldest_waiting_seconds"] or 0)
        self.dead_letter_topic_writable.set(1 if body["dead_letter_topic_writable"] else 0)
        self.dead_letters_held.set(body["dead_letters_held"])
        self.held_partitions.set(len(body["held_partitions"]))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """Serves ``GET /metrics`` and ``GET /ready`` on ``host:port``; ``health()`` makes the report."""

    def __init__(self, metrics: IngestMetrics, *, host: str, port: int, health: Callable[[], Report]) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self._health = health
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/health", self._alive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self._metrics.observe(self._health())
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _alive(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def _ready(self, request: web.Request) -> web.Response:
        report = self._health()
        self._metrics.observe(report)
        return web.Response(
            body=orjson.dumps(report.body), status=200 if report.ready else 503, content_type="application/json"
        )
