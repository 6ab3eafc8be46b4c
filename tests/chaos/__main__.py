"""``python -m tests.chaos [--quick] [--only NAME ...] [--json PATH] [--seed N]``: run the scenarios, print the table.

Exits 1 unless every scenario ended with nothing missing, nothing duplicated,
nothing unexpected, the right final statuses and no error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field

import asyncpg

from bench.services import Infra
from ops.stack import LocalStack
from tests.chaos.box import Box
from tests.chaos.ledger import LoggedRun, Tally, check
from tests.chaos.scenarios import CLUSTER_SCENARIOS, FULL, QUICK, QUICK_SCENARIOS, SCENARIOS, Size

#: Long enough for a dead run to fail (scenarios.LIVENESS plus a sweep), short enough for CI.
FAILED_SETTLE_SECONDS = 30.0


@dataclass
class Outcome:
    """One scenario's line of the table, and what went wrong."""

    scenario: str
    database: Tally = field(default_factory=Tally)
    query: Tally = field(default_factory=Tally)
    runs: int = 0
    wrong_status: dict[str, list[str | None]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.database.exact and self.query.exact and not self.wrong_status and not self.errors

    @property
    def rate(self) -> float:
        return self.database.sent / self.load_seconds if self.load_seconds else 0.0


async def run_scenario(infra: Infra, stack: LocalStack, name: str, size: Size, rng: random.Random) -> Outcome:
    outcome = Outcome(name)
    started = time.monotonic()
    async with Box(infra, stack, name.replace("-", "_")) as box:
        try:
            outcome.notes = await SCENARIOS[name](box, size, rng)
        except Exception as exc:  # noqa: BLE001 - reported in the table; the ledger is still checked
            outcome.errors.append(f"{type(exc).__name__}: {exc}")
        # A scenario that failed half-way may leave the broker or the database down: the
        # check and the next scenarios need them (both starts do nothing if it is running).
        await asyncio.to_thread(box.stack.kafka.start)
        await asyncio.to_thread(box.stack.postgres.start)
        box.stop_load()
        outcome.errors += await box.trainers_done(timeout_seconds=size.settle_seconds)
        outcome.load_seconds = box.load_seconds
        runs = box.ledger()
        outcome.runs = len(runs)
        spooled = sum(int(r.stats.get("spooled_records", 0)) for r in runs.values())
        outcome.notes.append(f"{spooled} records spooled")
        try:
            await _check(box, runs, size, outcome)
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a failed scenario, not a crash
            outcome.errors.append(f"ledger check failed: {type(exc).__name__}: {exc}")
        if not outcome.ok:
            outcome.notes.append(f"logs: {box.home}")
    outcome.wall_seconds = time.monotonic() - started
    return outcome


async def _check(box: Box, runs: dict[str, LoggedRun], size: Size, outcome: Outcome) -> None:
    async with asyncpg.create_pool(box.settings.database_url, min_size=1, max_size=2) as db:
        # A scenario that already failed (a training process crashed) may never reach the final
        # statuses: report what is stored soon rather than wait out the whole deadline.
        deadline = size.settle_seconds if not outcome.errors else FAILED_SETTLE_SECONDS
        if (late := await box.settled(db, runs, deadline)) is not None:
            outcome.errors.append(f"not settled: {late}")
        verdict = await check(runs, db, await box.query_url())
    outcome.database, outcome.query = verdict.database, verdict.query
    outcome.wrong_status = {run: list(s) for run, s in verdict.wrong_status.items()}


def table(outcomes: list[Outcome]) -> str:
    head = (
        f"{'scenario':<18} {'runs':>4} {'points sent':>12} {'stored':>12} {'missing':>8} {'duplicated':>10} "
        f"{'unexpected':>10} {'query':>9} {'statuses':>8} {'points/s':>9} {'wall':>7}  result"
    )
    lines = [head, "-" * len(head)]
    for o in outcomes:
        d = o.database
        query = "exact" if o.query.exact else f"{o.query.missing}m/{o.query.duplicated}d"
        lines.append(
            f"{o.scenario:<18} {o.runs:>4} {d.sent:>12,} {d.stored:>12,} {d.missing:>8,} {d.duplicated:>10,} "
            f"{d.unexpected:>10,} {query:>9} {'ok' if not o.wrong_status else len(o.wrong_status):>8} "
            f"{o.rate:>9,.0f} {o.wall_seconds:>6.0f}s  {'PASS' if o.ok else 'FAIL'}"
        )
    for o in outcomes:
        lines.append(f"\n{o.scenario}: " + "; ".join(o.notes))
        lines += [f"  wrong status {run}: expected, database, query = {s}" for run, s in o.wrong_status.items()]
        lines += ["  ERROR " + e.replace("\n", "\n    ") for e in o.errors]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[Outcome]:
    size = QUICK if args.quick else FULL
    rng = random.Random(args.seed)
    names = args.only or (QUICK_SCENARIOS if args.quick else list(SCENARIOS))
    outcomes: list[Outcome] = []
    # The faults stop and start the very Kafka and PostgreSQL that Infra.start_local made: one
    # broker, and the 3-broker cluster, each started for the first scenario that needs it.
    stacks: dict[bool, Infra] = {}
    try:
        for name in names:
            where = await _infra_for(stacks, clustered=name in CLUSTER_SCENARIOS)
            if where.stack is None:
                raise RuntimeError("Infra.start_local made no stack")
            outcome = await run_scenario(where, where.stack, name, size, rng)
            outcomes.append(outcome)
            print(table([outcome]).split("\n\n")[0].splitlines()[-1], flush=True)
    finally:
        # The logs stay for a scenario that failed or a suite that did not finish.
        passed = len(outcomes) == len(names) and all(o.ok for o in outcomes)
        for infra in stacks.values():
            await asyncio.to_thread(infra.close, keep_home=not passed)
            if not passed:
                print(f"logs kept under {infra.home}", flush=True)
    return outcomes


async def _infra_for(stacks: dict[bool, Infra], *, clustered: bool) -> Infra:
    """The single broker's stack or the cluster's, started if new; the other's Kafka stopped
    (memory and cores for three brokers) and the single broker started again if it was."""
    other = stacks.get(not clustered)
    if other is not None and other.stack is not None and clustered:
        await asyncio.to_thread(other.stack.kafka.stop)
    if clustered not in stacks:
        stacks[clustered] = await asyncio.to_thread(Infra.start_local, kafka_brokers=3 if clustered else 1)
    elif (stack := stacks[clustered].stack) is not None:
        await asyncio.to_thread(stack.kafka.start)
    return stacks[clustered]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the reduced form CI runs (a few minutes)")
    parser.add_argument("--only", action="append", choices=list(SCENARIOS), help="run only this scenario")
    parser.add_argument("--json", help="also write the outcomes to this file")
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 32), help="seed of the fault schedule")
    args = parser.parse_args(argv)
    print(f"chaos suite ({'quick' if args.quick else 'full'}), seed {args.seed}", flush=True)
    started = time.monotonic()
    outcomes = asyncio.run(main_async(args))
    print("\n" + table(outcomes) + f"\n\ntotal {time.monotonic() - started:.0f}s, seed {args.seed}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([{**asdict(o), "ok": o.ok, "rate": o.rate} for o in outcomes], out, indent=2)
    return 0 if outcomes and all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
