"""Sketch completion: the prefix's teacher-forced state and the endings, on tiny models.

References are independent of the code under test: the decoder stepped one point at a
time (`model.decode_step`) and the training path's teacher-forced outputs
(`model.decode_sequence`), fed stroke-5 rows built here by hand.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_model, fast_first
from keras import ops

from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.generation import completion, sampling
from sketch_rnn.generation.completion import complete

N_MAX = 24
SCALE = 4.0  # data units per model unit: the API takes and returns data units


def make_model(**overrides):
    return tiny_model(overrides.pop("max_seq_len", N_MAX), 5, **overrides)


# every cell and both modes, in four models (six would double the compile time)
MODELS = [("lstm", True), ("lstm", False), ("layer_norm", False), ("hyper", True)]


@pytest.fixture(scope="module", params=fast_first(MODELS),
                ids=lambda k: f"{k[0]}-{'vae' if k[1] else 'dec'}")
def any_model(request):
    cell, cond = request.param
    return make_model(dec_model=cell, enc_model=cell, conditional=cond)


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def uncond():
    return make_model(conditional=False)


def a_prefix(length: int, seed: int = 0) -> np.ndarray:
    """A stroke-3 prefix in data units, pen lifted every 4th point and at the end."""
    rng = np.random.default_rng(seed)
    s = np.zeros((length, 3), np.float32)
    s[:, :2] = rng.normal(0.0, 3.0 * SCALE, (length, 2))
    s[3::4, 2] = 1.0
    s[-1, 2] = 1.0
    return s


def stroke5_rows(s3: np.ndarray) -> np.ndarray:
    """Stroke-3 (data units) -> stroke-5 rows (model units): (dx, dy, down, up, end=0)."""
    rows = np.zeros((len(s3), 5), np.float32)
    rows[:, :2] = s3[:, :2] / SCALE
    rows[:, 2] = 1.0 - s3[:, 2]
    rows[:, 3] = s3[:, 2]
    return rows


def stepped_states(m, z, rows: np.ndarray) -> list[tuple]:
    """The decoder stepped one input row at a time from its initial state (batch of one):
    the states after each row."""
    zt = None if z is None else ops.convert_to_tensor(z[None])
    states, out = m.initial_state(zt, 1), []
    for row in rows:
        _, states = m.decode_step(row[None], zt, states)
        out.append(tuple(ops.convert_to_numpy(s)[0] for s in states))
    return out


# --------------------------------------------------------------------------- teacher forcing
def test_prefix_state_equals_stepping_point_by_point(any_model):
    """Three prefixes of different lengths in one batch: each state stops at its length."""
    m = any_model
    lengths = np.array([1, 9, N_MAX], np.int32)
    z = sampling.prior_z(1, m.hps.z_size, 1) if m.hps.conditional else None
    inputs = np.zeros((3, N_MAX, 5), np.float32)
    inputs[:, 0] = [0, 0, 1, 0, 0]  # S_0
    inputs[:, 1:] = stroke5_rows(a_prefix(N_MAX - 1, seed=2))
    got = completion.prefix_states(m, None if z is None else np.repeat(z, 3, 0), inputs,
                                   lengths)
    assert len(got) == len(m.decode_step(inputs[:1, 0], z, m.initial_state(z, 1))[1])
    ref = stepped_states(m, None if z is None else z[0], inputs[0])  # after 1..N_MAX rows
    for b, length in enumerate(lengths):
        for g, r in zip(got, ref[length - 1]):
            np.testing.assert_allclose(ops.convert_to_numpy(g)[b], r, atol=2e-5)
    # and the frozen state really differs from running on to N_MAX
    assert np.abs(ref[-1][0] - ops.convert_to_numpy(got[0])[1]).max() > 1e-3


def test_endings_continue_the_teacher_forced_decoder(any_model):
    """Each ending step's mixture parameters equal decode_sequence on prefix + ending so far."""
    m = any_model
    prefix = a_prefix(7, seed=3)
    c = complete(m, prefix, n=4, temperature=0.8, seed=11, scale_factor=SCALE, record=True)
    assert len(c.endings) == 4 and c.raw.shape[0] == 4
    length = len(prefix)
    inputs = np.zeros((4, N_MAX + 1, 5), np.float32)  # (B, N_max+1, 5), one decode_sequence
    inputs[:, 0] = [0, 0, 1, 0, 0]
    for i, ending in enumerate(c.endings):
        rows = stroke5_rows(np.concatenate([prefix, ending]))
        inputs[i, 1:1 + len(rows)] = rows[:N_MAX]
    forced = np.asarray(m.decode_sequence(inputs, c.z))  # (B, N_max, 3+6M)
    for i, ending in enumerate(c.endings):
        k = max(len(ending), 1)  # outputs for inputs p_L, e_1 .. e_{k-1}
        np.testing.assert_allclose(c.raw[i, :k], forced[i, length:length + k], atol=5e-5)


def test_some_endings_have_several_points(model):
    """Not a vacuous comparison: with this seed the endings are not all empty."""
    c = complete(model, a_prefix(5), n=8, temperature=1.0, seed=0, scale_factor=SCALE)
    assert max(len(e) for e in c.endings) >= 3


# --------------------------------------------------------------------------- z, seeds, units
def test_same_seed_same_endings_other_seed_differs(model, uncond):
    for m in (model, uncond):
        a = complete(m, a_prefix(6), n=8, temperature=1.0, seed=4, scale_factor=SCALE)
        b = complete(m, a_prefix(6), n=8, temperature=1.0, seed=4, scale_factor=SCALE)
        c = complete(m, a_prefix(6), n=8, temperature=1.0, seed=5, scale_factor=SCALE)
        assert all(np.array_equal(x, y) for x, y in zip(a.endings, b.endings))
        assert not all(x.shape == y.shape and np.array_equal(x, y)
                       for x, y in zip(a.endings, c.endings))


def test_z_modes(model, uncond):
    prefix = a_prefix(8)
    prior = complete(model, prefix, n=8, seed=2, scale_factor=SCALE)
    np.testing.assert_array_equal(prior.z, sampling.prior_z(8, model.hps.z_size, 2))
    enc = complete(model, prefix, n=8, seed=2, z_mode="encode", scale_factor=SCALE)
    strokes = np.zeros((1, N_MAX + 1, 5), np.float32)
    strokes[0, 0] = [0, 0, 1, 0, 0]
    strokes[0, 1:] = [0, 0, 0, 0, 1]
    strokes[0, 1:9] = stroke5_rows(prefix)
    mu, _ = model.encode(strokes, np.array([8]))
    np.testing.assert_allclose(enc.z, np.repeat(ops.convert_to_numpy(mu), 8, 0), atol=1e-6)
    assert complete(uncond, prefix, n=8).z is None
    with pytest.raises(SketchRNNError, match="decoder-only"):
        complete(uncond, prefix, n=2, z_mode="encode")
    with pytest.raises(SketchRNNError, match="z_mode"):
        complete(model, prefix, n=2, z_mode="posterior")


def test_units_and_whole_sketches(model):
    prefix = a_prefix(5)
    c = complete(model, prefix, n=8, seed=0, scale_factor=SCALE, greedy=False)
    np.testing.assert_array_equal(c.prefix, prefix)
    for e, whole in zip(c.endings, c.sketches()):
        assert e.dtype == np.float32 and e.shape[1:] == (3,)
        np.testing.assert_array_equal(whole, np.concatenate([prefix, e]))
        assert len(e) <= N_MAX - len(prefix)
    # the same drawing in units twice as large, with a scale factor twice as large
    bigger = prefix * np.array([2, 2, 1], np.float32)
    big = complete(model, bigger, n=8, seed=0, scale_factor=2 * SCALE)
    for e, e2 in zip(c.endings, big.endings):
        np.testing.assert_allclose(e2, e * np.array([2, 2, 1], np.float32), rtol=1e-5)


def test_length_limits(model):
    full = complete(model, a_prefix(N_MAX), n=8, seed=0, scale_factor=SCALE)
    assert all(e.shape == (0, 3) for e in full.endings)  # no room left
    capped = complete(model, a_prefix(3), n=8, seed=0, temperature=1.0, max_len=2)
    assert all(len(e) <= 2 for e in capped.endings)


@pytest.mark.parametrize("prefix,match", [
    (np.zeros((0, 3)), "empty"),
    (np.zeros((N_MAX + 1, 3)), f"at most {N_MAX}"),
    (np.array([[1.0, np.nan, 0.0]]), "NaN or infinite"),
    (np.array([[1.0, np.inf, 0.0]]), "NaN or infinite"),
    (np.zeros((4, 2)), r"shape \(L, 3\)"),
    (np.zeros(3), r"shape \(L, 3\)"),
    ([[1, 2, 0], [1, 2]], "list of"),
    ("abc", "list of"),
])
def test_bad_prefixes_are_one_line_errors(model, prefix, match):
    with pytest.raises(SketchRNNError, match=match) as e:
        complete(model, prefix, n=2)
    assert "\n" not in str(e.value) and str(e.value).startswith("prefix")


@pytest.mark.parametrize("kwargs,match", [
    (dict(n=0), "n=0"), (dict(temperature=0.0), "temperature"),
    (dict(temperature=float("nan")), "temperature"), (dict(max_len=-1), "max_len"),
])
def test_bad_arguments(model, kwargs, match):
    with pytest.raises(SketchRNNError, match=match):
        complete(model, a_prefix(3), **kwargs)
