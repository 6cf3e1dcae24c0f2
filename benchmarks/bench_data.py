"""Time one training batch: our vectorised pipeline vs. a per-sketch reference loader.

Both draw B = 100 sketches with augmentation on (random scale 0.15, point drop 0.10) from the
same 70,000 normalised sketches (the sheep training set repeated) and emit stroke-5 batches
of shape (B, N_max + 1, 5) with N_max = 250. The reference is written the way the original
Magenta DataLoader works: a fresh permutation of all sketches per batch, then per sketch a
random scale, a per-point Python loop that drops points, and per-sketch padding to stroke-5.

    python benchmarks/bench_data.py [--data data/aaron_sheep.npz] [--repeats 7]

Prints both timings and ends with one JSON line:
{"ms_per_batch": ..., "baseline_ms_per_batch": ..., "speedup": ...}
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import numpy as np

from sketch_rnn.data import SketchSplit, load_data, train_batch
from sketch_rnn.core.hparams import HParams

N_SKETCHES = 70_000


# --------------------------------------------------------------------------- reference loader
class ReferenceLoader:
    """Per-sketch, per-point Python loops, as in the original implementation."""

    def __init__(self, sketches: list[np.ndarray], hps: HParams, seed: int = 0) -> None:
        self.sketches = sketches
        self.hps = hps
        np.random.seed(seed)

    def random_scale(self, data: np.ndarray) -> np.ndarray:
        s = self.hps.random_scale_factor
        fx = (np.random.random() - 0.5) * 2 * s + 1.0
        fy = (np.random.random() - 0.5) * 2 * s + 1.0
        out = np.copy(data)
        out[:, 0] *= fx
        out[:, 1] *= fy
        return out

    @staticmethod
    def drop_points(data: np.ndarray, prob: float) -> np.ndarray:
        kept: list[list[float]] = []
        prev_pen = 1.0
        count = 0
        last: list[float] = [0.0, 0.0, 1.0]
        for i in range(len(data)):
            cand = [float(data[i, 0]), float(data[i, 1]), float(data[i, 2])]
            count = 0 if (cand[2] == 1 or prev_pen == 1) else count + 1
            u = np.random.rand()
            if cand[2] == 0 and prev_pen == 0 and count > 2 and u < prob:
                last[0] += cand[0]
                last[1] += cand[1]
            else:
                last = cand
                prev_pen = cand[2]
                kept.append(last)
        return np.array(kept)

    def pad(self, batch: list[np.ndarray]) -> np.ndarray:
        n_max = self.hps.max_seq_len
        out = np.zeros((len(batch), n_max + 1, 5), dtype=float)  # (B, N_max+1, 5)
        for i, s in enumerate(batch):
            n = len(s)
            out[i, 1:n + 1, 0:2] = s[:, 0:2]
            out[i, 1:n + 1, 3] = s[:, 2]
            out[i, 1:n + 1, 2] = 1 - s[:, 2]
            out[i, n + 1:, 4] = 1
            out[i, 0, 2] = 1  # S_0
        return out

    def random_batch(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.random.permutation(len(self.sketches))[: self.hps.batch_size]
        batch = []
        for i in idx:
            data = self.random_scale(self.sketches[i])
            batch.append(self.drop_points(data, self.hps.augment_stroke_prob))
        lengths = np.array([len(s) for s in batch])
        return self.pad(batch), lengths


# --------------------------------------------------------------------------- set-up and timing
def tiled_split(split: SketchSplit, n: int) -> SketchSplit:
    """The split's sketches repeated (in order) until there are n of them."""
    reps = -(-n // len(split))
    lengths = np.tile(split.lengths(), reps)[:n]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    points = np.tile(split.points, (reps, 1))[: offsets[-1]]
    return SketchSplit("train", np.ascontiguousarray(points), offsets, np.zeros(n, np.int32),
                       split.scale_factor)


def per_call_ms(fn: Callable[[int], object], calls: int, repeats: int) -> float:
    """Median over repeats of the mean time per call, in milliseconds."""
    times = []
    step = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(step)
            step += 1
        times.append((time.perf_counter() - t0) / calls * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/aaron_sheep.npz")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300, help="our batches per repeat")
    parser.add_argument("--baseline-calls", type=int, default=10,
                        help="reference batches per repeat")
    args = parser.parse_args()

    hps = HParams(batch_size=100, max_seq_len=250, random_scale_factor=0.15,
                  augment_stroke_prob=0.10)
    data = load_data([args.data], hps.max_seq_len)
    split = tiled_split(data.train, N_SKETCHES)
    ref = ReferenceLoader([split.sketch(i) for i in range(len(split))], hps)
    print(f"{len(split)} sketches ({split.points.shape[0]} points), B={hps.batch_size}, "
          f"N_max={hps.max_seq_len}, scale={hps.random_scale_factor}, "
          f"drop={hps.augment_stroke_prob}")

    per_call_ms(lambda s: train_batch(split, hps, 0, s), 20, 1)  # warm-up
    ours = per_call_ms(lambda s: train_batch(split, hps, 0, s), args.calls, args.repeats)
    base = per_call_ms(lambda s: ref.random_batch(), args.baseline_calls, args.repeats)
    print(f"ours:      {ours:8.3f} ms/batch (train_batch, vectorised over the packed batch)")
    print(f"reference: {base:8.3f} ms/batch (per-sketch loops, permutation per batch)")
    print(json.dumps({"ms_per_batch": round(ours, 4), "baseline_ms_per_batch": round(base, 4),
                      "speedup": round(base / ours, 1)}))


if __name__ == "__main__":
    main()
