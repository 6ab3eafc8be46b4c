"""How big each benchmark is: the sizes of issue 6, and the reduced QUICK set (under 3 minutes)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FULL", "QUICK", "Sizes"]


@dataclass(frozen=True, kw_only=True)
class Sizes:
    reps: int = 5
    # 1. logging cost: calls per timed loop (the baselines are 100-1000x slower per call)
    log_calls: int = 1_000_000
    mlflow_log_calls: int = 10_000
    wandb_log_calls: int = 50_000
    # 2. end-to-end ingest: points per run of the benchmark, over runs x metrics
    throughput_points: int = 10_000_000
    throughput_runs: int = 100
    throughput_metrics: int = 20
    # (producer processes, ingest workers): the first, at throughput_points, beside the baselines;
    # the others at scaling_points each, to see where the limit moves
    throughput_configs: tuple[tuple[int, int], ...] = ((1, 1), (2, 1), (1, 2), (2, 2), (4, 4))
    scaling_points: int = 2_000_000
    # 7. scale: points of one run, to see whether cost per point grows with the run
    growth_points: tuple[int, ...] = (100_000, 1_000_000, 10_000_000)
    mlflow_batches: int = 100  # log_batch calls of 1,000 metrics per measurement
    # 3. freshness: offered loads (points/s) and seconds of logging per measurement
    freshness_rates: tuple[int, ...] = (10_000, 100_000)
    freshness_seconds: float = 10.0
    # 5. reads
    read_series_points: int = 1_000_000  # runstream's and MLflow's alike
    get_metrics_metrics: int = 50
    get_metrics_points: int = 20_000
    runs_list_runs: int = 10_000
    # 6. query service under load
    load_seconds: float = 10.0
    load_series_points: int = 1_000_000
    # 8. memory: points logged by the SDK with Kafka unreachable
    rss_points: int = 10_000_000
    # 9. read-your-writes: background loads (points/s), seconds of complete()+get_metrics() per
    # measurement, and points logged per measured run
    consistency_rates: tuple[int, ...] = (10_000, 100_000)
    consistency_seconds: float = 15.0
    consistency_points: int = 1_000
    # 10. charts in Chromium: runs on one compare chart, points of each
    chart_runs: int = 10
    chart_points: int = 1_000_000
    # 12. many live series: runs x metrics at 1 point/s each, seconds, workers; series merged once their
    # small chunks waited the age; the bar counts chunks of points older than series_old_seconds
    series_runs: int = 1_000
    series_metrics: int = 100
    series_seconds: float = 600.0
    series_workers: int = 2
    series_compaction_age_seconds: float = 60.0
    series_old_seconds: float = 300.0
    # ... and growth: series counts at a fixed total rate (points/s) for growth_seconds each
    growth_series: tuple[int, ...] = (10, 100, 1_000, 10_000, 100_000)
    growth_rate: int = 20_000
    growth_seconds: float = 120.0
    growth_compaction_age_seconds: float = 30.0
    # 13. storage on a realistic corpus: per measurement, corpus_runs seeded digits trainings of corpus_epochs
    # epochs (56 steps each, 5 metrics per step) through the SDK, merged by compaction after the age; and
    # the same five shapes synthetic, corpus_synthetic_points per series (each rep)
    corpus_runs: int = 16
    corpus_epochs: int = 90
    corpus_digits_reps: int = 3
    corpus_compaction_age_seconds: float = 1.0
    corpus_synthetic_points: int = 1_000_000


FULL = Sizes()

QUICK = Sizes(
    log_calls=200_000,
    mlflow_log_calls=1_000,
    wandb_log_calls=5_000,
    throughput_points=400_000,
    throughput_configs=((1, 1),),
    mlflow_batches=12,
    freshness_rates=(10_000, 100_000),
    freshness_seconds=2.0,
    read_series_points=20_000,
    chart_points=20_000,
    get_metrics_metrics=50,
    get_metrics_points=1_000,
    runs_list_runs=500,
    load_seconds=1.0,
    load_series_points=100_000,
    rss_points=1_000_000,
    consistency_seconds=2.0,
    series_runs=100,
    series_seconds=90.0,
    series_compaction_age_seconds=20.0,
    series_old_seconds=60.0,
    growth_series=(10, 1_000, 10_000),
    growth_rate=5_000,
    growth_seconds=30.0,
    growth_compaction_age_seconds=5.0,
    corpus_runs=4,
    corpus_epochs=20,
    corpus_digits_reps=1,
    corpus_synthetic_points=100_000,
)
