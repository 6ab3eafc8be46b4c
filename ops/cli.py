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
from pathlib import Path
from typing import TYPE_CHECKING

from runstream.config import ConfigError, Settings
from runstream.logs import configure_logging

if TYPE_CHECKING:
    from ingest import DroppedRuns
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
    print(f"dropped {args.name!r}: {_dropped(dropped)}")
    return 0


def _retention(settings: Settings, args: argparse.Namespace) -> int:
    from ingest import UnknownExperimentError, drop_expired_runs

    try:
        dropped = asyncio.run(
            drop_expired_runs(
                settings.database_url,
                older_than_days=args.older_than_days,
                experiment=args.experiment,
                dry_run=not args.yes,
            )
        )
    except UnknownExperimentError as exc:
        print(f"runstream retention: {exc}", file=sys.stderr)
        return 1
    scope = f"runs of {args.experiment!r}" if args.experiment else "runs"
    done = "deleted" if args.yes else "would delete (add --yes to delete)"
    print(f"{scope} ended over {args.older_than_days} day(s) ago: {done} {_dropped(dropped)}")
    if args.yes and dropped.files:
        print("their files are deleted by the next `runstream gc-artifacts`")
    return 0


def _pack_chunks(settings: Settings, _: argparse.Namespace) -> int:
    from ingest import pack_raw_chunks

    packed = asyncio.run(pack_raw_chunks(settings.database_url))
    mb = 1024 * 1024
    print(
        f"packed {packed.chunks} chunk(s) of {packed.points} point(s): times and values "
        f"{packed.bytes_before / mb:.1f} MB -> {packed.bytes_after / mb:.1f} MB"
    )
    return 0


def _dropped(dropped: DroppedRuns) -> str:
    return (
        f"{dropped.runs} run(s), {dropped.series} series, {dropped.points} point(s), "
        f"{dropped.entries} entries, {dropped.files} file(s)"
    )


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


def _runs(settings: Settings, args: argparse.Namespace) -> int:
    from ops._runs_cli import explained

    return explained(f"runstream runs {args.runs_command}", lambda: _runs_command(settings, args))


def _runs_command(settings: Settings, args: argparse.Namespace) -> int:
    from ops._runs_cli import export_rows, list_runs, show_run, write_export

    if args.runs_command == "ls":
        return list_runs(
            settings,
            experiment=args.experiment,
            filter_text=args.filter,
            sort=args.sort,
            limit=args.limit,
            fmt=args.format,
            out=sys.stdout,
        )
    if args.runs_command == "show":
        return show_run(settings, args.run_id, sys.stdout)
    progress = sys.stderr if sys.stderr.isatty() else None
    return write_export(export_rows(settings, args.experiment, progress=progress), args.format, args.output, sys.stdout)


def _metrics(settings: Settings, args: argparse.Namespace) -> int:
    from ops._runs_cli import explained, tail_metrics

    try:
        return explained(
            "runstream metrics tail", lambda: tail_metrics(settings, args.run_id, args.metrics, sys.stdout)
        )
    except KeyboardInterrupt:
        return 0


def _alerts(settings: Settings, args: argparse.Namespace) -> int:
    from ops import _alerts_cli as alerts
    from ops._runs_cli import explained

    def act() -> int:
        if args.alerts_command == "add":
            return alerts.add_rule(settings, args, sys.stdout)
        if args.alerts_command == "ls":
            return alerts.list_rules(settings, sys.stdout)
        return alerts.remove_rule(settings, args.rule_id, sys.stdout)

    return explained(f"runstream alerts {args.alerts_command}", act)


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
    "retention": (_retention, "delete the runs that ended over N days ago, with all their data"),
    "pack-chunks": (
        _pack_chunks,
        "rewrite large chunks stored before the storage codec as packed ones (safe beside ingest and query)",
    ),
    "gc-artifacts": (_gc_artifacts, "delete stored files no run references any more, and uploads abandoned a day ago"),
    "healthcheck": (_healthcheck, "is this container's service ready? (the image's HEALTHCHECK)"),
    "runs": (_runs, "runs from the query service: ls, show ID, export --experiment X"),
    "alerts": (_alerts, "alert rules: add (a condition and actions), ls, rm ID"),
    "metrics": (_metrics, "metrics tail RUN [METRIC...]: print a run's points as they are stored"),
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
    parser.add_argument("--version", action="version", version=f"runstream {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    parsers = {name: commands.add_parser(name, help=help_text) for name, (_, help_text) in _COMMANDS.items()}
    _add_run_commands(parsers["runs"], parsers["metrics"])
    _add_alert_commands(parsers["alerts"])
    parsers["ingest"].add_argument("--workers", type=_positive, default=1, help="worker processes (default 1)")
    parsers["sync"].add_argument("path", nargs="?", default=None, help="spool, run directory or file")
    parsers["dlq"].add_argument("action", choices=["list"])
    parsers["dlq"].add_argument("--limit", type=_positive, default=50, help="how many of the newest (default 50)")
    parsers["rotate-secrets"].add_argument(
        "which", nargs="*", help="any of kafka, postgres, postgres-admin (default: all three)"
    )
    parsers["drop-experiment"].add_argument("name", help="the experiment's name")
    parsers["drop-experiment"].add_argument("--yes", action="store_true", help="confirm the deletion")
    retention = parsers["retention"]
    retention.add_argument(
        "--older-than-days", type=_positive, required=True, help="runs (and their trees) that ended before then"
    )
    retention.add_argument("--experiment", help="only this experiment's runs")
    retention.add_argument("--yes", action="store_true", help="delete (without it: count what would go)")
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("runstream")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _add_run_commands(runs: argparse.ArgumentParser, metrics: argparse.ArgumentParser) -> None:
    commands = runs.add_subparsers(dest="runs_command", required=True)
    ls = commands.add_parser("ls", help="list runs (newest first)")
    ls.add_argument("--experiment", help="only this experiment's runs")
    ls.add_argument("--filter", help="e.g. \"metrics.accuracy > 0.9 and tags.team = 'cv'\" (runstream.client)")
    ls.add_argument("--sort", help="e.g. 'metrics.accuracy DESC', 'created_at ASC'")
    ls.add_argument("--limit", type=_positive, help="at most this many runs")
    ls.add_argument("--format", choices=["table", "json", "csv"], default="table")
    show = commands.add_parser("show", help="one run's details, tags, properties and last metric values")
    show.add_argument("run_id")
    export = commands.add_parser("export", help="every point of an experiment's runs, a row per point")
    export.add_argument("--experiment", required=True)
    export.add_argument("--format", choices=["csv", "parquet"], default="csv")
    export.add_argument("--output", type=Path, help="file to write (default: CSV to stdout)")
    tail = metrics.add_subparsers(dest="metrics_command", required=True).add_parser(
        "tail", help="print a run's points as they are stored, until it ends"
    )
    tail.add_argument("run_id")
    tail.add_argument("metrics", nargs="*", help="metric names or globs (default: all)")


def _add_alert_commands(alerts: argparse.ArgumentParser) -> None:
    from ops._alerts_cli import add_arguments

    add_arguments(alerts)


def _postgres_setup_error(exc: BaseException) -> str | None:
    from runstream.dsn import postgres_setup_error  # imports asyncpg: only when there is an error

    return postgres_setup_error(exc)


if __name__ == "__main__":
    sys.exit(main())
