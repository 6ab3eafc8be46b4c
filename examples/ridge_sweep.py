"""Demo training run: an alpha sweep of a ridge regression, logged the way the Azure ML docs do.

Run it with the local stack up (`make demo` does both). It logs with the SDK,
completes the run, waits until the query service reports it, and prints what
the query service returns.
"""

from __future__ import annotations

import json
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

from producer import Experiment, Workspace

ALPHAS = [0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2]


def make_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(size=(442, 10))
    true_w = rng.normal(size=10) * 10
    y = x @ true_w + rng.normal(scale=25.0, size=442)
    split = 353
    return x[:split], y[:split], x[split:], y[split:]


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Closed-form ridge: (XᵀX + αI)⁻¹ Xᵀy."""
    return np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)


def main() -> int:
    workspace = Workspace.from_config()
    experiment = Experiment(workspace, "ridge-demo")
    run = experiment.start_logging(display_name="alpha sweep")
    x_train, y_train, x_test, y_test = make_data(np.random.default_rng(42))

    run.log_list("alphas", ALPHAS)
    best_mse, best_alpha, best_w = float("inf"), 0.0, None
    for alpha in ALPHAS:
        w = fit_ridge(x_train, y_train, alpha)
        mse = float(np.mean((x_test @ w - y_test) ** 2))
        run.log("alpha", alpha)
        run.log("mse", mse)
        run.log_row("mse vs alpha", alpha=alpha, mse=mse)
        if mse < best_mse:
            best_mse, best_alpha, best_w = mse, alpha, w
    run.tag("best_alpha", str(best_alpha))

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.pkl"
        model.write_bytes(pickle.dumps({"alpha": best_alpha, "weights": best_w}))
        run.upload_file("outputs/model.pkl", str(model))
    run.complete()
    run.wait_for_completion(raise_on_error=True)

    print(f"run {run.id} in experiment {experiment.name!r}")
    print(f"status: {run.get_status()}")
    print("metrics:")
    print(json.dumps(run.get_metrics(), indent=2, sort_keys=True))
    print(f"files: {', '.join(run.get_file_names())}")
    print(f"portal: {run.get_portal_url()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
