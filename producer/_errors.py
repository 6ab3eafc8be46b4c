"""The errors the SDK raises on purpose.

Bad input is reported at the call site, before anything is buffered, and the
message names the metric (or tag, property, file) and the problem::

    ProducerError                          -- root of everything below
    ├── MetricTypeError (TypeError)        -- a value of a type the call cannot log
    ├── MetricValueError (ValueError)      -- a bad name, value, step or shape
    ├── WorkspaceConfigError (ValueError)  -- a config file or setting the SDK cannot use
    ├── UsageError (ValueError)            -- arguments that do not fit together (v1's UserErrorException)
    ├── SnapshotError (ValueError)         -- a source directory too large to snapshot (v1's SnapshotException)
    ├── SpoolCorruptError (ValueError)     -- a spool line that fails its checksum (in _spool)
    ├── RunClosedError (RuntimeError)      -- logging to a run that is completed, failed or canceled
    ├── OfflineRunError (RuntimeError)     -- a call that needs the query service, on an offline run
    ├── RunEnvironmentError (RuntimeError) -- get_context(allow_offline=False) outside a submitted run
    ├── UnsupportedError (NotImplementedError) -- an Azure ML v1 feature that needs Azure (remote compute...)
    ├── BufferFullError (TimeoutError)     -- log() waited ``buffer_timeout_seconds`` for room
    ├── FlushTimeoutError (TimeoutError)   -- flush()/complete() could not deliver in time
    ├── ReadConsistencyError (TimeoutError)-- a read could not see this process's writes in time
    ├── DeliveryError                      -- Kafka refused the run's records for good
    ├── RunFailedError                     -- wait_for_completion() saw the run fail
    └── QueryServiceError                  -- the query service answered an error or is unreachable
        └── RunNotFoundError (LookupError) -- it does not know the run (yet)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class ProducerError(Exception):
    """Root of every error the runstream SDK raises on purpose."""


class MetricTypeError(ProducerError, TypeError):
    """A value whose type the call cannot log; ``metric`` names the metric, ``problem`` the fault."""

    def __init__(self, metric: str, problem: str) -> None:
        super().__init__(f"metric {metric!r}: {problem}")
        self.metric = metric
        self.problem = problem


class MetricValueError(ProducerError, ValueError):
    """A bad name, value, step or shape; ``metric`` names the metric, ``problem`` the fault."""

    def __init__(self, metric: str, problem: str) -> None:
        super().__init__(f"metric {metric!r}: {problem}")
        self.metric = metric
        self.problem = problem


class WorkspaceConfigError(ProducerError, ValueError):
    """A workspace config file or setting that cannot be used."""


class RunClosedError(ProducerError, RuntimeError):
    """The run has reached a terminal status in this process; it takes no more data."""


class OfflineRunError(ProducerError, RuntimeError):
    """The call needs the query service, and this run is offline."""


class BufferFullError(ProducerError, TimeoutError):
    """log() waited for the sender to make room and the wait timed out.

    The value was not buffered; the caller may retry, flush or fail the run.
    """


class FlushTimeoutError(ProducerError, TimeoutError):
    """Some buffered data was not delivered to Kafka within the timeout."""


@dataclass(frozen=True, slots=True)
class SessionLag:
    """How far one producer session of this process is from being readable.

    ``required_seq``: the last record the read must see; ``stored_seq``: the
    last one ingest has stored (None: the query service was not asked).
    ``undelivered``: points and events still in this process's memory, not
    yet in Kafka; ``spooled``: records in this process's spool file, waiting
    for Kafka (``spool`` is that file).
    """

    run_id: str
    session_id: str
    required_seq: int
    stored_seq: int | None = None
    undelivered: int = 0
    spooled: int = 0
    spool: str | None = None

    def describe(self) -> str:
        parts = [f"run {self.run_id} session {self.session_id}:"]
        if self.stored_seq is None:
            parts.append(f"needs seq {self.required_seq}")
        else:
            behind = self.required_seq - self.stored_seq
            records = "record" if behind == 1 else "records"
            parts.append(f"ingest has stored seq {self.stored_seq} of {self.required_seq} ({behind} {records} behind)")
        if self.undelivered:
            parts.append(f"{self.undelivered} points or events of it were not delivered to Kafka")
        if self.spooled:
            where = f" in {self.spool}" if self.spool else ""
            parts.append(f"{self.spooled} records of it wait in this process's spool{where} (Kafka unreachable)")
        return " ".join(parts)


class ReadConsistencyError(ProducerError, TimeoutError):
    """A read could not see every write this process made before it within ``read_consistency_seconds``.

    The read returns nothing rather than an answer that lacks some of them.
    ``lag`` says how far behind each session is, and whether its data is
    still in this process (not delivered, or spooled while Kafka is away).
    """

    def __init__(self, what: str, waited_seconds: float, lag: Sequence[SessionLag]) -> None:
        shown = "; ".join(entry.describe() for entry in lag[:5])
        more = f"; and {len(lag) - 5} more sessions" if len(lag) > 5 else ""
        super().__init__(
            f"{what}: waited {waited_seconds:.1f}s (read_consistency_seconds) for this process's earlier writes "
            f"to be stored: {shown}{more}"
        )
        self.waited_seconds = waited_seconds
        self.lag = list(lag)


class DeliveryError(ProducerError):
    """Kafka refused the run's records with an error that retrying cannot fix."""


class RunFailedError(ProducerError):
    """wait_for_completion(raise_on_error=True) saw the run end ``Failed``."""

    def __init__(self, run_id: str, error: Any) -> None:
        super().__init__(f"run {run_id} failed: {error!r}")
        self.run_id = run_id
        self.error = error


class QueryServiceError(ProducerError):
    """The query service answered with an error status or could not be reached.

    ``status`` is the HTTP status, or None when no answer came; ``code`` the
    error code of the service's JSON answer, and ``body`` that answer.
    """

    def __init__(self, message: str, status: int | None = None, *, code: str | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = body


class RunNotFoundError(QueryServiceError, LookupError):
    """The query service does not know the run (it may not be ingested yet)."""


class UsageError(ProducerError, ValueError):
    """Arguments that cannot work together, or a value the call cannot take (Azure ML v1's UserErrorException)."""


class SnapshotError(ProducerError, ValueError):
    """A source directory that is over the snapshot limits once its ignore file is applied."""


class RunEnvironmentError(ProducerError, RuntimeError):
    """``Run.get_context(allow_offline=False)`` in a process that was not started for a run."""

    def __init__(self, message: str | None = None) -> None:
        # Azure ML v1's own words (RunEnvironmentException), so searches for it find this too.
        super().__init__(
            message
            or "Could not load a submitted run, if outside of an execution context, "
            "use experiment.start_logging to initialize an azureml.core.Run."
        )


class UnsupportedError(ProducerError, NotImplementedError):
    """An Azure ML v1 feature that needs Azure itself (remote compute, Docker builds, the model registry).

    The message says what runstream does instead, when it has an equivalent.
    """
