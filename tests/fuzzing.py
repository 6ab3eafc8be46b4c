"""How randomised tests draw: the same cases on every ``make test``, fresh ones under ``make fuzz``.

A commit must pass or fail CI the same way every time, so in ``make test``
every randomised test draws from fixed seeds: Hypothesis tests are
derandomised (their cases depend only on the test's own code), and tests that
seed a ``random.Random``, schemathesis (``--seed``) or the chaos schedule use
:data:`SEED`, a constant.

``make fuzz`` sets ``RUNSTREAM_FUZZ=1`` and runs the tests marked ``fuzz``
with :data:`SCALE` times the examples and a fresh seed, which pytest prints in
its header and beside every failure; ``RUNSTREAM_FUZZ_SEED=N make fuzz``
replays that draw.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from hypothesis import HealthCheck, seed, settings

__all__ = ["FUZZING", "SCALE", "SEED", "examples", "fuzz_settings"]

F = TypeVar("F", bound=Callable[..., Any])

#: ``make fuzz``: fresh seeds and more examples.
FUZZING: Final = os.environ.get("RUNSTREAM_FUZZ") == "1"
#: The seed of every seeded draw in ``make test``; any constant would do.
CI_SEED: Final = 20261206
SEED: Final = int(os.environ.get("RUNSTREAM_FUZZ_SEED") or (secrets.randbelow(2**32) if FUZZING else CI_SEED))
#: How many times the examples ``make fuzz`` draws.
SCALE: Final = 10 if FUZZING else 1


def examples(count: int) -> int:
    """``count`` examples in ``make test``, :data:`SCALE` times as many under ``make fuzz``."""
    return count * SCALE


def fuzz_settings(max_examples: int, *, suppress: Sequence[HealthCheck] = ()) -> Callable[[F], F]:
    """Hypothesis settings for a ``@given`` function: derandomised in CI, seeded by :data:`SEED` under fuzz.

    ``max_examples`` is taken as given: pass ``examples(n)`` to scale it under fuzz.

    No example database and no deadline: the database would make a run depend
    on the runs before it, and a shared 2-core machine makes timings noise.
    """
    chosen = settings(
        max_examples=max_examples,
        derandomize=not FUZZING,
        database=None,
        deadline=None,
        suppress_health_check=list(suppress),
        print_blob=True,
    )

    def apply(test: F) -> F:
        decorated: F = chosen(test)
        return seed(SEED)(decorated) if FUZZING else decorated

    return apply
