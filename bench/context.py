"""What every figure gets: the services, the sizes, which runstream components exist, and a log directory."""

# ruff: noqa: S603, S607 - the bench starts its own processes with fixed argument lists.

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.proc import BENCH_PYTHON, ROOT, child_env, run_worker
from bench.services import Infra, MlflowServer
from bench.sizes import Sizes

__all__ = ["Context", "component_missing"]

# What each runstream component must offer for its side of the figures to run.
_PROBES = {
    "producer": "from producer import Workspace, Experiment",
    "ingest": "import importlib.util, sys; sys.exit(importlib.util.find_spec('ingest.__main__') is None)",
    "query": "import importlib.util, sys; sys.exit(importlib.util.find_spec('query.__main__') is None)",
}


def component_missing(name: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", _PROBES[name]], cwd=ROOT, env=child_env(), capture_output=True, check=False
    )
    return done.returncode != 0


@dataclass
class Context:
    infra: Infra
    sizes: Sizes
    quick: bool
    log_dir: Path
    missing: dict[str, bool] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _mlflow: MlflowServer | None = None

    def lacks(self, *components: str) -> str:
        """'' when all of ``components`` exist, else the table's n/a text."""
        gone = [c for c in components if self.missing.get(c)]
        return f"n/a (component missing: {', '.join(gone)})" if gone else ""

    async def mlflow(self) -> MlflowServer:
        """The one MLflow server of the run, started on first use."""
        if self._mlflow is None:
            server = MlflowServer(self.infra)
            await server.__aenter__()
            self._mlflow = server
        return self._mlflow

    async def mlflow_worker(self, module: str, *, timeout_seconds: float = 900.0, **params: Any) -> dict[str, Any]:
        """Run ``bench.workers.<module>`` in ``bench/.venv`` against the MLflow server.

        The worker gets the server's URL (``tracking_uri``), its database
        (``dsn``) and the number of repetitions (``reps``) besides ``params``.
        """
        server = await self.mlflow()
        return await asyncio.to_thread(
            run_worker,
            module,
            {"tracking_uri": server.url, "dsn": server.dsn(), "reps": self.sizes.reps, **params},
            python=BENCH_PYTHON,
            log_dir=self.log_dir,
            timeout_seconds=timeout_seconds,
        )

    async def close(self) -> None:
        if self._mlflow is not None:
            await self._mlflow.__aexit__(None, None, None)
            self._mlflow = None

    def progress(self, message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)
