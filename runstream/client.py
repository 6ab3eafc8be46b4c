"""A Python client of the query service's JSON API, for analysis: runs as DataFrames, series as arrays.

::

    from runstream.client import Client

    client = Client("http://localhost:8080", token)
    runs = client.search_runs("mnist", filter="metrics.accuracy > 0.9 and tags.team = 'vision'",
                              order_by=["metrics.accuracy DESC"])
    loss = client.get_series(runs.run_id[0], "loss", as_="pandas")
    client.download_artifacts(runs.run_id[0], "outputs", dst_path="here")

``search_runs`` answers a pandas DataFrame with a row per run and columns
``run_id``, ``experiment``, ``display_name``, ``status``, ``parent_id``,
``created_at``, ``started_at``, ``ended_at``, then ``metrics.<name>`` (each
metric's last value), ``tags.<key>`` and ``properties.<key>``, as
``mlflow.search_runs`` does. pandas (and pyarrow, for Parquet) are optional:
``pip install 'runstream[analysis]'``; :meth:`Client.list_runs` and
``get_series(as_="numpy")`` need neither.

Filter syntax: clauses joined by ``and``:

* ``metrics.NAME OP NUMBER``, ``min(metrics.NAME) OP NUMBER`` (``max``, ``last``),
  OP one of ``> >= < <= = !=``, NUMBER may be ``nan``/``inf``;
  a name with spaces or operators goes in backquotes: ``metrics.`val loss` < 1``;
* ``tags.KEY = 'VALUE'``, ``tags.KEY`` (the tag is set), ``properties.KEY = 'VALUE'``;
* ``status = 'Failed'``.

``order_by``: ``["metrics.NAME DESC"]``, ``["min(metrics.NAME)"]``,
``["created_at ASC"]`` (one key; the service sorts by one).

Errors::

    ClientError                        -- root
    ├── RequestRefused (ValueError)    -- 4xx: bad input (``parameter`` names it), no such run, wrong token
    └── ServiceUnavailable             -- 5xx or no answer: retry later

A filter or order the client cannot read raises ``ValueError`` naming the
position, before any request.
"""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt
import orjson

from runstream.events import decode_json_value

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Client", "ClientError", "RequestRefused", "ServiceUnavailable", "parse_filter", "parse_order_by"]

#: Runs per page of ``GET /api/runs`` (the service's maximum).
_PAGE_RUNS: Final = 1000
#: Points per page of a series.
_PAGE_POINTS: Final = 1_000_000
_RUN_COLUMNS: Final = (
    "id",
    "experiment",
    "display_name",
    "status",
    "parent_id",
    "created_at",
    "started_at",
    "ended_at",
)
_NUMBER: Final = r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|infinity|nan)"
_NAME: Final = r"(?:`[^`]+`|[^\s<>=!()`]+)"
_METRIC_CLAUSE: Final = re.compile(
    rf"(?:(?P<agg>min|max|last)\(\s*)?metrics\.(?P<name>{_NAME})(?(agg)\s*\))\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<num>{_NUMBER})",
    re.IGNORECASE,
)
_PAIR_CLAUSE: Final = re.compile(
    rf"(?P<kind>tags|properties)\.(?P<key>{_NAME})(?:\s*=\s*(?P<q>['\"])(?P<value>.*?)(?P=q))?"
)
_STATUS_CLAUSE: Final = re.compile(r"(?:attributes\.)?status\s*=\s*(?P<q>['\"])(?P<value>.*?)(?P=q)", re.IGNORECASE)
_AND: Final = re.compile(r"\s+and\s+", re.IGNORECASE)
_ORDER: Final = re.compile(
    rf"^\s*(?:(?P<agg>min|max|last)\(\s*metrics\.(?P<aname>{_NAME})\s*\)|metrics\.(?P<name>{_NAME})"
    r"|(?P<created>created_at|start_time|attributes\.start_time))(?:\s+(?P<dir>asc|desc))?\s*$",
    re.IGNORECASE,
)


class ClientError(Exception):
    """Root of the client's errors."""


class RequestRefused(ClientError, ValueError):
    """The service answered 4xx; ``status``, ``code`` and ``parameter`` say why."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        self.status = status
        self.code: str | None = error.get("code")
        self.parameter: str | None = error.get("parameter")
        super().__init__(f"{status} {self.code}: {error.get('message')}")


class ServiceUnavailable(ClientError):
    """The service answered 5xx or not at all."""


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith("`") else name


def parse_filter(text: str) -> list[tuple[str, str]]:
    """The query parameters of ``GET /api/runs`` for a filter (see the module docstring).

    ValueError names the position of what cannot be read.
    """
    params: list[tuple[str, str]] = []
    end = len(text.rstrip())
    pos = len(text) - len(text.lstrip())
    while pos < end:
        param, pos = _clause(text, pos)
        params.append(param)
        if pos >= end:
            break
        joined = _AND.match(text, pos)
        if joined is None:
            raise ValueError(f"filter: expected 'and' at position {pos}: {text[pos : pos + 30]!r}")
        pos = joined.end()
    return params


def _clause(text: str, pos: int) -> tuple[tuple[str, str], int]:
    """One condition at ``pos``: its query parameter, and where it ends."""
    for pattern in (_METRIC_CLAUSE, _PAIR_CLAUSE, _STATUS_CLAUSE):
        found = pattern.match(text, pos)
        if found is not None:
            break
    else:
        raise ValueError(
            f"filter: cannot read a condition at position {pos}: {text[pos : pos + 30]!r}; expected "
            "metrics.NAME > 1, min(metrics.NAME) < 1, tags.KEY = 'v', properties.KEY = 'v' or status = 'S'"
        )
    groups = found.groupdict()
    if pattern is _METRIC_CLAUSE:
        name = _unquote(groups["name"])
        target = f"{groups['agg'].lower()}({name})" if groups["agg"] else name
        return ("where", f"{target}{groups['op']}{float(groups['num'])!r}"), found.end()
    if pattern is _PAIR_CLAUSE:
        key = _unquote(groups["key"])
        parameter = "tag" if groups["kind"].lower() == "tags" else "property"
        return (parameter, key if groups["value"] is None else f"{key}:{groups['value']}"), found.end()
    return ("status", groups["value"]), found.end()


def parse_order_by(order_by: str | Sequence[str] | None) -> str | None:
    """The ``sort`` parameter for ``order_by`` (one key); ValueError saying what is wrong."""
    keys = [order_by] if isinstance(order_by, str) else list(order_by or ())
    if not keys:
        return None
    if len(keys) > 1:
        raise ValueError(f"order_by: the service sorts by one key, got {len(keys)}")
    found = _ORDER.match(keys[0])
    if found is None:
        raise ValueError(
            f"order_by: cannot read {keys[0][:60]!r} at position 0; expected 'metrics.NAME [ASC|DESC]', "
            "'min(metrics.NAME)' or 'created_at [ASC|DESC]'"
        )
    sign = "-" if (found["dir"] or "asc").lower() == "desc" else ""
    if found["created"]:
        return f"{sign}created_at"
    if found["agg"]:
        return f"{sign}{found['agg'].lower()}({_unquote(found['aname'])})"
    return f"{sign}last({_unquote(found['name'])})"


class Client:
    """The query service at ``url``, with ``token`` (the read token suffices); holds no connection."""

    def __init__(self, url: str, token: str | None = None, *, timeout_seconds: float = 60.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url[:60]!r}")
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout_seconds

    # --- runs ---------------------------------------------------------------

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A run's details (``GET /api/runs/{id}``)."""
        run: dict[str, Any] = self._json(f"/api/runs/{_quote(run_id)}")
        return run

    def list_runs(
        self,
        experiment: str | None = None,
        *,
        filter: str | None = None,  # noqa: A002 - mlflow's name for it
        order_by: str | Sequence[str] | None = None,
        max_results: int | None = None,
    ) -> list[dict[str, Any]]:
        """Matching runs as dicts (each with ``metrics``: the last value of every scalar metric), all pages."""
        if max_results is not None and max_results < 1:
            raise ValueError(f"max_results must be at least 1, got {max_results}")
        params = [("include", "metrics"), *parse_filter(filter or "")]
        if experiment is not None:
            params.append(("experiment", experiment))
        if (sort := parse_order_by(order_by)) is not None:
            params.append(("sort", sort))
        return list(self._pages(params, max_results))

    def _pages(self, params: list[tuple[str, str]], max_results: int | None) -> Iterator[dict[str, Any]]:
        cursor, sent = None, 0
        while max_results is None or sent < max_results:
            limit = _PAGE_RUNS if max_results is None else min(_PAGE_RUNS, max_results - sent)
            page = self._json("/api/runs", [*params, ("limit", str(limit))] + ([("cursor", cursor)] if cursor else []))
            yield from page["runs"]
            sent += len(page["runs"])
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def search_runs(
        self,
        experiment: str | None = None,
        *,
        filter: str | None = None,  # noqa: A002 - mlflow's name for it
        order_by: str | Sequence[str] | None = None,
        max_results: int | None = None,
    ) -> pd.DataFrame:
        """:meth:`list_runs` as a pandas DataFrame: a row per run, metrics, tags and properties as columns."""
        import pandas as pd

        runs = self.list_runs(experiment, filter=filter, order_by=order_by, max_results=max_results)
        frame = pd.DataFrame([run_row(run) for run in runs], columns=None if runs else ["run_id", *_RUN_COLUMNS[1:]])
        for column in ("created_at", "started_at", "ended_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        return frame

    # --- series ---------------------------------------------------------------

    def get_series(
        self, run_id: str, metric: str, *, as_: Literal["numpy", "pandas"] = "numpy"
    ) -> npt.NDArray[Any] | pd.DataFrame:
        """Every point of a scalar metric in (time, ordinal) order.

        ``as_="numpy"``: a structured array with fields ``step`` (int64), ``time``
        (float64 epoch seconds) and ``value`` (float64, exact, NaN and ±Inf
        included; ``object`` holding str for a text metric). ``as_="pandas"``:
        a DataFrame with those columns.
        """
        if as_ not in ("numpy", "pandas"):
            raise ValueError(f"as_ must be 'numpy' or 'pandas', got {as_!r}")
        steps, times, values = self.series_columns(run_id, metric)
        text = any(isinstance(v, str) for v in values)
        if as_ == "pandas":
            import pandas as pd

            value_column = pd.Series(values, dtype=object if text else np.float64)
            return pd.DataFrame({"step": np.asarray(steps, np.int64), "time": np.asarray(times), "value": value_column})
        out = np.empty(
            len(steps), dtype=[("step", np.int64), ("time", np.float64), ("value", object if text else np.float64)]
        )
        out["step"], out["time"], out["value"] = steps, times, values
        return out

    def series_columns(self, run_id: str, metric: str) -> tuple[list[int], list[float], list[Any]]:
        """Steps, times and values of a scalar metric, read page by page."""
        steps: list[int] = []
        times: list[float] = []
        values: list[Any] = []
        cursor: str | None = None
        while True:
            params = [("name", metric), ("limit", str(_PAGE_POINTS))] + ([("cursor", cursor)] if cursor else [])
            page = self._json(f"/api/runs/{_quote(run_id)}/series", params)
            steps += page["steps"]
            times += page["times"]
            values += [
                float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in page["values"]
            ]
            cursor = page["next_cursor"]
            if cursor is None:
                return steps, times, values

    # --- files ------------------------------------------------------------------

    def list_files(self, run_id: str) -> list[dict[str, Any]]:
        """The run's files: ``name``, ``size``, ``digest``, ``content_type``, ``created_at``."""
        files: list[dict[str, Any]] = self._json(f"/api/runs/{_quote(run_id)}/files")["files"]
        return files

    def download_artifacts(self, run_id: str, path: str = "", dst_path: str | Path = ".") -> Path:
        """Download the run's file ``path``, or every file under the folder ``path`` ("" for all), into ``dst_path``.

        Files keep their names relative to the run (``outputs/model.pkl`` lands in
        ``dst_path/outputs/model.pkl``); returns the local path of ``path``.
        """
        prefix = path.strip("/")
        names = [f["name"] for f in self.list_files(run_id)]
        chosen = [n for n in names if not prefix or n == prefix or n.startswith(prefix + "/")]
        if not chosen:
            raise RequestRefused(404, {"code": "file_not_found", "message": f"run {run_id} has no file {path!r}"})
        root = Path(dst_path)
        for name in chosen:
            target = root.joinpath(*PurePosixPath(name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with (
                self._open(f"/api/runs/{_quote(run_id)}/files/{_quote(name, safe='/')}") as resp,
                target.open("wb") as out,
            ):
                shutil.copyfileobj(resp, out, 1 << 20)
        return root.joinpath(*PurePosixPath(prefix).parts) if prefix else root

    # --- alert rules ----------------------------------------------------------------

    def add_alert_rule(self, rule: dict[str, Any]) -> dict[str, Any]:
        """Add an alert rule (``POST /api/alerts``; a write: give the client the write token when one is set)."""
        added: dict[str, Any] = self._json("/api/alerts", method="POST", body=orjson.dumps(rule))
        return added

    def alert_rules(self) -> list[dict[str, Any]]:
        """Every alert rule, with ``fired``, ``last_fired_at`` and ``last_error``."""
        rules: list[dict[str, Any]] = self._json("/api/alerts")["rules"]
        return rules

    def delete_alert_rule(self, rule_id: int) -> None:
        self._json(f"/api/alerts/{int(rule_id)}", method="DELETE")

    # --- HTTP ---------------------------------------------------------------------

    def _json(
        self, path: str, params: Sequence[tuple[str, str]] = (), *, method: str = "GET", body: bytes | None = None
    ) -> Any:
        with self._open(path, params, method=method, body=body) as resp:
            return decode_json_value(orjson.loads(resp.read()))

    def _open(
        self, path: str, params: Sequence[tuple[str, str]] = (), *, method: str = "GET", body: bytes | None = None
    ) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(list(params)) if params else "")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        # The scheme is checked in __init__.
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
        try:
            return urllib.request.urlopen(request, timeout=self._timeout)  # noqa: S310
        except urllib.error.HTTPError as exc:
            body = exc.read()
            exc.close()
            if exc.code >= 500:
                raise ServiceUnavailable(f"{exc.code} from {path}: {body[:200]!r}") from None
            raise RequestRefused(exc.code, _error(body)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ServiceUnavailable(f"{self.url} did not answer: {exc}") from None


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """One run's details flattened into a row: the run columns, then ``metrics.*``, ``tags.*``, ``properties.*``."""
    row = {"run_id": run["id"], **{k: run.get(k) for k in _RUN_COLUMNS[1:]}}
    for prefix, field in (("metrics", "metrics"), ("tags", "tags"), ("properties", "properties")):
        for key, value in sorted((run.get(field) or {}).items()):
            row[f"{prefix}.{key}"] = float(value) if prefix == "metrics" and _is_number(value) else value
    return row


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _error(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"message": body[:200].decode("utf-8", "replace")}
    error = doc.get("error") if isinstance(doc, dict) else None
    return error if isinstance(error, dict) else {"message": str(doc)[:200]}


def _quote(text: str, safe: str = "") -> str:
    return urllib.parse.quote(str(text), safe=safe)
