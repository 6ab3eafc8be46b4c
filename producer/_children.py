"""Azure ML v1's run family: ``create_children``, ``run.parent`` and ``run.type``.

``create_children`` makes each child as ``child_run()`` does (``Running``, a
producer session of its own) and tags it in the same first batch as its
start. ``parent`` and ``type`` never change once a run exists, so what the
query service says of them is read once per run object and kept
(:func:`facts`); a run this process started knows them without asking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from producer import _validate
from producer._errors import RunNotFoundError, UsageError
from producer._listing import RUN_TYPE_PROPERTY

if TYPE_CHECKING:
    from producer._run import Run

#: v1's limit and the tag ``count=`` children get (their number, from 0).
MAX_CHILDREN = 100
BATCH_TAG = "azureml.batch_child_number"


def create(run: Run, count: int | None, tag_key: str | None, tag_values: Sequence[Any] | None) -> list[Run]:
    """The children, checked whole before the first is created (v1's rules and messages)."""
    if tag_key is None and tag_values is None and count is None:
        raise UsageError("Either count or tag_key and tag_values must be set")
    if tag_key is not None or tag_values is not None:
        if tag_key is None:
            raise UsageError("tag_key must not be null when tag_values is set")
        if tag_values is None:
            raise UsageError("tag_values must not be null when tag_key is set")
        if count is not None:
            raise UsageError("count can not be set when tag_key and tag_values are set")
        if isinstance(tag_values, str | bytes):
            raise TypeError("tag_values must be a list of values, not one string")
        values = list(tag_values)
    else:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise TypeError(f"count must be a non-negative int, got {count!r}")
        tag_key, values = BATCH_TAG, list(range(count))
    if len(values) > MAX_CHILDREN:
        raise UsageError(f"create_children can not create more than {MAX_CHILDREN} runs")
    key = _validate.name(tag_key, "tag")
    for value in values:
        _validate.tag_value(key, value)
    children = []
    for value in values:
        child = run.child_run()
        child.tag(key, value)
        children.append(child)
    return children


def facts(run: Run) -> dict[str, Any]:
    """The query service's record of ``run``, read once ({} if it has none yet)."""
    if run._facts is None:
        if run.offline:
            return {}
        try:
            run._facts = dict(run._read_json(f"/api/runs/{run._stored_id}"))
        except RunNotFoundError:
            return {}  # not ingested yet: ask again next time
    return run._facts


def parent(run: Run) -> Run | None:
    if run._parent_run is not None:
        return run._parent_run
    parent_id = run.parent_id
    if parent_id is None and not run._session.owner:
        parent_id = facts(run).get("parent_id")
    if parent_id is None:
        return None
    from producer._run import Run

    run._parent_run = Run(run.experiment, parent_id, spool_dir=run._spool_dir, offline=run.offline)
    return run._parent_run


def run_type(run: Run) -> str | None:
    if RUN_TYPE_PROPERTY in run._properties or run._session.owner:
        return run._properties.get(RUN_TYPE_PROPERTY)
    value = (facts(run).get("properties") or {}).get(RUN_TYPE_PROPERTY)
    return str(value) if value is not None else None
