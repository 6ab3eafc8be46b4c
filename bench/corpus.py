"""A realistic corpus of training metrics (issue 18): a real small training run, and synthetic curves of its shapes.

Storage per point depends on what the values look like: a float64 array of
noise does not compress, a float32 loss widened to float64, an accuracy of
k/32 or a cosine schedule compress a lot. So the storage figure measures on
what training loops really log rather than on ``step * 0.5``:

- :func:`train`: a float32 numpy MLP (64 -> hidden -> 10, ReLU, softmax
  cross-entropy, minibatch SGD on a cosine learning-rate schedule, seeded)
  trained on scikit-learn's bundled digits; each step hands the loop's five
  metrics to a callback, as Python floats the way a loop computes them (loss
  and grad norm in float32, the learning rate in float64, the batch accuracy
  k/batch, throughput = batch / ``perf_counter`` seconds of the step);
- :func:`synthetic`: the same five shapes at any length, with jittered
  ``time.time()``-like stamps, for series of 10^6+ points that no quick
  training run reaches.

The digits data come from the benchmark's environment (``bench/.venv``, where
``bench/requirements.txt`` pins scikit-learn): :func:`digits_csv` asks that
interpreter where sklearn is without importing it, and :func:`load_digits`
reads the CSV with numpy, so the project's own environment needs no
scikit-learn to run the corpus.
"""

# ruff: noqa: S603 - the bench starts its own interpreter with a fixed argument list.

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from bench.proc import BENCH_PYTHON

__all__ = ["DIGITS_SAMPLES", "METRICS", "Curves", "Training", "digits_csv", "load_digits", "synthetic", "train"]

#: The five metrics of a step, in the order a training loop logs them.
METRICS = ("loss", "accuracy", "lr", "grad_norm", "samples_per_second")
#: Images in scikit-learn's digits (8x8, 10 classes).
DIGITS_SAMPLES = 1_797
_FIND_SKLEARN = "import importlib.util as u; print(u.find_spec('sklearn').submodule_search_locations[0])"


def digits_csv(python: Path = BENCH_PYTHON) -> Path:
    """scikit-learn's ``digits.csv.gz`` in the environment of ``python`` (the bench's, by default)."""
    done = subprocess.run([str(python), "-c", _FIND_SKLEARN], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"no scikit-learn in {python} (make bench installs bench/requirements.txt): {done.stderr}")
    path = Path(done.stdout.strip()) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing")
    return path


def load_digits(path: Path) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """(features scaled from 0..16 to 0..1 as float32, labels): the last column of each row is the label."""
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    return (table[:, :-1] / 16.0).astype(np.float32), table[:, -1].astype(np.int64)


@dataclass(frozen=True, kw_only=True)
class Training:
    """One seeded run: the 1,797 digits make 56 steps of 32 per epoch (the last partial batch is dropped)."""

    seed: int
    epochs: int
    hidden: int = 64
    batch: int = 32
    lr: float = 0.1

    def steps(self, samples: int = DIGITS_SAMPLES) -> int:
        """Steps of the whole run over ``samples`` examples."""
        return samples // self.batch * self.epochs


def train(
    data: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]],
    config: Training,
    on_step: Callable[[dict[str, float]], object],
) -> dict[str, float]:
    """Train, calling ``on_step`` with the step's metrics after each update; return the last step's."""
    features, labels = data
    rng = np.random.default_rng(config.seed)
    w1 = (rng.standard_normal((features.shape[1], config.hidden)) * math.sqrt(2 / features.shape[1])).astype(np.float32)
    b1 = np.zeros(config.hidden, np.float32)
    w2 = (rng.standard_normal((config.hidden, 10)) * math.sqrt(2 / config.hidden)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    per_epoch = len(labels) // config.batch
    total = config.steps(len(labels))
    rows = np.arange(config.batch)
    metrics: dict[str, float] = {}
    for step in range(total):
        at = step % per_epoch
        if at == 0:
            order = rng.permutation(len(labels))
        started = time.perf_counter()
        batch = order[at * config.batch : (at + 1) * config.batch]
        x, y = features[batch], labels[batch]
        lr = config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
        hidden = x @ w1 + b1
        active = np.maximum(hidden, 0)
        logits = active @ w2 + b2
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = -np.log(probs[rows, y]).mean()
        correct = int((logits.argmax(axis=1) == y).sum())
        d_logits = probs
        d_logits[rows, y] -= 1
        d_logits /= config.batch
        d_hidden = (d_logits @ w2.T) * (hidden > 0)
        grads = (x.T @ d_hidden, d_hidden.sum(axis=0), active.T @ d_logits, d_logits.sum(axis=0))
        grad_norm = np.sqrt(sum(np.square(g).sum() for g in grads))
        for param, grad in zip((w1, b1, w2, b2), grads, strict=True):
            param -= np.float32(lr) * grad
        elapsed = time.perf_counter() - started
        metrics = {
            "loss": float(loss),
            "accuracy": correct / config.batch,
            "lr": lr,
            "grad_norm": float(grad_norm),
            "samples_per_second": config.batch / elapsed,
        }
        on_step(metrics)
    return metrics


class Curves(NamedTuple):
    """Synthetic series of the five metrics over one shared time axis (a loop logs its dict at once)."""

    steps: npt.NDArray[np.int64]
    times: npt.NDArray[np.float64]
    values: dict[str, npt.NDArray[np.float64]]


def synthetic(points: int, seed: int, *, batch: int = 32, step_seconds: float = 0.01) -> Curves:
    """The shapes of :func:`train`'s metrics over ``points`` steps, as float64 arrays of the values logged.

    loss: a noisy exponential decay computed in float32; accuracy: k/batch with
    k ~ Binomial(batch, p) and p rising; lr: a float64 cosine schedule; grad
    norm: a decaying float32 with log-normal noise; throughput: batch over a
    step time (``step_seconds``, log-normal with σ = 5%), full float64. Times:
    the end of each step from a 2025 epoch, as ``time.time()`` returns them.
    """
    rng = np.random.default_rng(seed)
    steps = np.arange(points, dtype=np.int64)
    progress = steps / points
    noise = rng.lognormal(0.0, 0.1, points)
    loss = ((2.3 * np.exp(-5 * progress) + 0.05) * noise).astype(np.float32)
    right = rng.binomial(batch, 0.1 + 0.88 * (1 - np.exp(-6 * progress)))
    grad_norm = ((1.5 * np.exp(-2 * progress) + 0.3) * rng.lognormal(0.0, 0.25, points)).astype(np.float32)
    step_time = step_seconds * rng.lognormal(0.0, 0.05, points)
    # Each step is stamped when it ends, so the stamps advance by the same step times the throughput divides by.
    times = 1_764_000_000.0 + np.cumsum(step_time)
    values: dict[str, Any] = {
        "loss": loss.astype(np.float64),
        "accuracy": right / batch,
        "lr": 0.1 * 0.5 * (1 + np.cos(np.pi * progress)),
        "grad_norm": grad_norm.astype(np.float64),
        "samples_per_second": batch / step_time,
    }
    return Curves(steps, times, values)
