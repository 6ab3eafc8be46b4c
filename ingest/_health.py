"""Whether a worker is doing its job: what ``/ready``, ``runstream status`` and the health gauges say.

A worker is *unhealthy* when

* records wait: the oldest record it holds (or is writing) was produced more
  than ``stall_seconds`` ago, and it has stored nothing for that long (a flush
  stuck retrying, a bug). A fresh process counts as having stored nothing yet,
  so a worker that crash-loops before storing anything is unhealthy whenever
  it is up; a worker catching up on an old backlog is healthy as long as it
  stores;
* it cannot reach Kafka (its fetches or its look at the topic fail) and has
  not been able to for ``stall_seconds``;
* the dead-letter topic cannot take dead letters (they wait in PostgreSQL);
* a background job keeps failing;
* it has not joined the consumer group yet (just started, or Kafka's group
  coordinator is away): *not ready* rather than unhealthy - it stores nothing
  yet. A member with no partition (more workers than partitions) is ready:
  it is the standby that takes partitions over when a worker goes.

Partitions held after a partition change and recent changes of the topic are
reported as notices: they need no action, but an operator should know.
The rules are a pure function of :class:`Vitals` so they can be tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Report", "Vitals", "assess"]


@dataclass(frozen=True, slots=True)
class Vitals:
    """What the worker knows about itself at one instant (wall-clock seconds)."""

    now: float
    started_at: float
    progress_at: float | None  # the last flush committed by this process
    oldest_waiting_at: float | None  # when the oldest record in hand or in flight was produced
    records_waiting: int
    lag: int  # records behind the end of the partitions it reads, as of its last flush
    kafka_failing_since: float | None  # fetches, or the topic watch, failing since
    kafka_error: str | None
    flush_error: str | None  # the last failure of the flush being retried
    dead_letter_topic: str
    dead_letter_failing_since: float | None
    dead_letter_error: str | None
    dead_letters_held: int
    job_errors: dict[str, str] = field(default_factory=dict)
    assigned: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    epoch: int = 1
    notices: list[str] = field(default_factory=list)
    joined: bool = True  # a member of the consumer group (an assignment, even an empty one, was received)


@dataclass(frozen=True, slots=True)
class Report:
    ready: bool
    reasons: list[str]
    body: dict[str, Any]


def assess(v: Vitals, *, stall_seconds: float) -> Report:
    """The verdict on ``v``: ready or not, why not, and the figures behind it (the /ready body)."""
    reasons = []
    waited = None if v.oldest_waiting_at is None else max(0.0, v.now - v.oldest_waiting_at)
    quiet = v.now - (v.progress_at if v.progress_at is not None else v.started_at)
    if waited is not None and waited > stall_seconds and (v.progress_at is None or quiet > stall_seconds):
        stored = (
            "nothing stored since this process started"
            if v.progress_at is None
            else f"nothing stored for {quiet:.0f} s"
        )
        why = f": {v.flush_error}" if v.flush_error else ""
        reasons.append(f"stalled: {v.records_waiting} records waiting, the oldest for {waited:.0f} s, {stored}{why}")
    if v.kafka_failing_since is not None and v.now - v.kafka_failing_since > stall_seconds:
        reasons.append(f"cannot reach Kafka for {v.now - v.kafka_failing_since:.0f} s: {v.kafka_error}")
    if v.dead_letter_failing_since is not None:
        reasons.append(
            f"dead-letter topic {v.dead_letter_topic} unwritable for {v.now - v.dead_letter_failing_since:.0f} s"
            f" ({v.dead_letter_error}): {v.dead_letters_held} dead letters kept in PostgreSQL (dead_letters)"
            " until it takes them"
        )
    reasons += [f"background job {name} failing: {error}" for name, error in sorted(v.job_errors.items())]
    joining = _joining(v)
    reasons += joining
    notices = list(v.notices)
    if v.held:
        notices.append(f"partitions {v.held} held until the older partitions are stored up to the partition change")
    body = {
        "status": "ok" if not reasons else ("starting" if reasons == joining else "unhealthy"),
        "reasons": reasons,
        "notices": notices,
        "records_waiting": v.records_waiting,
        "oldest_waiting_seconds": waited,
        "seconds_since_progress": None if v.progress_at is None else round(v.now - v.progress_at, 3),
        "lag": v.lag,
        "assigned_partitions": v.assigned,
        "held_partitions": v.held,
        "topic_epoch": v.epoch,
        "joined_group": v.joined,
        "dead_letter_topic_writable": v.dead_letter_failing_since is None,
        "dead_letters_held": v.dead_letters_held,
    }
    return Report(not reasons, reasons, body)


def _joining(v: Vitals) -> list[str]:
    return [] if v.joined else [f"not a member of the consumer group yet ({v.now - v.started_at:.0f} s since start)"]
