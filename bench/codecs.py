"""Compare chunk codecs on the training corpus: ``python -m bench.codecs [--points N]``.

The measurement behind the codec of docs/storage-layout.md. For each column
of a 10,000-point chunk (what ingest and compaction write for a busy series)
it prints bytes per point and encoding speed of each candidate:

- ``raw+lz4``: the layout before the codec, float64 values and uint32
  microsecond deltas, compressed as PostgreSQL's TOAST does with lz4;
- ``shuffle+lz4`` / ``shuffle+zstd``: the same bytes transposed into byte
  planes first (blosc's shuffle), so that the float's constant sign and
  exponent bytes and a float32's zero low bytes make long runs;
- ``xor+shuffle+zstd``: each value XORed with the one before (Gorilla's
  idea) before the shuffle;
- ``delta+shuffle+zstd``: the int64 bit patterns' differences;
- ``pcodec L``: pcodec at compression level L (its default is 8).

Columns: the five metrics of one real training run (:func:`bench.corpus.train`)
and of the synthetic curves at ``--points`` points, and the time column
(each series' microsecond stamps). Compressors come from cramjam, a project
dependency (Kafka's codecs), and pcodec.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import cramjam
import numpy as np
import numpy.typing as npt
from pcodec import ChunkConfig, standalone

from bench.corpus import METRICS, Training, digits_csv, load_digits, synthetic, train

CHUNK = 10_000


def _shuffle(array: npt.NDArray[np.generic]) -> bytes:
    return array.view(np.uint8).reshape(-1, array.itemsize).T.tobytes()


def _as_bits(array: npt.NDArray[np.generic]) -> npt.NDArray[np.int64]:
    return array.astype(np.int64) if array.dtype.kind in "iu" else array.view(np.int64)


def _raw(array: npt.NDArray[np.generic]) -> bytes:
    """The pre-codec layout: float64 values as they are, times as uint32 deltas."""
    if array.dtype.kind == "f":
        return array.tobytes()
    return np.diff(array, prepend=array[:1]).astype("<u4").tobytes()


def _zstd(data: bytes) -> int:
    return len(cramjam.zstd.compress(data, level=3))


def _lz4(data: bytes) -> int:
    return len(cramjam.lz4.compress_block(data, store_size=False))


def _pcodec(level: int) -> Callable[[npt.NDArray[np.generic]], int]:
    config = ChunkConfig(compression_level=level)
    return lambda array: len(standalone.simple_compress(array, config))


CODECS: dict[str, Callable[[npt.NDArray[np.generic]], int]] = {
    "raw+lz4": lambda a: _lz4(_raw(a)),
    "shuffle+lz4": lambda a: _lz4(_shuffle(a)),
    "shuffle+zstd": lambda a: _zstd(_shuffle(a)),
    "xor+shuffle+zstd": lambda a: _zstd(_shuffle(_as_bits(a) ^ np.concatenate([[0], _as_bits(a)[:-1]]))),
    "delta+shuffle+zstd": lambda a: _zstd(_shuffle(np.diff(_as_bits(a), prepend=0))),
    "pcodec 2": _pcodec(2),
    "pcodec 4": _pcodec(4),
    "pcodec 8": _pcodec(8),
}


def measure(columns: dict[str, npt.NDArray[np.generic]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per column and codec: (bytes per point over chunks of CHUNK, encoding M values/s)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for name, column in columns.items():
        chunks = [column[i : i + CHUNK] for i in range(0, len(column), CHUNK)]
        out[name] = {}
        for codec, encode in CODECS.items():
            started = time.perf_counter()
            size = sum(encode(chunk) for chunk in chunks)
            seconds = time.perf_counter() - started
            out[name][codec] = (size / len(column), len(column) / seconds / 1e6)
    return out


def _print(title: str, result: dict[str, dict[str, tuple[float, float]]]) -> None:
    print(f"\n{title}: bytes per point (encoding M values/s)")
    print(f"| column | {' | '.join(CODECS)} |")
    print(f"|---|{'---:|' * len(CODECS)}")
    for name, codecs in result.items():
        print(f"| {name} | {' | '.join(f'{b:.2f} ({s:.0f})' for b, s in codecs.values())} |")
    values = [result[m] for m in METRICS]
    mean = {codec: sum(v[codec][0] for v in values) / len(values) for codec in CODECS}
    print(f"| mean of the five metrics | {' | '.join(f'{b:.2f}' for b in mean.values())} |")


def _digits(epochs: int) -> dict[str, npt.NDArray[np.generic]]:
    logged: dict[str, list[float]] = {m: [] for m in METRICS}
    stamps: list[float] = []

    def on_step(metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            logged[name].append(value)
        stamps.append(time.time())

    train(load_digits(digits_csv()), Training(seed=0, epochs=epochs), on_step)
    micros = np.round(np.array(stamps) * 1e6).astype(np.int64)
    return {**{m: np.array(v) for m, v in logged.items()}, "time (µs)": micros - micros[0]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.codecs", description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000, help="points of each synthetic series")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of the digits run (56 steps each)")
    args = parser.parse_args()
    _print(f"digits MLP, {args.epochs} epochs", measure(_digits(args.epochs)))
    curves = synthetic(args.points, seed=1)
    micros = np.round(curves.times * 1e6).astype(np.int64)
    _print(f"synthetic, {args.points:,} points", measure({**curves.values, "time (µs)": micros - micros[0]}))


if __name__ == "__main__":
    main()
