"""The test suite's own filter for libraries' repeated log lines (tests/library_logs.py)."""

from __future__ import annotations

import logging

import pytest

from tests.library_logs import KEEP, RepeatedRecords


def test_a_repeated_library_line_is_kept_a_few_times_then_counted(caplog: pytest.LogCaptureFixture) -> None:
    # A module's logger under the library's: filters do not inherit. (Not aiokafka's own,
    # which the suite's autouse fixture already filters.)
    conn = logging.getLogger("some_library.conn")
    with caplog.at_level(logging.WARNING), RepeatedRecords.installed(("some_library",)):
        for attempt in range(100):
            conn.warning("Unable connect to node with id %d: %s", 1, f"attempt {attempt}")
        conn.error("a different message")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:KEEP] == [f"Unable connect to node with id 1: attempt {i}" for i in range(KEEP)]
    assert lines[KEEP] == "a different message"
    assert lines[KEEP + 1] == f"({100 - KEEP} more records like 'Unable connect to node with id %d: %s' left out)"
    assert len(lines) == KEEP + 2
    conn.warning("after the test")  # the filter is gone
    assert caplog.records[-1].getMessage() == "after the test"
