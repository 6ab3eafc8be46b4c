"""MLflow ``get_metric_history`` of one large series, through its tracking server.

The series is written straight into MLflow's own ``metrics`` table with COPY
(logging it through the server would take minutes at ~5,000 points/s); the
rows are exactly those ``log_batch`` writes. Then the client reads the whole
history ``reps`` times, after an untimed call on a small run.
"""

from __future__ import annotations

import io
import time

import psycopg2
from mlflow.tracking import MlflowClient

from bench.workers import emit, params


def main() -> None:
    p = params()
    points, reps = p["points"], p["reps"]
    client = MlflowClient(tracking_uri=p["tracking_uri"])
    experiment_id = client.create_experiment(f"bench-history-{time.time_ns()}")
    run_id = client.create_run(experiment_id).info.run_id
    now_ms = int(time.time() * 1000)
    rows = io.StringIO("".join(f"series\t{i * 0.5}\t{now_ms + i}\t{run_id}\t{i}\tf\n" for i in range(points)))
    with psycopg2.connect(p["dsn"]) as conn, conn.cursor() as cur:
        cur.copy_expert("COPY metrics (key, value, timestamp, run_uuid, step, is_nan) FROM STDIN", rows)
        last = points - 1
        cur.execute(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            ("series", last * 0.5, now_ms + last, last, False, run_id),
        )
        cur.execute("ANALYZE metrics")
    warm = client.create_run(experiment_id).info.run_id
    client.log_metric(warm, "series", 0.5, step=0)
    client.get_metric_history(warm, "series")  # warm-up on a small run: the big one costs a minute
    seconds = []
    for _ in range(reps):
        started = time.perf_counter()
        history = client.get_metric_history(run_id, "series")
        seconds.append(time.perf_counter() - started)
        if len(history) != points:
            raise RuntimeError(f"get_metric_history returned {len(history)} of {points} points")
    emit({"seconds": seconds, "points": points})


if __name__ == "__main__":
    main()
