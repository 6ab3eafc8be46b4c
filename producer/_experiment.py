"""An experiment: a named group of runs in a workspace."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from producer import _listing, _notebook, _submit, _validate
from producer._consistency import LEDGER, Reader
from producer._http import quote
from producer._run import Run, ScriptControl, attached, start
from producer._submit import ScriptRunConfig
from producer._workspace import Workspace


class Experiment:
    """``Experiment(workspace, name)``; ``start_logging()`` creates a run in it, ``submit()`` runs a script."""

    def __init__(self, workspace: Workspace, name: str, **_: Any) -> None:
        if not isinstance(workspace, Workspace):
            raise TypeError(f"Experiment needs a Workspace, got {type(workspace).__name__}")
        self.workspace = workspace
        self.name = _validate.name(name, "experiment")

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, workspace={self.workspace!r})"

    def _repr_html_(self) -> str:
        """Jupyter's view: v1's table of Name, Workspace and the experiment's page."""
        return _notebook.experiment_html(self)

    def get_portal_url(self) -> str:
        """The experiment's page in the query service."""
        return f"{self.workspace.query_url}/experiments/{quote(self.name)}"

    def get_docs_url(self) -> str:
        """v1's link to documentation: the query service's API description (OpenAPI)."""
        return f"{self.workspace.query_url}/api/openapi.json"

    @property
    def id(self) -> str:
        """A stable id (v1's experiments have GUIDs): a UUID derived from the workspace and the name."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"runstream:{self.workspace.name}/{self.name}"))

    @staticmethod
    def list(  # noqa: A003 - v1's name
        workspace: Workspace,
        experiment_name: str | None = None,
        view_type: str = "ActiveOnly",
        tags: Any = None,
    ) -> list[Experiment]:
        """v1's ``Experiment.list(workspace)``: the experiments the query service knows, most recently
        active first (``experiment_name`` keeps the one of that name). runstream archives nothing and
        keeps no experiment tags, so ``view_type`` and ``tags`` select nothing more."""
        if experiment_name is not None:
            _validate.name(experiment_name, "experiment")
        names = [doc["name"] for doc in workspace.query_client().get_json("/api/experiments")["experiments"]]
        return [Experiment(workspace, n) for n in names if experiment_name in (None, n)]

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
        start(run)
        if snapshot_directory is not None:
            run.upload_folder("snapshot", snapshot_directory)
        return run

    def submit(
        self,
        config: ScriptRunConfig,
        tags: Mapping[str, Any] | None = None,
        *,
        display_name: str | None = None,
        **_: Any,
    ) -> Run:
        """Run ``config``'s script locally as a child process, as a new run with ``tags``; returns at once.

        The source directory is snapshotted (its ``.amlignore`` or ``.gitignore``
        applied) and the script runs in that copy (:mod:`producer._submit`).
        The script's ``Run.get_context()`` is this run. Its output becomes the
        driver log (``logs/driver.log``); its exit code sets the status
        (non-zero: ``Failed`` with the code and the log's end). Use
        ``run.wait_for_completion(show_output=True)`` to follow it.
        """
        return _submit.submit(self, config, tags=tags, display_name=display_name, control=ScriptControl)

    def get_runs(
        self,
        type: str | None = None,  # noqa: A002 - v1's parameter name
        tags: str | Mapping[str, Any] | None = None,
        properties: str | Mapping[str, Any] | None = None,
        include_children: bool = False,
    ) -> Iterator[Run]:
        """The experiment's runs, newest first: top-level ones unless ``include_children`` (v1).

        ``type``, ``tags`` (a key, or ``{key: value}``) and ``properties``
        filter them in the query service (:mod:`producer._listing`). Like every
        read, the listing includes what this process wrote to the experiment's
        runs before it (:mod:`producer._consistency`).
        """
        return self.list_runs(type=type, tags=tags, properties=properties, include_children=include_children)

    def list_runs(
        self,
        *,
        type: str | None = None,  # noqa: A002 - v1's parameter name
        tags: str | Mapping[str, Any] | None = None,
        properties: str | Mapping[str, Any] | None = None,
        status: str | None = None,
        include_children: bool = False,
    ) -> Iterator[Run]:
        """:meth:`get_runs` with v1's ``Run.list`` filter on ``status`` too."""
        params = _listing.filters(
            tags=tags, properties=properties, type=type, status=status, include_children=include_children
        )
        return self._listed(params)  # the filters are checked now, the listing read as it is iterated

    def _listed(self, params: _listing.Params) -> Iterator[Run]:
        ws = self.workspace
        reader = Reader(ws.query_client(), ws.options.read_consistency_seconds)
        written = LEDGER.experiment_runs(self.name)
        for doc in _listing.docs(reader, [("experiment", self.name), *params], runs=written):
            yield attached(self, doc, ws.home / "spool")
