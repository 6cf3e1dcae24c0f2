"""Why bf16 hardly shortens a training step: the recurrent matmul inside a time loop.

An experiment (issue 23), not part of the product. One LSTM-like loop of N_max = 250 steps at
B = 100, u = 256 (the encoder's shape at `paper`), with 1, 2 or 4 recurrent matmuls (B, u) x
(u, 4u) per step, each against its own weight, then the gate math, as a tf.function with and
without XLA (`jit_compile`), the matmul operands in float32 or cast to bfloat16 (float32 out,
as `sketch_rnn.model.precision.matmul`). Prints ms per loop step and GF/s per configuration.
Then the encoder's two lanes (forward and backward direction) as one batched matmul
(2, B, u) x (2, u, 4u) a step, three ways: all in XLA (float32), all on oneDNN in bf16 without
XLA, and a hybrid: oneDNN's bf16 matmul with only the gate math XLA-compiled, once per step.

    python studies/bf16_loops/loop_matmul.py
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=dot python studies/bf16_loops/loop_matmul.py --xla-only
"""
from __future__ import annotations

import sys
import time

import numpy as np
import tensorflow as tf

B, U, N_MAX, REPS = 100, 256, 250, 7


def make_loop(precision: str, xla: bool, matmuls: int):
    """The loop as one compiled function of (x (N_max, B, 4u), *weights (u, 4u))."""
    @tf.function(jit_compile=xla)
    def loop(x, *weights):
        ws = [tf.cast(w, precision) for w in weights[:matmuls]]  # cast once, outside the loop

        def body(i, h, c):
            pre = x[i]  # (B, 4u)
            h_op = tf.cast(h, precision)
            for w in ws:
                pre = pre + tf.cast(tf.matmul(h_op, w), "float32")  # (B, 4u)
            i_g, f_g, o_g, g_g = tf.split(pre, 4, axis=1)  # (B, u) each
            c = tf.sigmoid(f_g) * c + tf.sigmoid(i_g) * tf.tanh(g_g)
            return i + 1, tf.sigmoid(o_g) * tf.tanh(c), c

        zeros = tf.zeros((B, U))
        return tf.while_loop(lambda i, h, c: i < N_MAX, body, (0, zeros, zeros))[1]
    return loop


def _gates(pre, c):
    i_g, f_g, o_g, g_g = tf.split(pre, 4, axis=-1)  # (2, B, u) each
    c = tf.sigmoid(f_g) * c + tf.sigmoid(i_g) * tf.tanh(g_g)
    return tf.sigmoid(o_g) * tf.tanh(c), c


_XLA_GATES = tf.function(_gates, jit_compile=True)


def make_two_lanes(mode: str):
    """Both directions' recurrent step as one batched matmul; mode: xla | onednn_bf16 | hybrid."""
    @tf.function(jit_compile=mode == "xla")
    def loop(x, w):
        w_op = w if mode == "xla" else tf.cast(w, "bfloat16")

        def body(i, h, c):
            if mode == "xla":
                hw = tf.matmul(h, w_op)  # (2, B, 4u)
            else:
                hw = tf.cast(tf.matmul(tf.cast(h, "bfloat16"), w_op), "float32")  # (2, B, 4u)
            h, c = (_XLA_GATES if mode == "hybrid" else _gates)(x[i] + hw, c)
            return i + 1, h, c

        zeros = tf.zeros((2, B, U))
        return tf.while_loop(lambda i, h, c: i < N_MAX, body, (0, zeros, zeros))[1]
    return loop


def _median_seconds(fn, *args) -> float:
    fn(*args).numpy()  # trace and compile
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        fn(*args).numpy()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    xla_only = "--xla-only" in sys.argv[1:]  # the one-matmul XLA loop only (XLA_FLAGS tries)
    rng = np.random.default_rng(0)
    weights = [tf.constant(rng.normal(0, 0.05, (U, 4 * U)).astype("float32")) for _ in range(4)]
    x = tf.constant(rng.normal(size=(N_MAX, B, 4 * U)).astype("float32"))
    for xla in (True,) if xla_only else (False, True):
        for precision in ("float32", "bfloat16"):
            for matmuls in (1,) if xla_only else (1, 2, 4):
                t = _median_seconds(make_loop(precision, xla, matmuls), x, *weights)
                flops = matmuls * 2 * B * U * 4 * U * N_MAX
                print(f"xla {xla!s:5} {precision:8} {matmuls} matmul(s)/step: "
                      f"{t * 1e3 / N_MAX:.3f} ms/step, {flops / t / 1e9:.0f} GF/s (median of {REPS})")
    if xla_only:
        return
    w2 = tf.constant(rng.normal(0, 0.05, (2, U, 4 * U)).astype("float32"))
    x2 = tf.constant(rng.normal(size=(N_MAX, 2, B, 4 * U)).astype("float32"))
    for mode in ("xla", "onednn_bf16", "hybrid"):
        t = _median_seconds(make_two_lanes(mode), x2, w2)
        print(f"two lanes, {mode:11}: {t * 1e3 / N_MAX:.3f} ms/step (median of {REPS})")


if __name__ == "__main__":
    main()
