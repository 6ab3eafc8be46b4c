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

from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from producer._consistency import Reader
from producer._errors import UsageError

if TYPE_CHECKING:
    pass

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
