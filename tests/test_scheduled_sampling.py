"""Scheduled sampling (issue 12): in training, decoder inputs S_{i-1} are swapped for the
decoder's own greedy guesses of them.

References are independent of the code under test: the greedy point by NumPy's argmax over
the head's outputs, the guesses by a separate teacher-forced pass (`decode_sequence`, the
path sampling uses) read in NumPy, the swap rate by its binomial bounds.
"""
from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from conftest import tiny_model
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.core.hparams import HParams
from sketch_rnn.model import mixture, vae

N_MAX, BATCH = 24, 32


def _numpy_greedy(raw: np.ndarray, m: int) -> np.ndarray:
    """raw (..., 3+6M) in Magenta's layout -> (..., 5): argmax component's mean, pen one-hot."""
    pen_logits, pi = raw[..., :3], raw[..., 3:3 + m]
    mu_x, mu_y = raw[..., 3 + m:3 + 2 * m], raw[..., 3 + 2 * m:3 + 3 * m]
    k = np.argmax(pi, axis=-1)[..., None]
    pen = np.eye(3)[np.argmax(pen_logits, axis=-1)]
    return np.concatenate([np.take_along_axis(mu_x, k, -1), np.take_along_axis(mu_y, k, -1),
                           pen], axis=-1)


def test_greedy_point_matches_numpy() -> None:
    m = 7
    raw = np.random.default_rng(0).normal(size=(5, 9, 3 + 6 * m)).astype(np.float32)
    got = ops.convert_to_numpy(mixture.greedy_point(mixture.split_params(raw)))
    np.testing.assert_allclose(got, _numpy_greedy(raw, m), rtol=1e-6)


def _batch(seed: int):
    """Stroke-5 batch (B, N_max+1, 5) with S_0, random real points, padding, and lengths."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, N_MAX + 1, size=BATCH)
    strokes = np.zeros((BATCH, N_MAX + 1, 5), np.float32)
    strokes[:, 0, 2] = 1.0
    for b, n in enumerate(lengths):
        strokes[b, 1:n + 1, :2] = rng.normal(size=(n, 2))
        pen = rng.integers(0, 2, size=n)
        pen[-1] = 1
        strokes[b, 1:n + 1, 2], strokes[b, 1:n + 1, 3] = 1 - pen, pen
        strokes[b, n + 1:, 4] = 1.0
    return strokes, lengths


def _swapped(model, strokes, lengths, z, counter: int) -> np.ndarray:
    """The decoder inputs (B, N_max, 5) after scheduled sampling at training step `counter`."""
    model._reset_rng(counter)
    s_prev = ops.transpose(strokes[:, :-1], (1, 0, 2))  # (N_max, B, 5)
    out = model._scheduled_inputs(s_prev, z, model.initial_state(z, BATCH), lengths)
    return np.transpose(ops.convert_to_numpy(out), (1, 0, 2))


def _real(lengths) -> np.ndarray:
    """(B, N_max) True where the input is a real point S_1..S_n (S_0 and padding: False)."""
    t = np.arange(N_MAX)[None]
    return (t >= 1) & (t <= lengths[:, None])


def test_at_probability_1_every_real_input_is_the_teacher_forced_guess() -> None:
    model = tiny_model(N_MAX, seed=3, scheduled_sampling_prob=1.0)
    strokes, lengths = _batch(1)
    z = np.random.default_rng(2).normal(size=(BATCH, model.hps.z_size)).astype(np.float32)
    got = _swapped(model, strokes, lengths, z, counter=4)
    raw = ops.convert_to_numpy(model.decode_sequence(strokes, z))  # (B, N_max, K)
    guess = _numpy_greedy(raw, model.hps.num_mixture)  # guess[:, t] is for S_{t+1}
    want = strokes[:, :-1].copy()
    real = _real(lengths)
    want[:, 1:][real[:, 1:]] = guess[:, :-1][real[:, 1:]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_swaps_at_the_given_rate_inside_the_sketch_only_and_per_step() -> None:
    model = tiny_model(N_MAX, seed=3, scheduled_sampling_prob=0.5)
    strokes, lengths = _batch(5)
    z = np.random.default_rng(6).normal(size=(BATCH, model.hps.z_size)).astype(np.float32)
    got = _swapped(model, strokes, lengths, z, counter=9)
    changed = np.any(got != strokes[:, :-1], axis=-1)  # (B, N_max)
    real = _real(lengths)
    assert not changed[~real].any()  # S_0 and the padding are never touched
    rate, n = changed[real].mean(), real.sum()
    assert abs(rate - 0.5) < 4 * np.sqrt(0.25 / n), rate
    np.testing.assert_array_equal(_swapped(model, strokes, lengths, z, counter=9), got)
    assert not np.array_equal(_swapped(model, strokes, lengths, z, counter=10), got)


def test_scheduled_sampling_is_off_outside_training() -> None:
    strokes, lengths = _batch(7)
    with_it = tiny_model(N_MAX, seed=3, scheduled_sampling_prob=0.5)
    without = tiny_model(N_MAX, seed=3)
    a = with_it.loss_terms(strokes, lengths, training=False)
    b = without.loss_terms(strokes, lengths, training=False)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(ops.convert_to_numpy(a[key]), ops.convert_to_numpy(b[key]))
    with_it._step_override = without._step_override = 3  # training: the inputs differ
    a = with_it.loss_terms(strokes, lengths, training=True)
    b = without.loss_terms(strokes, lengths, training=True)
    assert any(not np.array_equal(ops.convert_to_numpy(a[k]), ops.convert_to_numpy(b[k]))
               for k in a)


def test_one_training_step_draws_no_more_than_its_rng_stride() -> None:
    """Each step's draws start at (seed, step * stride): with every random option on, one
    step must use at most `stride` of them or it would reuse the next step's numbers."""
    model = tiny_model(N_MAX, seed=3, scheduled_sampling_prob=0.5, use_stroke_dropout=True,
                       use_input_dropout=True, use_output_dropout=True,
                       use_recurrent_dropout=True)
    strokes, lengths = _batch(8)
    model._step_override = 11
    model.loss_terms(strokes, lengths, training=True)
    used = int(ops.convert_to_numpy(model.rng.state)[1]) - 11 * vae._DRAWS_PER_STEP
    assert 0 < used <= vae._DRAWS_PER_STEP


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_probability_outside_0_1_is_refused_by_name(value: float) -> None:
    with pytest.raises(SketchRNNError, match=f"scheduled_sampling_prob={value}: must be in"):
        HParams().with_overrides(f"scheduled_sampling_prob={value}")
