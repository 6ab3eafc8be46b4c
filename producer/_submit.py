"""``Experiment.submit(ScriptRunConfig(...))``: a script run locally as a child process.

Submission checks everything first (the target is local, no Docker, the
snapshot within v1's limits: :mod:`producer._snapshot`), then creates the
run with its tags and v1's properties (``azureml.runsource``,
``ContentSnapshotId``, ``_azureml.ComputeTargetType``), copies and uploads
the snapshot and the run definition, and starts the script in the copy.

The child gets the run's identity in its environment, so ``Run.get_context()``
inside the script returns the submitted run (with a producer session of its
own), plus the environment's variables and v1's ``AZUREML_RUN_ID`` family.
Its stdout and stderr go to the driver log,
``<home>/runs/<run id>/driver.log``. A watcher thread appends what the log
gained to the query service's copy every :data:`LOG_UPLOAD_INTERVAL_SECONDS`
(``PUT /api/runs/{id}/logs/driver?offset=N``: each append sends only the new
bytes), so ``wait_for_completion(show_output=True)`` can follow the run from
any machine. When the script exits the watcher appends the rest, uploads the
whole log as the file ``logs/driver.log`` and the script's ``outputs``
directory, and only then sets the status from the exit code: 0 is
``Completed``, anything else ``Failed`` with the code and the end of the log.
A reader that sees the final status has therefore seen the complete log.
"""

from __future__ import annotations

import getpass
import io
import os
import shlex
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from producer import _snapshot
from producer._consistency import ENV_HANDOFF_DIR, LEDGER
from producer._details import RUN_DEFINITION_FILE
from producer._environment import Environment
from producer._errors import ProducerError, QueryServiceError, RunNotFoundError, UnsupportedError, UsageError
from producer._listing import RUN_TYPE_PROPERTY
from producer._runconfig import LOCAL_TARGET, DockerConfiguration, RunConfiguration

if TYPE_CHECKING:
    from producer._experiment import Experiment
    from producer._http import QueryClient
    from producer._run import Run

#: How often the watcher appends what the driver log gained.
LOG_UPLOAD_INTERVAL_SECONDS = 2.0
# One append at most; well below the service's default upload limit.
_LOG_APPEND_BYTES = 4 << 20
_LOG_TAIL_CHARS = 4000
# The directory that holds the `producer` package: the script can import it even if not installed.
_SDK_ROOT = str(Path(__file__).resolve().parent.parent)


class ScriptRunConfig:
    """What to run, Azure ML v1's way: ``script`` (relative to ``source_directory``) with ``arguments``.

    ``compute_target`` must be ``"local"`` or None (the script runs on this
    machine); ``environment`` (an :class:`Environment`) chooses the
    interpreter and variables; ``run_config`` (a :class:`RunConfiguration`,
    also reachable as ``src.run_config`` to edit) replaces those two as in
    v1; ``command`` runs a command line instead of ``script``;
    ``max_run_duration_seconds`` cancels a script that runs longer. ``python``
    (runstream's own) names the interpreter outright. Distributed jobs,
    ``resume_from`` and Docker are refused with :class:`UnsupportedError`.
    """

    MAX_DURATION_SECONDS_DEFAULT = 2592000

    def __init__(
        self,
        source_directory: str | os.PathLike[str],
        script: str | None = None,
        arguments: Sequence[Any] | None = None,
        run_config: RunConfiguration | None = None,
        _telemetry_values: Any = None,
        compute_target: Any = None,
        environment: Environment | None = None,
        distributed_job_config: Any = None,
        resume_from: Any = None,
        max_run_duration_seconds: int = MAX_DURATION_SECONDS_DEFAULT,
        command: Sequence[Any] | str | None = None,
        docker_runtime_config: DockerConfiguration | None = None,
        *,
        python: str | None = None,
    ) -> None:
        if distributed_job_config is not None:
            raise UnsupportedError("distributed_job_config: runstream runs a submitted script as one local process")
        if resume_from is not None:
            raise UnsupportedError("resume_from: datastore paths need Azure; pass the checkpoint's path as an argument")
        self.source_directory = source_directory
        self.script = script
        self.command = command
        self.arguments = arguments
        self.python = python
        if run_config is not None:
            if not isinstance(run_config, RunConfiguration):
                raise TypeError(f"run_config must be a RunConfiguration, got {type(run_config).__name__}")
            self.script = script or run_config.script
            self.arguments = arguments if arguments else (run_config.arguments or None)
            self.command = command or run_config.command or None
            self.run_config = run_config
        else:
            self.run_config = RunConfiguration()
            self.run_config.target = compute_target
            self.run_config.environment = environment if environment is not None else Environment("default-environment")
            self.run_config.max_run_duration_seconds = max_run_duration_seconds
            if docker_runtime_config is not None:
                self.run_config.docker = docker_runtime_config
        self._check()

    def _check(self) -> None:
        """What can be checked before submission: the files, the arguments, that it can run here."""
        source = Path(self.source_directory)
        if not source.is_dir():
            raise ValueError(f"ScriptRunConfig source_directory {str(source)!r} is not a directory")
        if (self.script is None) == (not self.command):
            raise UsageError("ScriptRunConfig needs exactly one of script and command")
        if self.script is not None and not (source / self.script).is_file():
            raise ValueError(f"ScriptRunConfig script {self.script!r} is not a file in {str(source)!r}")
        if isinstance(self.arguments, str | bytes):
            raise TypeError("ScriptRunConfig arguments must be a list of arguments, not one string")
        for argument in self.arguments or ():
            if not isinstance(argument, str | int | float) or isinstance(argument, bool):
                raise TypeError(f"ScriptRunConfig argument {argument!r} is not a str or a number")
        self.run_config.check_runnable()

    def argv(self) -> list[str]:
        """The command line the run executes, in its snapshot directory."""
        self._check()
        python = self.python or self.run_config.environment.interpreter()
        if self.script is not None:
            return [python, self.script, *(str(a) for a in self.arguments or ())]
        words = shlex.split(self.command) if isinstance(self.command, str) else [str(w) for w in self.command or ()]
        if words and words[0] in ("python", "python3"):
            words[0] = python  # the environment's interpreter, as v1 runs "python" in it
        return [*words, *(str(a) for a in self.arguments or ())]

    def environment_variables(self) -> dict[str, str]:
        """The variables the script gets on top of this process's: the environment's, then the run config's."""
        rc = self.run_config
        return {**rc.environment.environment_variables, **rc.environment_variables}

    def run_definition(self, argv: list[str]) -> dict[str, Any]:
        """What ``get_details()["runDefinition"]`` shows: v1's keys, plus the command line that ran."""
        rc = self.run_config
        return {
            "script": self.script,
            "command": self.command if isinstance(self.command, str) else list(self.command or []),
            "arguments": [str(a) for a in self.arguments or ()],
            "target": rc.target,
            "framework": rc.framework,
            "communicator": rc.communicator,
            "maxRunDurationSeconds": rc.max_run_duration_seconds,
            "nodeCount": rc.node_count,
            "environment": rc.environment.as_dict(),
            "environmentVariables": dict(rc.environment_variables),
            "commandLine": argv,
        }

    def __repr__(self) -> str:
        return (
            f"ScriptRunConfig(source_directory={str(self.source_directory)!r}, script={self.script!r}, "
            f"arguments={self.arguments!r}, target={self.run_config.target!r})"
        )


@dataclass(frozen=True)
class LaunchPlan:
    """One submission, checked: the command, where it runs, its extra variables, its bounds."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    script: str
    max_seconds: float | None
    notes: list[str]


#: ``run.type`` (and the ``azureml.runsource`` property) of a submitted script, as in v1.
SCRIPT_RUN_TYPE = "azureml.scriptrun"


class RunControl(Protocol):
    """What the watcher does to its run beyond the public calls (:class:`producer._run.ScriptControl`)."""

    def attach(self, script: ScriptProcess) -> None: ...
    def ended(self) -> bool: ...
    def upload_outputs(self) -> None: ...
    @property
    def cancel_requested(self) -> bool: ...
    def request_cancel(self) -> None: ...


def submit(
    experiment: Experiment,
    config: ScriptRunConfig,
    *,
    tags: Mapping[str, Any] | None,
    display_name: str | None,
    control: Callable[[Run, Path], RunControl],
) -> Run:
    """Check, create the run, snapshot, start the script; see the module docstring.

    ``control(run, outputs)`` gives the watcher its hold on the run (outputs: the folder uploaded at the end).
    """
    if not isinstance(config, ScriptRunConfig):
        raise TypeError(f"submit() takes a ScriptRunConfig, got {type(config).__name__}")
    argv = config.argv()
    ws = experiment.workspace
    snapshot = _snapshot.select(config.source_directory, exclude=[ws.home])
    run = experiment.start_logging(display_name=display_name or config.script or Path(argv[0]).name, outputs=None)
    folder = ws.home / "runs" / run.id
    try:
        if tags:
            run.set_tags(tags)
        run.add_properties(
            {
                RUN_TYPE_PROPERTY: SCRIPT_RUN_TYPE,
                _snapshot.ID_PROPERTY: str(uuid.uuid4()),
                "_azureml.ComputeTargetType": LOCAL_TARGET,
            }
        )
        archive = _snapshot.archive(snapshot, folder / _snapshot.ARCHIVE)
        workdir = _snapshot.extract(archive, folder / "snapshot")
    except BaseException as exc:
        run.fail(exc)  # nothing ran: say why the run ended at once
        raise
    hold = control(run, workdir / "outputs")
    definition = {"runDefinition": config.run_definition(argv), "submittedBy": _user()}
    files = [
        *_snapshot.entries(archive),
        (RUN_DEFINITION_FILE, lambda: orjson.dumps(definition, option=orjson.OPT_INDENT_2)),
    ]
    env = {
        **config.environment_variables(),
        "AZUREML_RUN_ID": run.id,
        "AZUREML_ARM_PROJECT_NAME": experiment.name,
        "AZUREML_ARM_WORKSPACE_NAME": ws.name,
        "AZUREML_ARM_SUBSCRIPTION": ws.subscription_id,
        "AZUREML_ARM_RESOURCEGROUP": ws.resource_group,
    }
    plan = LaunchPlan(
        argv,
        workdir,
        env,
        config.script or " ".join(argv),
        config.run_config.max_run_duration_seconds,
        _notes(config, argv),
    )
    script = ScriptProcess(run, hold, plan, folder / "driver.log", files)
    hold.attach(script)
    script.start()
    return run


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name nor password entry (some containers)
        return None


def _notes(config: ScriptRunConfig, argv: list[str]) -> list[str]:
    """What the driver log says first: declared dependencies are not installed here."""
    env = config.run_config.environment
    deps = env.python.conda_dependencies
    declared = deps is not None and (deps.conda_packages or deps.pip_packages or deps.as_dict().get("text"))
    if env.python.user_managed_dependencies or not declared:
        return []
    return [
        f"environment {env.name!r} declares conda/pip dependencies; runstream records them (runDefinition) "
        f"and installs nothing: the script runs with {argv[0]}"
    ]


class ScriptProcess:
    """The child process of a submitted run and the thread that finishes the run when it exits."""

    def __init__(
        self, run: Run, control: RunControl, plan: LaunchPlan, log_path: Path, files: Sequence[PendingFile] = ()
    ) -> None:
        self.run = run
        self.control = control
        self.plan = plan
        self.log_path = log_path
        self._files = _FileUploader(run, files)
        self.returncode: int | None = None
        self.error: BaseException | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: _LogAppender | None = None
        self._watcher: threading.Thread | None = None
        self._done = threading.Event()
        self._started_at = 0.0
        #: Where the script's processes leave their producer sessions (producer._consistency).
        self._handoff = log_path.parent / "sessions"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        python_path = os.pathsep.join(p for p in (_SDK_ROOT, os.environ.get("PYTHONPATH")) if p)
        env = {
            **os.environ,
            **self.plan.env,
            **self.run.get_environment(),
            "PYTHONPATH": python_path,
            "PYTHONUNBUFFERED": "1",
            ENV_HANDOFF_DIR: str(self._handoff),
        }
        self._handoff.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            for note in self.plan.notes:
                log.write(f"runstream: {note}\n".encode())
            log.flush()
            self._started_at = time.monotonic()
            self._process = subprocess.Popen(  # noqa: S603 - the user's own script
                self.plan.argv,
                cwd=self.plan.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._log = _LogAppender(self.run.experiment.workspace.query_client(), self.run.id, self.log_path)
        self._watcher = threading.Thread(target=self._watch, name=f"runstream-script-{self.run.id[:8]}", daemon=True)
        self._watcher.start()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_seconds: float | None = None) -> bool:
        """Until the run is finished (status published); False at the timeout."""
        return self._done.wait(timeout_seconds)

    def cancel(self) -> None:
        """Ask the script to stop (SIGTERM); the watcher marks the run when it exits."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def _watch(self) -> None:
        assert self._process is not None and self._log is not None  # noqa: S101 - started before the watcher
        try:
            while self.returncode is None:
                self._files.send()
                try:
                    self.returncode = self._process.wait(LOG_UPLOAD_INTERVAL_SECONDS)
                except subprocess.TimeoutExpired:
                    self._enforce_duration()
                self._log.append_new()
            self._files.send()
            # Before the final status: whoever sees it reads what the script wrote, child runs included.
            LEDGER.adopt_handoff(self._handoff)
            self.error = self._log.error or self._files.error
            self._upload("logs/driver.log", self.log_path)
            if self.control.ended():
                self.control.upload_outputs()  # ended by its caller meanwhile (fail(), as v1 allows): keep that
            elif self.returncode == 0:
                self.run.complete()  # uploads the outputs directory too
            elif self.control.cancel_requested:
                self.control.upload_outputs()
                self.run.cancel()
            else:
                self.control.upload_outputs()
                self.run.fail(self._error_details())
        except (ProducerError, OSError) as exc:
            self.error = exc
        finally:
            self._done.set()

    def _enforce_duration(self) -> None:
        """v1's max_run_duration_seconds: past it the script is asked to stop and the run ends Canceled."""
        limit = self.plan.max_seconds
        if limit is not None and not self.control.cancel_requested and time.monotonic() - self._started_at > limit:
            self.control.request_cancel()
            self.cancel()

    def _upload(self, name: str, path: Path) -> None:
        try:
            self.run.upload_file(name, path)
        except QueryServiceError as exc:
            # The status matters more than the files: record why they are missing and go on.
            self.error = exc

    def _error_details(self) -> dict[str, Any]:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        code = self.returncode
        return {
            "message": f"script {self.plan.script} exited with code {code}",
            "exit_code": code,
            "log_tail": text[-_LOG_TAIL_CHARS:],
        }


#: A file the run must have: its name, and a function that gives its bytes.
PendingFile = tuple[str, Callable[[], bytes]]


class _FileUploader:
    """The snapshot and the run definition, uploaded by the watcher while the script runs.

    Submission does not wait for the query service (a script runs while it
    is away, like its driver log): each round sends what is still pending;
    one that gets no answer (or a 5xx) stops the round and is tried again
    next time; a refused one (4xx) is given up and kept as ``error``. The
    watcher's last round comes before the final status.
    """

    def __init__(self, run: Run, files: Sequence[PendingFile]) -> None:
        self._run = run
        self._pending = list(files)
        self._refused: QueryServiceError | None = None
        self._unanswered: QueryServiceError | None = None

    def send(self) -> None:
        while self._pending:
            name, content = self._pending[0]
            try:
                self._run.upload_file(name, io.BytesIO(content()))
            except QueryServiceError as exc:
                if _transient(exc):
                    self._unanswered = exc
                    return
                self._refused = exc
            self._pending.pop(0)

    @property
    def error(self) -> QueryServiceError | None:
        """Why a file is missing: one was refused, or some are still unsent."""
        return self._refused or (self._unanswered if self._pending else None)


class _LogAppender:
    """Appends what a growing local log gained to the run's driver log in the query service.

    An append that gets no answer (or a 5xx) is repeated with the same bytes at
    the same offset on the next call (a no-op for the service if it did
    arrive). A refused one (4xx: say 409, someone else wrote the log) ends the
    appending; the error is kept, the script goes on.
    """

    def __init__(self, http: QueryClient, run_id: str, path: Path) -> None:
        self._http = http
        self._url = f"/api/runs/{run_id}/logs/driver"
        self._path = path
        self._sent = 0
        self._pending = b""
        self.error: QueryServiceError | None = None

    def append_new(self) -> None:
        """Send what the file has gained by now; on a failure keep it for the next call."""
        # Up to the size seen now only: a script printing faster than we send must not keep us here.
        end = self._path.stat().st_size
        while (self.error is None or _transient(self.error)) and (self._pending or self._sent < end):
            if not self._pending:
                self._pending = self._read()
            if not self._pending:
                return  # the file shrank (not something the script's output does)
            try:
                self._http.put(
                    f"{self._url}?offset={self._sent}", self._pending, len(self._pending), "application/octet-stream"
                )
            except QueryServiceError as exc:
                self.error = exc
                return
            self.error = None
            self._sent += len(self._pending)
            self._pending = b""

    def _read(self) -> bytes:
        with self._path.open("rb") as file:
            file.seek(self._sent)
            return file.read(_LOG_APPEND_BYTES)


def _transient(error: QueryServiceError) -> bool:
    # No answer or a 5xx: worth repeating. A 4xx will not change by repeating.
    return error.status is None or error.status >= 500


class DriverLogFollower:
    """Prints what a run's driver log gained since the last call, from the query service.

    Works for any run on any machine, submitted here or not (a run without a
    driver log prints nothing). Reading the local file instead would save only
    the append interval and would work only beside the script.
    """

    def __init__(self, http: QueryClient | None, run_id: str) -> None:
        self._http = http
        self._url = f"/api/runs/{run_id}/logs/driver"
        self._offset = 0

    def print_new(self) -> None:
        """Print up to the log's current end (nothing if disabled or nothing is known of the run yet)."""
        while self._http is not None:
            try:
                page = self._http.get_json(self._url, {"offset": str(self._offset)})
            except RunNotFoundError:
                return  # neither the run nor its log has arrived yet
            if page["text"]:
                sys.stdout.write(page["text"])
                sys.stdout.flush()
            self._offset = page["next_offset"]
            if self._offset >= page["size"] or not page["text"]:
                return
