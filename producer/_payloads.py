"""Turning what the caller hands over into what a run stores: figures, file names, error details."""

from __future__ import annotations

import io
import os
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from producer import _validate
from producer._errors import MetricTypeError, MetricValueError
from runstream.events import encode_json_value
from runstream.names import MAX_FILE_NAME_CHARS, file_name_problem


def render_png(name: str, plot: Any) -> bytes:
    savefig = getattr(plot, "savefig", None)
    if savefig is None:
        raise MetricTypeError(
            name, f"log_image() plot must be a matplotlib figure or pyplot, got {type(plot).__name__}"
        )
    out = io.BytesIO()
    savefig(out, format="png")
    return out.getvalue()


def file_name(name: Any) -> str:
    """A run file name: a relative path with '/' separators, as :mod:`runstream.names` defines it.

    Backslashes are Windows separators here and become '/'.
    """
    if not isinstance(name, str):
        raise MetricTypeError(repr(name), f"file name must be a str, got {type(name).__name__}")
    if len(name) > MAX_FILE_NAME_CHARS:
        raise MetricValueError(name[:40] + "...", f"file name is longer than {MAX_FILE_NAME_CHARS} characters")
    _validate.require_utf8(name, name, "file name")
    normalized = name.replace("\\", "/")
    problem = file_name_problem(normalized)
    if problem is not None:
        raise MetricValueError(name, f"file name {problem}")
    return normalized


def walk(root: Path) -> Iterator[Path]:
    for directory, _, files in os.walk(root):
        for file in files:
            yield Path(directory) / file


def error_with_code(details: Any, code: Any) -> Any:
    """:func:`error_object`, with v1's ``error_code`` (a str) as its ``code``."""
    error = error_object(details)
    if code is None:
        return error
    if not isinstance(code, str):
        raise MetricTypeError("error_code", f"fail() error_code must be a str, got {type(code).__name__}")
    _check_error_text(code)
    return {**(error or {}), "code": code}


def error_object(details: Any) -> Any:
    """A run's error as stored (PostgreSQL jsonb): from an exception, a message or a dict.

    An exception's text is escaped where jsonb could not hold it (NUL, lone
    surrogates): it usually reaches here on the way out of a failing block,
    where raising would hide the exception and leave the run unfinished. A
    message or dict given on purpose is checked instead, like any logged value.
    """
    if details is None:
        return None
    if isinstance(details, BaseException):
        return {
            "type": type(details).__name__,
            "message": _storable(str(details)),
            "traceback": _storable("".join(traceback.format_exception(details))),
        }
    if isinstance(details, str):
        _check_error_text(details)
        return {"message": details}
    if isinstance(details, Mapping):
        encoded = encode_json_value(dict(details))
        _check_error_text(encoded)
        try:
            orjson.dumps(encoded)
        except TypeError as exc:
            raise MetricTypeError("error_details", f"fail() details must be JSON-serialisable: {exc}") from None
        return encoded
    raise MetricTypeError("error_details", f"fail() takes an exception, a str or a dict, got {type(details).__name__}")


def _storable(text: str) -> str:
    """``text`` with NUL and lone surrogates written as backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


def _check_error_text(details: Any) -> None:
    for text in _validate.json_strings(details):
        _validate.require_utf8("error_details", text, "a string in fail() details")
        _validate.require_no_nul("error_details", text, "a string in fail() details")
