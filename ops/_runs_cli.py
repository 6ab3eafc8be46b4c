"""``runstream runs ls|show|export`` and ``runstream metrics tail``: the query service from a terminal.

They read through :class:`runstream.client.Client` and :mod:`runstream.stream`
with ``RUNSTREAM_QUERY_URL`` and ``RUNSTREAM_TOKEN`` (the local stack's token
by default), like every other client.

Exports are long tables, a row per point: ``run_id, metric, step, time,
value, text`` (``text`` holds a str metric's values, ``value`` the numbers).
CSV writes each float with ``repr``, the shortest text that reads back as the
same float64 (``nan``, ``inf``, ``-inf``, ``-0.0`` included), so a CSV export
round-trips bit-exactly; Parquet stores float64 as is.
"""

from __future__ import annotations

import csv
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

import orjson

from runstream.client import Client, ClientError, run_row
from runstream.config import Settings
from runstream.events import TERMINAL_STATUSES
from runstream.stream import NewPoints, RunChanged, SyncStream

__all__ = ["EXPORT_COLUMNS", "explained", "export_rows", "list_runs", "show_run", "tail_metrics", "write_export"]

EXPORT_COLUMNS: Final = ("run_id", "metric", "step", "time", "value", "text")
#: Columns of ``runs ls --format table`` before the metrics, with their widths.
_TABLE: Final = (("run_id", 36), ("display_name", 20), ("status", 12), ("created_at", 19))


def explained(command: str, action: Callable[[], int]) -> int:
    """Run ``action``; a refusal, an unreachable service or an unreadable argument is one line on stderr."""
    try:
        return action()
    except ClientError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    except ValueError as exc:  # a filter, a sort or an option the command could not read
        print(f"{command}: {exc}", file=sys.stderr)
        return 2


def client(settings: Settings) -> Client:
    return Client(settings.query_url, settings.token)


def list_runs(
    settings: Settings,
    *,
    experiment: str | None,
    filter_text: str | None,
    sort: str | None,
    limit: int | None,
    fmt: str,
    out: TextIO,
) -> int:
    """Print the matching runs as a table fitting the terminal, JSON lines, or CSV."""
    runs = client(settings).list_runs(experiment, filter=filter_text, order_by=sort, max_results=limit)
    rows = [run_row(run) for run in runs]
    if fmt == "json":
        for row in rows:
            out.write(orjson.dumps(row).decode() + "\n")
    elif fmt == "csv":
        columns = _columns(rows)
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv_value(row.get(k)) for k in columns} for row in rows)
    else:
        _table(rows, out, shutil.get_terminal_size((160, 24)).columns)
    return 0


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def _csv_value(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else ("" if value is None else value)


def _table(rows: Sequence[dict[str, Any]], out: TextIO, width: int) -> None:
    """Fixed columns, then as many metrics as fit in ``width``."""
    metrics = [c for c in _columns(rows) if c.startswith("metrics.")]
    columns = [(name, size) for name, size in _TABLE]
    used = sum(size + 2 for _, size in columns)
    for metric in metrics:
        size = max(10, min(18, len(metric) - 8))
        if used + size + 2 > width:
            break
        columns.append((metric, size))
        used += size + 2
    out.write("  ".join(_cell(name.removeprefix("metrics."), size) for name, size in columns).rstrip() + "\n")
    for row in rows:
        out.write("  ".join(_cell(_text(row.get(name)), size) for name, size in columns).rstrip() + "\n")
    hidden = len(metrics) - (len(columns) - len(_TABLE))
    if hidden:
        out.write(f"({hidden} more metric column(s); --format csv or json shows them all)\n")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)[:19] if isinstance(value, str) and value[:2] == "20" and "T" in value else str(value)


def _cell(text: str, size: int) -> str:
    return text.ljust(size) if len(text) <= size else text[: size - 1] + "…"


def show_run(settings: Settings, run_id: str, out: TextIO) -> int:
    """A run's details, tags, properties and last metric values."""
    c = client(settings)
    run = c.get_run(run_id)
    latest = c.list_runs(run["experiment"], filter=None, max_results=None)
    metrics: dict[str, Any] = next((r.get("metrics") or {} for r in latest if r["id"] == run["id"]), {})
    for key in ("id", "experiment", "display_name", "status", "parent_id", "created_at", "started_at", "ended_at"):
        out.write(f"{key:<14}{_text(run.get(key))}\n")
    if run.get("error"):
        out.write(f"{'error':<14}{orjson.dumps(run['error']).decode()}\n")
    for title, values in (("tags", run.get("tags")), ("properties", run.get("properties")), ("metrics", metrics)):
        if values:
            out.write(f"{title}:\n")
            for key, value in sorted(values.items()):
                out.write(f"  {key:<28}{_text(value) if not isinstance(value, float) else repr(value)}\n")
    return 0


def export_rows(settings: Settings, experiment: str, *, progress: TextIO | None = None) -> Iterator[tuple[Any, ...]]:
    """Every point of every scalar metric of the experiment's runs, as rows of :data:`EXPORT_COLUMNS`."""
    c = client(settings)
    runs = c.list_runs(experiment)
    for index, run in enumerate(runs, 1):
        for metric in sorted(run.get("metrics") or {}):
            steps, times, values = c.series_columns(run["id"], metric)
            for step, time, value in zip(steps, times, values, strict=True):
                text = isinstance(value, str)
                yield run["id"], metric, step, time, None if text else float(value), value if text else None
        if progress is not None:
            filled = 30 * index // len(runs)
            progress.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {index}/{len(runs)} runs")
            progress.flush()
    if progress is not None and runs:
        progress.write("\n")


def write_export(rows: Iterator[tuple[Any, ...]], fmt: str, output: Path | None, out: TextIO) -> int:
    """Write ``rows`` as CSV (to ``output`` or ``out``) or Parquet (to ``output``)."""
    if fmt == "parquet":
        if output is None:
            raise ValueError("--format parquet needs --output FILE")
        _write_parquet(list(rows), output)
        return 0
    if output is None:
        _write_csv(rows, out)
        return 0
    with output.open("w", encoding="utf-8", newline="") as file:
        _write_csv(rows, file)
    return 0


def _write_csv(rows: Iterator[tuple[Any, ...]], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for run_id, metric, step, time, value, text in rows:
        writer.writerow((run_id, metric, step, repr(time), "" if value is None else repr(value), text or ""))


def _write_parquet(rows: list[tuple[Any, ...]], output: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("Parquet needs pyarrow: pip install 'runstream[analysis]'") from None
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(EXPORT_COLUMNS)
    types = (pa.string(), pa.string(), pa.int64(), pa.float64(), pa.float64(), pa.string())
    table = pa.table(
        {name: pa.array(list(col), type=t) for name, col, t in zip(EXPORT_COLUMNS, columns, types, strict=True)}
    )
    pq.write_table(table, output)


def tail_metrics(settings: Settings, run_id: str, metrics: Sequence[str], out: TextIO) -> int:
    """Print the run's points as they are stored, until the run ends (or Ctrl-C)."""
    with SyncStream(settings.query_url, settings.token, runs=[run_id], metrics=list(metrics)) as stream:
        ended = False
        while True:
            event = stream.next_event(2.0 if ended else None)
            if event is None:
                return 0  # the run ended and nothing more came
            if isinstance(event, RunChanged):
                out.write(f"# {event.run_id} {event.status}\n")
                ended = event.status in TERMINAL_STATUSES
            elif isinstance(event, NewPoints):
                _print_points(event, out)
            out.flush()


def _print_points(event: NewPoints, out: TextIO) -> None:
    for name, series in event.metrics.items():
        for step, value in zip(series.steps, series.values, strict=True):
            out.write(f"{name}\t{step}\t{value!r}\n")
