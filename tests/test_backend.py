"""The fused LSTM kernel against plain autodiff: `FastPath()` vs `FastPath.plain()`.

The fused path runs the LSTM lanes (the decoder LSTM, both encoder directions in one loop)
with a hand-written backward, XLA-compiled on TensorFlow; `FastPath.plain()` runs the same
cells' forward loop under the backend's own autodiff, without XLA. Autodiff is the
independent reference: it derives the backward from the forward's ops, where the fused
path's backward is written by hand.

Tolerance, and why: the two paths add the same products in different orders (the fused
backward sums the bias and input-kernel gradients inside its loop and takes the recurrent
kernel's for all N * B rows in one matmul; autodiff accumulates step by step; XLA fuses and
reorders the element-wise ops), so they agree to float32 rounding of those sums, not bit
for bit. Each tensor must agree to 1e-5 of its own largest entry (about 80 float32 ulps
of it; measured worst: 1.3e-6 at these sizes), which no wrong gate, missing term or
misplaced step meets (those are off by O(1) of the scale). Elementwise relative error is
no measure here: an entry near zero is a difference of large terms.

Tiny sizes (the `tiny` preset, N_max = 24, B = 4) and random weights everywhere (the init's
zeros, e.g. the HyperLSTM's embedding kernels, would leave whole gradients at zero).
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import fast_first

import keras
from keras import ops

from sketch_rnn.core.hparams import preset
from sketch_rnn.model.backend import FastPath
from sketch_rnn.model.cells import LSTM, bidirectional_lstm
from sketch_rnn.model.vae import SketchRNN

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_MAX, B = 24, 4
SCALE_TOL = 1e-5  # |fused - plain| <= SCALE_TOL * max|plain|, per tensor (module docstring)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _batch(seed=14):
    """Random-walk stroke-5 sketches with S_0 first and p3 = 1 on padding."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(N_MAX // 2, N_MAX + 1, B)
    s = np.zeros((B, N_MAX + 1, 5), np.float32)
    s[:, 0, 2] = 1
    for b, n in enumerate(lengths):
        s[b, 1:n + 1, :2] = rng.normal(0, 0.5, (n, 2))
        pen = rng.random(n) < 0.15
        s[b, 1:n + 1, 2], s[b, 1:n + 1, 3] = ~pen, pen
        s[b, n + 1:, 4] = 1
    return {"strokes": s, "lengths": lengths.astype("int32")}


def _randomise(variables, seed=0):
    rng = np.random.default_rng(seed)
    for v in variables:
        v.assign(rng.normal(0, 0.3, v.shape).astype("float32"))


def assert_agree(fused, plain, names):
    """Each pair to SCALE_TOL of its scale, and the two not bitwise equal throughout (else
    the switch did not change the path and the comparison would prove nothing)."""
    assert len(fused) == len(plain) == len(names)
    for got, want, name in zip(fused, plain, names):
        got, want = _np(got), _np(want)
        assert np.all(np.isfinite(got)), name
        scale = np.abs(want).max()
        assert scale > 0, f"{name}: all zero, the comparison would be empty"
        worst = np.abs(got - want).max()
        assert worst <= SCALE_TOL * scale, f"{name}: off by {worst:.3g} at scale {scale:.3g}"
    assert not all(np.array_equal(_np(a), _np(b)) for a, b in zip(fused, plain))


def _tf_grads(fn, sources):
    """(outputs, d sum(outputs * fixed weights) / d sources) with a TensorFlow tape
    (variables are watched by themselves, tensors are watched here)."""
    import tensorflow as tf
    rng = np.random.default_rng(3)
    with tf.GradientTape() as tape:
        tape.watch([s for s in sources if not isinstance(s, keras.Variable)])
        outs = fn()
        total = sum(ops.sum(o * rng.normal(0, 1, o.shape).astype("float32")) for o in outs)
    return list(outs), tape.gradient(total, sources)


@pytest.mark.parametrize("dec_model,input_dropout", fast_first([
    ("lstm", False), ("lstm", True), ("layer_norm", False), ("hyper", False)], unpack=True))
def test_model_fused_equals_plain_autodiff(dec_model, input_dropout):
    """The training step's cost, head outputs, mu, presig and every gradient: fused vs plain.

    The encoder is the LSTM (two fused lanes, gates stored for the backward); the
    decoder is each of the three cells (only the LSTM has a fused kernel: for the other two
    the comparison covers the encoder's kernel under their z gradients), with recurrent
    dropout, and for the LSTM once with input dropout on [S, z] (the kernel's x gradient).
    """
    import tensorflow as tf
    hps = preset("tiny").replace(dec_model=dec_model, enc_model="lstm", max_seq_len=N_MAX,
                                 use_recurrent_dropout=True, use_input_dropout=input_dropout)
    x = _batch()

    def run(options):
        model = SketchRNN(hps, seed=3, options=options)
        _randomise(model.trainable_variables)
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            cost = model.compute_loss(x, None, y)
        grads = tape.gradient(cost, model.trainable_variables)
        names = ["cost", "raw", "mu", "presig"] + [v.path.split("/", 1)[1]
                                                   for v in model.trainable_variables]
        return [cost, y["raw"], y["mu"], y["presig"]] + grads, names

    fused, names = run(FastPath())
    plain, _ = run(FastPath.plain())
    assert_agree(fused, plain, names)


def _lstm(units, d, seed, options):
    cell = LSTM(units, options=options)
    cell.build((None, None, d))
    _randomise(cell.trainable_variables, seed)
    return cell


def test_decoder_lstm_cell_fused_equals_plain_autodiff():
    """LSTM.run with z as a per-sketch bias, initial states and recurrent dropout: every
    step's h and the final (h, c), and their gradients for weights, inputs, z and states."""
    rng = np.random.default_rng(5)
    u, d, z_size = 8, 5, 3
    x = ops.convert_to_tensor(rng.normal(0, 1, (N_MAX, B, d)).astype("float32"))
    z = ops.convert_to_tensor(rng.normal(0, 1, (B, z_size)).astype("float32"))
    h0, c0 = (ops.convert_to_tensor(rng.normal(0, 0.5, (B, u)).astype("float32"))
              for _ in range(2))
    mask = ops.convert_to_tensor(rng.random((N_MAX, B, u)) < 0.8)

    def run(options):
        cell = _lstm(u, d + z_size, seed=1, options=options)
        sources = [*cell.trainable_variables, z, h0, c0]

        def fn():
            hs, (h, c) = cell.run(x, z, (h0, c0), mask, keep_prob=0.8)
            return hs, h, c
        outs, grads = _tf_grads(fn, sources)
        return outs + grads

    names = ["hs", "h_N", "c_N", "d kernel", "d recurrent_kernel", "d bias", "d z", "d h0",
             "d c0"]
    assert_agree(run(FastPath()), run(FastPath.plain()), names)


@pytest.mark.parametrize("recompute", [True, False])
def test_encoder_fused_equals_plain_autodiff(recompute):
    """Both encoder directions in one loop (`bidirectional_lstm`), with recurrent dropout:
    every step's h of each direction and the gradients for both directions' weights and
    inputs, with the gates rebuilt in the backward or stored (the default)."""
    rng = np.random.default_rng(7)
    u, d = 6, 5
    x_fw, x_bw = (ops.convert_to_tensor(rng.normal(0, 1, (N_MAX, B, d)).astype("float32"))
                  for _ in range(2))
    m_fw, m_bw = (ops.convert_to_tensor(rng.random((N_MAX, B, u)) < 0.9) for _ in range(2))

    def run(options):
        fw, bw = _lstm(u, d, 2, options), _lstm(u, d, 3, options)
        sources = [*fw.trainable_variables, *bw.trainable_variables, x_fw, x_bw]
        outs, grads = _tf_grads(
            lambda: bidirectional_lstm(fw, bw, x_fw, x_bw, m_fw, m_bw, keep_prob=0.9), sources)
        return outs + grads

    names = ["hs_fw", "hs_bw"] + [f"d {w} {v}" for w in ("fw", "bw")
                                  for v in ("kernel", "recurrent_kernel", "bias")]
    fused = run(FastPath(encoder_recompute=recompute))
    plain = run(FastPath.plain())
    # x gets no gradient from the fused encoder (strokes are data: `x_grad` is off)
    assert fused[-2:] == [None, None]
    assert_agree(fused[:-2], plain[:-2], names)


def test_storing_the_encoder_gates_changes_no_float32_bit():
    """`FastPath.encoder_recompute` is a memory/speed switch: in float32 the rebuilt gates
    equal the stored ones bit for bit, so the cost and every gradient of a training step are
    identical either way (the default stores them; runs saved before resume unchanged)."""
    import tensorflow as tf
    hps = preset("tiny").replace(max_seq_len=N_MAX, enc_model="lstm", precision="float32",
                                 use_recurrent_dropout=True)
    x = _batch(seed=5)

    def step(recompute):
        model = SketchRNN(hps, seed=6, options=FastPath(encoder_recompute=recompute))
        with tf.GradientTape() as tape:
            cost = model.compute_loss(x, None, model(x, training=True))
        return [cost] + tape.gradient(cost, model.trainable_variables)

    for a, b in zip(step(True), step(False), strict=True):
        np.testing.assert_array_equal(_np(a), _np(b))


def test_plain_is_never_an_xla_cluster():
    """FastPath(fused=False) ignores xla_loops (TensorFlow cannot differentiate a loop's
    TensorArrays across an XLA cluster's boundary) and gives plain()'s numbers bit for bit."""
    import tensorflow as tf
    hps = preset("tiny").replace(max_seq_len=N_MAX)
    x = _batch(seed=2)

    def grads(options):
        model = SketchRNN(hps, seed=4, options=options)
        with tf.GradientTape() as tape:
            cost = model.compute_loss(x, None, model(x, training=True))
        return tape.gradient(cost, model.trainable_variables)

    for a, b in zip(grads(FastPath(fused=False, xla_loops=True)), grads(FastPath.plain())):
        np.testing.assert_array_equal(_np(a), _np(b))


_JAX_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, keras, jax
    assert keras.backend.backend() == "jax", keras.backend.backend()
    sys.path.insert(0, {tests!r})
    from test_backend import N_MAX, _batch, _randomise, assert_agree
    from sketch_rnn.core.hparams import preset
    from sketch_rnn.model.backend import FastPath
    from sketch_rnn.model.vae import SketchRNN

    hps = preset("tiny").replace(max_seq_len=N_MAX, use_input_dropout=True)
    x = _batch()

    def run(options):
        model = SketchRNN(hps, seed=3, options=options)
        _randomise(model.trainable_variables)
        tv = model.trainable_variables

        def cost(values):
            with keras.StatelessScope(state_mapping=list(zip(tv, values))):
                y = model(x, training=True)
                return model.compute_loss(x, None, y), y

        (value, y), grads = jax.value_and_grad(cost, has_aux=True)([v.value for v in tv])
        return [value, y["raw"], y["mu"], y["presig"], *grads], [v.path for v in tv]

    fused, names = run(FastPath())
    plain, _ = run(FastPath.plain())
    assert_agree(fused, plain, ["cost", "raw", "mu", "presig", *names])
    print("jax fused == plain on", len(names), "gradients")
""")


@pytest.mark.slow  # a fresh process: the backend is chosen at import
def test_model_fused_equals_plain_autodiff_on_jax():
    """The same comparison on JAX (jax.custom_vjp against jax's autodiff through lax.scan)."""
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-c", _JAX_SCRIPT.format(tests=os.path.join(
        REPO, "tests"))], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jax fused == plain" in result.stdout
