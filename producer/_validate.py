"""Checks on what the caller logs: names, scalar values, steps, lists, rows and tables.

Every function raises :class:`MetricTypeError` or :class:`MetricValueError`
naming the metric, and returns the value in the form the buffer stores
(numpy scalars become Python scalars, subclasses become their base type).

Limits (documented in the package docstring): names are 1..255 characters
without control characters; strings are at most :data:`MAX_STRING_CHARS`
characters; integers fit in 64 bits (they are stored as int64 and widened to
float by ingest); steps are integers in the int64 range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from producer._errors import MetricTypeError, MetricValueError
from runstream.events import ScalarKind, encode_json_value

MAX_NAME_CHARS: Final = 255
MAX_STRING_CHARS: Final = 4096
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
# C0 and C1 control characters (includes \n, \t, DEL).
CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ACCEPTED: Final = "bool, int, float or str (numpy scalars are converted)"


def name(metric: Any, what: str = "metric") -> str:
    """A metric, column, tag or property name: 1..255 characters, no control characters."""
    if type(metric) is not str:
        if not isinstance(metric, str):
            raise MetricTypeError(repr(metric), f"{what} name must be a str, got {type(metric).__name__}")
        metric = str(metric)
    if not metric:
        raise MetricValueError(metric, f"{what} name is empty")
    if len(metric) > MAX_NAME_CHARS:
        raise MetricValueError(
            metric[:40] + "...", f"{what} name has {len(metric)} characters, more than {MAX_NAME_CHARS}"
        )
    found = CONTROL.search(metric)
    if found:
        raise MetricValueError(metric, f"{what} name contains the control character {found.group()!r}")
    return str(metric)


def _numpy_item(value: Any) -> Any:
    """A numpy scalar or 0-d array as a Python scalar, without importing numpy."""
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == () and hasattr(value, "item"):
        return value.item()
    return value


def scalar(metric: str, value: Any) -> tuple[ScalarKind, bool | int | float | str]:
    """The kind and stored form of a value for ``log``; NaN and ±Inf are values."""
    kind = type(value)
    if kind is float:
        return "float", value
    if kind is int:
        return "int", _int64(metric, value)
    if kind is bool:
        return "bool", value
    if kind is str:
        return "str", _string(metric, value)
    value = _numpy_item(value)
    if isinstance(value, bool):
        return "bool", bool(value)
    if isinstance(value, int):
        return "int", _int64(metric, int(value))
    if isinstance(value, float):
        return "float", float(value)
    if isinstance(value, str):
        return "str", _string(metric, str(value))
    if isinstance(value, list | tuple | set | frozenset | range) or _is_iterator(value) or hasattr(value, "__array__"):
        raise MetricTypeError(
            metric, f"log() takes one {_ACCEPTED}, got a {type(value).__name__}; use log_list() for a sequence"
        )
    if isinstance(value, Mapping):
        raise MetricTypeError(
            metric, f"log() takes one {_ACCEPTED}, got a {type(value).__name__}; use log_row() or log_table()"
        )
    raise MetricTypeError(metric, f"log() takes one {_ACCEPTED}, got {type(value).__name__}")


def _is_iterator(value: Any) -> bool:
    return hasattr(value, "__next__") and hasattr(value, "__iter__")


def _int64(metric: str, value: int) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise MetricValueError(metric, f"integer {value} does not fit in 64 bits")
    return value


def _string(metric: str, value: str) -> str:
    if len(value) > MAX_STRING_CHARS:
        raise MetricValueError(metric, f"string value has {len(value)} characters, more than {MAX_STRING_CHARS}")
    return value


def step(metric: str, value: Any) -> int:
    """An explicit step: an integer (numpy integers too) in the int64 range; bools are refused."""
    value = _numpy_item(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetricTypeError(metric, f"step must be an int, got {type(value).__name__}")
    return _int64(metric, int(value))


def json_scalar(metric: str, value: Any) -> Any:
    """One cell of a list, row or table: a scalar or None, made JSON-safe."""
    if value is None:
        return None
    _, stored = scalar(metric, value)
    if isinstance(stored, float) and not math.isfinite(stored):
        # The wire format's tag for values plain JSON cannot carry.
        return encode_json_value(stored)
    return stored


def values(metric: str, items: Any) -> list[Any]:
    """The values of ``log_list``: any finite iterable of scalars (not a str or a mapping)."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise MetricTypeError(metric, f"log_list() takes a list of values, got {type(items).__name__}")
    return [json_scalar(metric, v) for v in items]


def row(metric: str, columns: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of ``log_row``: at least one, each a scalar or None."""
    if not columns:
        raise MetricValueError(metric, "log_row() needs at least one column")
    return {name(c, "column"): json_scalar(metric, v) for c, v in columns.items()}


def table(metric: str, columns: Any) -> dict[str, list[Any]]:
    """The columns of ``log_table``: a mapping of names to equal-length sequences."""
    if not isinstance(columns, Mapping):
        raise MetricTypeError(metric, f"log_table() takes a dict of columns, got {type(columns).__name__}")
    if not columns:
        raise MetricValueError(metric, "log_table() needs at least one column")
    table: dict[str, list[Any]] = {}
    for column, items in columns.items():
        table[name(column, "column")] = values(metric, items)
    lengths = {c: len(v) for c, v in table.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{c}={n}" for c, n in lengths.items())
        raise MetricValueError(metric, f"log_table() columns differ in length ({described})")
    return table


def tag_value(key: str, value: Any) -> str | None:
    """A tag's value: a str (within the string limit) or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MetricTypeError(key, f"tag value must be a str or None, got {type(value).__name__}")
    return _string(key, str(value))


def description(metric: str, value: Any) -> str:
    """A series' description: a str within the string limit."""
    if not isinstance(value, str):
        raise MetricTypeError(metric, f"description must be a str, got {type(value).__name__}")
    return _string(metric, str(value))


def property_value(key: str, value: Any) -> str:
    """A property's value: a str within the string limit."""
    if not isinstance(value, str):
        raise MetricTypeError(key, f"property value must be a str, got {type(value).__name__}")
    return _string(key, str(value))
