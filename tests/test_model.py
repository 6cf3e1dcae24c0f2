"""SketchRNN: loss against NumPy, masking, padding, modes, overfitting, gradients, I/O."""
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import fast_first

from keras import ops

from sketch_rnn.core.hparams import preset
from sketch_rnn.model.mixture import sketch_loss_terms, split_params
from sketch_rnn.model.vae import SketchRNN

CELLS = ["lstm", "layer_norm", "hyper"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_batch(B=4, n_max=20, seed=0, lengths=None):
    """Smooth, learnable stroke-5 sketches with S_0 prepended and p3 = 1 on padding."""
    rng = np.random.default_rng(seed)
    L = np.asarray(lengths if lengths is not None else rng.integers(n_max // 2, n_max + 1, B))
    s = np.zeros((B, n_max + 1, 5), np.float32)
    s[:, 0, 2] = 1
    for b in range(B):
        t = np.arange(L[b])
        s[b, 1:L[b] + 1, 0] = 0.5 * np.cos(0.6 * t + b)
        s[b, 1:L[b] + 1, 1] = 0.5 * np.sin(0.6 * t + b)
        lift = (t % 5 == 4) | (t == L[b] - 1)
        s[b, 1:L[b] + 1, 2] = ~lift
        s[b, 1:L[b] + 1, 3] = lift
        s[b, L[b] + 1:, 4] = 1
    return {"strokes": s, "lengths": L.astype(np.int32)}


def tiny(**kw):
    return preset("tiny").replace(**kw)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


# ---------------------------------------------------------------- loss vs NumPy
def _numpy_terms(raw, strokes, lengths, mu, presig):
    """The paper's / Magenta's formulas, written independently (batch-major, loops)."""
    B, N, K = raw.shape
    M = (K - 3) // 6
    stroke, pen = np.zeros(B), np.zeros(B)
    for b in range(B):
        for t in range(N):
            r = raw[b, t].astype(np.float64)
            dx, dy = strokes[b, t + 1, 0], strokes[b, t + 1, 1]
            pen_logit = r[:3]
            pi_l, mx, my, sx, sy, rh = (r[3 + j * M:3 + (j + 1) * M] for j in range(6))
            pi = np.exp(pi_l - pi_l.max())
            pi /= pi.sum()
            sx, sy, rh = np.exp(sx), np.exp(sy), np.tanh(rh)
            dens = 0.0
            for j in range(M):
                zx, zy = (dx - mx[j]) / sx[j], (dy - my[j]) / sy[j]
                q = (zx * zx + zy * zy - 2 * rh[j] * zx * zy) / (1 - rh[j] ** 2)
                dens += pi[j] * math.exp(-q / 2) / (
                    2 * math.pi * sx[j] * sy[j] * math.sqrt(1 - rh[j] ** 2))
            if t < lengths[b]:
                stroke[b] -= math.log(dens + 1e-6)
            log_q = pen_logit - pen_logit.max() - math.log(np.exp(pen_logit - pen_logit.max()).sum())
            pen[b] -= float(strokes[b, t + 1, 2:] @ log_q)
    kl = -0.5 * np.mean(1 + presig - mu ** 2 - np.exp(presig), axis=1)
    return stroke / N, pen / N, kl


def _random_outputs(B, N, M, seed):
    rng = np.random.default_rng(seed)
    raw = rng.normal(0, 0.7, (B, N, 3 + 6 * M)).astype(np.float32)
    mu = rng.normal(0, 0.5, (B, 8)).astype(np.float32)
    presig = rng.normal(0, 0.5, (B, 8)).astype(np.float32)
    return raw, mu, presig


def test_loss_terms_match_numpy():
    B, N, M = 3, 9, 4
    x = make_batch(B, N, seed=1, lengths=[9, 5, 2])
    x["strokes"][:, 1:, :2] = np.random.default_rng(2).normal(0, 0.6, (B, N, 2))
    raw, mu, presig = _random_outputs(B, N, M, seed=3)
    got = sketch_loss_terms(np.transpose(raw, (1, 0, 2)), x["strokes"], x["lengths"], mu, presig)
    want = _numpy_terms(raw, x["strokes"], x["lengths"], mu, presig)
    for key, ref in zip(("stroke", "pen", "kl"), want):
        np.testing.assert_allclose(_np(got[key]), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kl_scale", [0.01, 3.0])  # KL below and above kl_tolerance
def test_compute_loss_cost_recon_kl(kl_scale):
    B, N = 3, 9
    hps = tiny(num_mixture=4, kl_tolerance=0.2, max_seq_len=N)  # the loss divides by N_max
    model = SketchRNN(hps)
    model.kl_weight.assign(0.37)
    x = make_batch(B, N, seed=4)
    raw, mu, presig = _random_outputs(B, N, 4, seed=5)
    mu, presig = mu * kl_scale, presig * kl_scale
    y_pred = {"raw": np.transpose(raw, (1, 0, 2)), "mu": mu, "presig": presig}
    cost = float(_np(model.compute_loss(x, None, y_pred)))
    stroke, pen, kl = _numpy_terms(raw, x["strokes"], x["lengths"], mu, presig)
    recon, kl_mean = stroke.mean() + pen.mean(), kl.mean()
    assert (kl_mean < 0.2) == (kl_scale < 1)
    np.testing.assert_allclose(cost, recon + 0.37 * max(kl_mean, 0.2), rtol=1e-5)
    metrics = {m.name: float(_np(m.result())) for m in model.metrics}
    np.testing.assert_allclose(metrics["recon"], recon, rtol=1e-5)
    np.testing.assert_allclose(metrics["kl"], kl_mean, rtol=1e-5, atol=1e-8)  # unfloored
    np.testing.assert_allclose(metrics["w_kl"], 0.37, rtol=1e-6)


def test_split_params_layout():
    M = 3
    raw = np.arange(3 + 6 * M, dtype=np.float32)[None] / 10
    p = split_params(raw)
    np.testing.assert_allclose(_np(p.pen_logits), raw[:, :3])
    np.testing.assert_allclose(_np(p.pi_logits), raw[:, 3:6])
    np.testing.assert_allclose(_np(p.mu_y), raw[:, 9:12])
    np.testing.assert_allclose(_np(p.sigma_x), np.exp(raw[:, 12:15]), rtol=1e-6)
    np.testing.assert_allclose(_np(p.rho), np.tanh(raw[:, 18:21]), rtol=1e-6)


def test_stroke_loss_masked_after_end_pen_loss_not():
    B, N, M = 2, 8, 3
    x = make_batch(B, N, seed=6, lengths=[4, 6])
    raw, mu, presig = _random_outputs(B, N, M, seed=7)
    base = sketch_loss_terms(np.transpose(raw, (1, 0, 2)), x["strokes"], x["lengths"])
    raw2, s2 = raw.copy(), x["strokes"].copy()
    for b, L in enumerate(x["lengths"]):
        raw2[b, L:, 0] += 3.0  # garbage pen logits and offset predictions after the end...
        raw2[b, L:, 3:] += 1.5
        s2[b, L + 1:, :2] = 9.0  # ...and garbage offsets in the padding
    moved = sketch_loss_terms(np.transpose(raw2, (1, 0, 2)), s2, x["lengths"])
    np.testing.assert_array_equal(_np(moved["stroke"]), _np(base["stroke"]))
    assert np.all(np.abs(_np(moved["pen"]) - _np(base["pen"])) > 1e-3)


# ---------------------------------------------------------------- encoder, modes
@pytest.mark.parametrize("cell", ["lstm", "hyper"])
def test_encoder_ignores_padding(cell):
    model = SketchRNN(tiny(enc_model=cell), seed=2)
    x = make_batch(3, 12, seed=8)
    extra = np.tile(np.array([0, 0, 0, 0, 1], np.float32), (3, 9, 1))
    longer = np.concatenate([x["strokes"], extra], axis=1)
    for b, L in enumerate(x["lengths"]):
        longer[b, L + 1:, :2] = 7.0  # garbage past the end must not matter either
    mu, presig = model.encode(x["strokes"], x["lengths"])
    mu2, presig2 = model.encode(longer, x["lengths"])
    np.testing.assert_allclose(_np(mu2), _np(mu), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_np(presig2), _np(presig), rtol=1e-6, atol=1e-7)
    # ...while the content does matter, and the backward direction reads the last point
    edited = x["strokes"].copy()
    edited[0, x["lengths"][0], 0] += 1.0
    assert np.abs(_np(model.encode(edited, x["lengths"])[0])[0] - _np(mu)[0]).max() > 1e-5


def test_decoder_only_mode():
    model = SketchRNN(tiny(conditional=False), seed=3)
    names = [v.path for v in model.trainable_variables]
    assert not any("encoder" in n or "mu" in n or "initial_state" in n for n in names)
    x = make_batch(3, 10, seed=9)
    out = model(x)
    assert set(out) == {"raw"}
    states = model.initial_state(None, 3)
    assert all(np.all(_np(s) == 0) for s in states)
    terms = model.loss_terms(x["strokes"], x["lengths"])
    np.testing.assert_array_equal(_np(terms["kl"]), 0.0)
    cost = _np(model.compute_loss(x, None, model(x)))
    np.testing.assert_allclose(cost, _np(terms["stroke"]).mean() + _np(terms["pen"]).mean(),
                               rtol=1e-6)


# ---------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("conditional", [True, False])
def test_model_parameter_count(cell, conditional):
    hps = tiny(enc_model=cell, dec_model=cell, conditional=conditional)
    model = SketchRNN(hps)
    H, E = hps.hyper_num_units, hps.hyper_embedding_size
    K = 3 + 6 * hps.num_mixture

    def cell_count(d, u):  # Magenta's variables, per cell type
        base = (d + u) * 4 * u
        if cell == "lstm":
            return base + 4 * u
        if cell == "layer_norm":
            return base + 10 * u
        return (base + 4 * u + 10 * u + (d + u + H) * 4 * H + 10 * H
                + 4 * (H * E + E + E * u) + 4 * (2 * H * E + E + 2 * E * u))

    u_e, u_d, z = hps.enc_rnn_size, hps.dec_rnn_size, hps.z_size
    expected = cell_count(5 + (z if conditional else 0), u_d) + u_d * K + K
    if conditional:
        state = 2 * u_d + (2 * H if cell == "hyper" else 0)  # Magenta's cell.state_size
        expected += 2 * cell_count(5, u_e) + 2 * (2 * u_e * z + z) + z * state + state
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert trainable == expected


# ---------------------------------------------------------------- training behaviour
def _recon(model, x):
    t = model.loss_terms(x["strokes"], x["lengths"])
    return float(_np(t["stroke"]).mean() + _np(t["pen"]).mean())


# the fast loop (-m "not slow") overfits the decoder-only LSTM; the other cells train 6x slower
@pytest.mark.parametrize("cell", fast_first(CELLS))  # CELLS[0] is "lstm"
@pytest.mark.parametrize("conditional", fast_first([False, True]))
def test_overfits_one_batch(cell, conditional):
    steps = 150
    hps = tiny(enc_model=cell, dec_model=cell, conditional=conditional, learning_rate=0.01,
               max_seq_len=20)  # the batch's length: the loss divides by N_max
    model = SketchRNN(hps, seed=1)
    model.compile_for_training()
    x = make_batch(4, 20)
    start = _recon(model, x)
    xs = {k: np.tile(v, (steps,) + (1,) * (v.ndim - 1)) for k, v in x.items()}
    hist = model.fit(xs, batch_size=4, epochs=1, verbose=0, shuffle=False)
    end = _recon(model, x)
    assert np.isfinite(hist.history["cost"][-1])
    assert start > 2.0 and end < start - 3.0, (start, end)


@pytest.mark.parametrize("cell, dropout", fast_first([
    ("lstm", "recurrent"), ("layer_norm", "recurrent"), ("hyper", "recurrent"),
    ("lstm", "input+output"), ("lstm", "none")], unpack=True))
def test_gradients_reach_every_variable(cell, dropout):
    import tensorflow as tf
    hps = tiny(enc_model=cell, dec_model=cell, num_mixture=2,
               use_recurrent_dropout=dropout == "recurrent",
               use_input_dropout=dropout == "input+output",
               use_output_dropout=dropout == "input+output")
    model = SketchRNN(hps, seed=4)
    model.kl_weight.assign(1.0)
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:  # HyperLSTM's zero-initialised embeddings would
        # otherwise cut the hyper cell off at step 0 (as in Magenta); any later step has it
        v.assign(_np(v) + rng.normal(0, 0.05, v.shape).astype(np.float32))
    x = make_batch(3, 8, seed=10)
    with tf.GradientTape() as tape:
        y = model(x, training=True)
        y["mu"] = y["mu"] * 30.0  # KL above the tolerance, so the encoder gets its gradient
        cost = model.compute_loss(x, None, y)
    grads = tape.gradient(cost, model.trainable_variables)
    for v, g in zip(model.trainable_variables, grads):
        assert g is not None, v.path
        assert float(tf.reduce_max(tf.abs(g))) > 0, v.path


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("conditional", [True, False])
def test_decode_sequence_equals_stepping(cell, conditional):
    model = SketchRNN(tiny(enc_model=cell, dec_model=cell, conditional=conditional), seed=5)
    x = make_batch(3, 7, seed=11)
    z = _np(model.encode(x["strokes"], x["lengths"])[0]) if conditional else None
    seq = _np(model.decode_sequence(x["strokes"], z))
    states = model.initial_state(z, 3)
    steps = []
    for t in range(7):
        raw, states = model.decode_step(x["strokes"][:, t], z, states)
        steps.append(_np(raw))
    assert seq.shape == (3, 7, 3 + 6 * 3)
    np.testing.assert_allclose(np.stack(steps, 1), seq, rtol=1e-5, atol=1e-6)


def test_keras_lstm_layer_path_equals_fast_path():
    """Without recurrent dropout the decoder may run as keras.layers.LSTM (cuDNN on a GPU):
    the loss and every gradient equal those of our own loop on the same weights."""
    import tensorflow as tf
    from sketch_rnn.model.backend import FastPath
    hps = tiny(use_recurrent_dropout=False)
    x = make_batch(3, 9, seed=14)

    def cost_and_grads(use_keras_layer):
        model = SketchRNN(hps, seed=12, options=FastPath(use_cudnn=use_keras_layer))
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            cost = model.compute_loss(x, None, y)
        return [cost] + tape.gradient(cost, model.trainable_variables)

    for a, b in zip(cost_and_grads(True), cost_and_grads(False)):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-4, atol=1e-6)


def test_save_load_weights_gives_identical_outputs(tmp_path):
    hps = tiny(dec_model="hyper")
    a = SketchRNN(hps, seed=6)
    a.kl_weight.assign(0.3)
    path = str(tmp_path / "m.weights.h5")
    a.save_weights(path)
    b = SketchRNN(hps, seed=7)
    x = make_batch(3, 9, seed=12)
    assert np.abs(_np(b.encode(x["strokes"], x["lengths"])[0])
                  - _np(a.encode(x["strokes"], x["lengths"])[0])).max() > 0
    b.load_weights(path)
    for ta, tb in zip(a.encode(x["strokes"], x["lengths"]), b.encode(x["strokes"], x["lengths"])):
        np.testing.assert_array_equal(_np(ta), _np(tb))
    z = _np(a.encode(x["strokes"], x["lengths"])[0])
    np.testing.assert_array_equal(_np(a.decode_sequence(x["strokes"], z)),
                                  _np(b.decode_sequence(x["strokes"], z)))
    assert float(_np(b.kl_weight)) == pytest.approx(0.3)


def test_training_draws_depend_on_seed_and_iteration_only():
    hps = tiny()
    model = SketchRNN(hps, seed=8)
    model.compile_for_training()
    model.optimizer.build(model.trainable_variables)
    x = make_batch(3, 9, seed=13)

    def train_cost(it):
        model.optimizer.iterations.assign(it)
        t = model.loss_terms(x["strokes"], x["lengths"], training=True)
        return _np(t["stroke"])

    np.testing.assert_array_equal(train_cost(5), train_cost(5))
    assert np.abs(train_cost(5) - train_cost(6)).max() > 0
    other = SketchRNN(hps, seed=9)
    other.set_weights(model.get_weights())
    other.compile_for_training()
    other.optimizer.build(other.trainable_variables)
    other.optimizer.iterations.assign(5)
    t = _np(other.loss_terms(x["strokes"], x["lengths"], training=True)["stroke"])
    assert np.abs(t - train_cost(5)).max() > 0


_DETERMINISM_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, keras, tensorflow as tf
    sys.path.insert(0, {tests!r})
    from test_model import make_batch, tiny
    from sketch_rnn.model.vae import SketchRNN
    tf.config.experimental.enable_op_determinism()

    def data(step):
        return make_batch(4, 16, seed=100 + step)

    def run(steps, seed=0, resume_from=None, start=0):
        keras.utils.set_random_seed(seed)
        m = SketchRNN(tiny(dec_model="layer_norm"), seed=seed)
        m.compile_for_training()
        if resume_from is not None:
            m.optimizer.build(m.trainable_variables)
            m.load_weights(resume_from)
        for s in range(start, steps):
            m.train_on_batch(data(s))
        return m

    a, b = run(4), run(4)
    wa = [v.numpy() for v in a.variables + a.optimizer.variables]
    wb = [v.numpy() for v in b.variables + b.optimizer.variables]
    assert all(np.array_equal(p, q) for p, q in zip(wa, wb)), "two runs differ"
    c = run(4, seed=1)
    assert any(not np.array_equal(p, q) for p, q in zip(a.get_weights(), c.get_weights()))
    half = run(2)
    half.save_weights({ckpt!r})
    resumed = run(4, resume_from={ckpt!r}, start=2)
    assert int(resumed.optimizer.iterations.numpy()) == 4
    for p, q in zip(a.get_weights(), resumed.get_weights()):
        assert np.array_equal(p, q), "stop-and-resume differs"
    print("DETERMINISTIC")
""")


@pytest.mark.slow  # five trainings in a fresh TensorFlow process
def test_bit_identical_runs_and_resume_with_op_determinism(tmp_path):
    """Fresh process: op determinism is global. Two runs, and 2+2 steps via save/load == 4."""
    script = _DETERMINISM_SCRIPT.format(tests=os.path.join(REPO, "tests"),
                                        ckpt=str(tmp_path / "half.weights.h5"))
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=300)
    assert "DETERMINISTIC" in out.stdout, out.stderr[-3000:]
