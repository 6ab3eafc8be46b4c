"""``runstream alerts add|ls|rm``: alert rules of the query service (query/_alerts.py says what they do).

::

    runstream alerts add --experiment mnist --metric loss --nan --cancel
    runstream alerts add --run RUN --metric val/acc --plateau 500 --delta 0.001 --mode max --tag plateaued=yes
    runstream alerts add --experiment mnist --metric loss --above 10 --webhook https://hooks.example/x \\
        --secret-file ~/.hook-secret
    runstream alerts add --experiment mnist --not-responding --webhook ... --secret-file ...

A webhook's HMAC secret is read from a file, never from the command line.
Adding and removing are writes: the write token is used when one is set.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from runstream.config import Settings

if TYPE_CHECKING:
    from runstream.client import Client

__all__ = ["add_arguments", "add_rule", "list_rules", "remove_rule", "rule_from_args"]


def add_arguments(alerts: argparse.ArgumentParser) -> None:
    commands = alerts.add_subparsers(dest="alerts_command", required=True)
    add = commands.add_parser("add", help="add a rule: a condition and its actions")
    add.add_argument("--experiment", help="watch this experiment's runs")
    add.add_argument("--run", help="watch this run")
    add.add_argument("--metric", help="a metric name or glob (all but --not-responding)")
    condition = add.add_mutually_exclusive_group(required=True)
    condition.add_argument("--nan", action="store_true", help="the metric is NaN or ±Inf")
    condition.add_argument("--above", type=float, metavar="X", help="the metric is > X")
    condition.add_argument("--below", type=float, metavar="X", help="the metric is < X")
    condition.add_argument("--plateau", type=int, metavar="STEPS", help="no improvement within STEPS steps")
    condition.add_argument("--not-responding", action="store_true", help="the run is NotResponding")
    add.add_argument("--delta", type=float, default=0.0, help="--plateau: the least improvement that counts")
    add.add_argument("--mode", choices=["min", "max"], default="min", help="--plateau: lower or higher is better")
    add.add_argument("--webhook", metavar="URL", help="POST the firing here, signed (with --secret-file)")
    add.add_argument("--secret-file", metavar="FILE", help="the webhook's HMAC secret (at least 16 characters)")
    add.add_argument("--tag", metavar="KEY[=VALUE]", help="tag the run")
    add.add_argument("--cancel", action="store_true", help="ask the run to stop (run.should_stop() turns True)")
    commands.add_parser("ls", help="the rules, with how often each fired and its last error")
    rm = commands.add_parser("rm", help="delete a rule")
    rm.add_argument("rule_id", type=int)


def rule_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON rule for ``alerts add``; ValueError saying what is missing."""
    rule: dict[str, Any] = {"experiment": args.experiment, "run_id": args.run, "metric": args.metric}
    if args.nan:
        rule["kind"] = "nonfinite"
    elif args.above is not None or args.below is not None:
        above = args.above is not None
        rule |= {"kind": "threshold", "op": ">" if above else "<", "threshold": args.above if above else args.below}
    elif args.plateau is not None:
        rule |= {"kind": "plateau", "steps": args.plateau, "delta": args.delta, "mode": args.mode}
    else:
        rule["kind"] = "not_responding"
    actions: dict[str, Any] = {}
    if args.webhook:
        if not args.secret_file:
            raise ValueError("--webhook needs --secret-file (the HMAC secret, kept off the command line)")
        with open(args.secret_file, encoding="utf-8") as file:
            actions["webhook"] = {"url": args.webhook, "secret": file.read().strip()}
    if args.tag:
        key, _, value = args.tag.partition("=")
        actions["tag"] = {"key": key, "value": value}
    if args.cancel:
        actions["cancel"] = True
    if not actions:
        raise ValueError("give at least one action: --webhook, --tag or --cancel")
    rule["actions"] = actions
    return {k: v for k, v in rule.items() if v is not None}


def _client(settings: Settings, *, write: bool = False) -> Client:
    # Imported here: the argument parser imports this module for every runstream command.
    from runstream.client import Client

    return Client(settings.query_url, (settings.write_token if write else None) or settings.token)


def add_rule(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    added = _client(settings, write=True).add_alert_rule(rule_from_args(args))
    out.write(f"added rule {added['id']}: {orjson.dumps(added).decode()}\n")
    return 0


def list_rules(settings: Settings, out: TextIO) -> int:
    for rule in _client(settings).alert_rules():
        scope = rule["run_id"] or rule["experiment"]
        what = rule["kind"] + (f" {rule['metric']}" if rule["metric"] else "")
        actions = ",".join(sorted(rule["actions"]))
        error = f"  last error: {rule['last_error']}" if rule["last_error"] else ""
        out.write(f"{rule['id']:>5}  {scope:<36}  {what:<30}  {actions:<20}  fired {rule['fired']}{error}\n")
    return 0


def remove_rule(settings: Settings, rule_id: int, out: TextIO) -> int:
    _client(settings, write=True).delete_alert_rule(rule_id)
    out.write(f"deleted rule {rule_id}\n")
    return 0
