"""Checks on what the caller logs: names, scalar values, steps, lists, rows and tables.

Every function raises :class:`MetricTypeError` or :class:`MetricValueError`
naming the metric, and returns the value in the form the buffer stores
(numpy scalars become Python scalars, subclasses become their base type).

Limits (documented in the package docstring): names are 1..255 characters
without control characters; strings are at most :data:`MAX_STRING_CHARS`
characters and valid UTF-8 (no lone surrogate: no record could carry one);
strings PostgreSQL stores as ``text`` or ``jsonb`` hold no NUL (scalar str
values, tag and property values, descriptions - list, row and table cells are
``json``, which keeps NUL as ``\\u0000``, so they may); ``log`` integers are
within ±2**53, since scalar series are stored as float64; list, row and table
integers (stored as JSON, exactly) and steps fit in 64 bits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from producer._errors import MetricTypeError, MetricValueError
from runstream.events import ScalarKind, encode_json_value

MAX_NAME_CHARS: Final = 255
MAX_STRING_CHARS: Final = 4096
#: The largest magnitude of an int ``log()`` takes: float64, which scalar series are stored as, is exact to here.
MAX_EXACT_INT: Final = 2**53
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
# C0 and C1 control characters (includes \n, \t, DEL).
CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ACCEPTED: Final = "bool, int, float or str (numpy scalars are converted)"
_CELL: Final = "bool, int, float, str or None (numpy scalars are converted)"
#: What each method takes, to open the message that refuses one of its values.
_TAKES: Final = {
    "log()": f"log() takes one {_ACCEPTED}",
    "log_metrics()": f"log_metrics() takes values that are each a {_ACCEPTED}",
    "log_list()": f"log_list() takes values that are each a {_CELL}",
    "log_row()": f"log_row() takes one {_CELL} per column",
    "log_table()": f"log_table() takes columns of values that are each a {_CELL}",
}
#: The method to use instead, by (method, what was given).
_HINTS: Final = {
    ("log()", "sequence"): "use log_list() for a sequence",
    ("log()", "mapping"): "use log_row() or log_table()",
    ("log_metrics()", "sequence"): "use log_list() for a sequence",
    ("log_metrics()", "mapping"): "use log_row() or log_table()",
    ("log_row()", "sequence"): "use log_table() for columns of several values",
}


def name(metric: Any, what: str = "metric") -> str:
    """A metric, column, tag or property name: 1..255 characters, no control characters."""
    if type(metric) is not str:
        if not isinstance(metric, str):
            raise MetricTypeError(repr(metric), f"{what} name must be a str, got {type(metric).__name__}")
        metric = own_str(metric)
    if not metric:
        raise MetricValueError(metric, f"{what} name is empty")
    if len(metric) > MAX_NAME_CHARS:
        raise MetricValueError(
            metric[:40] + "...", f"{what} name has {len(metric)} characters, more than {MAX_NAME_CHARS}"
        )
    found = CONTROL.search(metric)
    if found:
        raise MetricValueError(metric, f"{what} name contains the control character {found.group()!r}")
    require_utf8(metric, metric, f"{what} name")
    return str(metric)


def require_utf8(metric: str, value: str, what: str) -> None:
    """Refuse a lone surrogate: such a str has no UTF-8 form, so the record holding it could not be sent."""
    if value.isascii():
        return
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise MetricValueError(
            metric, f"{what} contains the lone surrogate {value[exc.start]!r}, which is not valid UTF-8"
        ) from None


def require_no_nul(metric: str, value: str, what: str) -> None:
    """Refuse NUL where PostgreSQL stores the string as text or jsonb: it would refuse the whole record."""
    if "\x00" in value:
        raise MetricValueError(metric, f"{what} contains NUL ('\\x00'), which PostgreSQL cannot store in text")


def own_str(value: str) -> str:
    """A str subclass's own characters as a plain str.

    ``str()`` of a subclass may differ from its content: numpy's ``str_``
    drops trailing NULs (``str(np.str_("a\\x00")) == "a"``, as does its
    ``.item()``), which would store a value other than the one given and let a
    NUL past the checks on it.
    """
    return str.__str__(value)


def _numpy_item(value: Any) -> Any:
    """A numpy scalar or 0-d array as a Python scalar, without importing numpy."""
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == () and hasattr(value, "item"):
        return value.item()
    return value


def _plain(value: Any) -> Any:
    """A numpy scalar or a subclass of a scalar type as the plain Python scalar; anything else as is."""
    if isinstance(value, str):
        return own_str(value)
    value = _numpy_item(value)
    for base in (bool, int, float):  # bool first: it is an int
        if isinstance(value, base):
            return base(value)
    return value


def scalar(metric: str, value: Any, method: str = "log()") -> tuple[ScalarKind, bool | int | float | str]:
    """The kind and stored form of a value for ``log`` (or ``log_metrics``); NaN and ±Inf are values."""
    kind = type(value)
    if kind is float:
        return "float", value
    if kind is not int and kind is not bool and kind is not str:
        value = _plain(value)
        kind = type(value)
        if kind is float:
            return "float", value
    if kind is int:
        return "int", _exact_int(metric, value)
    if kind is bool:
        return "bool", value
    if kind is str:
        text = _string(metric, value, "string value")
        require_no_nul(metric, text, "string value")
        return "str", text
    raise MetricTypeError(metric, _not_a_scalar(method, value))


def _not_a_scalar(method: str, value: Any) -> str:
    """Why ``method`` refuses ``value``, with the method to use instead when there is one."""
    if isinstance(value, list | tuple | set | frozenset | range) or _is_iterator(value) or hasattr(value, "__array__"):
        given: str | None = "sequence"
    else:
        given = "mapping" if isinstance(value, Mapping) else None
    got = f"a {type(value).__name__}" if given else type(value).__name__
    hint = _HINTS.get((method, given or ""))
    return f"{_TAKES[method]}, got {got}" + (f"; {hint}" if hint else "")


def _is_iterator(value: Any) -> bool:
    return hasattr(value, "__next__") and hasattr(value, "__iter__")


def _exact_int(metric: str, value: int) -> int:
    if not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
        raise MetricValueError(
            metric,
            f"integer {value} cannot be stored exactly (scalar series are float64, exact within ±2**53); "
            "log it as a float or a string",
        )
    return value


def _int64(metric: str, value: int) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise MetricValueError(metric, f"integer {value} does not fit in 64 bits")
    return value


def _string(metric: str, value: str, what: str) -> str:
    if len(value) > MAX_STRING_CHARS:
        raise MetricValueError(metric, f"{what} has {len(value)} characters, more than {MAX_STRING_CHARS}")
    require_utf8(metric, value, what)
    return value


def _text(metric: str, value: str, what: str) -> str:
    """A string PostgreSQL stores as text or jsonb: within the limit, UTF-8, no NUL."""
    _string(metric, value, what)
    require_no_nul(metric, value, what)
    return value


def step(metric: str, value: Any) -> int:
    """An explicit step: an integer (numpy integers too) in the int64 range; bools are refused."""
    value = _numpy_item(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetricTypeError(metric, f"step must be an int, got {type(value).__name__}")
    return _int64(metric, int(value))


def metrics(value: Any) -> dict[Any, Any]:
    """The mapping of ``log_metrics`` as a dict (its names and values are checked one by one later)."""
    if not isinstance(value, Mapping):
        raise MetricTypeError(
            repr(value)[:40], f"log_metrics() takes a dict of names to values, got {type(value).__name__}"
        )
    return dict(value)


def cell(metric: str, value: Any, method: str) -> Any:
    """One cell of a list, row or table (``method`` says which): a scalar or None, made JSON-safe.

    Stored as JSON: integers are exact within 64 bits, and a NUL is kept (as ``\\u0000``).
    """
    if value is None:
        return None
    value = _plain(value)
    kind = type(value)
    if kind is float:
        # The wire format's tag for values plain JSON cannot carry.
        return value if math.isfinite(value) else encode_json_value(value)
    if kind is int:
        return _int64(metric, value)
    if kind is bool:
        return value
    if kind is str:
        return _string(metric, value, "string value")
    raise MetricTypeError(metric, _not_a_scalar(method, value))


def values(metric: str, items: Any, method: str = "log_list()", column: str | None = None) -> list[Any]:
    """The values of ``log_list`` or a table's column: any finite iterable of scalars (not a str or a mapping)."""
    where = method if column is None else f"{method} column {column!r}"
    if getattr(items, "ndim", None) == 0:  # a numpy 0-d array is Iterable, yet iterating it raises
        raise MetricTypeError(metric, f"{where} takes a list of values, got a 0-d {type(items).__name__}")
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise MetricTypeError(metric, f"{where} takes a list of values, got {type(items).__name__}")
    return [cell(metric, v, method) for v in items]


def _column(metric: str, column: Any) -> str:
    """A column name; the error names the metric, and the column in its message."""
    try:
        return name(column, "column")
    except (MetricTypeError, MetricValueError) as exc:
        raise type(exc)(metric, f"{exc.problem}: {exc.metric!r}") from None


def row(metric: str, columns: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of ``log_row``: at least one, each a scalar or None."""
    if not columns:
        raise MetricValueError(metric, "log_row() needs at least one column")
    return {_column(metric, c): cell(metric, v, "log_row()") for c, v in columns.items()}


def table(metric: str, columns: Any) -> dict[str, list[Any]]:
    """The columns of ``log_table``: a mapping of names to equal-length sequences."""
    if not isinstance(columns, Mapping):
        raise MetricTypeError(metric, f"log_table() takes a dict of columns, got {type(columns).__name__}")
    if not columns:
        raise MetricValueError(metric, "log_table() needs at least one column")
    table: dict[str, list[Any]] = {}
    for column, items in columns.items():
        checked = _column(metric, column)
        table[checked] = values(metric, items, "log_table()", checked)
    lengths = {c: len(v) for c, v in table.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{c}={n}" for c, n in lengths.items())
        raise MetricValueError(metric, f"log_table() columns differ in length ({described})")
    return table


def tag_value(key: str, value: Any) -> str | None:
    """A tag's value: None, or as text (within the string limit, no NUL).

    Anything else than a str is stored as ``str(value)``, as Azure ML v1 does
    (``run.tag("rank", 1)`` stores ``'1'``, ``True`` stores ``'True'``).
    """
    if value is None:
        return None
    return _text(key, _as_text(key, value, "tag value"), "tag value")


def description(metric: str, value: Any) -> str:
    """A series' description: a str within the string limit, no NUL (it is stored as a property)."""
    if not isinstance(value, str):
        raise MetricTypeError(metric, f"description must be a str, got {type(value).__name__}")
    return _text(metric, own_str(value), "description")


def property_value(key: str, value: Any) -> str:
    """A property's value as text within the string limit, no NUL; not None.

    Like tags, anything else than a str is stored as ``str(value)`` (Azure ML v1).
    """
    if value is None:
        raise MetricTypeError(key, "property value must be a str (or convert to one), got None")
    return _text(key, _as_text(key, value, "property value"), "property value")


def _as_text(key: str, value: Any, what: str) -> str:
    if isinstance(value, str):
        return own_str(value)  # a str subclass (numpy.str_) as a plain str, all of it
    try:
        return str(value)
    except Exception as exc:  # noqa: BLE001 - whatever the object's __str__ raises, the caller learns which
        problem = f"{what} of type {type(value).__name__} cannot be converted to str: {exc!r}"
        raise MetricTypeError(key, problem) from None


def json_strings(value: Any) -> Iterator[str]:
    """Every str in a JSON-shaped value, keys included (for checks on free-form details)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from json_strings(key)
            yield from json_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from json_strings(item)
