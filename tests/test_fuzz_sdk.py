"""Bad input through the SDK, read back through the real stack (issue 7, "Bad input: SDK").

Hypothesis generates names, values and shapes for ``log``, ``log_list``,
``log_row``, ``log_table``, ``tag``, ``add_properties`` and ``log_image``
(tag and property values of any type are stored as ``str(value)``, as Azure ML v1 does):
unicode, control characters, NUL and lone surrogates, strings around the
length limit, NaN and ±Inf, integers around 2**53 and past 64 bits, nested
containers, bytes, numpy scalars and arrays (0-d ones where a sequence is
due), tables whose columns differ in length. Every call either raises the
documented ``MetricTypeError``/``MetricValueError`` naming the metric (or the
column, tag or property at fault), or is accepted; what the documentation
rules out must raise; everything accepted by one run is then read back after
``complete()`` through Kafka, ingest and the query service, and must be
exactly what was logged - nothing more. So a NUL in a list, row or table cell
(json keeps it) is read back, and one where PostgreSQL would refuse the
record (text, jsonb) is refused at the call.
"""

from __future__ import annotations

import struct
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from producer import MAX_NAME_CHARS, Experiment, MetricTypeError, MetricValueError, Run, Workspace
from producer._validate import CONTROL, MAX_EXACT_INT
from tests.fuzzing import examples, fuzz_settings
from tests.test_producer import topic, workspace  # noqa: F401 - fixtures
from tests.test_producer_query import Figure, _png

pytestmark = [pytest.mark.usefixtures("ingest_worker", "query_service"), pytest.mark.fuzz]

EXAMPLES = examples(600)

# --- strategies -------------------------------------------------------------

_chars = st.characters()  # NUL and lone surrogates (category Cs) included
# Half the strings from a small alphabet, so that NUL and lone surrogates come often.
_text = st.text(_chars, max_size=40) | st.text(st.sampled_from("a☃\x00\ud800\udfff"), max_size=5)
_good_names = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)
_bad_names = st.one_of(
    st.text(_chars, max_size=12),  # control characters (NUL too) and surrogates: names must refuse them
    st.integers(MAX_NAME_CHARS - 3, MAX_NAME_CHARS + 2).map(lambda n: "n" * n),
    st.sampled_from(["", "loss/train", "a\\b", "..", " ", "🙂", "x\n", "\t", "\x85", "%00", "'; --"]),
    st.integers(),
    st.binary(max_size=4),
    st.none(),
    st.floats(),
)


def _half(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Good input as often as bad (one_of would weigh each branch of a nested one_of alike),
    so that plenty is accepted and read back."""
    return st.booleans().flatmap(lambda ok: good if ok else bad)


_names = _half(_good_names, _bad_names)
_numpy_scalars = st.one_of(
    st.floats().map(np.float64),
    st.floats(width=32).map(np.float32),
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 2**64 - 1).map(np.uint64),
    st.integers(-128, 127).map(np.int8),
    st.booleans().map(np.bool_),
    _text.map(np.str_),
    st.floats().map(np.array),  # 0-d arrays count as scalars
)
_scalars = st.one_of(
    st.floats(),
    st.integers(),  # past 64 bits too
    st.integers(2**53 - 2, 2**53 + 2).flatmap(lambda n: st.sampled_from([n, -n])),  # log()'s exact limit
    st.booleans(),
    _text,
    st.integers(4094, 4098).map(lambda n: "s" * n),  # around MAX_STRING_CHARS
    _numpy_scalars,
)
_containers = st.recursive(
    _scalars | st.none() | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(_text, inner, max_size=2),
    max_leaves=6,
)
_not_scalars = st.one_of(
    _containers,
    st.lists(st.floats(), max_size=4).map(np.array),
    st.sampled_from([object(), complex(1, 2), range(3), frozenset({1})]),
)
_values = _half(_scalars, _not_scalars)
_cells = _half(_scalars | st.none(), _not_scalars)
# The iterables log_list and log_table columns take (and things that are not).
_sequences = st.one_of(
    st.lists(_cells, max_size=5),
    st.lists(st.floats(), max_size=5).map(np.array),
    st.lists(st.integers(-(2**31), 2**31), max_size=5).map(lambda v: np.array(v, dtype=np.int64)),
    st.lists(_cells, max_size=3).map(tuple),
    _values,  # 0-d arrays among them
)
_steps = st.one_of(
    st.none(), st.integers(-5, 5), st.integers(), st.floats(), st.booleans(), st.integers(-5, 5).map(np.int32)
)
# log_row takes columns as keyword arguments: 'name' and 'description' are its own parameters.
_column_names = _half(_good_names, _bad_names.filter(lambda c: isinstance(c, str))).filter(
    lambda c: c not in ("name", "description")
)


@st.composite
def _tables(draw: st.DrawFn) -> Any:
    """Columns of one length as often as columns of several, and now and then no dict at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(_values)
    n = draw(st.integers(0, 4))
    names = draw(st.lists(_column_names, max_size=3, unique=True))
    return {c: draw(st.lists(_cells, min_size=n, max_size=n) if draw(st.booleans()) else _sequences) for c in names}


@dataclass
class Call:
    method: str
    name: Any
    args: dict[str, Any]
    run: Callable[[Run], Any]
    # Acceptable values of the error's ``metric``: the metric and what else is at fault.
    blamed: set[str] = field(default_factory=set)


def _blame(*names: Any) -> set[str]:
    """How an error may name each of ``names`` (a str as is or cut at 40, anything else by repr)."""
    out = set()
    for n in names:
        out |= {n, n[:40] + "..."} if isinstance(n, str) else {repr(n), repr(n)[:40]}
    return out


@st.composite
def _calls(draw: st.DrawFn, image: Path) -> Call:
    methods = ["log", "log_metrics", "log_list", "log_row", "log_table", "tag", "add_properties", "log_image"]
    method = draw(st.sampled_from(methods))
    name = draw(_names)
    if method == "log_metrics" and not _hashable(name):
        method = "log"  # no dict can hold this name
    if method == "log":
        value, step = draw(_values), draw(_steps)
        return Call(method, name, {"value": value, "step": step}, lambda r: r.log(name, value, step=step), _blame(name))
    if method == "log_metrics":  # a dict of one: the same promises as log()
        value, step = draw(_values), draw(_steps)
        args = {"value": value, "step": step}
        return Call(method, name, args, lambda r: r.log_metrics({name: value}, step), _blame(name))
    if method == "log_list":
        items = draw(_sequences)
        as_iterator = isinstance(items, list) and draw(st.booleans())
        return Call(
            method,
            name,
            {"value": items},
            lambda r: r.log_list(name, iter(items) if as_iterator else items),
            _blame(name),
        )
    if method == "log_row":
        columns = draw(st.dictionaries(_column_names, _cells, max_size=4))
        return Call(method, name, {"columns": columns}, lambda r: r.log_row(name, **columns), _blame(name, *columns))
    if method == "log_table":
        table = draw(_tables())
        blamed = _blame(name, *table) if isinstance(table, dict) else _blame(name)
        return Call(method, name, {"value": table}, lambda r: r.log_table(name, table), blamed)
    if method == "tag":
        value = draw(_half(st.none() | _text, _values))
        return Call(method, name, {"value": value}, lambda r: r.tag(name, value), _blame(name))
    if method == "add_properties":
        props = draw(
            st.one_of(st.dictionaries(_names.filter(_hashable), st.one_of(_text, _values), max_size=3), _values)
        )
        blamed = _blame(*props) if isinstance(props, dict) else {repr(props)[:40]}
        return Call(method, name, {"value": props}, lambda r: r.add_properties(props), blamed)
    path = draw(st.sampled_from([image, image.parent / "missing.png", image.parent, None]))
    plot = draw(st.sampled_from([None, Figure(), object()]))
    return Call(
        method, name, {"path": path, "plot": plot}, lambda r: r.log_image(name, path=path, plot=plot), _blame(name)
    )


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


# --- what the documentation promises ------------------------------------------


def _bad_name(name: Any) -> bool:
    """Names are str of 1..255 characters without control characters, valid UTF-8 (the SDK's docstring)."""
    return (
        not isinstance(name, str)
        or not 0 < len(name) <= MAX_NAME_CHARS
        or bool(CONTROL.search(name))
        or not _utf8(name)
    )


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _unstorable_text(value: Any) -> bool:
    """A str PostgreSQL cannot hold as text or jsonb (NUL), or no record can carry (a lone surrogate)."""
    return isinstance(value, str) and ("\x00" in value or not _utf8(value))


def _stored_text(value: Any) -> str | None:
    """A tag or property value as stored: Azure ML v1 keeps None and stores anything else as str(value)."""
    return None if value is None else str(value)


def _names_of(call: Call) -> list[tuple[str, Any]]:
    """(namespace, name) of everything the call would create."""
    if call.method == "tag":
        return [("tag", call.name)]
    if call.method == "add_properties":
        props = call.args["value"]
        return [("property", k) for k in props] if isinstance(props, Mapping) else []
    return [("metric", call.name)]


def _must_fail(call: Call) -> bool:
    if any(_bad_name(name) for _, name in _names_of(call)):
        return True
    args = call.args
    if call.method in ("log", "log_metrics"):
        value = _scalar_or_none(args["value"])
        # Scalar series are float64: an int past 2**53 would read back rounded.
        inexact = type(value) is int and abs(value) > MAX_EXACT_INT
        return value is None or inexact or _unstorable_text(value)
    if call.method == "tag":
        return _unstorable_text(_stored_text(args["value"]))
    if call.method == "add_properties":
        props = args["value"]
        return isinstance(props, Mapping) and any(v is None or _unstorable_text(str(v)) for v in props.values())
    if call.method in ("log_list", "log_row", "log_table"):
        # Cells are json (a NUL is kept), but a lone surrogate has no UTF-8 form.
        sequences = list(_sequences_of(call))
        cells = [_scalar_or_none(v) for items in sequences if _is_sequence(items) for v in items]
        return any(_is_0d(items) for items in sequences) or any(isinstance(c, str) and not _utf8(c) for c in cells)
    return False


def _sequences_of(call: Call) -> Iterable[Any]:
    """What a list, row or table call hands over as sequences of cells (a row: its one row)."""
    if call.method == "log_list":
        yield call.args["value"]
    elif call.method == "log_row":
        yield list(call.args["columns"].values())
    elif isinstance(call.args["value"], Mapping):
        yield from call.args["value"].values()


def _is_0d(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 0


def _is_sequence(value: Any) -> bool:
    return isinstance(value, list | tuple) or (isinstance(value, np.ndarray) and value.ndim == 1)


def _scalar_or_none(value: Any) -> Any:
    """The Python scalar a value is logged as, or None when it is no scalar.

    A str subclass is its own characters: numpy's ``str_("a\\x00").item()`` is
    ``"a"``, yet the value given holds a NUL, which must be refused or kept.
    """
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, np.generic | np.ndarray) and np.ndim(value) == 0:
        value = value.item()
    return value if isinstance(value, bool | int | float | str) else None


# --- what must be read back -------------------------------------------------


def _cell(value: Any) -> Any:
    """A list/row/table cell as stored: JSON keeps integers exact."""
    return None if value is None else _scalar_or_none(value)


def _expected(call: Call) -> Any:
    """What ``get_metrics()[name]`` returns for an accepted call (logged once)."""
    args = call.args
    if call.method in ("log", "log_metrics"):
        # Exactly what was logged: an int is accepted only where float64 holds it exactly.
        return _scalar_or_none(args["value"])
    if call.method == "log_list":
        return [_cell(v) for v in args["value"]]
    if call.method == "log_row":
        return {c: _cell(v) for c, v in args["columns"].items()}
    table = {c: [_cell(v) for v in items] for c, items in args["value"].items()}
    # Azure's shape: a table of exactly one row reads back like a row.
    return {c: v[0] for c, v in table.items()} if all(len(v) == 1 for v in table.values()) else table


def _canonical(value: Any) -> Any:
    """Exact comparison: floats by their bits (-0.0), types kept apart (True is not 1).

    Every NaN is one value: its sign and payload are not (PostgreSQL keeps one NaN).
    """
    if isinstance(value, float):
        return ("float", "NaN" if value != value else struct.pack("<d", value))
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return (type(value).__name__, value)


def _series_steps(query_url: str, run: Run, name: str) -> list[int]:
    query = urllib.parse.urlencode({"name": name})
    with urllib.request.urlopen(f"{query_url}/api/runs/{run.id}/series?{query}", timeout=30) as resp:  # noqa: S310
        return list(orjson.loads(resp.read())["steps"])


# --- the test ---------------------------------------------------------------


@dataclass
class Tally:
    accepted: list[Call] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    generated: Counter[str] = field(default_factory=Counter)
    used: set[tuple[str, Any]] = field(default_factory=set)

    def check(self, run: Run, call: Call) -> None:
        """Make the call; it raises the documented error naming the culprit, or it is accepted."""
        self.generated[call.method] += 1
        try:
            call.run(run)
        except (MetricTypeError, MetricValueError) as exc:
            assert isinstance(exc, TypeError | ValueError)
            assert exc.metric in call.blamed and repr(exc.metric) in str(exc), (call, exc)
            self.rejected[call.method] += 1
            return
        assert not _must_fail(call), f"accepted although documented as invalid: {call}"
        self.used.update(_names_of(call))
        self.accepted.append(call)


def _generate(image: Path) -> list[Call]:
    """EXAMPLES calls, drawn before any run exists: Hypothesis must not draw while the
    SDK's sender thread runs (aiokafka there uses the global random module)."""
    calls: list[Call] = []

    @fuzz_settings(EXAMPLES, suppress=list(HealthCheck))
    @given(_calls(image))
    def collect(call: Call) -> None:
        calls.append(call)

    collect()
    return calls


def test_every_call_is_rejected_naming_the_metric_or_round_trips_exactly(
    workspace: Workspace,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    image = tmp_path / "picture.png"
    image.write_bytes(_png(2, 2))
    calls = _generate(image)
    run = Experiment(workspace, "fuzz-sdk").start_logging()
    tally = Tally()
    for call in calls:
        # One run takes every call, so each name is used once: logged twice,
        # its expected shape would change (kind changes: test_producer_validation).
        names = _names_of(call)
        if all(_hashable(n) and (space, n) not in tally.used for space, n in names):
            tally.check(run, call)
    run.complete()
    assert run.wait_for_completion(timeout_seconds=60, poll_interval_seconds=0.1)["status"] == "Completed"
    _check_read_back(run, tally.accepted, workspace.query_url, image.read_bytes(), tmp_path)

    total = tally.generated.total()
    print(
        f"\n[fuzz-sdk] {total} calls generated: {len(tally.accepted)} accepted and read back exactly,"
        f" {tally.rejected.total()} rejected with MetricTypeError/MetricValueError naming the metric"
        f"\n[fuzz-sdk] generated {dict(tally.generated)}\n[fuzz-sdk] rejected {dict(tally.rejected)}"
    )
    assert total >= EXAMPLES // 2 and len(tally.accepted) >= EXAMPLES // 10 and tally.rejected


def _check_read_back(run: Run, accepted: Iterable[Call], query_url: str, picture: bytes, scratch: Path) -> None:
    metrics, tags, properties = run.get_metrics(), run.get_tags(), run.get_properties()
    expected_metrics: dict[str, Any] = {}
    expected_tags: dict[str, Any] = {}
    expected_properties: dict[str, Any] = {}
    for call in accepted:
        if call.method == "tag":
            expected_tags[call.name] = _stored_text(call.args["value"])
        elif call.method == "add_properties":
            expected_properties.update({k: _stored_text(v) for k, v in call.args["value"].items()})
        elif call.method == "log_image":
            # The event names the uploaded file, whose bytes are the picture's.
            target = run.download_file(metrics[call.name], scratch / "downloaded.png")
            assert target.read_bytes() == (picture if call.args["path"] is not None else _png(3, 3))
            target.unlink()
            expected_metrics[call.name] = metrics[call.name]
        else:
            expected_metrics[call.name] = _expected(call)
            if call.method in ("log", "log_metrics"):
                step = call.args["step"]
                want = [0] if step is None else [int(step)]
                assert _series_steps(query_url, run, call.name) == want, call
    assert metrics.keys() == expected_metrics.keys()
    wrong = {n: (metrics[n], v) for n, v in expected_metrics.items() if _canonical(metrics[n]) != _canonical(v)}
    assert not wrong, wrong
    assert tags == expected_tags
    assert properties == expected_properties
