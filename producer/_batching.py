"""Turn drained buffer items into encoded records of at most MAX_RECORD_BYTES.

Sizes are estimated from upper bounds (packed columns at their base64 size,
JSON values at their longest form), so each event is encoded once, inside
``encode_batch``; sealed points whose bound exceeds the budget are split in halves,
which keeps points in order.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from producer._buffer import Item, SealedPoints
from runstream.events import MAX_RECORD_BYTES, Batch, WireEvent, encode_batch, scalars_event

#: Room for the envelope: version, run and session ids, seq.
BUDGET = MAX_RECORD_BYTES - 4096
# A packed 8-byte column costs 4/3 of 8 bytes per point in base64 (padding is
# in the fixed 200); bools travel as JSON ("false,").
_PACKED_BYTES = 11
_VALUE_BYTES = {"float": _PACKED_BYTES, "int": _PACKED_BYTES, "bool": 6}


def sealed_bound(sealed: SealedPoints) -> int:
    """An upper bound of the encoded size of ``sealed`` as one scalars event."""
    n = len(sealed.steps)
    base = 200 + 6 * len(sealed.name) + n * 3 * _PACKED_BYTES  # steps, times, ordinals
    per_value = _VALUE_BYTES.get(sealed.kind)
    if per_value is not None:
        return base + n * per_value
    return base + sum(6 * len(v) + 3 for v in sealed.values)


def split_sealed(sealed: SealedPoints, budget: int = BUDGET) -> Iterator[SealedPoints]:
    """``sealed`` in order, in pieces whose bound fits ``budget``."""
    if sealed_bound(sealed) <= budget or len(sealed.steps) <= 1:
        yield sealed
        return
    half = len(sealed.steps) // 2
    for part in (slice(None, half), slice(half, None)):
        yield from split_sealed(
            SealedPoints(
                sealed.name,
                sealed.kind,
                sealed.values[part],
                sealed.steps[part],
                sealed.times[part],
                sealed.ordinals[part],
            ),
            budget,
        )


def _sized(items: list[Item], budget: int) -> Iterator[tuple[Item, int]]:
    """Each item with its size bound; sealed points split to fit ``budget``."""
    for item in items:
        if isinstance(item, SealedPoints):
            for piece in split_sealed(item, budget):
                yield piece, sealed_bound(piece)
        else:
            yield item, len(orjson.dumps(item))


def group(items: list[Item], budget: int = BUDGET) -> Iterator[list[Item]]:
    """Consecutive items packed greedily into groups whose bound fits ``budget``.

    A group is one record. ``budget`` can be lowered (a broker whose record
    limit is below the format's): regrouping a group with half the budget
    splits it in order.
    """
    current: list[Item] = []
    size = 0
    for item, bound in _sized(items, budget):
        if current and size + bound + 1 > budget:
            yield current
            current, size = [], 0
        current.append(item)
        size += bound + 1
    if current:
        yield current


def to_event(item: Item) -> WireEvent:
    if isinstance(item, SealedPoints):
        return scalars_event(item.name, item.kind, item.steps, item.times, item.ordinals, item.values)
    return item


def splittable(items: list[Item]) -> bool:
    """Whether regrouping ``items`` with a smaller budget can make smaller records."""
    return len(items) > 1 or (isinstance(items[0], SealedPoints) and len(items[0].steps) > 1)


def encode(run_id: str, session_id: str, seq: int, items: list[Item]) -> bytes:
    """One record; the bounds guarantee the size, this checks it."""
    value = encode_batch(Batch(run_id, session_id, seq, [to_event(i) for i in items]))
    if len(value) > MAX_RECORD_BYTES:
        raise ValueError(f"record of {len(value)} bytes exceeds {MAX_RECORD_BYTES}")
    return value
