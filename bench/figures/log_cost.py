"""1. Logging cost in the training loop: runstream, MLflow (async) and W&B (offline).

ns per ``log(name, float)`` call, and ns per value of a 20-metric dict call
(``run.log_metrics``, ``mlflow.log_metrics``, ``wandb.log``), in the same
worker processes; issue 18's bars: ≤ 500 ns per ``run.log``, ≤ 150 ns per
``log_metrics`` value.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.context import Context
from bench.proc import BENCH_PYTHON, WorkerError, run_worker
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats
from bench.workers import DICT_METRICS

TITLE = "1. logging cost: run.log(name, float)"
DICT_TITLE = f"1. logging cost per value: run.log_metrics({DICT_METRICS}-metric dict)"


async def _runstream(ctx: Context) -> dict[str, Any]:
    async with Sandbox(ctx.infra, "logcost") as sandbox:  # Kafka and the topic; nothing consumes
        calls = ctx.sizes.log_calls
        return await asyncio.to_thread(
            run_worker,
            "rs_log_cost",
            {"calls": calls, "reps": ctx.sizes.reps, "warmup": calls // 100, "dict_calls": calls // DICT_METRICS},
            env=sandbox.env(),
            log_dir=ctx.log_dir,
        )


def _loop(ctx: Context, calls: int) -> dict[str, int]:
    """A baseline's timed loop: ``calls`` calls per repetition after a 1% warm-up (at least 100)."""
    return {
        "calls": calls,
        "reps": ctx.sizes.reps,
        "warmup": max(100, calls // 100),
        "dict_calls": calls // DICT_METRICS,
    }


#: What each kind of row measures: key prefix, title, unit, bars (issue 18's per call and per value).
_KINDS = {
    "call": ("log_cost", TITLE, "ns/call", [Bar("max", 500, "≤ 500 ns"), Bar("ratio", 100, "≥ 100×")]),
    "dict": ("log_metrics_cost", DICT_TITLE, "ns/value", [Bar("max", 150, "≤ 150 ns")]),
}


def _row(kind: str, key: str, versus: str, baseline_name: str) -> Row:
    prefix, title, unit, bars = _KINDS[kind]
    return Row(
        key=f"{prefix}_vs_{key}", figure=f"{title} vs {versus}", unit=unit, baseline_name=baseline_name, bars=bars
    )


def _fill(rows: tuple[Row, Row], side: str, result: dict[str, Any]) -> None:
    """Put one worker's per-call and per-value figures on its side of the call row and the dict row."""
    calls, values = rows
    for row, key in ((calls, "ns_per_call"), (values, "ns_per_value")):
        setattr(row, side, Stats.of(result[key]))


async def run(ctx: Context) -> list[Row]:
    s = ctx.sizes
    ours = _row("call", "mlflow", "MLflow", "mlflow.log_metric, async")
    versus_wandb = _row("call", "wandb", "W&B", "wandb.log, offline")
    dicts = _row("dict", "mlflow", "MLflow", "mlflow.log_metrics(dict), async")
    dicts_wandb = _row("dict", "wandb", "W&B", "wandb.log(dict), offline")
    ctx.progress("  MLflow log_metric (async, buffering 1 s)")
    try:
        result = await ctx.mlflow_worker("mlflow_log_metric", **_loop(ctx, s.mlflow_log_calls))
        _fill((ours, dicts), "baseline", result)
        ours.details["mlflow"] = result
    except (WorkerError, RuntimeError) as exc:
        ours.baseline_missing = dicts.baseline_missing = f"error: {str(exc)[:200]}"
        ctx.errors.append(f"log_cost mlflow: {exc}")
    ctx.progress("  wandb.log (offline)")
    try:
        result = await asyncio.to_thread(
            run_worker, "wandb_log", _loop(ctx, s.wandb_log_calls), python=BENCH_PYTHON, log_dir=ctx.log_dir
        )
        _fill((versus_wandb, dicts_wandb), "baseline", result)
        versus_wandb.details["wandb"] = result
    except WorkerError as exc:
        versus_wandb.baseline_missing = dicts_wandb.baseline_missing = f"error: {str(exc)[:200]}"
        ctx.errors.append(f"log_cost wandb: {exc}")
    if gone := ctx.lacks("producer"):
        ours.missing = versus_wandb.missing = dicts.missing = dicts_wandb.missing = gone
    else:
        ctx.progress("  runstream run.log and run.log_metrics")
        result = await _runstream(ctx)
        _fill((ours, dicts), "runstream", result)
        _fill((versus_wandb, dicts_wandb), "runstream", result)
        ours.details["runstream"] = result
    loops = f"{s.log_calls:,} calls for runstream, {s.mlflow_log_calls:,} for MLflow, {s.wandb_log_calls:,} for W&B"
    ours.note = (
        f"one timed loop per run ({loops}; the baselines cost 100-1000x more per call), after a 1% warm-up, "
        "time.perf_counter_ns around the loop, flush/end_run/finish excluded; value `i * 0.5`. The same loop "
        "for all three; a baseline's call is wrapped in a function shaped like run.log (one Python call, "
        "~50 ns, against its tens of µs). "
        "MLflow: fluent log_metric(synchronous=False), MLFLOW_ENABLE_ASYNC_LOGGING=true, "
        "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1, server --workers 1 on postgresql+psycopg2, access log off."
    )
    versus_wandb.note = (
        "W&B: wandb.log({'loss': v}) with WANDB_MODE=offline, console='off', system stats, machine info and "
        "git/code capture off. runstream's figure is the same measurement as the row above."
    )
    dicts.note = (
        f"ns per value of one {DICT_METRICS}-float dict per call ({s.log_calls // DICT_METRICS:,} calls for runstream, "
        "a twentieth of each baseline's log calls), in the same processes right after the run.log loop; the dict is "
        "built once and one value changes per call. The same loop with a no-op function costs "
        "`dict_loop_overhead_ns` per value (in the JSON). MLflow: log_metrics(dict, synchronous=False); "
        "W&B: wandb.log(dict)."
    )
    dicts_wandb.note = "the same runstream measurement as the row above."
    return [ours, versus_wandb, dicts, dicts_wandb]
