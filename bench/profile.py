"""``python -m bench.profile``: where the end-to-end path spends its time, with py-spy.

Runs one P=1 W=1 throughput measurement (``--points``, default 4,000,000)
while ``py-spy record`` samples the ingest worker and the producer process
(subprocesses included, so aiokafka's sender thread is seen), then prints
each one's heaviest functions by own time and by total time. The raw
collapsed stacks and speedscope-free flame input are kept under ``--out``.
Needs root (ptrace) and ``bench/.venv`` (py-spy).
"""

# ruff: noqa: S603, S607 - the bench starts its own processes with fixed argument lists.

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import time
from pathlib import Path

from bench.context import Context
from bench.proc import BENCH_PYTHON
from bench.services import Infra, Sandbox
from bench.sizes import FULL

PY_SPY = BENCH_PYTHON.parent / "py-spy"


RATE = 200  # py-spy samples per second of each busy thread


def top(collapsed: Path, n: int = 25, points: int = 0) -> str:
    """The heaviest frames of a ``--format raw`` profile: own samples and inclusive samples.

    With ``points``: busy time per point, from the samples (each ``1 / RATE`` s of a thread that was
    running or runnable: on a loaded machine more than its CPU). ``producer.txt`` samples this whole
    process tree, the ingest worker included: split it by process (the stack's second frame).
    """
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    per_point = f", {total / RATE / points * 1e9:,.0f} ns busy per point" if points else ""
    lines = [f"{collapsed.name}: {total} samples{per_point}", "  own time:"]
    lines += [f"    {c / total:6.1%}  {f}" for f, c in own.most_common(n)]
    lines.append("  inclusive:")
    lines += [f"    {c / total:6.1%}  {f}" for f, c in inclusive.most_common(n)]
    return "\n".join(lines)


def _record(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            str(RATE),
            "--subprocesses",
            "--threads",
            "--duration",
            str(seconds),
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _profile(args: argparse.Namespace) -> None:
    from bench.figures import throughput

    infra = Infra.existing(args.kafka, args.pg_dsn) if args.kafka else await asyncio.to_thread(Infra.start_local)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(infra=infra, sizes=FULL, quick=False, log_dir=infra.home / "logs")
    try:
        async with Sandbox(infra, "prof") as sandbox:
            await sandbox.start_ingest(1)
            ingest = _record(sandbox.workers[0].pid, out / "ingest.txt", args.seconds)
            # The producer is spawned inside the measurement: sample this whole process tree instead.
            producer = _record(os.getpid(), out / "producer.txt", args.seconds)
            started = time.time()
            result = await throughput.runstream_once(ctx, 1, 1, args.points, sandbox, dicts=args.dicts)
            print(
                f"{result['points']:,} points in {result['seconds']:.1f} s = {result['points_per_second']:,.0f}/s; "
                f"logging {result['log_seconds']:.1f} s, flushed at {result['flush_seconds']:.1f} s"
            )
            for proc in (ingest, producer):
                proc.wait(timeout=args.seconds + 60)
            print(f"profiled {time.time() - started:.0f} s")
    finally:
        await ctx.close()
        infra.close()
    for name in ("ingest.txt", "producer.txt"):
        if (out / name).exists():
            print(top(out / name, points=result["points"]))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--points", type=int, default=4_000_000)
    parser.add_argument("--seconds", type=int, default=30, help="how long py-spy samples")
    parser.add_argument("--dicts", action="store_true", help="log each run's step with one run.log_metrics")
    parser.add_argument("--out", default="/tmp/runstream-profile")  # noqa: S108 - a place to look at, not a secret
    parser.add_argument("--kafka", default="")
    parser.add_argument("--pg-dsn", default="")
    asyncio.run(_profile(parser.parse_args()))


if __name__ == "__main__":
    main()
