"""Jupyter: ``Run`` and ``Experiment`` as HTML tables with their portal links, and ``RunDetails``.

Azure ML v1 shows a run as a table of Experiment, Id, Type, Status, Details
Page and Docs Page (an experiment: Name, Workspace, Report Page, Docs Page);
so does runstream, every value escaped, the links to the query service's
pages. ``RunDetails(run).show()`` (v1's ``azureml.widgets``) shows the run's
live page inline, an IFrame through IPython.display when IPython is there,
else it prints the link. The query service lets loopback origins frame run
pages by default (``RUNSTREAM_EMBED_ORIGINS``), so a notebook on the same
machine shows it; with a query service elsewhere, add the notebook's origin.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from producer._errors import QueryServiceError

if TYPE_CHECKING:
    from producer._experiment import Experiment
    from producer._run import Run

#: Height of the inline run page, in pixels.
FRAME_HEIGHT = 800


def run_html(run: Run, local_status: str | None) -> str:
    """v1's ``Run._repr_html_`` table (``local_status``: shown when the service cannot be asked)."""
    return _table(
        [
            ("Experiment", html.escape(run.experiment.name)),
            ("Id", html.escape(run.id)),
            ("Type", html.escape(_text(_safe(lambda: run.type)))),
            ("Status", html.escape(_text(_safe(run.get_status) or local_status))),
            ("Details Page", _link(run.get_portal_url(), "Link to the run's page")),
            ("Docs Page", _link(docs_url(run.experiment.workspace.query_url), "Link to Documentation")),
        ]
    )


def experiment_html(experiment: Experiment) -> str:
    """v1's ``Experiment._repr_html_`` table."""
    return _table(
        [
            ("Name", html.escape(experiment.name)),
            ("Workspace", html.escape(experiment.workspace.name)),
            ("Report Page", _link(experiment.get_portal_url(), "Link to the experiment's page")),
            ("Docs Page", _link(docs_url(experiment.workspace.query_url), "Link to Documentation")),
        ]
    )


def docs_url(query_url: str) -> str:
    """The query service's own description of its API (runstream has no hosted documentation site)."""
    return f"{query_url}/api/openapi.json"


class RunDetails:
    """Azure ML v1's ``azureml.widgets.RunDetails(run).show()``: the run's live page, inline."""

    def __init__(self, run_instance: Run) -> None:
        self.run = run_instance

    def show(self, height: int = FRAME_HEIGHT) -> Any:
        """Display the page in a notebook (an IFrame), or print its link outside one; returns what was shown."""
        url = self.run.get_portal_url()
        try:
            from IPython.display import IFrame, display
        except ImportError:
            print(f"Run {self.run.id}: {url}", flush=True)
            return url
        frame = IFrame(url, width="100%", height=height)
        display(frame)  # type: ignore[no-untyped-call]  # IPython is untyped
        return frame

    def get_widget_data(self, widget_settings: Any = None) -> dict[str, Any]:
        """What the widget shows: the run's details (v1 keys) and its metrics."""
        return {"details": self.run.get_details(), "metrics": self.run.get_metrics()}


def _safe(read: Any) -> Any:
    # A notebook's repr must not raise for a run the service does not know yet, or at all.
    try:
        return read()
    except (QueryServiceError, OSError):
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _link(url: str, text: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener">{html.escape(text)}</a>'


def _table(rows: Sequence[tuple[str, str]]) -> str:
    """Rows of (header, cell HTML already escaped)."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in rows)
    body = "".join(f"<td>{cell}</td>" for _, cell in rows)
    return f"<table style='width:100%'><tr>{head}</tr><tr>{body}</tr></table>"
