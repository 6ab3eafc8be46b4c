"""MLflow ``log_batch`` throughput: 1,000 metrics per call from 4 client threads, then its bytes per point.

Each call carries one run's 20 metrics x 50 steps; calls go round-robin over
the runs and are shared among the threads. The runs are created before the
clock starts. Storage: ``pg_total_relation_size`` of ``metrics`` and
``latest_metrics`` over the rows in ``metrics``, read straight from the database.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg2
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from bench.workers import emit, params

STEPS_PER_CALL = 50


def main() -> None:
    p = params()
    warm_up(p)
    emit({"runs": [measure(p) for _ in range(p["reps"])]})


def warm_up(p: dict[str, Any]) -> None:
    """One untimed call first, so that no measurement pays for the server's first requests."""
    client = MlflowClient(tracking_uri=p["tracking_uri"])
    experiment_id = client.create_experiment("bench-log-batch")
    run_id = client.create_run(experiment_id).info.run_id
    now_ms = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric("warm_up", i * 0.5, now_ms, i) for i in range(1000)])
    client.set_terminated(run_id)


def measure(p: dict[str, Any]) -> dict[str, float]:
    client = MlflowClient(tracking_uri=p["tracking_uri"])
    experiment = client.get_experiment_by_name("bench-log-batch")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("bench-log-batch")
    run_ids = [client.create_run(experiment_id).info.run_id for _ in range(min(p["runs"], p["batches"]))]
    names = [f"metric_{m:02d}" for m in range(p["metrics"])]
    now_ms = int(time.time() * 1000)
    calls = []
    for index in range(p["batches"]):
        first_step = (index // len(run_ids)) * STEPS_PER_CALL
        metrics = [
            Metric(name, step * 0.5, now_ms + step, step)
            for step in range(first_step, first_step + STEPS_PER_CALL)
            for name in names
        ]
        calls.append((run_ids[index % len(run_ids)], metrics))
    shares = [calls[t :: p["threads"]] for t in range(p["threads"])]

    def send(share: list[tuple[str, list[Metric]]]) -> None:
        for run_id, metrics in share:
            client.log_batch(run_id, metrics=metrics)

    threads = [threading.Thread(target=send, args=(share,)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    points = sum(len(m) for _, m in calls)
    for run_id in run_ids:
        client.set_terminated(run_id)
    with psycopg2.connect(p["dsn"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_total_relation_size('metrics') + pg_total_relation_size('latest_metrics')")
        size = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM metrics")
        rows = cur.fetchone()[0]
    return {
        "points": points,
        "seconds": seconds,
        "points_per_second": points / seconds,
        "bytes_per_point": size / rows,
        "metrics_rows": rows,
    }


if __name__ == "__main__":
    main()
