"""The worker's Prometheus metrics and the tiny HTTP server that exposes them.

Each worker has its own registry, so several workers in one process (tests,
``--workers N``) never share or clash over counters.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

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

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """Serves ``GET /metrics`` on ``host:port``."""

    def __init__(self, metrics: IngestMetrics, *, host: str, port: int) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
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
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
