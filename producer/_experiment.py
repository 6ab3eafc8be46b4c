"""An experiment: a named group of runs in a workspace."""

from __future__ import annotations

import os
import uuid

from producer import _validate
from producer._run import Run
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
