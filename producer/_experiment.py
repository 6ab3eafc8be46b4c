"""An experiment: a named group of runs in a workspace."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from producer import _validate
from producer._consistency import LEDGER, Reader
from producer._run import Run, _attached, iter_runs
from producer._submit import ScriptProcess, ScriptRunConfig
from producer._workspace import Workspace


class Experiment:
    """``Experiment(workspace, name)``; ``start_logging()`` creates a run in it."""

    def __init__(self, workspace: Workspace, name: str) -> None:
        if not isinstance(workspace, Workspace):
            raise TypeError(f"Experiment needs a Workspace, got {type(workspace).__name__}")
        self.workspace = workspace
        self.name = _validate.name(name, "experiment")

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, workspace={self.workspace!r})"

    def start_logging(
        self,
        display_name: str | None = None,
        outputs: str | os.PathLike[str] | None = "./outputs",
        snapshot_directory: str | os.PathLike[str] | None = None,
    ) -> Run:
        """A new run, already ``Running``: publishes ``run_started`` then the status.

        Files under ``outputs`` are uploaded when the run completes; the
        ``snapshot_directory``, if given, is uploaded now under ``snapshot/``.
        """
        if display_name is not None:
            _validate.name(display_name, "display")
        run = Run(self, str(uuid.uuid4()), outputs=outputs, display_name=display_name)
        run._start()
        if snapshot_directory is not None:
            run.upload_folder("snapshot", snapshot_directory)
        return run

    def submit(self, config: ScriptRunConfig, *, display_name: str | None = None) -> Run:
        """Run ``config``'s script locally as a child process, as a new run; returns at once.

        The script's ``Run.get_context()`` is this run. Its output becomes the
        driver log (``logs/driver.log``); its exit code sets the status
        (non-zero: ``Failed`` with the code and the log's end). Use
        ``run.wait_for_completion(show_output=True)`` to follow it.
        """
        if not isinstance(config, ScriptRunConfig):
            raise TypeError(f"submit() takes a ScriptRunConfig, got {type(config).__name__}")
        run = self.start_logging(display_name=display_name or config.script, outputs=None)
        run._outputs = Path(config.source_directory) / "outputs"
        script = ScriptProcess(run, config, self.workspace.home / "runs" / run.id / "driver.log")
        run._script = script
        script.start()
        return run

    def get_runs(self) -> Iterator[Run]:
        """The experiment's runs, newest first, as the query service lists them.

        Like every read, the listing includes what this process wrote to the
        experiment's runs before it (see :mod:`producer._consistency`).
        """
        reader = Reader(self.workspace.query_client(), self.workspace.options.read_consistency_seconds)
        spool = self.workspace.home / "spool"
        for doc in iter_runs(reader, {"experiment": self.name}, runs=LEDGER.experiment_runs(self.name)):
            yield _attached(self, doc, spool)
