"""The chaos suite in its quick form (``python -m tests.chaos --quick``): under every fault, each
run holds exactly what its training process logged, in PostgreSQL and through the query service.

The suite runs once, as a subprocess with its own Kafka and PostgreSQL (it
stops and freezes them, so never the session's); each scenario is then one
test here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
#: The quick suite takes about four minutes; the limit leaves room for a slow machine.
SUITE_TIMEOUT_SECONDS = 480


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    report = tmp_path_factory.mktemp("chaos") / "outcomes.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos", "--quick", "--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_SECONDS,
        check=False,
    )
    print(done.stdout, done.stderr[-4000:])  # the table, in the report of a failing test
    if not report.exists():
        pytest.fail(f"the chaos suite wrote no outcomes (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return {o["scenario"]: o for o in json.loads(report.read_text())}


@pytest.mark.timeout(SUITE_TIMEOUT_SECONDS + 60)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_nothing_missing_nothing_duplicated(outcomes: dict[str, dict[str, Any]], scenario: str) -> None:
    outcome = outcomes[scenario]
    assert outcome["errors"] == [], outcome["notes"]
    for source in ("database", "query"):
        tally = outcome[source]
        assert tally["sent"] > 0
        assert (tally["missing"], tally["duplicated"], tally["unexpected"]) == (0, 0, 0), (source, outcome["notes"])
    assert outcome["wrong_status"] == {}
