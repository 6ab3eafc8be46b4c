"""Azure ML v1's run family: ``create_children``, ``run.parent`` and ``run.type``.

``create_children`` makes each child as ``child_run()`` does (``Running``, a
producer session of its own) and tags it in the same first batch as its
start. ``parent`` and ``type`` never change once a run exists, so what the
query service says of them is read once per run object and kept
(:meth:`producer._readback.ReadBack.record`); a run this process started knows them without asking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from producer import _validate
from producer._errors import UsageError
from producer._listing import RUN_TYPE_PROPERTY

if TYPE_CHECKING:
    from producer._readback import ReadBack
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


def parent_id(known: str | None, owner: bool, reads: ReadBack) -> str | None:
    """The parent's id: ``known`` (the run object's), else, for a run this process did not start, the service's."""
    if known is None and not owner:
        return reads.record().get("parent_id")
    return known


def run_type(properties: Mapping[str, str], owner: bool, reads: ReadBack) -> str | None:
    """v1's run type: from this process's own properties when it has them or started the run, else the service's."""
    if RUN_TYPE_PROPERTY in properties or owner:
        return properties.get(RUN_TYPE_PROPERTY)
    value = (reads.record().get("properties") or {}).get(RUN_TYPE_PROPERTY)
    return str(value) if value is not None else None
