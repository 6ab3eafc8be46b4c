"""The ``runstream`` command: the local stack and the long-running components."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runstream.config import ConfigError, Settings
from runstream.logs import configure_logging

if TYPE_CHECKING:
    from ops.stack import LocalStack

__all__ = ["main"]


def _up(settings: Settings, _: argparse.Namespace) -> int:
    from ops.stack import LocalStack

    stack = LocalStack(settings)
    stack.start()
    _print_status(stack)
    print(f"\nruns UI: {settings.query_url}/   config: {stack.config_file}")
    print(f"sign in with the token in {stack.read_token_file}  (cat it; the SDK reads it by itself)")
    return 0


def _down(settings: Settings, _: argparse.Namespace) -> int:
    from ops.stack import LocalStack

    stopped = LocalStack(settings).stop()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _rotate_secrets(settings: Settings, args: argparse.Namespace) -> int:
    from ops.stack import ROTATABLE, LocalStack

    unknown = sorted(set(args.which) - set(ROTATABLE))
    if unknown:
        choices = ", ".join(ROTATABLE)
        print(f"runstream rotate-secrets: cannot rotate {', '.join(unknown)}; choose from {choices}", file=sys.stderr)
        return 2
    rotated = LocalStack(settings).rotate_secrets(args.which or ROTATABLE)
    print("rotated: " + ", ".join(rotated))
    return 0


def _status(settings: Settings, _: argparse.Namespace) -> int:
    from ops.stack import LocalStack

    stack = LocalStack(settings)
    return 0 if _print_status(stack) else 1


def _print_status(stack: LocalStack) -> bool:
    rows = stack.status()
    print(f"{'component':<10} {'pid':>8} {'port':>6}  health")
    for row in rows:
        health = "ok" if row.healthy else ("UNHEALTHY" if row.pid else "DOWN")
        print(f"{row.name:<10} {row.pid or '-':>8} {row.port:>6}  {health}")
        for problem in row.problems:
            print(f"{'':<10} {'':>8} {'':>6}    ! {problem}")
        for notice in row.notices:
            print(f"{'':<10} {'':>8} {'':>6}    - {notice}")
    return all(row.healthy for row in rows)


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    from runstream.schema import migrate

    applied = asyncio.run(migrate(settings.database_url))
    print("applied: " + (", ".join(applied) if applied else "nothing, schema is current"))
    return 0


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    from ingest import run_worker

    if args.workers == 1:
        run_worker(settings)
        return 0
    return _run_worker_processes(settings, args.workers)


def _run_worker_processes(settings: Settings, workers: int) -> int:
    """N worker processes in one consumer group; SIGTERM/SIGINT stops them all."""
    env = dict(os.environ)
    procs = []
    for index in range(workers):
        worker = dataclasses.replace(settings, ingest_metrics_port=settings.ingest_metrics_port + index)
        procs.append(subprocess.Popen([sys.executable, "-m", "ingest"], env={**env, **worker.as_env()}))

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(proc.wait() for proc in procs)


def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    from ops._dlq_reader import read_dead_letters

    records = asyncio.run(read_dead_letters(settings, limit=args.limit))
    print(f"{'source':<28} {'reason':<16} {'bytes':>8}  message")
    for record in records:
        h = record.headers
        source = f"{h.get('source_topic', '?')}[{h.get('source_partition', '?')}]@{h.get('source_offset', '?')}"
        print(f"{source:<28} {h.get('reason', '?'):<16} {record.size:>8}  {h.get('message', '')[:120]}")
    print(f"{len(records)} dead letter(s) in {settings.dlq_topic}")
    return 0


def _query(settings: Settings, _: argparse.Namespace) -> int:
    from query import serve

    serve(settings)
    return 0


def _sync(settings: Settings, args: argparse.Namespace) -> int:
    from producer import Workspace, sync_spool

    result = sync_spool(args.path, workspace=Workspace.from_config())
    print(
        f"published {result.records} record(s) from {len(result.sessions)} spool file(s); "
        f"uploaded {len(result.files)} file(s); skipped {len(result.skipped)} held by live processes"
    )
    return 0


def _drop_experiment(settings: Settings, args: argparse.Namespace) -> int:
    from ingest import UnknownExperimentError, drop_experiment

    if not args.yes:
        print(f"runstream drop-experiment: deleting {args.name!r} cannot be undone; add --yes", file=sys.stderr)
        return 2
    try:
        dropped = asyncio.run(drop_experiment(settings.database_url, args.name))
    except UnknownExperimentError as exc:
        print(f"runstream drop-experiment: {exc}", file=sys.stderr)
        return 1
    print(
        f"dropped {args.name!r}: {dropped.runs} run(s), {dropped.series} series, "
        f"{dropped.points} point(s), {dropped.entries} entries"
    )
    return 0


def _gc_artifacts(settings: Settings, args: argparse.Namespace) -> int:
    from query._artifact_gc import collect_artifacts
    from query._stores import open_store

    # Only what was given: the defaults live with collect_artifacts.
    ages = {k: v for k, v in vars(args).items() if k.endswith("min_age_seconds") and v is not None}
    try:
        report = asyncio.run(collect_artifacts(settings.database_url, open_store(settings), **ages))
    except ValueError as exc:
        print(f"runstream gc-artifacts: {exc}", file=sys.stderr)
        return 2
    print(
        f"deleted {report.file_rows} file row(s) of runs that are gone, {report.blobs} blob(s) and "
        f"{report.abandoned_uploads} abandoned upload(s) ({report.bytes} bytes); "
        f"kept {report.too_new} recommitted meanwhile"
    )
    return 0


def _healthcheck(settings: Settings, args: argparse.Namespace) -> int:
    from ops._healthcheck import check

    healthy, line = check(settings, args.service)
    print(line, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


def _install_azureml_compat(settings: Settings, args: argparse.Namespace) -> int:
    from ops import _azureml_compat as compat

    if args.uninstall:
        removed = compat.uninstall()
        print(f"removed {compat.pth_path()}" if removed else "the Azure ML v1 compatibility layer was not installed")
        return 0
    try:
        path = compat.install()
    except compat.CompatError as exc:
        print(f"runstream install-azureml-compat: {exc}", file=sys.stderr)
        return 1
    print(f"installed {path}: `import azureml.core` now resolves to runstream in this Python environment")
    return 0


_COMMANDS = {
    "up": (_up, "start Kafka, PostgreSQL, ingest and query in the background"),
    "down": (_down, "stop what `up` started"),
    "status": (_status, "each component's pid, port and health"),
    "rotate-secrets": (_rotate_secrets, "new passwords for the local stack's Kafka user and PostgreSQL roles"),
    "migrate": (_migrate, "apply pending schema migrations"),
    "ingest": (_ingest, "run ingest workers in the foreground"),
    "sync": (_sync, "publish spools left by offline runs or processes that died"),
    "dlq": (_dlq, "list the newest records of the dead-letter topic"),
    "query": (_query, "run the query service in the foreground"),
    "drop-experiment": (_drop_experiment, "delete one experiment's runs and all their data"),
    "gc-artifacts": (_gc_artifacts, "delete stored files no run references any more, and uploads abandoned a day ago"),
    "healthcheck": (_healthcheck, "is this container's service ready? (the image's HEALTHCHECK)"),
    "install-azureml-compat": (
        _install_azureml_compat,
        "make `import azureml.core` (Azure ML SDK v1) resolve to runstream here; refused beside the real one",
    ),
}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    parsers = {name: commands.add_parser(name, help=help_text) for name, (_, help_text) in _COMMANDS.items()}
    parsers["ingest"].add_argument("--workers", type=_positive, default=1, help="worker processes (default 1)")
    parsers["sync"].add_argument("path", nargs="?", default=None, help="spool, run directory or file")
    parsers["dlq"].add_argument("action", choices=["list"])
    parsers["dlq"].add_argument("--limit", type=_positive, default=50, help="how many of the newest (default 50)")
    parsers["rotate-secrets"].add_argument(
        "which", nargs="*", help="any of kafka, postgres, postgres-admin (default: all three)"
    )
    parsers["drop-experiment"].add_argument("name", help="the experiment's name")
    parsers["drop-experiment"].add_argument("--yes", action="store_true", help="confirm the deletion")
    gc = parsers["gc-artifacts"]
    gc.add_argument("--min-age-seconds", type=float, help="keep blobs committed since (default: an hour)")
    gc.add_argument(
        "--unknown-run-min-age-seconds", type=float, help="keep files of runs ingest has not stored (default: a day)"
    )
    parsers["healthcheck"].add_argument("service", nargs="?", choices=["query", "ingest"], help="default: PID 1's")
    parsers["install-azureml-compat"].add_argument("--uninstall", action="store_true", help="remove it again")
    args = parser.parse_args(argv)
    # A Kafka connection that fails is explained in one line (runstream.kafka); aiokafka's own
    # log of each attempt would only repeat it, before the explanation.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"runstream: {exc}", file=sys.stderr)
        return 2
    if args.command in ("ingest", "query", "migrate"):
        configure_logging(settings.log_format, component=args.command)
    handler = _COMMANDS[args.command][0]
    try:
        return handler(settings, args)
    except ConfigError as exc:  # a setting the command cannot use: a wrong password, CA, certificate
        print(f"runstream {args.command}: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as exc:
        if (setup := _postgres_setup_error(exc)) is not None:
            print(f"runstream {args.command}: {setup}", file=sys.stderr)
            return 2
        print(f"runstream {args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if (setup := _postgres_setup_error(exc)) is None:
            raise
        print(f"runstream {args.command}: {setup}", file=sys.stderr)
        return 2


def _postgres_setup_error(exc: BaseException) -> str | None:
    from runstream.dsn import postgres_setup_error  # imports asyncpg: only when there is an error

    return postgres_setup_error(exc)


if __name__ == "__main__":
    sys.exit(main())
