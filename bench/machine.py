"""The machine and the software versions a run measured, for the results table."""

# ruff: noqa: S603, S607 - the bench starts its own processes with fixed argument lists.

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.proc import BENCH_PYTHON, PROJECT_PYTHON, ROOT
from ops.stack import KAFKA_VERSION

__all__ = ["describe_machine", "versions"]

_PROJECT_PACKAGES = ("aiokafka", "asyncpg", "aiohttp", "orjson")
_BENCH_PACKAGES = ("mlflow", "wandb", "psycopg2-binary", "SQLAlchemy", "py-spy", "pyinstrument")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def describe_machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "nproc": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "os": _os_name(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _package_versions(python: Path, names: tuple[str, ...]) -> dict[str, str]:
    code = (
        "import json, sys, importlib.metadata as m\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'not installed'\n"
        "print(json.dumps(out))"
    )
    if not python.exists():
        return {n: "not installed" for n in names}
    done = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, check=False)
    try:
        return dict(json.loads(done.stdout))
    except ValueError:
        return {n: "unknown" for n in names}


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def versions(postgres: str) -> dict[str, str]:
    found = {
        "runstream": _git_commit(),
        "python": platform.python_version(),
        "postgresql": postgres,
        "kafka": KAFKA_VERSION,
    }
    found.update(_package_versions(PROJECT_PYTHON, _PROJECT_PACKAGES))
    found.update(_package_versions(BENCH_PYTHON, _BENCH_PACKAGES))
    return found
