"""Tuning knobs of one worker, validated in one place.

Connection settings (Kafka, PostgreSQL, topics, group, metrics port) come from
:class:`runstream.config.Settings`; these are the worker's own trade-offs
between latency, throughput and memory, with defaults that suit one worker on
a small machine. The ones an operator tunes are settings too
(``RUNSTREAM_INGEST_FLUSH_SECONDS``, ``RUNSTREAM_INGEST_FLUSH_POINTS``,
``RUNSTREAM_LIVENESS_SWEEP_SECONDS``): :meth:`IngestOptions.from_settings`
applies them, and their defaults are these.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from runstream.config import Settings

from ._errors import IngestConfigError

__all__ = ["IngestOptions"]


@dataclass(frozen=True, kw_only=True)
class IngestOptions:
    """How a worker batches, retries and stops.

    A flush (one PostgreSQL transaction) happens when the records in hand hold
    ``flush_max_points`` scalar points or ``flush_max_records`` records, or the
    oldest of them has waited ``flush_interval_seconds``.
    """

    flush_max_points: int = Settings.ingest_flush_points
    flush_max_records: int = 20_000
    flush_interval_seconds: float = Settings.ingest_flush_seconds
    fetch_max_records: int = 1_000
    fetch_timeout_seconds: float = 0.05
    retry_initial_seconds: float = 0.1
    retry_max_seconds: float = 5.0
    start_timeout_seconds: float = 60.0
    stop_timeout_seconds: float = 30.0
    revoke_timeout_seconds: float = 10.0
    # A killed worker's partitions wait this long before moving to another
    # worker; 6 s is the broker's default minimum.
    session_timeout_seconds: float = 6.0
    # How often the worker sweeps for silent runs (the timeouts are settings:
    # RUNSTREAM_NOT_RESPONDING_AFTER, RUNSTREAM_FAILED_AFTER); 0 disables.
    liveness_interval_seconds: float = Settings.liveness_sweep_seconds
    # How often it pre-creates tomorrow's point partition and applies
    # RUNSTREAM_RETENTION_DAYS; 0 disables.
    maintenance_interval_seconds: float = 600.0
    # How often it merges small chunks of slowly logged series (_compaction.py); 0 disables.
    # A series is merged once its oldest small chunk has waited compaction_age_seconds.
    compaction_interval_seconds: float = 5.0
    compaction_age_seconds: float = Settings.compaction_age_seconds
    # How often it asks Kafka whether the events topic is still the one its
    # offsets belong to, was created again or grew partitions (_incarnation.py),
    # and releases added partitions once the older ones are drained; 0 disables
    # (the checks at each assignment and out-of-range fetch remain).
    topic_check_interval_seconds: float = 5.0
    # How often it asks the broker for the partitions' end offsets to report
    # the lag (runstream_ingest_consumer_lag) while nothing is being stored; 0 disables.
    lag_interval_seconds: float = 2.0
    # Records waiting this long with nothing stored make the worker unhealthy (_health.py).
    stall_seconds: float = 30.0
    # How long a send to the dead-letter topic may take before the letters are
    # kept in PostgreSQL instead, and how often those are offered to it again (_dlq.py).
    dead_letter_timeout_seconds: float = 5.0
    dead_letter_retry_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> IngestOptions:
        """The defaults, with what ``settings`` (the environment) tunes, then ``overrides``."""
        tuned = cls(
            flush_max_points=settings.ingest_flush_points,
            flush_interval_seconds=settings.ingest_flush_seconds,
            liveness_interval_seconds=settings.liveness_sweep_seconds,
            compaction_age_seconds=settings.compaction_age_seconds,
        )
        return replace(tuned, **overrides)

    def __post_init__(self) -> None:
        for name in ("flush_max_points", "flush_max_records", "fetch_max_records"):
            if getattr(self, name) < 1:
                raise IngestConfigError(f"{name}={getattr(self, name)} must be at least 1")
        for name in (
            "flush_interval_seconds",
            "fetch_timeout_seconds",
            "retry_initial_seconds",
            "retry_max_seconds",
            "start_timeout_seconds",
            "stop_timeout_seconds",
            "revoke_timeout_seconds",
            "session_timeout_seconds",
            "liveness_interval_seconds",
            "maintenance_interval_seconds",
            "compaction_interval_seconds",
            "compaction_age_seconds",
            "topic_check_interval_seconds",
            "lag_interval_seconds",
            "stall_seconds",
            "dead_letter_timeout_seconds",
            "dead_letter_retry_seconds",
        ):
            if not getattr(self, name) >= 0:
                raise IngestConfigError(f"{name}={getattr(self, name)} must be a non-negative number of seconds")
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise IngestConfigError("retry_max_seconds must not be below retry_initial_seconds")
