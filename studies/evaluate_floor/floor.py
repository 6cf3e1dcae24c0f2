"""How fast can `sketch-rnn evaluate --run-dir checkpoints/sheep --split test` be with the
same JSON? Each part's time in one process, beside the floor of the two parts that are most
of it, and the best whole time those floors allow.

    python studies/evaluate_floor/floor.py --old-seconds 80.7

- parts: evaluate_run as the CLI runs it, its pieces wrapped with timers (TensorFlow's
  import, the split's losses, the encoder passes, the samplers, the rasters, the
  teacher-forced view);
- the sampler: it is one XLA program, so its strokes, and every sampled number of the JSON,
  are those of XLA's bf16 matmul; that matmul is timed at the sampler's shape (300 rows of
  h (512) times W_hh (512, 2048)) as XLA runs it and as oneDNN would, and its floor is the
  steps the samplers actually ran times XLA's matmul alone;
- the teacher-forced view: the row-steps it actually decoded (counted in `_pair_scores`'
  calls) times a time loop that does nothing but the recurrent bf16 matmul on oneDNN at its
  row count: what the view would cost if everything but that matmul were free.

`--old-seconds`: the baseline's wall time (`benchmarks/bench_evaluate.py`'s old side) to set
the best time against. Ends with one JSON line.
"""
import argparse
import functools
import json
import sys
import time

T0 = time.perf_counter()
import tensorflow as tf  # noqa: E402

IMPORT_S = time.perf_counter() - T0
import numpy as np  # noqa: E402

import sketch_rnn.evaluation.recon_retrieval as recon  # noqa: E402
import sketch_rnn.evaluation.report as report  # noqa: E402
import sketch_rnn.evaluation.teacher_forced as teacher  # noqa: E402
import sketch_rnn.generation.decode_loop as loop  # noqa: E402
import sketch_rnn.generation.sampling as sampling  # noqa: E402
from sketch_rnn.core.machine import describe  # noqa: E402

SECONDS: dict = {}
WORK = {"tf_row_steps": 0, "tf_rows": 0, "sampler_steps": 0, "sampler_rows": 0}


def timed(module, name):
    """Wrap module.name so that its wall time adds up in SECONDS[name]."""
    fn = getattr(module, name)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SECONDS[name] = SECONDS.get(name, 0.0) + time.perf_counter() - t
    setattr(module, name, wrapper)


def count_pairs(fn):
    """teacher_forced._pair_scores, counting the rows and steps its calls decode."""
    @functools.wraps(fn)
    def wrapper(model, strokes, lengths, mu, j, i, per_call, steps=None):
        steps_run = strokes.shape[1] - 1 if steps is None else int(steps)
        calls = -(-len(j) // per_call)
        WORK["tf_row_steps"] += calls * per_call * steps_run
        WORK["tf_rows"] = per_call
        return fn(model, strokes, lengths, mu, j, i, per_call, steps)
    return wrapper


def count_sampler(fn):
    """decode_loop.run_sampler, counting the steps each call ran (its last sketch's end)."""
    @functools.wraps(fn)
    def wrapper(model, z, noise, *args, **kwargs):
        strokes, raw = fn(model, z, noise, *args, **kwargs)
        ended = strokes[:, :, 4] > 0.5  # (B, N): from each sketch's end step on
        first = np.where(ended.any(axis=1), ended.argmax(axis=1), strokes.shape[1] - 1)  # (B,)
        WORK["sampler_steps"] += int(first.max()) + 1  # the loop stops when all have ended
        WORK["sampler_rows"] = strokes.shape[0]
        return strokes, raw
    return wrapper


def matmul_seconds(rows: int, xla: bool, loop_steps: int = 0) -> float:
    """Seconds of one bf16 (rows, 512) x (512, 2048) matmul, float32 out, best of 3 x 20;
    loop_steps > 0: per step of a graph time loop doing only that matmul (h fed back)."""
    w = tf.cast(tf.random.normal((512, 2048)) * 0.03, tf.bfloat16)
    h0 = tf.random.normal((rows, 512))

    def once(h):
        return tf.cast(tf.matmul(tf.cast(h, tf.bfloat16), w), tf.float32)[:, :512]

    def looped(h):
        return tf.while_loop(lambda k, h: k < loop_steps, lambda k, h: (k + 1, tf.tanh(once(h))),
                             (0, h), parallel_iterations=1)[1]

    fn = tf.function(looped if loop_steps else once, jit_compile=xla, autograph=False)
    fn(h0)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(20):
            fn(h0)
        best = min(best, (time.perf_counter() - t) / 20)
    return best / max(1, loop_steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-seconds", type=float, default=None,
                        help="the baseline's wall time, to set the best time against")
    args = parser.parse_args()
    print(json.dumps(describe()))
    teacher._pair_scores = count_pairs(teacher._pair_scores)
    loop.run_sampler = sampling.run_sampler = count_sampler(loop.run_sampler)
    for module, name in [(report, "load_run"), (report, "load_split"), (report, "evaluate_split"),
                         (recon, "posterior"), (recon, "decode_codes"), (recon, "rasterise"),
                         (recon, "chamfer_matrix"), (recon, "pruned_teacher_forced_scores"),
                         (sampling, "sample"), (report, "sketch_precision_recall")]:
        timed(module, name)
    t = time.perf_counter()
    report.evaluate_run("checkpoints/sheep", split="test")
    total = IMPORT_S + time.perf_counter() - t
    sampler_s = SECONDS["decode_codes"] + SECONDS["sample"]  # the 8 sampler calls and noise
    tf_s = SECONDS["pruned_teacher_forced_scores"]
    xla_dot, onednn_dot = matmul_seconds(WORK["sampler_rows"], True), \
        matmul_seconds(WORK["sampler_rows"], False)
    loop_dot = matmul_seconds(WORK["tf_rows"], False, loop_steps=250) / WORK["tf_rows"]
    sampler_floor = WORK["sampler_steps"] * xla_dot
    tf_floor = WORK["tf_row_steps"] * loop_dot
    best = total - (sampler_s - sampler_floor) - (tf_s - tf_floor)
    for name, seconds in [("import tensorflow", IMPORT_S), *SECONDS.items()]:
        print(f"{name:>32}: {seconds:6.2f} s")
    print(f"{'total (in process)':>32}: {total:6.2f} s")
    print(f"sampler: {WORK['sampler_steps']} steps of {WORK['sampler_rows']} rows; the matmul "
          f"{xla_dot * 1e3:.2f} ms under XLA, {onednn_dot * 1e3:.2f} ms on oneDNN; floor "
          f"{sampler_floor:.2f} s of {sampler_s:.2f} s")
    print(f"teacher-forced: {WORK['tf_row_steps']:,} row-steps in calls of {WORK['tf_rows']} "
          f"rows; the matmul alone in a loop {loop_dot * 1e6:.2f} us a row-step; floor "
          f"{tf_floor:.2f} s of {tf_s:.2f} s")
    summary = {"study": "evaluate_floor", "total_s": round(total, 2),
               "best_with_floors_s": round(best, 2), "sampler_s": round(sampler_s, 2),
               "sampler_floor_s": round(sampler_floor, 2), "teacher_forced_s": round(tf_s, 2),
               "teacher_forced_floor_s": round(tf_floor, 2),
               "teacher_forced_row_steps": WORK["tf_row_steps"],
               "sampler_steps": WORK["sampler_steps"],
               "xla_bf16_matmul_ms": round(xla_dot * 1e3, 3),
               "onednn_bf16_matmul_ms": round(onednn_dot * 1e3, 3),
               "loop_matmul_us_per_row_step": round(loop_dot * 1e6, 3),
               "import_tensorflow_s": round(IMPORT_S, 2), "cpu": describe()["cpu"]}
    if args.old_seconds:
        summary["old_s"] = args.old_seconds
        summary["best_speedup"] = round(args.old_seconds / best, 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
