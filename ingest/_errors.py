"""Errors raised by the ingest worker.

::

    IngestError                        -- root of everything ingest raises
    ├── IngestConfigError (ValueError) -- an option has a value ingest cannot use
    ├── IngestStateError               -- lifecycle misuse: restarting a stopped worker
    ├── IngestStartError               -- Kafka or PostgreSQL unreachable at start
    └── UnknownExperimentError (LookupError) -- drop_experiment: no such experiment

Bad *records* never raise out of the worker: they become dead letters (see
``_decoder.DeadLetter``) with a reason code, and processing continues.
"""

from __future__ import annotations

__all__ = ["IngestConfigError", "IngestError", "IngestStartError", "IngestStateError", "UnknownExperimentError"]


class IngestError(Exception):
    """Root of the errors ingest raises."""


class IngestConfigError(IngestError, ValueError):
    """An option has a value ingest cannot use; the message names it."""


class IngestStateError(IngestError):
    """The worker was used in a way its lifecycle does not allow."""


class IngestStartError(IngestError):
    """The worker could not reach Kafka or PostgreSQL while starting."""


class UnknownExperimentError(IngestError, LookupError):
    """No experiment has the given name."""
