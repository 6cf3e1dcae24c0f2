"""The original's way of sampling, one framework call per point: a reference for tests and
benchmarks of the batched sampler in `decode_loop.py` (same draws, same formulas).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..core.strokes import PAD, PEN_END, S_0
from .compiled import compiled


def _step_fn(model: Any) -> Callable:
    from ..model.mixture import split_params

    def step(s_prev, z, states):
        raw, states = model.decode_step(s_prev, z, states)
        p = split_params(raw)
        return (p.pi_logits, p.mu_x, p.mu_y, p.sigma_x, p.sigma_y, p.rho, p.pen_logits), states

    return step


def _np_categorical(logits: np.ndarray, temperature: float, u: float) -> int:
    x = logits.astype(np.float64) / temperature
    p = np.exp(x - x.max())
    cdf = np.cumsum(p)
    return int(min(np.sum(cdf < u * cdf[-1]), len(p) - 1))


def stepwise_decode(model: Any, z: np.ndarray | None, noise: np.ndarray, temperature: float,
                    greedy: bool = False, stop_early: bool = True,
                    discrete_temperature: float | None = None) -> np.ndarray:
    """The original's way, for tests and benchmarks: one sketch, one framework call per step.

    Each step runs the compiled decode_step for a batch of one and samples in NumPy with
    the same draws and formulas as the batched sampler. noise (N, 4) -> stroke-5 (N', 5).
    discrete_temperature, if given, divides the mixture and pen logits instead of
    `temperature` (magenta.js's getPDF(state, t, s)), as `sample`'s; None: the paper's tau.
    """
    from keras import ops

    step = compiled(model, ("step",), lambda: _step_fn(model))
    zt = None if z is None else ops.convert_to_tensor(np.asarray(z, np.float32).reshape(1, -1))
    states = model.initial_state(zt, 1)
    s_prev = ops.convert_to_tensor(S_0[None])
    discrete = temperature if discrete_temperature is None else discrete_temperature
    rows, done = [], False
    for i in range(len(noise)):
        params, states = step(s_prev, zt, states)
        pi, mx, my, sx, sy, rho, pen_logits = (ops.convert_to_numpy(p)[0] for p in params)
        u_pi, u_pen, e1, e2 = noise[i]
        if greedy:
            k, pen = int(np.argmax(pi)), int(np.argmax(pen_logits))
            dx, dy = mx[k], my[k]
        else:
            k = _np_categorical(pi, discrete, u_pi)
            sd = math.sqrt(temperature)
            dx = mx[k] + sx[k] * sd * e1
            dy = my[k] + sy[k] * sd * (rho[k] * e1 + math.sqrt(1 - rho[k] ** 2) * e2)
            pen = _np_categorical(pen_logits, discrete, u_pen)
        row = np.zeros(5, np.float32)
        row[:2], row[2 + pen] = (dx, dy), 1.0
        done = done or pen == PEN_END
        row = PAD.copy() if done else row
        rows.append(row)
        if done and stop_early:
            break
        s_prev = ops.convert_to_tensor(row[None])
    return np.array(rows, dtype=np.float32).reshape(-1, 5)
