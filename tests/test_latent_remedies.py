"""The remedies for posterior collapse (issue 12): mu's initial spread, stroke dropout and
per-dimension free bits (and scheduled sampling, tested in test_scheduled_sampling.py).

References are independent: the KL floor against its formula in NumPy, stroke dropout by
what reaches the decoder (gradients with respect to its inputs), the init by the drawn
weights' std, and resume by an uninterrupted run.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from conftest import TINY_HPARAMS, fingerprint, tiny_model, train_tiny
from sketch_rnn.model.mixture import kl_penalty

REMEDIES = ("use_stroke_dropout=true,stroke_dropout_prob=0.5,kl_floor_per_dim=true,"
            "scheduled_sampling_prob=0.5")


@pytest.mark.parametrize("per_dim", [False, True])
def test_kl_penalty_matches_numpy(per_dim: bool) -> None:
    rng = np.random.default_rng(0)
    kl_dims = rng.uniform(0.0, 0.5, size=16).astype(np.float32)
    tol = 0.2
    want = np.mean(np.maximum(kl_dims, tol)) if per_dim else max(np.mean(kl_dims), tol)
    got = float(ops.convert_to_numpy(kl_penalty(kl_dims, tol, per_dim)))
    assert got == pytest.approx(float(want), rel=1e-6)


def test_free_bits_charge_each_dimension_above_its_floor() -> None:
    """Mean KL below the floor costs nothing under Magenta's rule, but a dimension above its
    own floor is still charged (1/z per nat) under free bits; dimensions below it are free."""
    kl_dims = tf.Variable(np.array([0.0, 0.0, 0.0, 0.6], np.float32))  # mean 0.15 < 0.2
    for per_dim, want in ((False, [0.0, 0.0, 0.0, 0.0]), (True, [0.0, 0.0, 0.0, 0.25])):
        with tf.GradientTape() as tape:
            penalty = kl_penalty(kl_dims, 0.2, per_dim)
        np.testing.assert_allclose(tape.gradient(penalty, kl_dims).numpy(), want, atol=1e-7)


def _remedy_model(**overrides):
    """Input dropout that keeps everything (prob 1.0) routes [S_{i-1}, z] through the
    decoder's differentiable input path, so the inputs' gradients can be read."""
    return tiny_model(64, seed=3, use_stroke_dropout=True, stroke_dropout_prob=0.5,
                      use_input_dropout=True, input_dropout_prob=1.0, **overrides)


def _input_gradients(model, counter: int, training: bool):
    """d(sum of head outputs)/d(inputs): (N, B, 5) for S_{i-1} and (B, z) for z."""
    n, batch = 20, 16
    rng = np.random.default_rng(1)
    s_prev = tf.Variable(rng.normal(size=(n, batch, 5)).astype(np.float32))
    z = tf.Variable(rng.normal(size=(batch, model.hps.z_size)).astype(np.float32))
    with tf.GradientTape() as tape:
        model._reset_rng(counter)
        raw = model._decode_tm(s_prev, z, model.initial_state(z, batch), training=training)
        total = tf.reduce_sum(raw)
    g_s, g_z = tape.gradient(total, [s_prev, z])
    return g_s.numpy(), g_z.numpy()


def test_stroke_dropout_drops_whole_points_never_z() -> None:
    model = _remedy_model(use_recurrent_dropout=False)
    g_s, g_z = _input_gradients(model, counter=5, training=True)
    reached = np.abs(g_s) > 0  # (N, B, 5): did this input reach the outputs?
    point_kept = reached.any(axis=-1)
    np.testing.assert_array_equal(reached, np.repeat(point_kept[..., None], 5, axis=-1))
    dropped = 1.0 - point_kept.mean()
    n = point_kept.size  # 320 points: 4 binomial standard deviations is +-0.11
    assert abs(dropped - 0.5) < 4 * np.sqrt(0.25 / n), dropped
    assert (np.abs(g_z) > 0).all()  # z reaches every sketch's outputs
    # the mask is a function of (seed, step) only: the same step draws it again, another not
    again, _ = _input_gradients(model, counter=5, training=True)
    np.testing.assert_array_equal(np.abs(again) > 0, reached)
    other, _ = _input_gradients(model, counter=6, training=True)
    assert ((np.abs(other) > 0) != reached).any()


def test_stroke_dropout_is_off_outside_training() -> None:
    """Sampling and evaluation see every point: outputs equal a model without the option."""
    strokes = np.random.default_rng(2).normal(size=(4, 21, 5)).astype(np.float32)
    z = np.random.default_rng(3).normal(size=(4, 16)).astype(np.float32)
    with_it = tiny_model(64, seed=3, use_stroke_dropout=True, stroke_dropout_prob=0.5)
    without = tiny_model(64, seed=3)
    z = z[:, :with_it.hps.z_size]
    np.testing.assert_array_equal(ops.convert_to_numpy(with_it.decode_sequence(strokes, z)),
                                  ops.convert_to_numpy(without.decode_sequence(strokes, z)))


@pytest.mark.slow  # the resume check (test_resume) with other hparams: two tiny runs
def test_resume_with_the_remedies_is_exact(twenty_step_run, tmp_path) -> None:
    hparams = f"{TINY_HPARAMS},{REMEDIES}"
    straight = tmp_path / "straight"
    train_tiny(straight, 20, hparams=hparams)
    resumed = tmp_path / "resumed"
    train_tiny(resumed, 7, hparams=hparams)
    train_tiny(resumed, 20, hparams=hparams)
    assert fingerprint(resumed) == fingerprint(straight)
    plain = twenty_step_run  # the remedies change training: not the same weights
    assert fingerprint(plain) != fingerprint(straight)


@pytest.mark.parametrize("std", [0.001, 0.1])
def test_mu_init_std_sets_the_spread_of_mu_at_step_0(std: float) -> None:
    """The kernel of mu is drawn with the hparam's std (default: Magenta's 0.001), and only
    that kernel: presig and the decoder's initial state keep Magenta's 0.001."""
    model = tiny_model(64, seed=3, mu_init_std=std, enc_rnn_size=64, z_size=32)
    kernel = ops.convert_to_numpy(model.mu_dense.kernel)  # (2 * 64, 32): 4096 draws
    assert np.std(kernel) == pytest.approx(std, rel=0.05)
    assert np.std(ops.convert_to_numpy(model.presig_dense.kernel)) == pytest.approx(0.001, rel=0.05)
