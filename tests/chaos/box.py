"""One scenario's world: a private database, topic and group (bench's :class:`Sandbox`) on the
suite's own Kafka and PostgreSQL, and the real processes that run on them.

Ingest workers, the query service and training processes are subprocesses
(:class:`bench.proc.Service`, each in its own process group with a log file),
so a fault is what it is in production: a signal to a process, a broker or a
database server going away.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.proc import Service, free_port
from bench.services import Infra, Sandbox
from ops.stack import LocalStack
from tests.chaos.ledger import LoggedRun, expected_count, read_ledgers, stored_count
from tests.support import eventually

#: Producer options for every training process: a Kafka outage is noticed within
#: seconds (not the defaults' 10 s request timeout and 5 s before spooling), so
#: short scenarios still exercise the spool.
LOGGING_OPTIONS = {"request_timeout_seconds": 2.0, "spill_after_seconds": 1.0}


class Box:
    """A scenario's sandbox plus its workers, trainers and query service; ``async with``."""

    def __init__(self, infra: Infra, stack: LocalStack, name: str) -> None:
        self.stack = stack
        self.sandbox = Sandbox(infra, f"chaos_{name}")
        self.settings = self.sandbox.settings
        self.home = self.sandbox.home
        self.trainers: list[Service] = []
        self.killed: set[Service] = set()
        self._stop_file = self.home / "stop-load"
        self.load_started = 0.0
        self.load_seconds = 0.0

    async def __aenter__(self) -> Box:
        await self.sandbox.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for trainer in self.trainers:
            await asyncio.to_thread(trainer.stop)
        await self.sandbox.close()

    # --- ingest ------------------------------------------------------------

    @property
    def workers(self) -> list[Service]:
        return self.sandbox.workers

    async def start_worker(self, **env: str) -> Service:
        """One more ``python -m ingest`` in the group; ``env``: RUNSTREAM_* settings of its own."""
        port = free_port()
        worker = Service(
            f"ingest-{len(self.workers)}",
            [sys.executable, "-m", "ingest"],
            env=self.sandbox.env(RUNSTREAM_INGEST_METRICS_PORT=str(port), **env),
            log_file=self.home / f"ingest-{len(self.workers)}.log",
        )
        self.workers.append(worker)
        await worker.wait_http_ok(f"http://127.0.0.1:{port}/metrics")
        return worker

    async def stop_worker(self, worker: Service, sig: int = signal.SIGTERM) -> None:
        """SIGTERM (leave the group cleanly) or SIGKILL (crash) one worker and reap it."""
        if sig == signal.SIGTERM:
            await asyncio.to_thread(worker.stop)
        else:
            os.killpg(worker.pid, sig)
            await asyncio.to_thread(worker.proc.wait)
        self.workers.remove(worker)

    # --- training processes --------------------------------------------------

    def start_trainers(self, count: int, *, rate: float, seconds: float, **params: Any) -> None:
        """``count`` training processes offering ``rate`` points/s between them for ``seconds``."""
        options = {**LOGGING_OPTIONS, **params.pop("options", {})}
        defaults = {"runs": 2, "metrics": 5, "experiment": f"chaos-{self.sandbox.name}"}
        for _ in range(count):
            k = len(self.trainers)
            spec = {**defaults, **params, "rate": rate / count, "seconds": seconds, "options": options}
            spec["ledger"] = str(self.home / f"ledger-{k}.jsonl")
            spec["stop"] = str(self._stop_file)
            self.trainers.append(
                Service(
                    f"trainer-{k}",
                    [sys.executable, "-m", "tests.chaos.trainer", json.dumps(spec)],
                    env=self.sandbox.env(),
                    log_file=self.home / f"trainer-{k}.log",
                )
            )
        self.load_started = self.load_started or time.monotonic()

    def stop_load(self) -> None:
        """Every training process completes its runs now."""
        self._stop_file.touch()

    def kill_trainer(self, trainer: Service) -> None:
        os.killpg(trainer.pid, signal.SIGKILL)
        trainer.proc.wait()
        self.killed.add(trainer)

    async def trainers_done(self, timeout_seconds: float) -> list[str]:
        """Wait for every training process to exit; the complaints about those that did not exit 0."""
        deadline = time.monotonic() + timeout_seconds
        while any(t.alive() for t in self.trainers) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        # From the first process started to the last exited (a second call changes nothing).
        self.load_seconds = self.load_seconds or time.monotonic() - self.load_started
        errors = []
        for trainer in self.trainers:
            if trainer.alive():
                errors.append(f"{trainer.name} still running after {timeout_seconds:.0f}s")
            elif trainer.proc.returncode != 0 and trainer not in self.killed:
                errors.append(f"{trainer.name} exited {trainer.proc.returncode}:\n{trainer.log_tail(1500)}")
        return errors

    async def sync(self) -> str:
        """``runstream sync`` over the scenario's spool, as a user runs it; its summary line."""
        done = await asyncio.to_thread(
            subprocess.run,
            [str(Path(sys.executable).parent / "runstream"), "sync"],
            env=self.sandbox.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"runstream sync exited {done.returncode}: {done.stderr[-1500:]}")
        return done.stdout.strip()

    def ledger(self) -> dict[str, LoggedRun]:
        return read_ledgers(sorted(self.home.glob("ledger-*.jsonl")))

    async def logged_runs(self, count: int) -> list[str]:
        """The run ids of the ledgers once ``count`` runs have started."""

        async def runs() -> list[str]:
            return list(self.ledger())

        return await eventually(runs, lambda ids: len(ids) >= count, what=f"{count} runs started")

    # --- the end of a scenario -------------------------------------------------

    async def settled(self, db: asyncpg.Pool, runs: dict[str, LoggedRun], timeout_seconds: float) -> str | None:
        """Wait until PostgreSQL holds the ledger's points and final statuses; None, or why not."""
        want = expected_count(runs.values())
        statuses = {r.id: r.expected_status for r in runs.values()}

        async def progress() -> tuple[int, dict[str, str]]:
            rows = await db.fetch("SELECT id::text, status FROM runs WHERE id = ANY($1::uuid[])", list(statuses))
            return await stored_count(db, statuses), {r["id"]: r["status"] for r in rows}

        try:
            await eventually(
                progress,
                lambda got: got[0] >= want and got[1] == statuses,
                timeout_seconds=timeout_seconds,
                interval_seconds=0.5,
                what=f"{want} points and final statuses",
            )
        except AssertionError as exc:
            return str(exc)
        return None

    async def query_url(self) -> str:
        """The query service, started if the scenario has none running."""
        if self.sandbox.query is None or not self.sandbox.query.alive():
            return await self.sandbox.start_query()
        return self.settings.query_url
