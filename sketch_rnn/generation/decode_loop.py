"""The sampler's compiled loop: one stroke-5 point per step for a whole batch of sketches.

`run_sampler` decodes from the prior state and S_0, `run_sampler_from` continues from given
decoder states (completion); both are one framework call per batch, compiled once per
variant (`compiled`), stopping when every sketch has drawn its end token. The draws come in
as `noise` and the temperatures as tensors, so one graph serves every seed and temperature.
The temperature convention (the paper's tau, magenta.js's split one) is `sampling`'s
module docstring; the public calls that check their arguments live there too.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import SketchRNNError
from ..core.strokes import PAD, S_0
from .compiled import compiled


# --------------------------------------------------------------------------- one step
def _categorical(probs, u):
    """Index k with cdf[k-1] <= u * total < cdf[k]: inverse-CDF draw, one uniform per row."""
    from keras import ops

    cdf = ops.cumsum(probs, axis=-1)  # (B, K)
    below = ops.cast(cdf < u[:, None] * cdf[:, -1:], "int32")
    return ops.minimum(ops.sum(below, axis=-1), ops.shape(probs)[-1] - 1)  # (B,)


def _pick(x, k):
    from keras import ops

    return ops.take_along_axis(x, k[:, None], axis=-1)[:, 0]  # (B,)


def sample_point(params: Any, noise: Any, temperature: Any, greedy: bool,
                 discrete: Any = None) -> Any:
    """One stroke-5 row per sketch from MixtureParams ((B, M) / (B, 3)) and noise (B, 4).

    Returns (B, 5): (dx, dy) and the one-hot pen state.

    Greedy: the most likely component's mean and the most likely pen state. Otherwise the
    paper's temperature: softmax(logits / tau) for pi and the pen, sigma * sqrt(tau); with
    `discrete` (magenta.js's s) the logits are divided by it instead.
    """
    from keras import ops

    if greedy:
        from ..model.mixture import greedy_point

        return greedy_point(params)  # (B, 5)
    discrete = temperature if discrete is None else discrete
    k = _categorical(ops.softmax(params.pi_logits / discrete, axis=-1), noise[:, 0])
    sd = ops.sqrt(temperature)
    sx, sy = _pick(params.sigma_x, k) * sd, _pick(params.sigma_y, k) * sd  # (B,)
    rho = _pick(params.rho, k)
    e1, e2 = noise[:, 2], noise[:, 3]
    dx = _pick(params.mu_x, k) + sx * e1
    dy = _pick(params.mu_y, k) + sy * (rho * e1 + ops.sqrt(1.0 - rho * rho) * e2)
    pen = _categorical(ops.softmax(params.pen_logits / discrete, axis=-1), noise[:, 1])
    xy = ops.stack([dx, dy], axis=-1)  # (B, 2)
    return ops.concatenate([xy, ops.one_hot(pen, 3, dtype=xy.dtype)], axis=-1)  # (B, 5)


# --------------------------------------------------------------------------- the loop
def _decode_loop(model: Any, greedy: bool, stop_early: bool, record: bool,
                 from_state: bool = False) -> Callable:
    """The sampler as one function, to be compiled once per variant.

    from_state=False: a function of (z, noise, temperature, discrete temperature) that
    starts every sketch from `model.initial_state(z)` and S_0 and runs up to N =
    noise.shape[1] steps.
    from_state=True: a function of (z, states, s_prev (B, 5), noise, temperature, limit)
    that continues from given decoder states and a given previous point, for at most
    `limit` (a scalar tensor <= N, so one graph serves every limit) steps: completion.

    Returns (strokes (B, N, 5), raw (B, N, 3+6M) or (B, 0, 3+6M), steps run). Row i is the
    point drawn at step i; after a sketch's end token it reads the end/padding row
    (0, 0, 0, 0, 1), which is also what it is fed next, as in training's padding.
    """
    from keras import ops

    from ..model.mixture import split_params

    n_params = 3 + 6 * int(model.hps.num_mixture)

    def loop_from(z, states, s_prev, noise, temperature, limit, discrete=None):
        b, n = ops.shape(noise)[0], ops.shape(noise)[1]
        noise_tm = ops.transpose(noise, (1, 0, 2))  # (N_max, B, 4): contiguous per step
        strokes = ops.zeros((n, b, 5))  # (N_max, B, 5) time-major
        raws = ops.zeros((n if record else 0, b, n_params))  # (N_max, B, 3+6M)
        done = ops.zeros((b,), dtype="bool")  # (B,)
        end_row = ops.convert_to_tensor(PAD)[None]  # (1, 5)

        def cond(i, s_prev, states, strokes, raws, done):
            going = i < limit
            if stop_early:
                going = ops.logical_and(going, ops.logical_not(ops.all(done)))
            return going

        def body(i, s_prev, states, strokes, raws, done):
            raw, states = model.decode_step(s_prev, z, states)  # (B, 3+6M)
            row = sample_point(split_params(raw), noise_tm[i], temperature, greedy,
                               discrete)  # (B, 5)
            done = ops.logical_or(done, row[:, 4] > 0.5)
            row = ops.where(done[:, None], end_row, row)  # no points after the end
            strokes = ops.slice_update(strokes, [i, 0, 0], row[None])
            if record:
                raws = ops.slice_update(raws, [i, 0, 0], ops.cast(raw, raws.dtype)[None])
            return i + 1, row, tuple(states), strokes, raws, done

        init = (ops.convert_to_tensor(0, "int32"), s_prev, tuple(states), strokes, raws, done)
        i, _, _, strokes, raws, _ = ops.while_loop(cond, body, init, maximum_iterations=n)
        return ops.transpose(strokes, (1, 0, 2)), ops.transpose(raws, (1, 0, 2)), i

    if from_state:
        return loop_from

    def loop(z, noise, temperature, discrete):
        b, n = ops.shape(noise)[0], ops.shape(noise)[1]
        states = model.initial_state(z, b)
        s_prev = ops.tile(ops.convert_to_tensor(S_0)[None], [b, 1])  # (B, 5)
        return loop_from(z, states, s_prev, noise, temperature, n, discrete)

    return loop


def run_sampler(model: Any, z: np.ndarray | None, noise: np.ndarray, temperature: float,
                greedy: bool = False, stop_early: bool = True, record: bool = False,
                discrete_temperature: float | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """The compiled batched loop, normalised units: (strokes (B, N, 5), raw (B, N, 3+6M) | None).

    One framework call for the whole batch. stop_early=False always runs N steps (for
    benchmarks and for comparing with teacher forcing); record=True also returns the raw
    mixture parameters the decoder produced at each step. discrete_temperature: see the
    module docstring (None: the same tau).
    """
    from keras import ops

    fn = compiled(model, ("loop", bool(greedy), bool(stop_early), bool(record)),
                   lambda: _decode_loop(model, bool(greedy), bool(stop_early), bool(record)))
    zt = None if z is None else ops.convert_to_tensor(z, "float32")
    discrete = temperature if discrete_temperature is None else discrete_temperature
    out = fn(zt, ops.convert_to_tensor(noise, "float32"),
             ops.convert_to_tensor(temperature, "float32"),
             ops.convert_to_tensor(discrete, "float32"))
    return _sampler_output(out, record)


def run_sampler_from(model: Any, z: Any, states: Sequence[Any], s_prev: Any, noise: np.ndarray,
                     temperature: float, limit: int, greedy: bool = False,
                     stop_early: bool = True,
                     record: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The same compiled loop, continuing from decoder `states` and previous point s_prev (B, 5).

    At most `limit` <= noise.shape[1] steps; the limit is a tensor, so prefixes of any
    length share one compiled graph. Normalised units, as run_sampler.
    """
    from keras import ops

    if not 0 <= int(limit) <= noise.shape[1]:
        raise SketchRNNError(f"limit={limit}: must be in 0..{noise.shape[1]}")
    key = ("loop_from", bool(greedy), bool(stop_early), bool(record))
    fn = compiled(model, key, lambda: _decode_loop(model, bool(greedy), bool(stop_early),
                                                    bool(record), from_state=True))
    zt = None if z is None else ops.convert_to_tensor(z, "float32")
    out = fn(zt, tuple(states), ops.convert_to_tensor(s_prev, "float32"),
             ops.convert_to_tensor(noise, "float32"),
             ops.convert_to_tensor(temperature, "float32"),
             ops.convert_to_tensor(int(limit), "int32"))
    return _sampler_output(out, record)


def _sampler_output(out: tuple, record: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The loop's tensors -> NumPy, cut to the steps that ran."""
    from keras import ops

    strokes, raws, steps = out
    steps = int(ops.convert_to_numpy(steps))
    strokes = ops.convert_to_numpy(strokes)[:, :steps]
    return strokes, (ops.convert_to_numpy(raws)[:, :steps] if record else None)
