"""``python -m bench [--quick]``: start a stack, run every figure, print the table, write the results.

Options for development: ``--only NAME[,NAME]`` runs some figures;
``--kafka HOST:PORT --pg-dsn DSN`` uses running services instead of a stack of
our own (everything is then created under ``bench_`` names and dropped);
``--render`` only rewrites ``RESULTS.md`` from ``results/full.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import shlex
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.context import Context, component_missing
from bench.machine import describe_machine, versions
from bench.proc import BENCH_PYTHON
from bench.rows import Row
from bench.services import Infra
from bench.sizes import FULL, QUICK

__all__ = ["FIGURES", "main"]

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
#: In the order they run; each is a module of bench.figures with ``async def run(ctx) -> list[Row]``.
FIGURES = (
    "log_cost",
    "throughput",
    "storage",
    "freshness",
    "reads",
    "query_load",
    "memory",
    "scale",
    "read_your_writes",
    "charts",
    "stream",
    "series",
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes, under 3 minutes")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(FIGURES)}")
    parser.add_argument("--kafka", default="", help="use this running Kafka (with --pg-dsn)")
    parser.add_argument("--pg-dsn", default="", help="admin DSN of a running PostgreSQL (with --kafka)")
    parser.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from results/full.json")
    return parser.parse_args(argv)


async def _run_figure(ctx: Context, name: str) -> list[Row]:
    module: Any = importlib.import_module(f"bench.figures.{name}")
    ctx.progress(f"{name}: {module.TITLE}")
    started = time.monotonic()
    try:
        rows: list[Row] = await module.run(ctx)
    except Exception as exc:  # one broken figure must not hide the others
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        ctx.errors.append(f"{name}: {detail[:2000]}")
        (ctx.log_dir / f"{name}.error.txt").write_text(traceback.format_exc())
        ctx.progress(f"{name}: ERROR {detail[:500]}")
        # The table cell gets the first line; a service's log tail follows in the errors and the error file.
        rows = [Row(key=name, figure=module.TITLE, unit="", missing=f"error: {detail.splitlines()[0][:160]}")]
    ctx.progress(f"{name}: done in {time.monotonic() - started:.0f} s")
    return rows


async def _run_all(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    started = time.monotonic()
    machine = describe_machine()
    sizes = QUICK if args.quick else FULL
    if args.kafka and args.pg_dsn:
        infra = Infra.existing(args.kafka, args.pg_dsn)
    else:
        print("[bench] starting Kafka and PostgreSQL in a state directory of their own", file=sys.stderr)
        infra = await asyncio.to_thread(Infra.start_local)
    ctx = Context(infra=infra, sizes=sizes, quick=args.quick, log_dir=infra.home / "bench-logs")
    ctx.log_dir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    try:
        ctx.missing = {c: component_missing(c) for c in ("producer", "ingest", "query")}
        absent = [c for c, gone in ctx.missing.items() if gone]
        if absent:
            ctx.progress(f"components missing (their rows say n/a): {', '.join(absent)}")
        found_versions = versions(await infra.server_version())
        for name in names:
            rows += await _run_figure(ctx, name)
    finally:
        await ctx.close()
        infra.close(keep_home=bool(ctx.errors))
    if ctx.errors:
        ctx.progress(f"logs of the failed figures kept under {ctx.log_dir}")
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {
        "started": started_at.isoformat(timespec="seconds"),
        "duration_seconds": time.monotonic() - started,
        "quick": args.quick,
        "command": "make bench QUICK=1" if args.quick else "make bench",
        "argv": shlex.join(sys.argv),
        "reps": sizes.reps,
        "sizes": {k: v for k, v in vars(sizes).items()},
        "machine": machine,
        "versions": found_versions,
        "rows": [r.to_json() for r in rows],
        "errors": ctx.errors,
    }


def _render() -> int:
    source = RESULTS_DIR / "full.json"
    doc = __import__("json").loads(source.read_text())
    doc["source"] = source.name
    (BENCH_DIR / "RESULTS.md").write_text(report.render_markdown(doc))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.render:
        return _render()
    if not BENCH_PYTHON.exists():
        print(f"{BENCH_PYTHON} is missing: run `make bench` (it creates the benchmark's environment)", file=sys.stderr)
        return 2
    names = [n for n in args.only.split(",") if n] or list(FIGURES)
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        print(f"unknown figures: {', '.join(unknown)}; choose from {', '.join(FIGURES)}", file=sys.stderr)
        return 2
    doc = asyncio.run(_run_all(args, names))
    rows = [Row.from_json(r) for r in doc["rows"]]
    print()
    print(
        f"runstream benchmarks ({'QUICK' if args.quick else 'full'}), {doc['started']}, "
        f"{doc['machine']['nproc']} cores, {doc['machine']['memory_gib']} GiB, {doc['machine']['cpu']}"
    )
    print(report.render_table(rows))
    report.write_json(RESULTS_DIR / "latest.json", doc)
    if not args.quick and names == list(FIGURES):
        report.write_json(RESULTS_DIR / "full.json", doc)
        _render()
        print(f"\nwrote {RESULTS_DIR / 'latest.json'}, {RESULTS_DIR / 'full.json'} and {BENCH_DIR / 'RESULTS.md'}")
    else:
        print(f"\nwrote {RESULTS_DIR / 'latest.json'} (RESULTS.md keeps the last full run)")
    return 0
