"""bfloat16 vs float32 matmul throughput on this CPU, side by side, through TensorFlow/oneDNN.

Why: bf16 mixed precision (issue 15) only pays where the CPU multiplies bf16 natively
(AVX-512 BF16 / AMX). This measures the two shapes that decide a training step's speed, the
big square one and the decoder's per-step one (B x u by u x 4u at `paper`: 100 x 512 by
512 x 2048; the `tiny` preset's, 8 x 32 by 32 x 128, where a new run's default
precision is float32 whatever the CPU), in both precisions in one run, and says whether the CPU flags that make bf16
fast are present. The last line is one JSON object.

    python benchmarks/bench_bf16.py [--reps 20]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sketch_rnn.core.machine import cpu_flags, cpu_model  # noqa: E402  (no TF import)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHAPES = {"square_4096": (4096, 4096, 4096), "decoder_step_tiny": (8, 32, 128),
          "decoder_step_small": (100, 256, 1024),
          "decoder_step_paper": (100, 512, 2048)}
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "avx512f")


def flags_present() -> dict[str, bool]:
    """Which of the bf16-relevant instruction sets /proc/cpuinfo lists."""
    flags = cpu_flags()
    return {f: f in flags for f in BF16_FLAGS}


def time_matmul(m: int, k: int, n: int, dtype: str, reps: int) -> list[float]:
    """Seconds per (m, k) @ (k, n) product in `dtype`, one compiled call each."""
    import tensorflow as tf

    inner = max(1, int(2e9 // (2 * m * k * n)))  # ~2 GFLOP per timed call: small shapes repeat
    # distinct left operands, so that no graph optimisation can merge the repeated products
    a = [tf.cast(tf.random.stateless_normal((m, k), seed=(1, i)), dtype) for i in range(inner)]
    b = tf.cast(tf.random.stateless_normal((k, n), seed=(3, 4)), dtype)
    f = tf.function(lambda a, b: tf.add_n([tf.matmul(x, b) for x in a]))
    f(a, b).numpy()  # trace and warm up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f(a, b).numpy()
        times.append((time.perf_counter() - t0) / inner)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    result = {"cpu": cpu_model(), "cores": os.cpu_count(), "flags": flags_present(), "shapes": {}}
    print(f"{result['cpu']}, {result['cores']} cores; flags {result['flags']}")
    for name, (m, k, n) in SHAPES.items():
        flops = 2 * m * k * n
        row = {}
        for dtype in ("float32", "bfloat16"):
            times = time_matmul(m, k, n, dtype, args.reps)
            row[dtype] = {"gflops_median": round(flops / statistics.median(times) / 1e9, 1),
                          "gflops_best": round(flops / min(times) / 1e9, 1)}
        row["bf16_speedup_median"] = round(row["bfloat16"]["gflops_median"]
                                           / row["float32"]["gflops_median"], 2)
        result["shapes"][name] = row
        print(f"{name:20s} fp32 {row['float32']['gflops_median']:7.1f} GF/s median "
              f"({row['float32']['gflops_best']:.1f} best)   bf16 "
              f"{row['bfloat16']['gflops_median']:7.1f} median "
              f"({row['bfloat16']['gflops_best']:.1f} best)   bf16/fp32 "
              f"{row['bf16_speedup_median']:.2f}x")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
