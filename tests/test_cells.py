"""Cells: closed-form parameter counts, one step against NumPy, dropout on g only, loops."""
import numpy as np
import pytest

import keras
from keras import ops

from sketch_rnn.model.cells import HyperLSTM, LayerNormLSTM, LSTM, GatewiseOrthogonal
from sketch_rnn.core.hparams import preset

D, U, H, E, B = 7, 6, 5, 3, 4


def _cell(kind):
    cell = {"lstm": lambda: LSTM(U),
            "layer_norm": lambda: LayerNormLSTM(U),
            "hyper": lambda: HyperLSTM(U, H, E)}[kind]()
    cell.build((None, None, D))
    return cell


def _randomise(cell, seed=0):
    """Non-trivial values everywhere (the init has zeros and constants that hide bugs)."""
    rng = np.random.default_rng(seed)
    for v in cell.trainable_variables:
        v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _ln(x, gamma, beta, groups=1):
    g = x.reshape(x.shape[0], groups, -1)
    g = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-3)
    return g.reshape(x.shape) * gamma + beta


@pytest.mark.parametrize("kind", ["lstm", "layer_norm", "hyper"])
def test_parameter_count_matches_magenta_closed_form(kind):
    cell = _cell(kind)
    # Magenta: W_xh (D, 4U), W_hh (U, 4U), bias 4U (LSTM, HyperLSTM main cell);
    # layer norm on the 4 gates (gamma, beta: 8U) and on c (2U), no bias.
    main = D * 4 * U + U * 4 * U
    expected = {
        "lstm": main + 4 * U,
        "layer_norm": main + 8 * U + 2 * U,
        # main + bias + LN; hyper cell = layer-norm LSTM on [x, h]; per gate 4 x-scalings
        # (zw with bias + alpha) and 4 h-scalings (zw with bias + alpha + zb + beta).
        "hyper": (main + 4 * U + 10 * U
                  + (D + U) * 4 * H + H * 4 * H + 10 * H
                  + 4 * (H * E + E + E * U)
                  + 4 * (H * E + E + E * U + H * E + E * U)),
    }[kind]
    assert cell.count_params() == expected


def test_recurrent_kernel_is_orthogonal_per_gate():
    w = _np(GatewiseOrthogonal(4, seed=3)((8, 32)))
    for g in range(4):
        block = w[:, 8 * g:8 * (g + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(8), atol=1e-5)
    # the blocks differ (fresh draws, not one matrix repeated)
    assert np.abs(w[:, :8] - w[:, 8:16]).max() > 0.1


def test_lstm_forget_bias_is_one_at_init():
    bias = _np(_cell("lstm").cell.bias)
    np.testing.assert_array_equal(bias[U:2 * U], 1.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[U:2 * U]), 0.0)


def _reference_step(kind, cell, x, states, keep):
    """Magenta's cell equations, written out in NumPy (gate order i, f, g, o)."""
    w = {v.path.split("/")[-1]: _np(v) for v in cell.trainable_variables}
    if kind == "lstm":
        h, c = states
        pre = x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
        i, f, g, o = np.split(pre, 4, axis=-1)
        c = _sig(f) * c + _sig(i) * np.tanh(g) * keep  # forget bias lives in the variable
        h = _sig(o) * np.tanh(c)
        return h, (h, c)
    if kind == "layer_norm":
        h, c = states
        pre = _ln(x @ w["kernel"] + h @ w["recurrent_kernel"], w["ln_gamma"], w["ln_beta"], 4)
        i, f, g, o = np.split(pre, 4, axis=-1)
        c = _sig(f + 1.0) * c + _sig(i) * np.tanh(g) * keep
        h = _sig(o) * np.tanh(_ln(c, w["ln_c_gamma"], w["ln_c_beta"]))
        return h, (h, c)
    h, c, hh, hc = states
    hpre = np.concatenate([x, h], -1) @ w["hyper_kernel"] + hh @ w["hyper_recurrent_kernel"]
    hpre = _ln(hpre, w["hyper_ln_gamma"], w["hyper_ln_beta"], 4)
    hi, hf, hg, ho = np.split(hpre, 4, axis=-1)
    hc = _sig(hf + 1.0) * hc + _sig(hi) * np.tanh(hg)
    hh = _sig(ho) * np.tanh(_ln(hc, w["hyper_ln_c_gamma"], w["hyper_ln_c_beta"]))
    xh = np.split(x @ w["kernel"], 4, axis=-1)
    hhm = np.split(h @ w["recurrent_kernel"], 4, axis=-1)
    bias = np.split(w["bias"], 4)
    gates = []
    for k in range(4):  # Magenta's hyper_norm, gate by gate
        zw_x = hh @ w["zw_x_kernel"][:, k * E:(k + 1) * E] + w["zw_x_bias"][k * E:(k + 1) * E]
        zw_h = hh @ w["zw_h_kernel"][:, k * E:(k + 1) * E] + w["zw_h_bias"][k * E:(k + 1) * E]
        zb_h = hh @ w["zb_h_kernel"][:, k * E:(k + 1) * E]
        gates.append((zw_x @ w["alpha_x"][k]) * xh[k] + (zw_h @ w["alpha_h"][k]) * hhm[k]
                     + zb_h @ w["beta_h"][k] + bias[k])
    pre = _ln(np.concatenate(gates, -1), w["ln_gamma"], w["ln_beta"], 4)
    i, f, g, o = np.split(pre, 4, axis=-1)
    c = _sig(f + 1.0) * c + _sig(i) * np.tanh(g) * keep
    h = _sig(o) * np.tanh(_ln(c, w["ln_c_gamma"], w["ln_c_beta"]))
    return h, (h, c, hh, hc)


@pytest.mark.parametrize("kind", ["lstm", "layer_norm", "hyper"])
def test_run_matches_numpy_reference(kind):
    """run (z part split off, boolean dropout mask) == Magenta's equations step by step."""
    cell = _cell(kind)
    _randomise(cell)
    rng = np.random.default_rng(1)
    T, d_seq = 5, 3  # the first 3 input columns vary per step, the last D-3 are "z"
    x_seq = rng.normal(size=(T, B, d_seq)).astype("float32")
    z = rng.normal(size=(B, D - d_seq)).astype("float32")
    mask = rng.random((T, B, U)) < 0.7
    states = tuple(rng.normal(size=(B, n)).astype("float32") for n in cell.state_sizes)
    hs, final = cell.run(x_seq, z, states, mask, keep_prob=0.7)
    # ...and the generic path (precomputed projection, float multiplier) agrees with it
    hs2, _ = cell.sequence(cell.input_projection(x_seq, z), states, (mask / 0.7).astype("float32"))
    np.testing.assert_allclose(_np(hs2), _np(hs), rtol=2e-5, atol=2e-5)
    ref_states, ref_hs = states, []
    for t in range(T):
        x = np.concatenate([x_seq[t], z], -1)
        h, ref_states = _reference_step(kind, cell, x, ref_states, mask[t] / 0.7)
        ref_hs.append(h)
    np.testing.assert_allclose(_np(hs), np.stack(ref_hs), rtol=2e-5, atol=2e-5)
    for got, want in zip(final, ref_states):
        np.testing.assert_allclose(_np(got), want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("kind", ["lstm", "layer_norm", "hyper"])
def test_recurrent_dropout_hits_candidate_only(kind):
    """All dropped: no new information enters c, so c_t = sigmoid(f) * c_{t-1}."""
    cell = _cell(kind)
    _randomise(cell, seed=2)
    rng = np.random.default_rng(3)
    states = tuple(rng.normal(size=(B, n)).astype("float32") for n in cell.state_sizes)
    x = rng.normal(size=(1, B, D)).astype("float32")
    _, with_drop = cell.run(x, None, states, np.zeros((1, B, U), bool), keep_prob=0.9)
    _, ref = _reference_step(kind, cell, x[0], states, np.zeros((B, U)))
    np.testing.assert_allclose(_np(with_drop[1]), ref[1], rtol=2e-5, atol=2e-5)
    # ...and it is not the identity: h still changes through o and the decayed c
    assert np.abs(_np(with_drop[1]) - states[1]).max() > 1e-3


def test_lstm_own_loop_equals_keras_lstm_layer():
    """The same weights serve keras.layers.LSTM (cuDNN on GPU) and our dropout-capable loop."""
    cell = _cell("lstm")
    _randomise(cell, seed=4)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(B, 6, D)).astype("float32")
    h0, c0 = (rng.normal(size=(B, U)).astype("float32") for _ in range(2))
    seq, h_k, c_k = keras.layers.LSTM.call(cell, x, initial_state=[h0, c0])
    hs, (h, c) = cell.run(np.transpose(x, (1, 0, 2)), None, (h0, c0))
    np.testing.assert_allclose(_np(hs), np.transpose(_np(seq), (1, 0, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(c), _np(c_k), rtol=1e-5, atol=1e-5)


def test_make_cell_uses_hparams_hyper_sizes():
    from sketch_rnn.model.cells import make_cell
    hps = preset("tiny")
    cell = make_cell("hyper", 8, hps)
    assert (cell.hyper_units, cell.embedding_size) == (hps.hyper_num_units,
                                                       hps.hyper_embedding_size)
    assert cell.state_sizes == (8, 8, hps.hyper_num_units, hps.hyper_num_units)


@pytest.mark.parametrize("variant", ["plain", "dropout", "recompute+dropout", "x_grad"])
@pytest.mark.parametrize("lanes", [1, 2])
def test_fast_lstm_gradient_equals_autodiff(variant, lanes):
    """lstm_lanes' hand-written backward == TF autodiff through the plain equations."""
    import tensorflow as tf
    from sketch_rnn.model.cells import lstm_lanes
    rng = np.random.default_rng(6)
    T, d = 5, 3
    with_keep = "dropout" in variant
    keep_prob = 0.7

    def const(*shape, scale=1.0):
        return tf.constant(rng.normal(0, scale, shape).astype("float32"))

    xs = [const(T, B, d) for _ in range(lanes)]
    w_xs = [const(d, 4 * U, scale=0.5) for _ in range(lanes)]
    bs = [const(B, 4 * U) if lane else const(4 * U) for lane in range(lanes)]
    h0s = [const(B, U) for _ in range(lanes)]
    c0s = [const(B, U) for _ in range(lanes)]
    ws = [const(U, 4 * U, scale=0.4) for _ in range(lanes)]
    masks = ([tf.constant(rng.random((T, B, U)) < keep_prob) for _ in range(lanes)]
             if with_keep else None)
    out_weights = [const(T, B, U), const(B, U), const(B, U)]
    inputs = [xs, w_xs, bs, h0s, c0s, ws]

    def plain(xs, w_xs, bs, h0s, c0s, ws):  # the same equations, unrolled, autodiff
        outs = ([], [], [])
        for lane in range(lanes):
            h, c, hs = h0s[lane], c0s[lane], []
            for t in range(T):
                pre = xs[lane][t] @ w_xs[lane] + bs[lane] + h @ ws[lane]
                i, f, g, o = tf.split(pre, 4, axis=-1)
                g = 2 * tf.sigmoid(g) - 1  # the scaled-g convention
                if with_keep:
                    g = g * tf.cast(masks[lane][t], tf.float32) / keep_prob
                c = tf.sigmoid(f) * c + tf.sigmoid(i) * g
                h = tf.sigmoid(o) * tf.tanh(c)
                hs.append(h)
            for seq, val in zip(outs, (tf.stack(hs), h, c)):
                seq.append(val)
        return outs

    def run(fn):
        flat = [t for group in inputs for t in group]
        with tf.GradientTape() as tape:
            tape.watch(flat)
            outs = fn(*inputs)
            total = sum(tf.reduce_sum(o * wt) for group, wt in zip(outs, out_weights)
                        for o in group)
        grads = tape.gradient(total, flat)
        if variant != "x_grad":
            grads = grads[lanes:]  # no gradient for x is asked for (data)
        return [o for group in outs for o in group] + grads

    fast = run(lambda *a: lstm_lanes(*a, masks=masks, keep_prob=keep_prob,
                                     recompute=[variant.startswith("recompute")] * lanes,
                                     x_grad=variant == "x_grad"))
    ref = run(plain)
    assert len(fast) == len(ref)
    for got, want in zip(fast, ref):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
