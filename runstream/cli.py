"""The ``runstream`` command: the local stack and the long-running components."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from typing import TYPE_CHECKING

from runstream.config import ConfigError, Settings

if TYPE_CHECKING:
    from runstream.stack import LocalStack

__all__ = ["main"]


def _up(settings: Settings, _: argparse.Namespace) -> int:
    from runstream.stack import LocalStack

    stack = LocalStack(settings)
    stack.start()
    _print_status(stack)
    print(f"\nruns UI: {settings.query_url}/   config: {stack.config_file}")
    return 0


def _down(settings: Settings, _: argparse.Namespace) -> int:
    from runstream.stack import LocalStack

    stopped = LocalStack(settings).stop()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(settings: Settings, _: argparse.Namespace) -> int:
    from runstream.stack import LocalStack

    stack = LocalStack(settings)
    return 0 if _print_status(stack) else 1


def _print_status(stack: LocalStack) -> bool:
    rows = stack.status()
    print(f"{'component':<10} {'pid':>8} {'port':>6}  health")
    for row in rows:
        print(f"{row.name:<10} {row.pid or '-':>8} {row.port:>6}  {'ok' if row.healthy else 'DOWN'}")
    return all(row.healthy for row in rows)


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    from ingest.schema import migrate

    applied = asyncio.run(migrate(settings.database_url))
    print("applied: " + (", ".join(applied) if applied else "nothing, schema is current"))
    return 0


def _ingest(settings: Settings, _: argparse.Namespace) -> int:
    from ingest import run_worker

    run_worker(settings)
    return 0


def _query(settings: Settings, _: argparse.Namespace) -> int:
    from query import serve

    serve(settings)
    return 0


_COMMANDS = {
    "up": (_up, "start Kafka, PostgreSQL, ingest and query in the background"),
    "down": (_down, "stop what `up` started"),
    "status": (_status, "each component's pid, port and health"),
    "migrate": (_migrate, "apply pending schema migrations"),
    "ingest": (_ingest, "run one ingest worker in the foreground"),
    "query": (_query, "run the query service in the foreground"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in _COMMANDS.items():
        commands.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"runstream: {exc}", file=sys.stderr)
        return 2
    handler = _COMMANDS[args.command][0]
    try:
        return handler(settings, args)
    except (RuntimeError, OSError) as exc:
        print(f"runstream {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
