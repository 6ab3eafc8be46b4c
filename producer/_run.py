"""The run facade: validation at the call site, then the buffer; the sender does the rest.

``Run`` is the API object (Azure ML v1's surface) and the run's state as this
process knows it (status, tags, properties, the kinds of its series). It
stands on two collaborators, each with one job:

- :class:`producer._session.Session`: this process's producer session (session
  id, pid, buffer, sender, spool), renewed in a forked child;
- :class:`producer._readback.ReadBack`: the read-back calls, each seeing what
  this process wrote before it.

Only this module touches a ``Run``'s private fields; the helpers (``_children``,
``_details``, ``_snapshot``, ``_submit``...) get what they need as arguments
(a ``ReadBack``, a :class:`ScriptControl`).

The only module state here is the context run of ``get_context``; the
process-wide hooks (fork, exit, SIGTERM) live in :mod:`producer._process`.
Flushing at exit is a safety net: ``complete()`` and ``flush()`` are the
guarantee.
"""

from __future__ import annotations

import io
import math
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import orjson

from producer import (
    _children,
    _details,
    _files,
    _listing,
    _notebook,
    _payloads,
    _process,
    _secrets,
    _snapshot,
    _validate,
)
from producer._consistency import Reader
from producer._errors import (
    MetricTypeError,
    MetricValueError,
    OfflineRunError,
    QueryServiceError,
    RunClosedError,
    RunEnvironmentError,
    RunFailedError,
    UnsupportedError,
    UsageError,
)
from producer._readback import ReadBack
from producer._session import Session
from producer._spool import write_private
from producer._workspace import Workspace
from runstream.config import Settings
from runstream.events import (
    DESCRIPTION_PREFIX,
    MAX_RECORD_BYTES,
    TERMINAL_STATUSES,
    WireEvent,
    image_event,
    list_event,
    properties_event,
    row_event,
    run_started_event,
    run_updated_event,
    status_event,
    table_event,
    tags_event,
    widened_kind,
)

if TYPE_CHECKING:
    from producer._experiment import Experiment
    from producer._submit import ScriptProcess

#: Environment of a process started for a run: ``Run.get_context()`` returns that run.
ENV_RUN_ID = "RUNSTREAM_RUN_ID"
ENV_EXPERIMENT = "RUNSTREAM_EXPERIMENT"
#: The prefix of an offline run's id, as in Azure ML v1 (see :mod:`producer._offline`).
OFFLINE_PREFIX = "OfflineRun_"
_EVENT_BUDGET = MAX_RECORD_BYTES - 64 * 1024

_context_run: Run | None = None
#: How an error names each kind of series (scalar kinds, then the event types of entries).
_KIND_NAMES = {
    **{kind: f"{kind} scalars" for kind in ("float", "int", "bool", "str")},
    **{kind: f"{kind} entries" for kind in ("list", "row", "table")},
    "image": "images",
}


class Run:
    """One training run. ``Run(experiment, run_id)`` attaches to an existing run.

    Use ``Experiment.start_logging()`` to create one, or ``Run.get_context()``
    inside a process started for a run.
    """

    def __init__(
        self,
        experiment: Experiment,
        run_id: str,
        *,
        outputs: str | os.PathLike[str] | None = None,
        display_name: str | None = None,
        parent_id: str | None = None,
        offline: bool = False,
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        #: The run's id in the store, in events and spool paths; ``id`` is the same but for offline runs.
        self._stored_id = stored_run_id(run_id)
        self.id = self._stored_id
        self.experiment = experiment
        self._display_name = display_name
        self._description: str | None = None  # set by this object; else the query service's
        self.parent_id = parent_id
        self.offline = offline
        self._workspace: Workspace = experiment.workspace
        self._options = self._workspace.options
        self._outputs = None if outputs is None else Path(outputs)
        self._spool_dir = Path(spool_dir) if spool_dir is not None else self._workspace.home / "spool"
        self._http = self._workspace.query_client()
        self._status: str | None = None  # local view; None: attached, unknown until asked
        self._tags: dict[str, str | None] = {}
        self._properties: dict[str, str] = {}
        self._names: set[str] = set()
        #: name -> the kind this process logged it as (see _check_kind)
        self._kinds: dict[str, str] = {}
        self._described: set[str] = set()  # series whose description this process has sent
        self._image_counts: dict[str, int] = {}
        self._script: ScriptProcess | None = None  # set by Experiment.submit
        self._cancel_requested = False
        #: (monotonic time of the last ask, its answer): should_stop() asks the service at most so often.
        self._stop_asked: tuple[float, bool] = (-math.inf, False)
        self._parent_run: Run | None = None
        self._reads = ReadBack(
            self._http, run_id=self._stored_id, offline=offline, wait_seconds=self._options.read_consistency_seconds
        )
        self._session = Session(
            self._workspace,
            run_id=self._stored_id,
            experiment=experiment.name,
            parent_id=parent_id,
            offline=offline,
            spool_dir=self._spool_dir,
        )

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, experiment={self.experiment.name!r}, status={self._status!r})"

    # --- session -----------------------------------------------------------

    @property
    def session_id(self) -> str:
        """The id of this process's producer session of the run (see :mod:`producer._session`)."""
        return self._session.id

    # --- logging ------------------------------------------------------------

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log one value (bool, int, float or str; numpy scalars too) of the metric ``name``.

        Costs well under a microsecond for a float of an already-logged name:
        it only appends to the buffer. ``step`` defaults to the count of the
        name's points so far in this process. A ``description`` is sent once per
        series (see :meth:`_describe`).
        """
        session = self._session
        columns = session.fast.get(name)
        if columns is not None and type(value) is float and step is None and not description:
            session.append_float(columns, value)
            return
        self._log_any(name, value, step, description)

    def _log_any(self, name: str, value: Any, step: Any, description: Any) -> None:
        self._check_name(name)
        kind, stored = _validate.scalar(name, value)
        if step is not None:
            step = _validate.step(name, step)
        self._check_open(name)
        kept = self._check_kind(name, kind)
        self._describe(name, description)
        self._session.sending()
        self._session.buffer.append(name, kind, stored, step)
        self._kinds[name] = kept

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log one value of each metric of ``metrics`` (``{name: value}``), as MLflow's and W&B's calls do.

        Every value takes the same time and ``step``; without one, each metric
        takes its next step as in :meth:`log` (the count of its points so far in
        this process, so metrics logged together stay in step). Values are what
        :meth:`log` takes. The whole mapping is checked before any of it is
        buffered: a bad name or value raises the error ``log`` would, naming
        the metric, and logs nothing (only a signal raised mid-call, such as
        KeyboardInterrupt, can leave a prefix of it logged). A dict of floats
        whose names were logged as floats before, in the order of the previous
        call, costs a fraction of a ``log`` call per value: one lock, one clock
        reading and one list extension for the whole dict.
        """
        if type(metrics) is not dict:
            metrics = _validate.metrics(metrics)
        if not metrics:
            return
        if step is not None:  # checked once for all; the error names the first metric
            first = next(iter(metrics))
            self._check_name(first)
            step = _validate.step(first, step)
        if not self._session.append_floats(metrics, step):
            self._log_metrics_any(metrics, step)

    def _log_metrics_any(self, metrics: dict[str, Any], step: int | None) -> None:
        points, kinds = [], []
        for name, value in metrics.items():
            self._check_name(name)
            kind, stored = _validate.scalar(name, value, "log_metrics()")
            kinds.append((name, self._check_kind(name, kind)))
            points.append((name, kind, stored))
        self._check_open("log_metrics()")
        self._session.sending()
        self._session.buffer.append_many(points, step)
        self._kinds.update(kinds)

    def _describe(self, name: str, description: Any) -> None:
        """Send the series' first non-empty description as the property ``DESCRIPTION_PREFIX + name``.

        Later descriptions of the same series are not sent: ingest keeps a
        property's first value, and re-sending on every call would cost the
        hot path. ``get_properties()`` shows it.
        """
        if not description or name in self._described:
            return
        text = _validate.description(name, description)
        self._publish(properties_event(time.time(), {DESCRIPTION_PREFIX + name: text}))
        self._properties.setdefault(DESCRIPTION_PREFIX + name, text)
        self._described.add(name)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        """Log a list of values as one entry of the metric ``name``."""
        self._check_name(name)
        values = _validate.values(name, value)
        self._publish_entry(list_event(name, time.time(), values), len(values), description)

    def log_row(self, name: str, description: str | None = None, **columns: Any) -> None:
        """Log one row of the table ``name``: ``log_row("loss", epoch=1, value=0.3)``."""
        self._check_name(name)
        row = _validate.row(name, columns)
        self._publish_entry(row_event(name, time.time(), row), len(row), description)

    def log_table(self, name: str, value: Mapping[str, Any], description: str = "") -> None:
        """Log a table ``{column: [values]}``; columns must have equal lengths."""
        self._check_name(name)
        table = _validate.table(name, value)
        weight = sum(len(v) for v in table.values())
        self._publish_entry(table_event(name, time.time(), table), weight, description)

    def log_image(
        self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None, description: str = ""
    ) -> None:
        """Log an image from a file (``path``) or a matplotlib figure or pyplot (``plot``), exactly one.

        The image is uploaded as a file of the run, then an ``image`` event
        names that file.
        """
        self._check_name(name)
        if (path is None) == (plot is None):
            raise MetricValueError(name, "log_image() takes exactly one of path or plot")
        if path is not None:
            source = Path(path)
            if not source.is_file():
                raise MetricValueError(name, f"log_image() path {str(source)!r} is not a file")
            data, suffix = source.read_bytes(), source.suffix.lower() or ".png"
        else:
            data, suffix = _payloads.render_png(name, plot), ".png"
        self._check_open(name)
        self._check_kind(name, "image")
        self._describe(name, description)
        count = self._image_counts.get(name, 0)
        safe = name.replace("/", "_").replace("\\", "_")
        file_name = f"images/{safe}{suffix}" if count == 0 else f"images/{safe}_{count}{suffix}"
        self._store_bytes(file_name, data)
        self._image_counts[name] = count + 1
        self._publish(image_event(name, time.time(), file_name))
        self._kinds[name] = "image"

    # --- tags and properties ------------------------------------------------

    def tag(self, key: str, value: Any = None) -> None:
        """Tag the run with ``key`` and an optional value, stored as a str (``1`` as ``'1'``) as in Azure ML v1."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags at once; a finished run takes them too (see :meth:`_annotate`)."""
        if not isinstance(tags, Mapping):
            raise MetricTypeError(repr(tags)[:40], f"set_tags() takes a dict, got {type(tags).__name__}")
        checked = {_validate.name(k, "tag"): _validate.tag_value(k, v) for k, v in tags.items()}
        if not checked:
            return
        self._annotate(tags_event(time.time(), checked))
        self._tags.update(checked)

    def get_tags(self) -> dict[str, str | None]:
        """The run's tags: the query service's view, updated with this process's own."""
        return {**self._reads.field("tags"), **self._tags}

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        """Add immutable properties (values stored as str); changing an existing one raises ValueError.

        A finished run takes them too; on a run this object did not start, or
        that has ended, the stored properties are read first so that changing
        one that another process or object added is refused as well.
        """
        if not isinstance(properties, Mapping):
            raise MetricTypeError(
                repr(properties)[:40], f"add_properties() takes a dict, got {type(properties).__name__}"
            )
        checked = {_validate.name(k, "property"): _validate.property_value(k, v) for k, v in properties.items()}
        known = self._properties
        if not self.offline and (not self._session.owner or self._status in TERMINAL_STATUSES):
            known = {**self._reads.field("properties"), **known}  # others may have added some meanwhile
        for key, value in checked.items():
            if key in known and known[key] != value:
                raise MetricValueError(
                    key, f"property is already {known[key]!r}; properties cannot be changed, only added"
                )
        new = {k: v for k, v in checked.items() if k not in known}
        if not new:
            return
        self._annotate(properties_event(time.time(), new))
        self._properties.update(new)

    def _annotate(self, event: WireEvent) -> None:
        """Tags and properties: with the run's data while this process logs to it, else delivered at once.

        Azure ML v1 sets them with a synchronous call, on any run, finished or
        not. A run this process ended (or only attached to) has no open
        session, so they go in a short session of their own, delivered before
        this returns: ingest stores tags and properties whatever the status.
        """
        if self._status is not None and self._status not in TERMINAL_STATUSES:
            self._publish(event)
            return
        _process.announce(self._stored_id)  # a session of ours that started the run goes first
        courier = Run(self.experiment, self._stored_id, offline=self.offline, spool_dir=self._spool_dir)
        courier._publish(event)
        courier._close(None, None, None)

    def get_properties(self) -> dict[str, str]:
        """The run's properties: the query service's view, updated with this process's own."""
        return {**self._reads.field("properties"), **self._properties}

    # --- files --------------------------------------------------------------

    def upload_file(
        self, name: str, path_or_stream: str | os.PathLike[str] | IO[bytes], datastore_name: str | None = None
    ) -> Any:
        """Upload a file (a path or a binary stream) as the run's file ``name``.

        ``datastore_name`` is accepted for v1's scripts: a run's files have one store here.
        """
        name = _payloads.file_name(name)
        if isinstance(path_or_stream, str | os.PathLike):
            source = Path(path_or_stream)
            if not source.is_file():
                raise MetricValueError(name, f"upload_file() path {str(source)!r} is not a file")
            if self.offline:
                return self._spool_file(name, source.read_bytes())
            with source.open("rb") as stream:
                return self._http.put(
                    self._reads.file_path(name), stream, source.stat().st_size, "application/octet-stream"
                )
        if not hasattr(path_or_stream, "read"):
            raise MetricTypeError(
                name, f"upload_file() takes a path or a binary stream, got {type(path_or_stream).__name__}"
            )
        data = path_or_stream.read()
        if isinstance(data, str):
            raise MetricTypeError(name, "upload_file() needs a binary stream, got a text stream")
        return self._store_bytes(name, bytes(data))

    def upload_folder(self, name: str, path: str | os.PathLike[str], datastore_name: str | None = None) -> list[str]:
        """Upload every file under ``path`` as ``name/<relative path>``; returns the names."""
        prefix = _payloads.file_name(name.rstrip("/") if isinstance(name, str) else name)
        root = Path(path)
        if not root.is_dir():
            raise MetricValueError(prefix, f"upload_folder() path {str(root)!r} is not a directory")
        names = []
        for file in sorted(_payloads.walk(root)):
            names.append(f"{prefix}/{file.relative_to(root).as_posix()}")
            self.upload_file(names[-1], file)
        return names

    def get_file_names(self) -> list[str]:
        """Names of the run's files, as the query service lists them."""
        self._require_online("get_file_names")
        return self._reads.file_names()

    def download_file(self, name: str, output_file_path: str | os.PathLike[str] | None = None) -> Path:
        """Download the run's file ``name`` to ``output_file_path`` (a file, or a directory to put it in)."""
        self._require_online("download_file")
        name = _payloads.file_name(name)
        target = Path(output_file_path) if output_file_path is not None else Path(Path(name).name)
        if target.is_dir():
            target = target / Path(name).name
        self._reads.download(name, target)
        return target

    def upload_files(
        self,
        names: Sequence[str],
        paths: Sequence[str | os.PathLike[str]],
        return_artifacts: bool = False,
        timeout_seconds: float | None = None,
        datastore_name: str | None = None,
    ) -> list[Any]:
        """Upload ``paths[i]`` as the run's file ``names[i]``, several at a time (v1)."""
        return _files.upload_files(self, names, paths)

    def download_files(
        self,
        prefix: str | None = None,
        output_directory: str | os.PathLike[str] | None = None,
        output_paths: Sequence[str | os.PathLike[str]] | None = None,
        batch_size: int = 100,
        append_prefix: bool = True,
        timeout_seconds: float | None = None,
    ) -> list[Path]:
        """Download the run's files under ``prefix`` (all by default) into ``output_directory`` (v1's layout)."""
        self._require_online("download_files")
        return _files.download_files(self, prefix, output_directory, output_paths, append_prefix)

    def take_snapshot(self, file_or_folder_path: str | os.PathLike[str]) -> str:
        """Upload a directory (its ignore file applied) as the run's snapshot; returns the snapshot id."""
        return _snapshot.take(self, file_or_folder_path, self._workspace.home)

    def restore_snapshot(self, snapshot_id: str | None = None, path: str | os.PathLike[str] | None = None) -> str:
        """The run's snapshot as a zip ``<path>/<snapshot id>.zip`` (path: the temp directory); returns its path."""
        self._require_online("restore_snapshot")
        submitted = self._workspace.home / "runs" / self._stored_id / _snapshot.ARCHIVE
        return _snapshot.restore(self, snapshot_id or self.get_snapshot_id(), path, submitted)

    def get_snapshot_id(self) -> str:
        """The id of the run's snapshot (its ``ContentSnapshotId`` property; the run's id if it has none)."""
        return str(self.get_properties().get(_snapshot.ID_PROPERTY) or self._stored_id)

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        raise UnsupportedError(f"log_confusion_matrix({name!r}): log the matrix with log_table() (one column a class)")

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        raise UnsupportedError(f"log_accuracy_table({name!r}): log the table with log_table()")

    def log_predictions(self, name: str, value: Any, description: str = "") -> None:
        raise UnsupportedError(f"log_predictions({name!r}): log the values with log_table()")

    def log_residuals(self, name: str, value: Any, description: str = "") -> None:
        raise UnsupportedError(f"log_residuals({name!r}): log the histogram with log_table()")

    def remove_tags(self, tags: Any) -> None:
        raise UnsupportedError("remove_tags(): runstream's tags are set, never removed; tag the run with another value")

    @property
    def tags(self) -> dict[str, Any]:
        """v1's ``run.tags``: :meth:`get_tags`."""
        return self.get_tags()

    @property
    def properties(self) -> dict[str, str]:
        """v1's ``run.properties``: :meth:`get_properties`."""
        return self.get_properties()

    @property
    def status(self) -> str:
        """v1's ``run.status``: :meth:`get_status`."""
        return self.get_status()

    @property
    def name(self) -> str | None:
        """v1's ``run.name``: the display name."""
        return self.display_name

    @property
    def display_name(self) -> str | None:
        """v1's ``run.display_name``; setting it renames the run where it is shown (even once ended).

        A run this object neither started nor renamed (``Run(experiment, run_id)``)
        reads it from the query service once, as v1 reads its run record.
        """
        if self._display_name is None and self._status is None:
            name = self._reads.record().get("display_name")
            return name if isinstance(name, str) else None
        return self._display_name

    @display_name.setter
    def display_name(self, value: str) -> None:
        checked = _validate.name(value, "display")
        self._annotate(run_updated_event(time.time(), display_name=checked))
        self._display_name = checked

    @property
    def description(self) -> str | None:
        """v1's ``run.description``: what this object set, else the query service's (None: none)."""
        if self._description is not None or self.offline:
            return self._description
        return self._reads.text("description")

    @description.setter
    def description(self, value: str) -> None:
        checked = _validate.description("description", value)
        self._annotate(run_updated_event(time.time(), description=checked))
        self._description = checked

    def register_model(self, model_name: str, model_path: str | None = None, *args: Any, **kwargs: Any) -> Any:
        """Not in runstream: there is no model registry. The model is the run's file; download it."""
        raise UnsupportedError(
            f"register_model({model_name!r}): runstream has no model registry; the model stays the run's file "
            f"{model_path!r} (run.download_file(...) gets it)"
        )

    def _store_bytes(self, name: str, data: bytes) -> Any:
        if self.offline:
            return self._spool_file(name, data)
        return self._http.put(self._reads.file_path(name), io.BytesIO(data), len(data), "application/octet-stream")

    def _spool_file(self, name: str, data: bytes) -> None:
        # Offline runs keep their files beside their spool, for `runstream sync`.
        write_private(self._spool_dir / self._stored_id / "files" / name, data)

    def _upload_outputs(self) -> None:
        if self._outputs is not None and self._outputs.is_dir():
            self.upload_folder("outputs", self._outputs)

    # --- lifecycle ----------------------------------------------------------

    def _start(self) -> None:
        """Publish ``run_started`` and ``Running``: this process now owns the run (see :func:`start`)."""
        now = time.time()
        self._publish(run_started_event(now, self.experiment.name, self._display_name, self.parent_id))
        self._publish(status_event(now, "Running"))
        self._status = "Running"
        self._session.owner = True
        self._session.on_exit = self._end_with_process
        _process.install_handlers()

    def complete(self, *, timeout_seconds: float | None = None) -> None:
        """Upload ``outputs``, deliver everything, then mark the run ``Completed``.

        Blocks until Kafka has the data (at most ``timeout_seconds``, default
        ``close_timeout_seconds``). Completing a completed run does nothing.
        """
        if self._status == "Completed":
            return
        self._check_open("complete()")
        self._upload_outputs()
        self._finish("Completed", None, timeout_seconds)

    def fail(
        self, error_details: Any = None, error_code: str | None = None, *, timeout_seconds: float | None = None
    ) -> None:
        """Mark the run ``Failed`` with ``error_details`` (an exception, a str or a dict).

        ``error_code`` is v1's classification of the error (a str), stored as the error's ``code``.
        """
        if self._status == "Failed":
            return
        self._check_open("fail()")
        self._finish("Failed", _payloads.error_with_code(error_details, error_code), timeout_seconds)

    def cancel(self, *, timeout_seconds: float | None = None) -> None:
        """Mark the run ``Canceled``; a submitted script is asked to stop (SIGTERM) first."""
        if self._status == "Canceled":
            return
        self._check_open("cancel()")
        script = self._script
        if script is not None and not script.done and not self._cancel_requested:
            self._cancel_requested = True
            script.cancel()
            # Its watcher cancels the run once the script has exited.
            script.wait(self._options.close_timeout_seconds if timeout_seconds is None else timeout_seconds)
            return
        self._finish("Canceled", None, timeout_seconds)

    def _finish(self, status: str, error: Any, timeout_seconds: float | None) -> None:
        self._close(status_event(time.time(), status, error), status, timeout_seconds)

    def _close(self, final: WireEvent | None, status: str | None, timeout_seconds: float | None) -> None:
        """End this session: deliver what is buffered and ``final``, then stop the sender."""
        self._session.seal(final)
        if status is not None:
            self._status = status
        self._session.stop(timeout_seconds)

    def _end_with_process(self, error: BaseException | None, left: float) -> bool:
        """The process ends under a ``Running`` run it started: ``error`` fails it, SIGTERM cancels it."""
        if self._status != "Running":
            return False
        if error is None:
            self._finish("Canceled", {"message": "the process received SIGTERM"}, left)
        elif isinstance(error, KeyboardInterrupt) or (isinstance(error, SystemExit) and _process.terminated()):
            self.cancel()
        elif not isinstance(error, SystemExit):
            self.fail(error)
        return True

    def flush(self, timeout_seconds: float | None = None) -> None:
        """Block until everything logged so far is in Kafka (or the spool, offline)."""
        self._session.flush(timeout_seconds)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._status in TERMINAL_STATUSES:
            return
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None) and not _process.terminated()):
            self.complete()
        elif isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemExit) and _process.terminated()):
            self._finish("Canceled", _payloads.error_object(exc), None)  # the user or the system stopped it
        else:
            self.fail(exc)

    def _check_name(self, name: str) -> None:
        if name not in self._names:
            _validate.name(name)
            self._names.add(name)

    def _check_kind(self, name: str, kind: str) -> str:
        """The kind ``name`` keeps once ``kind`` is logged to it; raises if ingest would refuse the change.

        A series holds one kind (ingest dead-letters a record that changes it,
        and with it the rest of the batch); int and float mix, widening to
        float. Only this process's own calls are known here: another process
        logging the same name as another kind still conflicts at ingest.
        """
        have = self._kinds.get(name)
        if have is None:
            return kind
        kept = widened_kind(have, kind)
        if kept is not None:
            return kept
        raise MetricTypeError(
            name, f"already logged as {_KIND_NAMES[have]}, cannot take {_KIND_NAMES[kind]}: a metric keeps one kind"
        )

    def _check_open(self, what: str) -> None:
        if self._status in TERMINAL_STATUSES:
            raise RunClosedError(f"{what}: run {self.id} is {self._status}; it takes no more data")

    def _publish(self, event: WireEvent, weight: int = 1) -> None:
        self._check_open(repr(event.get("name", event["type"])))
        self._session.publish(event, weight)

    def _publish_entry(self, event: WireEvent, weight: int, description: Any) -> None:
        """A list, row or table entry, checked whole (size, kind) before any of it is buffered."""
        name = event["name"]
        size = len(orjson.dumps(event))
        if size > _EVENT_BUDGET:
            raise MetricValueError(name, f"encoded entry of {size} bytes exceeds the limit of {_EVENT_BUDGET} bytes")
        self._check_kind(name, event["type"])
        self._describe(name, description)
        self._publish(event, weight + 1)
        self._kinds[name] = event["type"]

    # --- reading back (query service) ---------------------------------------

    def _require_online(self, what: str) -> None:
        if self.offline:
            raise OfflineRunError(f"{what}: run {self.id} is offline; there is no query service to ask")

    def get_status(self) -> str:
        """The run's status as the query service reports it (offline: the local status)."""
        if self.offline:
            return self._status or "NotStarted"
        return self._reads.status()

    def should_stop(self, *, max_age_seconds: float = 5.0) -> bool:
        """True once the run was asked to stop from outside: status CancelRequested or Canceled.

        An alert rule's ``cancel`` action (or an operator) sets CancelRequested;
        a training loop checks this every step and ends early. The query service is
        asked at most every ``max_age_seconds`` (the answer is kept in between),
        without waiting for ingest, so a call costs nothing most steps and never
        blocks for long. An offline run, or a service that does not answer, is
        never asked to stop.
        """
        asked_at, answer = self._stop_asked
        if self.offline or answer or time.monotonic() - asked_at < max_age_seconds:
            return answer
        try:
            status = self._http.get_json(f"/api/runs/{self._stored_id}").get("status")
        except (QueryServiceError, OSError):
            status = None
        answer = status in ("CancelRequested", "Canceled")
        self._stop_asked = (time.monotonic(), answer)
        return answer

    def get_details(self) -> dict[str, Any]:
        """The query service's record of the run, plus this process's ``producer`` counters."""
        if self.offline:
            details: dict[str, Any] = {"id": self.id, "status": self.get_status(), "tags": dict(self._tags)}
            details["properties"] = dict(self._properties)
        else:
            details = self._reads.details()
        details = _details.v1_details(self._reads, self.id, details)
        details["producer"] = self.stats()
        return details

    def get_details_with_logs(self) -> dict[str, Any]:
        """:meth:`get_details` with ``logFiles`` mapping each log's name to its text (v1)."""
        self._require_online("get_details_with_logs")
        return _details.with_logs(self._reads, self.get_details())

    def stats(self) -> dict[str, Any]:
        """This process's counters: what the session sent, retried and had to wait for."""
        return self._session.stats()

    def get_metrics(
        self, name: str | None = None, recursive: bool = False, run_type: str | None = None, populate: bool = False
    ) -> dict[str, Any]:
        """The logged metrics in Azure ML's shapes, from the query service.

        With ``recursive``, ``{run_id: metrics}`` for this run and its descendants;
        ``run_type`` keeps the runs of that type (v1: ``azureml.scriptrun``...).
        ``populate`` is accepted for v1's scripts: every value is stored in
        runstream itself, so there is no external data to fetch.
        """
        self._require_online("get_metrics")
        if run_type is None:
            return self._reads.metrics(name, recursive)
        if not recursive:
            raise UsageError("get_metrics(run_type=...) filters descendants: pass recursive=True too")
        runs = self.get_children(recursive=True, type=run_type)
        kept = {run.id for run in runs} | ({self.id} if self.type == run_type else set())
        return {run_id: found for run_id, found in self._reads.metrics(name, True).items() if run_id in kept}

    def get_detailed_status(self) -> dict[str, Any]:
        """v1's ``{"status": ..., "details": ...}``; details explain a queued run, and runstream queues none."""
        return {"status": self.get_status(), "details": None}

    def get_all_logs(self, destination: str | os.PathLike[str] | None = None) -> list[str]:
        """Download the run's logs (its files under ``logs/``) into ``destination`` (default: a directory named
        as the run id); the paths written, as in v1."""
        self._require_online("get_all_logs")
        target = Path(destination) if destination is not None else Path(self.id)
        names = [n for n in self.get_file_names() if n.startswith("logs/")]
        return [str(self.download_file(n, target / n)) for n in names]

    def get_secret(self, name: str) -> str:
        """v1 reads the workspace's Key Vault; runstream reads the environment variable ``name``."""
        return _secrets.get_secret(name)

    def get_secrets(self, secrets: Sequence[str]) -> dict[str, str | None]:
        """Each of ``secrets`` from the environment; None for one that is not set (v1 reports it as not found)."""
        return _secrets.get_secrets(secrets)

    def wait_for_completion(
        self,
        show_output: bool = False,
        wait_post_processing: bool = False,
        raise_on_error: bool = True,
        *,
        timeout_seconds: float | None = None,
        poll_interval_seconds: float = 0.5,
    ) -> dict[str, Any]:
        """Poll the query service until the run's status is terminal; returns :meth:`get_details`.

        With ``raise_on_error``, a ``Failed`` run raises :class:`RunFailedError`.
        ``timeout_seconds`` (default: no limit) raises TimeoutError.
        ``wait_post_processing`` is v1's: a terminal status here is final, with
        the outputs and logs uploaded before it, so there is nothing more to wait for.
        """
        self._require_online("wait_for_completion")
        if show_output:
            print(f"RunId: {self.id}\nWeb View: {self.get_portal_url()}", flush=True)
        details = self._reads.wait_for_terminal(
            show_output=show_output, timeout_seconds=timeout_seconds, poll_interval_seconds=poll_interval_seconds
        )
        if show_output:
            print(f"Execution Summary\n=================\nRunId: {self.id}\nStatus: {details['status']}", flush=True)
        if details["status"] == "Failed" and raise_on_error:
            raise RunFailedError(self.id, details.get("error"))
        return {**_details.v1_details(self._reads, self.id, details), "producer": self.stats()}

    def get_portal_url(self) -> str:
        """The run's page in the query service (an offline run's, once ``runstream sync`` has published it)."""
        return f"{self._workspace.query_url}/runs/{self._stored_id}"

    # --- child runs ---------------------------------------------------------

    def child_run(
        self, name: str | None = None, run_id: str | None = None, outputs: str | os.PathLike[str] | None = None
    ) -> Run:
        """A new run whose parent is this one, already ``Running``."""
        if name is not None:
            _validate.name(name, "display")
        child = (_OfflineRun if self.offline else Run)(
            self.experiment,
            run_id or str(uuid.uuid4()),
            outputs=outputs,
            display_name=name,
            parent_id=self._stored_id,
            offline=self.offline,
            spool_dir=self._spool_dir,
        )
        return start(child)

    def create_children(
        self, count: int | None = None, tag_key: str | None = None, tag_values: Sequence[Any] | None = None
    ) -> list[Run]:
        """Azure ML v1's batch of child runs, at most 100, each ``Running`` as from :meth:`child_run`.

        ``count`` of them (tagged ``azureml.batch_child_number`` 0, 1, ...), or
        one per entry of ``tag_values``, tagged ``tag_key``.
        """
        return _children.create(self, count, tag_key, tag_values)

    @property
    def parent(self) -> Run | None:
        """The parent run (attached), or None for a top-level run."""
        if self._parent_run is None:
            parent_id = _children.parent_id(self.parent_id, self._session.owner, self._reads)
            if parent_id is None:
                return None
            self._parent_run = Run(self.experiment, parent_id, spool_dir=self._spool_dir, offline=self.offline)
        return self._parent_run

    @property
    def type(self) -> str | None:
        """v1's run type: ``azureml.scriptrun`` for a submitted script, None for a run started by logging."""
        return _children.run_type(self._properties, self._session.owner, self._reads)

    def get_children(
        self,
        recursive: bool = False,
        tags: str | Mapping[str, Any] | None = None,
        properties: str | Mapping[str, Any] | None = None,
        type: str | None = None,  # noqa: A002 - v1's parameter name
        status: str | None = None,
    ) -> list[Run]:
        """The runs whose parent is this one (with ``recursive``, all descendants), oldest first.

        ``tags``, ``properties``, ``type`` and ``status`` filter them as in
        v1 (:mod:`producer._listing`); with ``recursive`` every descendant is
        searched, the filters applying to each.
        """
        self._require_online("get_children")
        wanted = _listing.filters(tags=tags, properties=properties, type=type, status=status)
        listing = _listing.Children(self._reads.reader(), lambda doc: attached(self.experiment, doc, self._spool_dir))
        if wanted:
            return listing.filtered(self._stored_id, wanted, recursive)
        children = listing.children(self._stored_id, [])
        if recursive:
            return [d for child in children for d in (child, *child.get_children(recursive=True))]
        return children

    # --- context ------------------------------------------------------------

    def get_environment(self) -> dict[str, str]:
        """Variables under which ``Run.get_context()`` in a child process returns this run.

        Delivers the run's creation first: ingest refuses data for a run it has
        not seen start, and the child's session may be quicker than ours.
        """
        self._session.announce()
        return {**self._workspace.as_env(), ENV_RUN_ID: self.id, ENV_EXPERIMENT: self.experiment.name}

    @classmethod
    def get_context(
        cls,
        allow_offline: bool = True,
        used_for_context_manager: bool = False,
        *,
        env: Mapping[str, str] | None = None,
        **_: Any,
    ) -> Run:
        """The run this process was started for, or an offline run recording to the local spool.

        The same object is returned on every call in a process (and in its
        forked children, each with its own producer session). Outside a run,
        ``allow_offline=False`` raises :class:`RunEnvironmentError` as v1
        does; otherwise the run is an ``_OfflineRun`` (:mod:`producer._offline`).
        """
        global _context_run
        variables = os.environ if env is None else env
        if _context_run is None:
            if not allow_offline and not variables.get(ENV_RUN_ID):
                raise RunEnvironmentError()
            _context_run = _context_from_env(variables)
        elif not allow_offline and _context_run.offline:
            raise RunEnvironmentError()
        return _context_run

    @staticmethod
    def get(workspace: Workspace, run_id: str) -> Run:
        """v1's ``Run.get(workspace, run_id)``: the run, in its experiment, whichever that is."""
        from producer._experiment import Experiment

        reader = Reader(workspace.query_client(), workspace.options.read_consistency_seconds)
        stored_id = stored_run_id(run_id)
        doc = reader.get_json(f"/api/runs/{stored_id}", runs=(stored_id,))
        return attached(Experiment(workspace, doc["experiment"]), doc, workspace.home / "spool")

    # --- notebooks ----------------------------------------------------------

    @staticmethod
    def list(  # noqa: A003 - v1's name
        experiment: Experiment,
        type: str | None = None,  # noqa: A002 - v1's parameter name
        tags: str | Mapping[str, Any] | None = None,
        properties: str | Mapping[str, Any] | None = None,
        status: str | None = None,
        include_children: bool = False,
        _rehydrate_runs: bool = True,
    ) -> Iterator[Run]:
        """v1's ``Run.list(experiment, ...)``: the experiment's runs, newest first, filtered as in v1."""
        return experiment.list_runs(
            type=type, tags=tags, properties=properties, status=status, include_children=include_children
        )

    def _repr_html_(self) -> str:
        """Jupyter's view: v1's table of Experiment, Id, Type, Status and the run's page."""
        return _notebook.run_html(self, self._status)


class _OfflineRun(Run):
    """A run recorded to the local spool and published later; see :mod:`producer._offline`."""

    def __init__(
        self,
        experiment: Experiment,
        run_id: str | None = None,
        *,
        outputs: str | os.PathLike[str] | None = None,
        display_name: str | None = None,
        parent_id: str | None = None,
        offline: bool = True,
        spool_dir: str | os.PathLike[str] | None = None,
        **_: Any,
    ) -> None:
        super().__init__(
            experiment,
            run_id if run_id is not None else str(uuid.uuid4()),
            outputs=outputs,
            display_name=display_name,
            parent_id=parent_id,
            offline=True,
            spool_dir=spool_dir,
        )
        self.id = OFFLINE_PREFIX + self._stored_id


def start(run: Run) -> Run:
    """``run``, a new run object, started: ``run_started`` and ``Running`` published (v1's ``start_logging``)."""
    run._start()
    return run


class ScriptControl:
    """What the watcher of a submitted script (:mod:`producer._submit`) does to its run beyond the public calls."""

    def __init__(self, run: Run, outputs: Path) -> None:
        self._run = run
        run._outputs = outputs  # uploaded when the run ends, as for start_logging(outputs=...)

    def attach(self, script: ScriptProcess) -> None:
        """``cancel()`` on the run now asks ``script`` to stop first."""
        self._run._script = script

    def ended(self) -> bool:
        """Whether the run has a terminal status already (its caller ended it, as v1 allows)."""
        return self._run._status in TERMINAL_STATUSES

    def upload_outputs(self) -> None:
        self._run._upload_outputs()

    @property
    def cancel_requested(self) -> bool:
        return self._run._cancel_requested

    def request_cancel(self) -> None:
        """The script is being stopped: when it exits, the run ends ``Canceled``."""
        self._run._cancel_requested = True


def attached(experiment: Experiment, doc: Mapping[str, Any], spool_dir: Path) -> Run:
    """A run object for ``doc``, a run the query service listed (its record kept: parent and type never change)."""
    run = Run(
        experiment, doc["id"], display_name=doc.get("display_name"), parent_id=doc.get("parent_id"), spool_dir=spool_dir
    )
    if doc.get("status") in TERMINAL_STATUSES:
        run._status = doc["status"]
    run._reads.keep_record(dict(doc))
    return run


def stored_run_id(run_id: Any) -> str:
    """The UUID a run is stored under: its id, canonical, without an offline run's ``OfflineRun_``."""
    text = str(run_id)
    try:
        return str(uuid.UUID(text.removeprefix(OFFLINE_PREFIX)))
    except ValueError:
        raise ValueError(f"run id {run_id!r} is not a UUID (nor OfflineRun_<uuid>)") from None


def _context_from_env(env: Mapping[str, str]) -> Run:
    from producer._experiment import Experiment

    settings = Settings.from_env(env)
    run_id = env.get(ENV_RUN_ID)
    spool = settings.home / "spool"
    if run_id:
        experiment = Experiment(Workspace.from_settings(settings), env.get(ENV_EXPERIMENT) or "Default")
        run = Run(experiment, run_id, spool_dir=spool)
        run._status = "Running"
        return run
    run = _OfflineRun(Experiment(Workspace.from_settings(settings), "offline"), spool_dir=spool, outputs="./outputs")
    return start(run)
