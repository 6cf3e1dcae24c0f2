"""Sketch completion ("finish my drawing"): a person's prefix, then n model-drawn endings.

Two compiled calls, whatever the prefix's length:

1. Teacher forcing: the prefix (stroke-5, S_0 first, padded to N_max) goes through the
   decoder in one scan. Each sketch's states stop changing after its own length, so one
   graph serves every prefix length (compiling per length would cost seconds per stroke
   in the web page).
2. The batched sampler of `sampling` continues from those states and the prefix's last
   point: n endings at once, until each draws its end token or N_max points in total.

Where the endings' variety comes from: decoder-only models share the prefix's state and
differ by their random draws; conditional models either take one z per ending from the
prior (z_mode="prior": different "ideas" of what is being drawn) or encode the prefix
(z_mode="encode": one z, the model's reading of the drawing so far).

The decoder's input for step i is point i-1, so the prefix p_1..p_L is teacher-forced as
inputs S_0, p_1..p_{L-1} and p_L is the sampler's first "previous point": the first
ending point is drawn from the output for input p_L, exactly as training predicts it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.errors import SketchRNNError
from .compiled import compiled
from .sampling import (
    check_n,
    check_temperature,
    encode,
    prior_z,
    sketches_to_stroke5,
    step_noise,
    to_stroke3,
)
from .decode_loop import run_sampler_from

Z_MODES = ("prior", "encode")
BATCH_STEP = 8  # compiled batch sizes are multiples of this: 1..8 endings share one graph


def batch_bucket(n: int) -> int:
    """The compiled batch size that serves n sketches: n rounded up to a multiple of 8.

    Each new batch size costs a trace and an XLA compile (seconds); with buckets, changing
    the number of endings on the web page compiles nothing new between 1 and 8, or 9 and 16.
    """
    return -(-int(n) // BATCH_STEP) * BATCH_STEP


def _pad_rows(x: np.ndarray | None, rows: int) -> np.ndarray | None:
    """x with its first row repeated up to `rows` rows: padding rows that end with row 0."""
    if x is None or len(x) == rows:
        return x
    return np.concatenate([x, np.repeat(x[:1], rows - len(x), axis=0)])


@dataclass
class Completion:
    """A prefix and its endings, both stroke-3 in data units.

    Each ending's first offset is relative to the prefix's last point, so
    `prefix + ending` (row concatenation) is a whole sketch: see `sketches()`.
    z: the latent codes used (n, z_size), None for a decoder-only model.
    raw: with complete(record=True), each ending step's raw mixture parameters
    (n, k, 3+6M), normalised units; else None.
    """

    prefix: np.ndarray
    endings: list[np.ndarray]
    z: np.ndarray | None
    raw: np.ndarray | None = None

    def sketches(self) -> list[np.ndarray]:
        """Prefix + ending per ending: (L + k_i, 3) each, ready for `drawing.save_sketches`."""
        return [np.concatenate([self.prefix, e]) for e in self.endings]


# --------------------------------------------------------------------------- checks
def check_prefix(prefix: Any, n_max: int, name: str = "prefix") -> np.ndarray:
    """A stroke-3 prefix as float32 (L, 3) with pens 0/1; one-line SketchRNNError otherwise."""
    try:
        s = np.asarray(prefix, dtype=np.float32)
    except (TypeError, ValueError):
        raise SketchRNNError(f"{name}: expected a list of [dx, dy, pen] numbers") from None
    if s.ndim != 2 or s.shape[1] != 3:
        raise SketchRNNError(f"{name}: expected stroke-3 points of shape (L, 3), "
                             f"got shape {s.shape}")
    if len(s) == 0:
        raise SketchRNNError(f"{name}: is empty; it needs at least one point")
    if len(s) > n_max:
        raise SketchRNNError(f"{name}: {len(s)} points; the model takes at most {n_max}")
    if not np.all(np.isfinite(s)):
        raise SketchRNNError(f"{name}: contains NaN or infinite values")
    s = s.copy()
    s[:, 2] = s[:, 2] > 0.5
    return s


def _check_z_mode(model: Any, z_mode: str) -> str:
    if z_mode not in Z_MODES:
        raise SketchRNNError(f"z_mode={z_mode!r}: use one of {', '.join(Z_MODES)}")
    if z_mode == "encode" and not model.hps.conditional:
        raise SketchRNNError("z_mode='encode': this model is decoder-only (no encoder)")
    return z_mode


# --------------------------------------------------------------------------- teacher forcing
def _prefix_fn(model: Any) -> Callable:
    """(z, inputs (B, N, 5), lengths (B,)) -> decoder states after each sketch's inputs.

    The cell's own input projection for all steps at once, then its step in one scan;
    a sketch's states are frozen once its `lengths` inputs are consumed.
    """
    from keras import ops

    from ..model.cell_parts import scan_sequence

    cell = model.decoder

    def frozen_step(xp_t, states, active_t):
        h, new = cell.step(xp_t, states)
        return h, tuple(ops.where(active_t > 0, a, s) for a, s in zip(new, states))

    def run(z, inputs, lengths):
        b, n = ops.shape(inputs)[0], inputs.shape[1]
        states = model.initial_state(z, b)
        x_tm = ops.transpose(inputs, (1, 0, 2))  # (N, B, 5)
        xp = cell.input_projection(x_tm, z)  # (N, B, P)
        steps = ops.arange(n, dtype="int32")[:, None]  # (N, 1)
        active = ops.cast(steps < ops.cast(lengths, "int32")[None, :], "float32")  # (N, B)
        _, final = scan_sequence(frozen_step, xp, tuple(states), keep=active[:, :, None])
        return tuple(final)

    return run


def prefix_states(model: Any, z: np.ndarray | None, inputs: np.ndarray,
                  lengths: np.ndarray) -> tuple:
    """Decoder states after teacher-forcing `inputs` (B, N, 5) for `lengths` (B,) steps each.

    One compiled call; z (B, z_size) for a conditional model, else None.
    """
    from keras import ops

    fn = compiled(model, ("prefix",), lambda: _prefix_fn(model))
    zt = None if z is None else ops.convert_to_tensor(z, "float32")
    return fn(zt, ops.convert_to_tensor(inputs, "float32"),
              ops.convert_to_tensor(lengths, "int32"))


# --------------------------------------------------------------------------- public API
def _codes(model: Any, prefix: np.ndarray, n: int, z_mode: str, seed: int,
           scale_factor: float) -> np.ndarray | None:
    """One z per ending: prior draws, or the prefix's posterior mean repeated."""
    if not model.hps.conditional:
        return None
    if z_mode == "encode":
        mu = encode(model, [prefix], scale_factor=scale_factor)  # (1, z_size)
        return np.repeat(mu, n, axis=0)
    return prior_z(n, int(model.hps.z_size), seed)


def complete(model: Any, prefix: Any, n: int = 8, temperature: float = 1.0, seed: int = 0,
             *, greedy: bool = False, z_mode: str = "prior", scale_factor: float = 1.0,
             max_len: int | None = None, record: bool = False) -> Completion:
    """n endings of a stroke-3 prefix (data units, 1..N_max points).

    Deterministic for a seed. The batch is padded to `batch_bucket(n)` rows (copies of
    the first, dropped at the end), so most changes of n reuse a compiled graph.
    max_len: most points per ending (default N_max - L, so that prefix + ending stays
    within the N_max the model was trained on). record=True keeps
    the raw mixture parameters of every ending step as `Completion.raw` (B, k, 3+6M),
    normalised units (for tests and diagnostics).
    """
    n = check_n(n)
    temperature = check_temperature(temperature)
    z_mode = _check_z_mode(model, z_mode)
    n_max = int(model.hps.max_seq_len)
    prefix = check_prefix(prefix, n_max)
    length = len(prefix)
    limit = n_max - length if max_len is None else int(max_len)
    if limit < 0:
        raise SketchRNNError(f"max_len={max_len!r}: must be >= 0")
    z = _codes(model, prefix, n, z_mode, seed, scale_factor)  # (n, z_size) | None
    noise = step_noise(n, max(n_max, limit), seed)  # (n, N, 4)
    b = batch_bucket(n)  # padding rows copy row 0 (same draws, so they end with it)
    strokes, _ = sketches_to_stroke5(model, [prefix], scale_factor)  # (1, N_max+1, 5)
    inputs = np.repeat(strokes[:, :n_max], b, axis=0)  # (b, N_max, 5): S_0, p_1, ...
    states = prefix_states(model, _pad_rows(z, b), inputs, np.full(b, length, np.int32))
    s_prev = np.repeat(strokes[:, length], b, axis=0)  # (b, 5): p_L
    out, raw = run_sampler_from(model, _pad_rows(z, b), states, s_prev, _pad_rows(noise, b),
                                temperature, limit, greedy=greedy, record=record)
    return Completion(prefix, to_stroke3(out[:n], scale_factor), z,
                      None if raw is None else raw[:n])
