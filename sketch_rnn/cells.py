"""Recurrent cells of Sketch-RNN, parameterised as the original (Magenta) implementation.

Three cells, all in keras.ops so that they run on TensorFlow and JAX:

- `LSTM`: a `keras.layers.LSTM` (so that cuDNN serves it on a GPU when no recurrent
  dropout is used) plus our own sequence loop with recurrent dropout on the candidate g
  only (Semeniuta et al. 2016, "without memory loss"), as Magenta does.
- `LayerNormLSTM`: layer norm on each gate's pre-activation and on c (Magenta style: no bias).
- `HyperLSTM`: a small layer-norm LSTM (the hyper cell) whose output scales the main
  LSTM's weight rows through a small embedding (Ha et al. 2016, as in Magenta).

Every cell speaks the same small protocol, which is what the model needs to be fast:

- `input_projection(x_seq, z)`: the input part of the gate pre-activations for every
  step in one matmul; the z part is computed once per sketch instead of once per step.
- `step(xp_t, states, keep_t)`: one step given that step's precomputed projection.
- `sequence(xp, states, keep)`: the whole loop, time-major.

Gates are ordered (i, f, g, o) as in `keras.layers.LSTM`. The LSTM stores its forget
bias of 1.0 in the bias variable (Keras' `unit_forget_bias`, identical in value to
Magenta's constant added at run time, and what cuDNN expects); the other two cells add
the 1.0 at run time as Magenta does, since they have no plain bias on every gate.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

FORGET_BIAS = 1.0
LN_EPSILON = 1e-3  # Magenta's layer-norm epsilon


class GatewiseOrthogonal(keras.initializers.Initializer):
    """Orthogonal init of each gate's (u, u) block of a recurrent kernel (u, gates*u).

    Magenta initialises W_hh gate by gate; one orthogonal (u, 4u) matrix would not make
    each gate's own map orthogonal.
    """

    def __init__(self, gates: int = 4, seed: int | keras.random.SeedGenerator | None = None):
        self.gates = gates
        self.seed = seed if not isinstance(seed, int) else keras.random.SeedGenerator(seed)

    def __call__(self, shape, dtype=None):
        rows, cols = shape
        block = cols // self.gates
        ortho = keras.initializers.Orthogonal(seed=self.seed)
        return ops.concatenate([ortho((rows, block), dtype=dtype) for _ in range(self.gates)],
                               axis=1)

    def get_config(self) -> dict:
        return {"gates": self.gates}


def layer_norm(x, gamma, beta, groups: int = 1):
    """Normalise each of `groups` equal chunks of the last axis (Magenta's layer_norm_all)."""
    width = x.shape[-1]
    xg = ops.reshape(x, (-1, groups, width // groups))  # (B, groups, u)
    mean = ops.mean(xg, axis=-1, keepdims=True)
    centred = xg - mean
    var = ops.mean(ops.square(centred), axis=-1, keepdims=True)
    normed = ops.reshape(centred * ops.rsqrt(var + LN_EPSILON), (-1, width))
    return normed * gamma + beta


def _split4(x):
    return ops.split(x, 4, axis=-1)


def scan_sequence(step, xp, states: tuple, keep=None):
    """Run `step` over time-major `xp` (N, B, P) with keras.ops.scan.

    Returns (hs (N, B, u), final states). `keep` is the recurrent-dropout multiplier per
    step (N, B, u) or None. The per-step output is the whole state (h first), because
    Keras' TensorFlow scan wants outputs shaped like the carry.
    """
    xs = (xp,) if keep is None else (xp, keep)

    def body(carry, x):
        keep_t = x[1] if keep is not None else None
        _, new_states = step(x[0], carry, keep_t)
        return new_states, new_states

    final, all_states = ops.scan(body, tuple(states), xs)
    return all_states[0], final


class SequenceCellMixin:
    """The protocol shared by all cells (see module docstring)."""

    units: int

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.units, self.units)

    @property
    def input_width(self) -> int:
        """Width P of one step's precomputed input projection."""
        return 4 * self.units

    def zero_state(self, batch_size: int) -> tuple:
        return tuple(ops.zeros((batch_size, n)) for n in self.state_sizes)

    def sequence(self, xp, states: Sequence, keep=None):
        """xp (N, B, P) -> (hs (N, B, u), final states)."""
        return scan_sequence(self.step, xp, tuple(states), keep)


def _gate_scale(units: int):
    """(m, k) per gate column: tanh(x) = 2*sigmoid(2x) - 1 lets one sigmoid serve all gates.

    Pre-activations are kept "scaled" (g columns times m = 2), so that
    act = sigmoid(pre) * m - k gives (i, f, tanh(g), o) in two element-wise ops.
    """
    ones, zeros = np.ones(units, np.float32), np.zeros(units, np.float32)
    m = np.concatenate([ones, ones, 2 * ones, ones])
    k = np.concatenate([zeros, zeros, ones, zeros])
    return ops.convert_to_tensor(m), ops.convert_to_tensor(k)


def _scan(fn, carry: tuple, xs: tuple, y_shapes: Sequence, reverse: bool = False):
    """carry, ys = loop of fn(carry, x_t) -> (carry, y_t) over the leading axis of xs.

    Like jax.lax.scan (used on JAX); on TensorFlow a tf.while_loop over TensorArrays,
    whose per-step outputs need not look like the carry (Keras' TF scan insists they do).
    `y_shapes` are the per-step output shapes (TensorArray element shapes).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        return jax.lax.scan(fn, carry, xs, reverse=reverse)
    n = xs[0].shape[0]
    if backend == "tensorflow":
        import tensorflow as tf
        xs_ta = [tf.TensorArray(x.dtype, size=n, element_shape=x.shape[1:]).unstack(x)
                 for x in xs]
        ys_ta = [tf.TensorArray("float32", size=n, element_shape=shape) for shape in y_shapes]

        def body(i, carry, ys_ta):
            t = n - 1 - i if reverse else i
            carry, ys = fn(carry, tuple(ta.read(t) for ta in xs_ta))
            return i + 1, carry, [ta.write(t, y) for ta, y in zip(ys_ta, ys)]

        _, carry, ys_ta = tf.while_loop(lambda i, *_: i < n, body, (0, carry, ys_ta),
                                        maximum_iterations=n,
                                        parallel_iterations=PARALLEL_ITERATIONS)
        return carry, tuple(ta.stack() for ta in ys_ta)
    order = range(n - 1, -1, -1) if reverse else range(n)
    ys = [None] * n
    for t in order:
        carry, ys[t] = fn(carry, tuple(x[t] for x in xs))
    return carry, tuple(ops.stack(y) for y in zip(*ys))


def _lstm_cell_forward(xp_t, h, c, w, keep_t, m, k):
    """One step of one lane: (h_t, c_t, sig_t) with sig the gates' sigmoid (B, 4u)."""
    sig = ops.sigmoid(xp_t + ops.matmul(h, w))  # (B, 4u)
    i, f, g, o = ops.split(sig * m - k, 4, axis=-1)  # g = tanh of the unscaled g
    if keep_t is not None:
        g = g * keep_t
    c_new = f * c + i * g
    return o * ops.tanh(c_new), c_new, sig


def _lstm_cell_backward(dh, dc, sig, c_prev, keep_t, w_t, m, k):
    """Reverse of one step of one lane: (dh_{t-1}, dc_{t-1}, d_pre_t)."""
    i, f, g, o = ops.split(sig * m - k, 4, axis=-1)
    g_kept = g if keep_t is None else g * keep_t
    tc = ops.tanh(f * c_prev + i * g_kept)  # tanh(c_t), recomputed rather than stored
    dc = dc + dh * o * (1.0 - tc * tc)
    d_g = dc * i if keep_t is None else dc * i * keep_t
    d_act = ops.concatenate([dc * g_kept, dc * c_prev, d_g, dh * tc], axis=-1)
    d_pre = d_act * m * sig * (1.0 - sig)  # (B, 4u), w.r.t. the scaled pre-activation
    return ops.matmul(d_pre, w_t), dc * f, d_pre


def _lanes_forward(n_lanes: int, has_keep: bool):
    """Forward loop over L independent LSTMs ("lanes") sharing one time loop."""
    L = n_lanes

    def forward(*args):
        xps, h0s, c0s, ws = (args[j * L:(j + 1) * L] for j in range(4))
        keeps = args[4 * L:] if has_keep else (None,) * L
        scales = [_gate_scale(h.shape[-1]) for h in h0s]

        def step(carry, x):
            hs, cs, sigs = [], [], []
            for lane in range(L):
                keep_t = x[L + lane] if has_keep else None
                h, c, sig = _lstm_cell_forward(x[lane], carry[lane], carry[L + lane],
                                               ws[lane], keep_t, *scales[lane])
                hs.append(h)
                cs.append(c)
                sigs.append(sig)
            # per step: h_t, the incoming c_{t-1} (for the backward), the gates
            return tuple(hs + cs), tuple(hs) + tuple(carry[L:]) + tuple(sigs)

        xs = tuple(xps) + (tuple(keeps) if has_keep else ())
        y_shapes = [h.shape for h in h0s] * 2 + [xp.shape[1:] for xp in xps]
        final, ys = _scan(step, tuple(h0s) + tuple(c0s), xs, y_shapes)
        hs, c_prev, sigs = ys[:L], ys[L:2 * L], ys[2 * L:]
        return tuple(hs) + tuple(final), (hs, c_prev, sigs, tuple(h0s), tuple(ws), keeps)

    return forward


def _lanes_backward_loop(residuals, d_hs, d_hn, d_cn):
    """The reverse loop over all lanes: (d_pre per lane (N, B, 4u), dh0s, dc0s)."""
    hs, c_prev, sigs, h0s, ws, keeps = residuals
    L = len(hs)
    has_keep = keeps[0] is not None
    scales = [_gate_scale(h.shape[-1]) for h in h0s]
    w_ts = [ops.transpose(w) for w in ws]  # (4u, u)

    def step(carry, x):
        dhs, dcs, d_pres = [], [], []
        for lane in range(L):
            keep_t = x[3 * L + lane] if has_keep else None
            dh = carry[lane] + x[lane]
            dh, dc, d_pre = _lstm_cell_backward(dh, carry[L + lane], x[L + lane],
                                                x[2 * L + lane], keep_t, w_ts[lane],
                                                *scales[lane])
            dhs.append(dh)
            dcs.append(dc)
            d_pres.append(d_pre)
        return tuple(dhs + dcs), tuple(d_pres)

    xs = tuple(d_hs) + tuple(sigs) + tuple(c_prev) + (tuple(keeps) if has_keep else ())
    final, d_pres = _scan(step, tuple(d_hn) + tuple(d_cn), xs, [s.shape[1:] for s in sigs],
                          reverse=True)
    return tuple(d_pres), final[:L], final[L:]


def _matmul_rows(x, w):
    """x (..., d) @ w (d, k) as one 2-D matmul (its weight gradient is then one matmul too)."""
    lead = ops.shape(x)[:-1]
    y = ops.matmul(ops.reshape(x, (-1, x.shape[-1])), w)
    return ops.reshape(y, (*lead, w.shape[-1]))


def _matmul_tn(a, b):
    """a^T @ b without materialising a^T where the backend allows (the dW of all steps)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return tf.linalg.matmul(a, b, transpose_a=True)
    return ops.einsum("ru,rk->uk", a, b)


def _lanes_backward(loop, has_keep: bool):
    def backward(residuals, *douts):
        hs, c_prev, sigs, h0s, ws, keeps = residuals
        L = len(hs)
        fill = lambda d, like: ops.zeros_like(like) if d is None else d  # noqa: E731
        d_hs = [fill(d, h) for d, h in zip(douts[:L], hs)]
        d_hn = [fill(d, h) for d, h in zip(douts[L:2 * L], h0s)]
        d_cn = [fill(d, h) for d, h in zip(douts[2 * L:], h0s)]
        d_pres, dh0s, dc0s = loop(residuals, d_hs, d_hn, d_cn)
        d_ws = []
        for h, h0, d_pre in zip(hs, h0s, d_pres):
            u = h0.shape[-1]
            h_prev = ops.concatenate([h0[None], h[:-1]], axis=0)  # (N, B, u)
            d_ws.append(_matmul_tn(ops.reshape(h_prev, (-1, u)),
                                   ops.reshape(d_pre, (-1, 4 * u))))  # one matmul, all steps
        d_keeps = tuple(ops.zeros_like(kp) for kp in keeps) if has_keep else ()
        return tuple(d_pres) + tuple(dh0s) + tuple(dc0s) + tuple(d_ws) + d_keeps
    return backward


def _custom_vjp(forward, backward):
    """f(*args) with a hand-written backward, on TF or JAX (Keras' custom_gradient differs
    between the two in how tuple outputs receive their upstream gradients)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def f(*args):
            # stop_gradient: no tape may record the (XLA) forward itself
            outs, res = forward(*[tf.stop_gradient(a) for a in args])
            return outs, lambda *douts: backward(res, *douts)
        return f
    if backend == "jax":
        import jax

        f = jax.custom_vjp(lambda *args: forward(*args)[0])
        f.defvjp(forward, lambda res, douts: backward(res, *douts))
        return f
    return lambda *args: forward(*args)[0]  # other backends: autodiff through the loop


# On TensorFlow the two loops run as XLA clusters: XLA fuses each step's ~20 element-wise
# ops into a few kernels (TF runs them one by one), while the big dW matmuls stay outside
# on oneDNN, which is several times faster than XLA:CPU at that shape.
XLA_LOOPS = True
PARALLEL_ITERATIONS = 1
_LANES_FNS: dict = {}


def _lanes_fn(n_lanes: int, has_keep: bool):
    """The custom-gradient loop for n_lanes LSTMs (built once per variant and setting)."""
    key = (n_lanes, has_keep, XLA_LOOPS, keras.backend.backend())
    if key not in _LANES_FNS:
        forward, loop = _lanes_forward(n_lanes, has_keep), _lanes_backward_loop
        if XLA_LOOPS and keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            forward = tf.function(forward, jit_compile=True, autograph=False)
            loop = tf.function(loop, jit_compile=True, autograph=False)
        _LANES_FNS[key] = _custom_vjp(forward, _lanes_backward(loop, has_keep))
    return _LANES_FNS[key]


def lstm_lanes(xps, h0s, c0s, ws, keeps=None):
    """L independent LSTMs in one time loop, with a hand-written backward.

    Per lane: xp (N, B, 4u) scaled input pre-activations (bias in), h0, c0 (B, u),
    w (u, 4u) scaled recurrent kernel, keep (N, B, u) recurrent-dropout multiplier.
    Returns (hs per lane (N, B, u), h_N per lane, c_N per lane).
    """
    L = len(xps)
    args = list(xps) + list(h0s) + list(c0s) + list(ws) + (list(keeps) if keeps else [])
    outs = _lanes_fn(L, bool(keeps))(*args)
    return tuple(outs[:L]), tuple(outs[L:2 * L]), tuple(outs[2 * L:])


def lstm_sequence(xp, h0, c0, w, keep=None):
    """One LSTM lane: (hs (N, B, u), h_N, c_N); see `lstm_lanes`."""
    hs, hn, cn = lstm_lanes([xp], [h0], [c0], [w], None if keep is None else [keep])
    return hs[0], hn[0], cn[0]


class LSTM(SequenceCellMixin, keras.layers.LSTM):
    """Magenta's LSTM cell; weights are a keras.layers.LSTM's (kernel, recurrent_kernel, bias).

    params = (D + u) * 4u + 4u, as Magenta's W_xh, W_hh, bias. Its projections are
    "scaled" (see `_gate_scale`), an internal convention of input_projection/step/sequence.
    """

    def __init__(self, units: int, seed: keras.random.SeedGenerator | None = None, **kwargs):
        super().__init__(
            units,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
            recurrent_initializer=GatewiseOrthogonal(4, seed=seed),
            unit_forget_bias=True,
            return_sequences=True,
            return_state=True,
            **kwargs,
        )

    def scaled_weights(self):
        """(kernel, recurrent_kernel, bias) with the g columns doubled."""
        m, _ = _gate_scale(self.units)
        cell = self.cell
        return cell.kernel * m, cell.recurrent_kernel * m, cell.bias * m

    def input_projection(self, x_seq, z=None):
        """x_seq (N, B, d) [, z (B, D-d)] -> (N, B, 4u) scaled; bias folded in."""
        kernel, _, bias = self.scaled_weights()
        d = x_seq.shape[-1]
        xp = _matmul_rows(x_seq, kernel[:d])  # (N, B, 4u)
        if z is not None:
            bias = ops.matmul(z, kernel[d:]) + bias  # (B, 4u): once per sketch
        return xp + bias

    def step(self, xp_t, states, keep_t=None):
        h, c = states
        _, w, _ = self.scaled_weights()
        m, k = _gate_scale(self.units)
        act = ops.sigmoid(xp_t + ops.matmul(h, w)) * m - k  # (B, 4u): i, f, tanh(g), o
        i, f, g, o = _split4(act)
        if keep_t is not None:
            g = g * keep_t
        c = f * c + i * g
        h = o * ops.tanh(c)
        return h, (h, c)

    def sequence(self, xp, states, keep=None):
        _, w, _ = self.scaled_weights()
        hs, h, c = lstm_sequence(xp, states[0], states[1], w, keep)
        return hs, (h, c)


def bidirectional_lstm(fw: LSTM, bw: LSTM, x_fw, x_bw, keep_fw=None, keep_bw=None):
    """Both encoder directions in one time loop (two lanes): -> (hs_fw, hs_bw) (N, B, u)."""
    zeros = ops.zeros((ops.shape(x_fw)[1], fw.units))  # (B, u)
    keeps = None if keep_fw is None else [keep_fw, keep_bw]
    hs, _, _ = lstm_lanes([fw.input_projection(x_fw), bw.input_projection(x_bw)],
                          [zeros, zeros], [zeros, zeros],
                          [fw.scaled_weights()[1], bw.scaled_weights()[1]], keeps)
    return hs


class LayerNormLSTM(SequenceCellMixin, keras.layers.Layer):
    """Magenta's LayerNormLSTMCell: LN per gate on W_xh x + W_hh h (no bias), LN on c.

    params = (D + u) * 4u + 8u (gate LN gamma, beta) + 2u (c LN gamma, beta).
    """

    def __init__(self, units: int, seed: keras.random.SeedGenerator | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self._seed = seed

    def build(self, input_shape) -> None:
        d, u = input_shape[-1], self.units
        self.kernel = self.add_weight((d, 4 * u), keras.initializers.GlorotUniform(self._seed),
                                      name="kernel")
        self.recurrent_kernel = self.add_weight((u, 4 * u), GatewiseOrthogonal(4, self._seed),
                                                name="recurrent_kernel")
        self.ln_gamma = self.add_weight((4 * u,), "ones", name="ln_gamma")
        self.ln_beta = self.add_weight((4 * u,), "zeros", name="ln_beta")
        self.ln_c_gamma = self.add_weight((u,), "ones", name="ln_c_gamma")
        self.ln_c_beta = self.add_weight((u,), "zeros", name="ln_c_beta")

    def input_projection(self, x_seq, z=None):
        d = x_seq.shape[-1]
        xp = ops.matmul(x_seq, self.kernel[:d])  # (N, B, 4u)
        if z is not None:
            xp = xp + ops.matmul(z, self.kernel[d:])  # (B, 4u) broadcast over N
        return xp

    def step(self, xp_t, states, keep_t=None):
        h, c = states
        pre = xp_t + ops.matmul(h, self.recurrent_kernel)  # (B, 4u)
        pre = layer_norm(pre, self.ln_gamma, self.ln_beta, groups=4)
        i, f, g, o = _split4(pre)
        g = ops.tanh(g)
        if keep_t is not None:
            g = g * keep_t
        c = ops.sigmoid(f + FORGET_BIAS) * c + ops.sigmoid(i) * g
        h = ops.sigmoid(o) * ops.tanh(layer_norm(c, self.ln_c_gamma, self.ln_c_beta))
        return h, (h, c)

    def call(self, x):
        """x (B, T, D) -> hs (B, T, u), zero initial state, no dropout (standalone use)."""
        xp = self.input_projection(ops.transpose(x, (1, 0, 2)))
        hs, _ = self.sequence(xp, self.zero_state(ops.shape(x)[0]))
        return ops.transpose(hs, (1, 0, 2))


class HyperLSTM(SequenceCellMixin, keras.layers.Layer):
    """Magenta's HyperLSTMCell (use_layer_norm=True, no recurrent dropout in the hyper cell).

    The hyper cell, a LayerNormLSTM of H units, reads [x, h]; its output, through an
    embedding of size E, gives per-row scales alpha for W_xh x and W_hh h and a shift beta
    for W_hh h, per gate. States: (h, c, hyper_h, hyper_c).

    params = (D + u) * 4u + 4u                      main W_xh, W_hh, bias
           + (D + u + H) * 4H + 10H                 hyper cell
           + 4 * (H*E + E + E*u)                    x gates: zw (with bias), alpha
           + 4 * (H*E + E + E*u + H*E + E*u)        h gates: zw, alpha, zb (no bias), beta
           + 8u + 2u                                gate LN, c LN
    """

    def __init__(self, units: int, hyper_units: int = 256, embedding_size: int = 32,
                 seed: keras.random.SeedGenerator | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hyper_units = hyper_units
        self.embedding_size = embedding_size
        self._seed = seed

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.units, self.units, self.hyper_units, self.hyper_units)

    @property
    def input_width(self) -> int:
        return 4 * self.units + 4 * self.hyper_units

    def build(self, input_shape) -> None:
        d, u, H, E = input_shape[-1], self.units, self.hyper_units, self.embedding_size
        glorot = keras.initializers.GlorotUniform(self._seed)
        w = self.add_weight
        self.kernel = w((d, 4 * u), glorot, name="kernel")
        self.recurrent_kernel = w((u, 4 * u), GatewiseOrthogonal(4, self._seed),
                                  name="recurrent_kernel")
        self.bias = w((4 * u,), "zeros", name="bias")
        # hyper cell: a LayerNormLSTM reading [x, h]
        self.hyper_kernel = w((d + u, 4 * H), glorot, name="hyper_kernel")
        self.hyper_recurrent_kernel = w((H, 4 * H), GatewiseOrthogonal(4, self._seed),
                                        name="hyper_recurrent_kernel")
        self.hyper_ln_gamma = w((4 * H,), "ones", name="hyper_ln_gamma")
        self.hyper_ln_beta = w((4 * H,), "zeros", name="hyper_ln_beta")
        self.hyper_ln_c_gamma = w((H,), "ones", name="hyper_ln_c_gamma")
        self.hyper_ln_c_beta = w((H,), "zeros", name="hyper_ln_c_beta")
        # embeddings from the hyper output, 4 gates each: zw for x-part, zw and zb for h-part
        init_gamma = 0.10  # recurrent batch-norm init (Cooijmans et al.), as Magenta
        self.zw_x_kernel = w((H, 4 * E), "zeros", name="zw_x_kernel")
        self.zw_x_bias = w((4 * E,), "ones", name="zw_x_bias")
        self.zw_h_kernel = w((H, 4 * E), "zeros", name="zw_h_kernel")
        self.zw_h_bias = w((4 * E,), "ones", name="zw_h_bias")
        self.zb_h_kernel = w((H, 4 * E), keras.initializers.RandomNormal(0.0, 0.01, self._seed),
                             name="zb_h_kernel")
        alpha_init = keras.initializers.Constant(init_gamma / E)
        self.alpha_x = w((4, E, u), alpha_init, name="alpha_x")
        self.alpha_h = w((4, E, u), alpha_init, name="alpha_h")
        self.beta_h = w((4, E, u), "zeros", name="beta_h")
        self.ln_gamma = w((4 * u,), "ones", name="ln_gamma")
        self.ln_beta = w((4 * u,), "zeros", name="ln_beta")
        self.ln_c_gamma = w((u,), "ones", name="ln_c_gamma")
        self.ln_c_beta = w((u,), "zeros", name="ln_c_beta")

    def input_projection(self, x_seq, z=None):
        """-> (N, B, 4u + 4H): W_xh x (scaled per step later) and the hyper cell's x part."""
        d = x_seq.shape[-1]
        w_main, w_hyper = self.kernel, self.hyper_kernel
        xp = ops.concatenate([ops.matmul(x_seq, w_main[:d]),
                              ops.matmul(x_seq, w_hyper[:d])], axis=-1)  # (N, B, 4u+4H)
        if z is not None:
            d_all = w_main.shape[0]
            zp = ops.concatenate([ops.matmul(z, w_main[d:]),
                                  ops.matmul(z, w_hyper[d:d_all])], axis=-1)  # (B, 4u+4H)
            xp = xp + zp
        return xp

    def _embed(self, hyper_out, zw_kernel, zw_bias, proj):
        """hyper_out (B, H) -> per-gate (B, 4u) via embedding (B, 4, E) and proj (4, E, u)."""
        E = self.embedding_size
        emb = ops.matmul(hyper_out, zw_kernel)  # (B, 4E)
        if zw_bias is not None:
            emb = emb + zw_bias
        emb = ops.reshape(emb, (-1, 4, E))  # (B, 4, E)
        out = ops.einsum("bge,geu->bgu", emb, proj)  # (B, 4, u)
        return ops.reshape(out, (-1, 4 * self.units))

    def step(self, xp_t, states, keep_t=None):
        h, c, hh, hc = states
        u = self.units
        d_all = self.kernel.shape[0]
        xh_main, xp_hyper = xp_t[:, :4 * u], xp_t[:, 4 * u:]
        # hyper cell on [x, h]
        hpre = (xp_hyper + ops.matmul(h, self.hyper_kernel[d_all:])
                + ops.matmul(hh, self.hyper_recurrent_kernel))  # (B, 4H)
        hpre = layer_norm(hpre, self.hyper_ln_gamma, self.hyper_ln_beta, groups=4)
        hi, hf, hg, ho = _split4(hpre)
        hc = ops.sigmoid(hf + FORGET_BIAS) * hc + ops.sigmoid(hi) * ops.tanh(hg)
        hh = ops.sigmoid(ho) * ops.tanh(layer_norm(hc, self.hyper_ln_c_gamma,
                                                   self.hyper_ln_c_beta))
        # weight scaling from the hyper output
        alpha_x = self._embed(hh, self.zw_x_kernel, self.zw_x_bias, self.alpha_x)
        alpha_h = self._embed(hh, self.zw_h_kernel, self.zw_h_bias, self.alpha_h)
        beta_h = self._embed(hh, self.zb_h_kernel, None, self.beta_h)
        hh_main = ops.matmul(h, self.recurrent_kernel)  # (B, 4u)
        pre = alpha_x * xh_main + alpha_h * hh_main + beta_h + self.bias
        pre = layer_norm(pre, self.ln_gamma, self.ln_beta, groups=4)
        i, f, g, o = _split4(pre)
        g = ops.tanh(g)
        if keep_t is not None:
            g = g * keep_t
        c = ops.sigmoid(f + FORGET_BIAS) * c + ops.sigmoid(i) * g
        h = ops.sigmoid(o) * ops.tanh(layer_norm(c, self.ln_c_gamma, self.ln_c_beta))
        return h, (h, c, hh, hc)

    def call(self, x):
        """x (B, T, D) -> hs (B, T, u), zero initial state, no dropout (standalone use)."""
        xp = self.input_projection(ops.transpose(x, (1, 0, 2)))
        hs, _ = self.sequence(xp, self.zero_state(ops.shape(x)[0]))
        return ops.transpose(hs, (1, 0, 2))


def make_cell(kind: str, units: int, hps, seed=None, name: str | None = None):
    """The cell named by hparam enc_model / dec_model."""
    if kind == "lstm":
        return LSTM(units, seed=seed, name=name)
    if kind == "layer_norm":
        return LayerNormLSTM(units, seed=seed, name=name)
    if kind == "hyper":
        return HyperLSTM(units, hps.hyper_num_units, hps.hyper_embedding_size, seed=seed,
                         name=name)
    raise ValueError(f"unknown cell type {kind!r}")

