"""Run listings with Azure ML v1's filters: ``Experiment.get_runs`` and ``Run.get_children``.

v1 filters by ``tags`` and ``properties`` (a key, which must be present, or a
dict of keys and values, None meaning any value), by ``type`` (the
``azureml.runsource`` property: ``azureml.scriptrun`` for submitted scripts)
and ``status``, and lists top-level runs unless ``include_children``. They
become the query service's ``tag``, ``property``, ``status`` and
``top_level`` parameters of ``GET /api/runs``, so the filtering happens in
PostgreSQL; keys cannot contain ``:`` (the parameters' separator).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from producer._consistency import LEDGER, Reader
from producer._errors import UsageError

if TYPE_CHECKING:
    from producer._run import Run

#: The property that holds v1's run type.
RUN_TYPE_PROPERTY = "azureml.runsource"

Params = list[tuple[str, str]]


def filters(
    *,
    tags: str | Mapping[str, Any] | None = None,
    properties: str | Mapping[str, Any] | None = None,
    type: str | None = None,  # noqa: A002 - v1's parameter name
    status: str | None = None,
    include_children: bool = True,
) -> Params:
    """The query parameters for these v1 filters."""
    params = _pairs("tag", tags) + _pairs("property", properties)
    if type is not None:
        params += _pairs("property", {RUN_TYPE_PROPERTY: type})
    if status is not None:
        params.append(("status", _text(status, "status")))
    if not include_children:
        params.append(("top_level", "true"))
    return params


def _pairs(parameter: str, wanted: str | Mapping[str, Any] | None) -> Params:
    if wanted is None:
        return []
    if isinstance(wanted, str):
        wanted = {wanted: None}
    if not isinstance(wanted, Mapping):
        raise TypeError(f"{parameter} filter must be a key or a dict, got {type(wanted).__name__}")
    out = []
    for key, value in wanted.items():
        key = _text(key, f"{parameter} key")
        if ":" in key:
            raise UsageError(f"{parameter} key {key!r}: keys with ':' cannot be filtered on")
        out.append((parameter, key if value is None else f"{key}:{value}"))
    return out


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a non-empty str, got {value!r}"[:200])
    return value


def docs(reader: Reader, params: Params, *, runs: Collection[str]) -> Iterator[dict[str, Any]]:
    """Every run the listing returns for ``params``, page after page, with what this process wrote to ``runs``."""
    for page in reader.pages("/api/runs", params, runs=runs):
        yield from page["runs"]


class Children:
    """A run's children as the query service lists them (with this process's writes), attached by ``attach``."""

    def __init__(self, reader: Reader, attach: Callable[[Mapping[str, Any]], Run]) -> None:
        self._reader = reader
        self._attach = attach

    def children(self, parent_id: str, wanted: Params) -> list[Run]:
        """The runs whose parent is ``parent_id`` that match ``wanted``, oldest first."""
        params = [("parent", parent_id), ("sort", "created_at"), *wanted]
        return [self._attach(doc) for doc in docs(self._reader, params, runs=LEDGER.children(parent_id))]

    def filtered(self, run_id: str, wanted: Params, recursive: bool) -> list[Run]:
        """Level by level: each level's matching runs are kept; all of its runs are the next level's parents."""
        found: list[Run] = []
        parents = [run_id]
        while parents:
            found += [run for parent_id in parents for run in self.children(parent_id, wanted)]
            parents = [run.id for p in parents for run in self.children(p, [])] if recursive else []
        return found
