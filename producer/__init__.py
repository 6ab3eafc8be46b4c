"""The runstream SDK: log metrics from a training script, the Azure ML v1 way.

::

    from producer import Experiment, Workspace

    run = Experiment(Workspace.from_config(), "mnist").start_logging()
    for step, loss in enumerate(losses):
        run.log("loss", loss)          # appends to a buffer; a thread publishes to Kafka
        run.log_metrics({"acc": acc[step], "lr": lr})  # a dict: one step, one time
    run.complete()                     # uploads ./outputs, delivers, marks Completed

Inside a script started by ``Experiment.submit(ScriptRunConfig(...))`` (or any
process given ``run.get_environment()``), ``Run.get_context()`` is that run;
elsewhere it is an offline run (id ``OfflineRun_<uuid>``) written to the local
spool, which ``runstream sync`` publishes later.

The Azure ML v1 surface that scripts use is here under v1's names
(``Environment``, ``RunConfiguration``, ``CondaDependencies``, ``RunDetails``...);
what runs on Azure compute runs on this machine instead, and what needs Azure
itself raises :class:`UnsupportedError` (README, "Migrating from Azure ML SDK
v1"). ``runstream install-azureml-compat`` makes ``import azureml.core``
resolve to this package, for scripts that must stay unchanged.

Delivery: ``log()`` only appends to a bounded in-memory buffer; one background
thread per process, with one Kafka producer (idempotent, ``acks=all``) shared
by all its runs, publishes batches, each run in its own producer session. If
Kafka fails for ``LoggingOptions.spill_after_seconds`` the batches go to the
spool (``<RUNSTREAM_HOME>/spool``) and are replayed in order when it returns;
``sync_spool()`` publishes spools left by offline runs or dead processes.
``flush()``, ``complete()``, interpreter exit and SIGTERM deliver what is
buffered within ``close_timeout_seconds``.

A full buffer (``max_buffered_points`` not yet delivered: Kafka slower than
the training loop) never grows and never drops data: ``log()`` blocks while
the sender spills the buffer to the spool, which takes milliseconds, so
training goes on at disk speed and the spool is replayed when Kafka catches
up. A spool disk that refuses writes (full) is retried while the records wait
in memory. Only if no room comes within ``buffer_timeout_seconds`` (spool
disabled, or a disk that cannot keep up or is full) does ``log()`` raise
:class:`BufferFullError`, without buffering the value - a typed error, as the
caller must learn that the point was not recorded. ``run.get_details()["producer"]``
counts it all: ``blocked_calls``/``blocked_seconds``, ``pressure_spills``,
``spooled_records``/``replayed_records``, ``spool_errors``, ``retries``,
``buffer_full_errors``.

Limits, checked at the call site (``MetricTypeError``/``MetricValueError``
naming the metric): metric, column, tag, property, experiment and display
names are 1..255 characters without control characters (``MAX_NAME_CHARS``);
every string is valid UTF-8 (no lone surrogate) and at most
``MAX_STRING_CHARS`` characters; ``log`` strings, tag and property values and
descriptions hold no NUL (PostgreSQL text cannot; list, row and table cells
may); ``log`` integers are within ±2**53 (scalar series are stored as
float64), list, row and table integers and steps fit in 64 bits; a metric
keeps the kind it was first logged as (int and float mix); one list, row or
table entry encodes to at most ~8 MB. NaN and ±Inf are values.
"""

from producer._environment import CondaDependencies, Environment
from producer._errors import (
    BufferFullError,
    DeliveryError,
    FlushTimeoutError,
    MetricTypeError,
    MetricValueError,
    OfflineRunError,
    ProducerError,
    QueryServiceError,
    ReadConsistencyError,
    RunClosedError,
    RunEnvironmentError,
    RunFailedError,
    RunNotFoundError,
    SessionLag,
    SnapshotError,
    UnsupportedError,
    UsageError,
    WorkspaceConfigError,
)
from producer._experiment import Experiment
from producer._notebook import RunDetails
from producer._run import ENV_EXPERIMENT, ENV_RUN_ID, Run
from producer._runconfig import DockerConfiguration, RunConfiguration
from producer._spool import SpoolCorruptError
from producer._submit import ScriptRunConfig
from producer._sync import SyncResult, sync_spool
from producer._validate import MAX_NAME_CHARS, MAX_STRING_CHARS
from producer._workspace import LoggingOptions, Workspace

__all__ = [
    "ENV_EXPERIMENT",
    "ENV_RUN_ID",
    "MAX_NAME_CHARS",
    "MAX_STRING_CHARS",
    "BufferFullError",
    "CondaDependencies",
    "DeliveryError",
    "DockerConfiguration",
    "Environment",
    "Experiment",
    "FlushTimeoutError",
    "LoggingOptions",
    "MetricTypeError",
    "MetricValueError",
    "OfflineRunError",
    "ProducerError",
    "QueryServiceError",
    "ReadConsistencyError",
    "Run",
    "RunClosedError",
    "RunConfiguration",
    "RunDetails",
    "RunEnvironmentError",
    "RunFailedError",
    "RunNotFoundError",
    "ScriptRunConfig",
    "SessionLag",
    "SnapshotError",
    "SpoolCorruptError",
    "SyncResult",
    "UnsupportedError",
    "UsageError",
    "Workspace",
    "WorkspaceConfigError",
    "sync_spool",
]
