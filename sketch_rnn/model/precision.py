"""The project's matmul at a precision (hparam `precision`), and whether this CPU has bf16.

Why bfloat16: on a CPU that multiplies bf16 natively (AVX512_BF16, AMX) oneDNN runs a bf16
matmul 1.5-3x faster than float32 (benchmarks/bench_bf16.py). Where it does not, TensorFlow
emulates it and bf16 is slower, so a new run's default depends on the CPU (`default_precision`).

What "bfloat16" means here (mixed precision): the operands of the recurrent and projection
matmuls are cast to bf16 (8 bits of mantissa), oneDNN accumulates in float32, and the
product comes back as float32 (rounded once to bf16 on the way out: TensorFlow's CPU kernels
have no bf16 x bf16 -> float32 matmul; where TensorFlow leaves oneDNN off, as by default on
AVX2-only CPUs, its own kernel multiplies and rounds partial sums to bf16 as well: a run
recorded in bf16 still loads there, its numbers about a bf16 rounding apart). Weights,
optimizer, cell state c, the element-wise gate math, the loss and the mixture head's math
stay float32. "float32" is today's path, op for op (`matmul` is then plain `ops.matmul`, so
float32 models keep their bits).

Not Keras' `mixed_bfloat16` policy: it would also run the Dense layers' bias adds and
outputs in bf16 (the mixture head then needs casts back), and the fused LSTM kernel
(`lanes`) is not made of layers a policy reaches; one explicit function serves both.
"""
from __future__ import annotations

import keras
from keras import ops

from ..core.hparams import PRECISIONS
from ..core.machine import cpu_flags
from .backend import Tensor, matmul_tn

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names, strongest first


def native_bf16(cpuinfo: str | None = None) -> str | None:
    """The first /proc/cpuinfo flag of `NATIVE_BF16_FLAGS` this CPU lists, or None.

    `cpuinfo`: the file's text (tests pass their own); None reads this CPU's, and a
    machine without it (macOS, Windows) counts as having no native bf16.
    """
    flags = cpu_flags(cpuinfo)
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in flags), None)


# The smallest decoder (dec_rnn_size) whose matmuls gain from native bf16. Measured with
# benchmarks/bench_bf16.py on an AVX512_BF16 CPU (AMD EPYC, 2 cores): the decoder step's
# matmul ran 0.63x as fast in bf16 as in float32 at `tiny` (8 x 32 by 32 x 128: the casts
# cost more than the multiply saves), 1.5x at `small` (256 units) and 1.7x at `paper` (512).
# Below 256 nothing was measured to gain, so float32 (exact, never slower there) is chosen.
BF16_MIN_DEC_UNITS = 256


def default_precision(cpuinfo: str | None = None, dec_rnn_size: int | None = None
                      ) -> tuple[str, str]:
    """(precision, reason) for a new run that did not ask for one: bfloat16 where the CPU
    multiplies it natively and the decoder (`dec_rnn_size`; None: any) is big enough to
    gain from it (`BF16_MIN_DEC_UNITS`), else float32."""
    flag = native_bf16(cpuinfo)
    if flag and dec_rnn_size is not None and dec_rnn_size < BF16_MIN_DEC_UNITS:
        return "float32", (f"the CPU has {flag}, but a decoder of {dec_rnn_size} units "
                           f"(< {BF16_MIN_DEC_UNITS}) has matmuls too small to gain from "
                           "bf16 (benchmarks/bench_bf16.py)")
    if flag:
        return "bfloat16", f"the CPU has {flag}"
    return "float32", ("the CPU lists neither avx512_bf16 nor amx_bf16, so bf16 matmuls "
                       "would be emulated (slower than float32)")


def operand(x: Tensor, precision: str = "float32") -> Tensor:
    """x as `matmul` reads it at `precision`: cast once, e.g. a recurrent kernel outside
    its time loop (`matmul` then casts it no more: a cast to its own dtype is no op)."""
    return x if precision == "float32" else ops.cast(x, precision)


def matmul(a: Tensor, b: Tensor, precision: str = "float32", transpose_a: bool = False
           ) -> Tensor:
    """a @ b (or a^T @ b for 2-D a, b) at `precision`, always returned as float32.

    transpose_a: the weight gradient of all rows at once, without a materialised transpose.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    a, b = operand(a, precision), operand(b, precision)
    out = matmul_tn(a, b) if transpose_a else ops.matmul(a, b)  # (p, q) | (..., q)
    return out if precision == "float32" else ops.cast(out, "float32")


def dense(layer: keras.layers.Dense, x: Tensor, precision: str = "float32") -> Tensor:
    """A built Dense layer (no activation) applied at `precision`; float32 calls the layer."""
    if precision == "float32":
        return layer(x)
    lead = ops.shape(x)[:-1]
    y = matmul(ops.reshape(x, (-1, x.shape[-1])), layer.kernel, precision)  # (rows, out)
    y = ops.reshape(y, (*lead, layer.kernel.shape[-1]))
    return y + layer.bias if layer.use_bias else y
