"""What SASL costs: figures 2 and 3 against one broker, through SASL/SCRAM and through PLAINTEXT, in one run.

``python -m bench.kafka_auth [--quick]``. The local stack's Kafka (SASL/SCRAM,
as ``runstream up`` makes it) gets, for this run only, a second client
listener without authentication on loopback. Each repetition measures the
end-to-end throughput (P=1 W=1, figure 2) and the freshness at 10k and 100k
points/s (figure 3) once through each listener, alternating which goes first,
so both see the same machine, broker, database and moment. It prints the
medians [min - max] side by side and SASL's change.

SASL touches a connection once, at its start (the SCRAM exchange); records
then travel exactly as they would without it (TLS is off on loopback). This
run is there to show that, not to assume it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.figures import freshness, throughput
from bench.proc import free_port
from bench.services import Infra
from bench.sizes import FULL, QUICK
from ops.stack import LocalStack
from runstream.config import KafkaSecurity, Settings
from runstream.dsn import with_database

__all__ = ["main"]

_SASL, _PLAIN = "SASL_PLAINTEXT (SCRAM-SHA-512)", "PLAINTEXT"


def _stack_with_a_plaintext_listener(home: Path) -> tuple[LocalStack, int]:
    settings = Settings.from_env(
        {
            "RUNSTREAM_HOME": str(home),
            "RUNSTREAM_KAFKA_PORT": str(free_port()),
            "RUNSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
            "RUNSTREAM_PG_PORT": str(free_port()),
        }
    )
    plain = free_port()
    s = settings
    stack = LocalStack(settings)
    stack.kafka.extra_properties = {
        "listeners": f"CLIENT://127.0.0.1:{s.kafka_port},PLAIN://127.0.0.1:{plain},"
        f"CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
        "advertised.listeners": f"CLIENT://127.0.0.1:{s.kafka_port},PLAIN://127.0.0.1:{plain}",
        "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,PLAIN:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
    }
    return stack, plain


async def _measure(infra: Infra, sizes: Any, log_dir: Path) -> dict[str, float]:
    ctx = Context(infra=infra, sizes=sizes, quick=False, log_dir=log_dir)
    tput = await throughput.runstream_once(ctx, 1, 1, sizes.throughput_points)
    found = {"points/s end to end": tput["points_per_second"], "flush s (SDK)": tput["flush_seconds"]}
    for row in await freshness.run(ctx):
        if row.runstream is not None:
            found[row.key.replace("freshness_", "freshness ") + " s"] = row.runstream.median
    return found


def _cell(values: list[float]) -> str:
    digits = 0 if statistics.median(values) >= 1000 else 3
    return f"{statistics.median(values):,.{digits}f} [{min(values):,.{digits}f} - {max(values):,.{digits}f}]"


async def _run(quick: bool) -> dict[str, dict[str, list[float]]]:
    base = QUICK if quick else FULL
    sizes = dataclasses.replace(
        base,
        reps=1,  # one measurement per call: the repetitions alternate the two listeners
        throughput_points=400_000 if quick else 2_000_000,
        freshness_seconds=2.0 if quick else 5.0,
    )
    reps = 2 if quick else 5
    home = Path(tempfile.mkdtemp(prefix="runstream-bench-auth-"))
    stack, plain_port = _stack_with_a_plaintext_listener(home)
    results: dict[str, dict[str, list[float]]] = {_SASL: {}, _PLAIN: {}}
    try:
        await asyncio.to_thread(stack.start_infrastructure)
        s = stack.settings
        admin = with_database(s.database_url, "postgres")
        infras = {
            _SASL: Infra(
                kafka_bootstrap=s.kafka_bootstrap, kafka_security=s.kafka_security, admin_dsn=admin, home=home
            ),
            _PLAIN: Infra(
                kafka_bootstrap=f"127.0.0.1:{plain_port}", kafka_security=KafkaSecurity(), admin_dsn=admin, home=home
            ),
        }
        for rep in range(reps):
            order = [_SASL, _PLAIN] if rep % 2 == 0 else [_PLAIN, _SASL]
            for name in order:
                print(f"[bench.kafka_auth] rep {rep + 1}/{reps}: {name}", file=sys.stderr, flush=True)
                found = await _measure(infras[name], sizes, home / "logs-bench")
                for key, value in found.items():
                    results[name].setdefault(key, []).append(value)
    finally:
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(home, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kafka_auth", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller and fewer measurements (about 2 minutes)")
    args = parser.parse_args(argv)
    results = asyncio.run(_run(args.quick))
    print(f"\n{'measure':<28} {_SASL:<36} {_PLAIN:<36} SASL vs PLAINTEXT")
    for key in results[_PLAIN]:
        sasl, plain = results[_SASL][key], results[_PLAIN][key]
        change = statistics.median(sasl) / statistics.median(plain) - 1
        print(f"{key:<28} {_cell(sasl):<36} {_cell(plain):<36} {change:+.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
