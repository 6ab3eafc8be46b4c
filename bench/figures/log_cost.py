"""1. Logging cost in the training loop: ns per call for runstream, MLflow (async) and W&B (offline)."""

from __future__ import annotations

import asyncio
from typing import Any

from bench.context import Context
from bench.proc import BENCH_PYTHON, WorkerError, run_worker
from bench.rows import Bar, Row
from bench.services import Sandbox
from bench.stats import Stats

TITLE = "1. logging cost: run.log(name, float)"


async def _runstream(ctx: Context) -> dict[str, Any]:
    async with Sandbox(ctx.infra, "logcost") as sandbox:  # Kafka and the topic; nothing consumes
        calls = ctx.sizes.log_calls
        return await asyncio.to_thread(
            run_worker,
            "rs_log_cost",
            {"calls": calls, "reps": ctx.sizes.reps, "warmup": calls // 100},
            env=sandbox.env(),
            log_dir=ctx.log_dir,
        )


def _loop(ctx: Context, calls: int) -> dict[str, int]:
    """A baseline's timed loop: ``calls`` calls per repetition after a 1% warm-up (at least 100)."""
    return {"calls": calls, "reps": ctx.sizes.reps, "warmup": max(100, calls // 100)}


def _row(key: str, versus: str, baseline_name: str) -> Row:
    return Row(
        key=f"log_cost_vs_{key}",
        figure=f"{TITLE} vs {versus}",
        unit="ns/call",
        baseline_name=baseline_name,
        bars=[Bar("max", 1000, "≤ 1 µs"), Bar("ratio", 100, "≥ 100×")],
    )


async def run(ctx: Context) -> list[Row]:
    s = ctx.sizes
    ours = _row("mlflow", "MLflow", "mlflow.log_metric, async")
    versus_wandb = _row("wandb", "W&B", "wandb.log, offline")
    ctx.progress("  MLflow log_metric (async, buffering 1 s)")
    try:
        result = await ctx.mlflow_worker("mlflow_log_metric", **_loop(ctx, s.mlflow_log_calls))
        ours.baseline = Stats.of(result["ns_per_call"])
        ours.details["mlflow"] = result
    except (WorkerError, RuntimeError) as exc:
        ours.baseline_missing = f"error: {str(exc)[:200]}"
        ctx.errors.append(f"log_cost mlflow: {exc}")
    ctx.progress("  wandb.log (offline)")
    try:
        result = await asyncio.to_thread(
            run_worker, "wandb_log", _loop(ctx, s.wandb_log_calls), python=BENCH_PYTHON, log_dir=ctx.log_dir
        )
        versus_wandb.baseline = Stats.of(result["ns_per_call"])
        versus_wandb.details["wandb"] = result
    except WorkerError as exc:
        versus_wandb.baseline_missing = f"error: {str(exc)[:200]}"
        ctx.errors.append(f"log_cost wandb: {exc}")
    if gone := ctx.lacks("producer"):
        ours.missing = versus_wandb.missing = gone
    else:
        ctx.progress("  runstream run.log")
        result = await _runstream(ctx)
        ours.runstream = versus_wandb.runstream = Stats.of(result["ns_per_call"])
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
    return [ours, versus_wandb]
