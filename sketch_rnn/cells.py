"""Recurrent cells of Sketch-RNN, parameterised as the original (Magenta) implementation.

Three cells, all in keras.ops so that they run on TensorFlow and JAX:

- `LSTM`: a `keras.layers.LSTM` (cuDNN serves it on a TensorFlow GPU when no recurrent
  dropout is used) plus our own fast loop with recurrent dropout on the candidate g only
  (Semeniuta et al. 2016, "without memory loss"), as Magenta does.
- `LayerNormLSTM`: layer norm on each gate's pre-activation and on c (Magenta: no bias).
- `HyperLSTM`: a small layer-norm LSTM (the hyper cell) whose output scales the main
  LSTM's weight rows through a small embedding (Ha et al. 2016, as in Magenta).

The protocol the model uses (all time-major):

- `run(x_seq, z, states, mask, keep_prob)`: the whole loop. z (B, .) is part of every
  step's input [S_{i-1}, z]; its projection is computed once per sketch, not per step.
  mask (N, B, u) bool is the recurrent-dropout keep mask, drawn for all steps at once.
- `input_projection(x_seq, z)` + `step(xp_t, states)`: one step at a time (sampling).
- `sequence(xp, states, keep)`: the generic loop over precomputed projections
  (keras.ops.scan); LayerNormLSTM and HyperLSTM train with it, autodiff for the backward.

The LSTM trains with `lstm_lanes`: forward and backward written by hand, several LSTMs
("lanes": the encoder's two directions) in one time loop, per step only the recurrent
matmul and a few fused element-wise ops; every weight gradient is summed in the loop or
taken for all N * B rows in one matmul afterwards. On TensorFlow both loops are XLA
clusters, the rest of the step is not (measured fastest, see XLA_LOOPS).

Gates are ordered (i, f, g, o) as in `keras.layers.LSTM`. The LSTM stores its forget
bias of 1.0 in the bias variable (Keras' `unit_forget_bias`, identical in value to
Magenta's constant added at run time, and what cuDNN expects); the other two cells add
the 1.0 at run time as Magenta does, since they have no plain bias on every gate.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

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


def _normalised_update(cell, pre, c, keep_t):
    """The layer-norm LSTM's (and HyperLSTM's) update from gate pre-activations (B, 4u):
    layer norm per gate, recurrent dropout on g, layer norm on c before its tanh."""
    pre = layer_norm(pre, cell.ln_gamma, cell.ln_beta, groups=4)
    i, f, g, o = _split4(pre)
    g = ops.tanh(g)
    if keep_t is not None:
        g = g * keep_t
    c = ops.sigmoid(f + FORGET_BIAS) * c + ops.sigmoid(i) * g
    h = ops.sigmoid(o) * ops.tanh(layer_norm(c, cell.ln_c_gamma, cell.ln_c_beta))
    return h, c


def scan_sequence(step, xp, states: tuple, keep=None):
    """Run `step` over time-major `xp` (N, B, P); autodiff gives the backward.

    Returns (hs (N, B, u), final states). `keep` is the recurrent-dropout multiplier per
    step (N, B, u) or None.
    """
    xs = (xp,) if keep is None else (xp, keep)

    def body(carry, x):
        h, new_states = step(x[0], carry, x[1] if keep is not None else None)
        return new_states, (h,)

    final, (hs,) = _scan(body, tuple(states), xs, [states[0].shape])
    return hs, final


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
        """xp (N, B, P) -> (hs (N, B, u), final states); keep: dropout multiplier (N, B, u)."""
        return scan_sequence(self.step, xp, tuple(states), keep)

    def run(self, x_seq, z, states: Sequence, mask=None, keep_prob: float = 1.0,
            x_grad: bool = False):
        """x_seq (N, B, d) [+ z (B, D-d) for every step] -> (hs (N, B, u), final states).

        mask (N, B, u) bool: recurrent dropout keeps g where True (scaled by 1/keep_prob).
        """
        keep = None if mask is None else ops.cast(mask, "float32") / keep_prob
        return self.sequence(self.input_projection(x_seq, z), states, keep)


def _gate_scale(units: int):
    """(m, k) per gate column: tanh(x) = 2*sigmoid(2x) - 1 lets one sigmoid serve all gates.

    The LSTM's pre-activations are kept "scaled" (g columns times m = 2), so that
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
                                        maximum_iterations=n, parallel_iterations=1)
        return carry, tuple(ta.stack() for ta in ys_ta)
    order = range(n - 1, -1, -1) if reverse else range(n)
    ys = [None] * n
    for t in order:
        carry, ys[t] = fn(carry, tuple(x[t] for x in xs))
    return carry, tuple(ops.stack(y) for y in zip(*ys))


def _matmul_rows(x, w):
    """x (..., d) @ w (d, k) as one 2-D matmul (its weight gradient is then one matmul too)."""
    lead = ops.shape(x)[:-1]
    y = ops.matmul(ops.reshape(x, (-1, x.shape[-1])), w)
    return ops.reshape(y, (*lead, w.shape[-1]))


def _matmul_tn(a, b):
    """a^T @ b for a (R, p), b (R, q): the weight gradient of all N * B rows at once."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return tf.linalg.matmul(a, b, transpose_a=True)  # no materialised transpose
    return ops.einsum("rp,rq->pq", a, b)


class LanesSpec(NamedTuple):
    """Static shape of an `lstm_lanes` call (each variant is traced/compiled once)."""

    n_lanes: int
    keep_prob: float | None  # recurrent-dropout keep probability; None: no dropout
    recompute: tuple  # per lane: recompute the gates in the backward (memory) or store them
    x_grad: bool  # whether the inputs x need a gradient (input dropout on [S, z])


def _keep(mask_t, keep_prob):
    return ops.cast(mask_t, "float32") * (1.0 / keep_prob)


def _lane_forward_step(pre_in, h, c, w, keep_t, m, k):
    """One step of one lane: (h_t, c_t, sig_t), sig the gates' sigmoid (B, 4u)."""
    sig = ops.sigmoid(pre_in + ops.matmul(h, w))  # (B, 4u)
    i, f, g, o = ops.split(sig * m - k, 4, axis=-1)  # g: tanh of the unscaled g
    if keep_t is not None:
        g = g * keep_t
    c_new = f * c + i * g
    return o * ops.tanh(c_new), c_new, sig


def _lane_backward_step(dh, dc, sig, c_prev, keep_t, w_t, m, k):
    """Reverse of one step of one lane: (dh_{t-1}, dc_{t-1}, d_pre_t)."""
    i, f, g, o = ops.split(sig * m - k, 4, axis=-1)
    g_kept = g if keep_t is None else g * keep_t
    tc = ops.tanh(f * c_prev + i * g_kept)  # tanh(c_t), recomputed rather than stored
    dc = dc + dh * o * (1.0 - tc * tc)
    d_g = dc * i if keep_t is None else dc * i * keep_t
    d_act = ops.concatenate([dc * g_kept, dc * c_prev, d_g, dh * tc], axis=-1)
    d_pre = d_act * m * sig * (1.0 - sig)  # (B, 4u), w.r.t. the scaled pre-activation
    return ops.matmul(d_pre, w_t), dc * f, d_pre


def _unpack(spec: LanesSpec, args):
    L = spec.n_lanes
    groups = [tuple(args[j * L:(j + 1) * L]) for j in range(6)]
    masks = tuple(args[6 * L:]) if spec.keep_prob is not None else (None,) * L
    return (*groups, masks)


def _lanes_forward(spec: LanesSpec):
    """The forward loop: every lane's step inside one time loop."""
    L = spec.n_lanes

    def forward(*args):
        xs, w_xs, bs, h0s, c0s, ws, masks = _unpack(spec, args)
        scales = [_gate_scale(h.shape[-1]) for h in h0s]
        stored = [lane for lane in range(L) if not spec.recompute[lane]]

        def step(carry, x_t):
            hs, cs, sigs = [], [], []
            for lane in range(L):
                keep_t = None if spec.keep_prob is None else _keep(x_t[L + lane],
                                                                   spec.keep_prob)
                pre_in = ops.matmul(x_t[lane], w_xs[lane]) + bs[lane]  # (B, 4u)
                h, c, sig = _lane_forward_step(pre_in, carry[lane], carry[L + lane],
                                               ws[lane], keep_t, *scales[lane])
                hs.append(h)
                cs.append(c)
                sigs.append(sig)
            # per step: h_t, the incoming c_{t-1} (for the backward), the stored gates
            return tuple(hs + cs), (tuple(hs) + tuple(carry[L:])
                                    + tuple(sigs[lane] for lane in stored))

        loop_xs = tuple(xs) + (tuple(masks) if spec.keep_prob is not None else ())
        y_shapes = ([h.shape for h in h0s] * 2
                    + [(*h0s[lane].shape[:-1], 4 * h0s[lane].shape[-1]) for lane in stored])
        final, ys = _scan(step, tuple(h0s) + tuple(c0s), loop_xs, y_shapes)
        hs, c_prev = ys[:L], ys[L:2 * L]
        sigs = [None] * L
        for j, lane in enumerate(stored):
            sigs[lane] = ys[2 * L + j]
        # the inputs are not returned: an XLA cluster would copy them (masks: 13 MB a lane)
        return tuple(hs) + tuple(final), (tuple(hs), tuple(c_prev), tuple(sigs))

    return forward


def _lanes_backward_loop(spec: LanesSpec):
    """The reverse loop over all lanes: (d_pre per lane (N, B, 4u), dh0s, dc0s, d_bs, d_wxs).

    The bias and input-kernel gradients are summed inside the loop (fused, nearly free)
    rather than by two more passes over d_pre afterwards. A lane without stored gates
    rebuilds them step by step from h_{t-1} (one more recurrent-sized matmul a step).
    """
    L = spec.n_lanes

    def loop(sigs, c_prev, h_prevs, masks, xs, w_xs, bs, ws, d_hs, d_hn, d_cn):
        scales = [_gate_scale(h.shape[-1]) for h in d_hn]
        w_ts = [ops.transpose(w) for w in ws]  # (4u, u)
        gates_in = [h_prevs[lane] if sigs[lane] is None else sigs[lane] for lane in range(L)]

        def step(carry, x):
            dhs, dcs, d_bs, d_wxs, d_pres = [], [], [], [], []
            for lane in range(L):
                keep_t = None if spec.keep_prob is None else _keep(x[4 * L + lane],
                                                                   spec.keep_prob)
                x_t, sig = x[3 * L + lane], x[L + lane]
                if sigs[lane] is None:  # x[L + lane] is h_{t-1}: rebuild the gates
                    sig = ops.sigmoid(ops.matmul(x_t, w_xs[lane]) + bs[lane]
                                      + ops.matmul(sig, ws[lane]))
                dh, dc, d_pre = _lane_backward_step(carry[lane] + x[lane], carry[L + lane],
                                                    sig, x[2 * L + lane], keep_t,
                                                    w_ts[lane], *scales[lane])
                dhs.append(dh)
                dcs.append(dc)
                d_b = d_pre if len(bs[lane].shape) == 2 else ops.sum(d_pre, axis=0)
                d_bs.append(carry[2 * L + lane] + d_b)
                d_wxs.append(carry[3 * L + lane] + ops.matmul(ops.transpose(x_t), d_pre))
                d_pres.append(d_pre)
            return tuple(dhs + dcs + d_bs + d_wxs), tuple(d_pres)

        loop_xs = (tuple(d_hs) + tuple(gates_in) + tuple(c_prev) + tuple(xs)
                   + (tuple(masks) if spec.keep_prob is not None else ()))
        y_shapes = [(*h.shape[:-1], 4 * h.shape[-1]) for h in d_hn]
        init = (tuple(d_hn) + tuple(d_cn) + tuple(ops.zeros_like(b) for b in bs)
                + tuple(ops.zeros_like(w) for w in w_xs))
        final, d_pres = _scan(step, init, loop_xs, y_shapes, reverse=True)
        return (tuple(d_pres), final[:L], final[L:2 * L], final[2 * L:3 * L],
                final[3 * L:])

    return loop


def _lanes_backward(spec: LanesSpec, loop):
    """Backward by hand: the reverse loop, then each recurrent kernel's gradient for all
    N * B rows in one matmul."""
    L = spec.n_lanes

    def backward(residuals, *douts):
        args, (hs, c_prev, sigs) = residuals
        xs, w_xs, bs, h0s, c0s, ws, masks = _unpack(spec, args)
        fill = lambda d, like: ops.zeros_like(like) if d is None else d  # noqa: E731
        d_hs = [fill(d, h) for d, h in zip(douts[:L], hs)]
        d_hn = [fill(d, h) for d, h in zip(douts[L:2 * L], h0s)]
        d_cn = [fill(d, h) for d, h in zip(douts[2 * L:], h0s)]
        h_prevs = [ops.concatenate([h0[None], h[:-1]], axis=0) for h0, h in zip(h0s, hs)]
        d_pres, dh0s, dc0s, d_bs, d_wxs = loop(
            sigs, c_prev, tuple(h_prevs), masks if spec.keep_prob is not None else None,
            xs, w_xs, bs, ws, tuple(d_hs), tuple(d_hn), tuple(d_cn))
        d_xs, d_ws = [], []
        for lane in range(L):
            u = h0s[lane].shape[-1]
            d_pre = ops.reshape(d_pres[lane], (-1, 4 * u))  # (N * B, 4u)
            d_ws.append(_matmul_tn(ops.reshape(h_prevs[lane], (-1, u)), d_pre))
            d_xs.append(_matmul_rows(d_pres[lane], ops.transpose(w_xs[lane]))
                        if spec.x_grad else None)
        grads = d_xs + list(d_wxs) + list(d_bs) + list(dh0s) + list(dc0s) + d_ws
        return tuple(grads) + ((None,) * L if spec.keep_prob is not None else ())

    return backward


def _custom_vjp(forward, backward):
    """f(*args) with a hand-written backward, on TF or JAX (Keras' custom_gradient differs
    between the two in how tuple outputs receive their upstream gradients).

    forward(*args) -> (outputs, loop residuals); backward((args, loop residuals), *douts).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def f(*args):
            args = [tf.convert_to_tensor(a) for a in args]
            # stop_gradient: no tape may record the (XLA-compiled) forward itself
            outs, res = forward(*[tf.stop_gradient(a) if a.dtype.is_floating else a
                                  for a in args])
            return outs, lambda *douts: backward((tuple(args), res), *douts)
        return f
    if backend == "jax":
        import jax

        def fwd(*args):
            outs, res = forward(*args)
            return outs, (args, res)

        f = jax.custom_vjp(lambda *args: forward(*args)[0])
        f.defvjp(fwd, lambda res, douts: backward(res, *douts))
        return f
    return lambda *args: forward(*args)[0]  # other backends: autodiff through the loop


# On TensorFlow the two loops run as XLA clusters: XLA fuses each step's element-wise ops
# into a few kernels (TF would run ~30 ops one by one), while the big weight-gradient
# matmuls stay outside on oneDNN. Measured on 2 cores: whole-step XLA is 3x slower, no XLA
# about 2x slower.
XLA_LOOPS = True
# The encoder's gates are rebuilt for its backward (two big matmuls, ~5% of a paper step)
# instead of being kept through the decoder's backward (~200 MB at the paper preset).
ENCODER_RECOMPUTE = True
_LANES_FNS: dict = {}


def _lanes_fn(spec: LanesSpec):
    """The custom-gradient loop for one spec (built once per spec and setting)."""
    key = (spec, XLA_LOOPS, keras.backend.backend())
    if key not in _LANES_FNS:
        forward, loop = _lanes_forward(spec), _lanes_backward_loop(spec)
        if XLA_LOOPS and keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            forward = tf.function(forward, jit_compile=True, autograph=False)
            loop = tf.function(loop, jit_compile=True, autograph=False)
        _LANES_FNS[key] = _custom_vjp(forward, _lanes_backward(spec, loop))
    return _LANES_FNS[key]


def lstm_lanes(xs, w_xs, bs, h0s, c0s, ws, masks=None, keep_prob: float = 1.0,
               recompute=None, x_grad: bool = False):
    """L independent LSTMs ("lanes") in one time loop, with a hand-written backward.

    Per lane: inputs x (N, B, d), scaled input kernel w_x (d, 4u), scaled bias b (4u,) or
    (B, 4u) (the decoder's z part goes here, once per sketch), h0, c0 (B, u), scaled
    recurrent kernel w (u, 4u), and a boolean recurrent-dropout keep mask (N, B, u).
    `recompute[lane]`: rebuild that lane's gates for the backward from the stored h with
    one big matmul instead of storing them (4u floats a step), to save memory.
    Returns (hs per lane (N, B, u), h_N per lane, c_N per lane).
    """
    L = len(xs)
    spec = LanesSpec(L, None if masks is None else float(keep_prob),
                     tuple(recompute) if recompute is not None else (False,) * L, bool(x_grad))
    args = [*xs, *w_xs, *bs, *h0s, *c0s, *ws, *(masks or [])]
    outs = _lanes_fn(spec)(*args)
    return tuple(outs[:L]), tuple(outs[L:2 * L]), tuple(outs[2 * L:])


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

    def lane_args(self, x_seq, z=None):
        """(x, w_x, b, w) of this LSTM as a lane (scaled): the z part as a per-sketch bias."""
        kernel, w, bias = self.scaled_weights()
        d = x_seq.shape[-1]
        if z is not None and d < kernel.shape[0]:
            bias = ops.matmul(z, kernel[d:]) + bias  # (B, 4u): once per sketch
        return x_seq, kernel[:d], bias, w

    def input_projection(self, x_seq, z=None):
        """x_seq (N, B, d) [, z (B, D-d)] -> (N, B, 4u), bias folded in (plain, unscaled)."""
        kernel, bias = self.cell.kernel, self.cell.bias
        d = x_seq.shape[-1]
        if z is not None and d < kernel.shape[0]:
            bias = ops.matmul(z, kernel[d:]) + bias  # (B, 4u)
        return _matmul_rows(x_seq, kernel[:d]) + bias

    def step(self, xp_t, states, keep_t=None):
        """One step on the variables as they are (the sampler's per-step path)."""
        h, c = states
        i, f, g, o = _split4(xp_t + ops.matmul(h, self.cell.recurrent_kernel))  # (B, u) each
        g = ops.tanh(g)
        if keep_t is not None:
            g = g * keep_t
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * g
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, (h, c)

    def sequence(self, xp, states, keep=None):
        """Generic protocol entry (precomputed xp); `run` is the fast path."""
        return scan_sequence(self.step, xp, tuple(states), keep)

    def run(self, x_seq, z, states, mask=None, keep_prob: float = 1.0, x_grad: bool = False):
        if mask is None and use_cudnn():
            return self._run_keras(x_seq, z, states)
        x, w_x, b, w = self.lane_args(x_seq, z)
        hs, hn, cn = lstm_lanes([x], [w_x], [b], [states[0]], [states[1]], [w],
                                None if mask is None else [mask], keep_prob, x_grad=x_grad)
        return hs[0], (hn[0], cn[0])

    def _run_keras(self, x_seq, z, states):
        """keras.layers.LSTM's own call on the same weights: cuDNN on a GPU."""
        n, batch = x_seq.shape[0], ops.shape(x_seq)[1]
        if z is not None and x_seq.shape[-1] < self.cell.kernel.shape[0]:
            z_all = ops.broadcast_to(z[None], (n, batch, z.shape[-1]))
            x_seq = ops.concatenate([x_seq, z_all], axis=-1)  # (N, B, D)
        seq, h, c = keras.layers.LSTM.call(self, ops.transpose(x_seq, (1, 0, 2)),
                                           initial_state=[states[0], states[1]])
        return ops.transpose(seq, (1, 0, 2)), (h, c)


USE_CUDNN = "auto"  # "auto": on a TensorFlow GPU when no recurrent dropout; True; False


def use_cudnn() -> bool:
    """Whether the decoder LSTM without dropout runs as keras.layers.LSTM (cuDNN)."""
    if USE_CUDNN in (True, False):
        return USE_CUDNN
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf
    return bool(tf.config.list_logical_devices("GPU"))


def bidirectional_lstm(fw: LSTM, bw: LSTM, x_fw, x_bw, mask_fw=None, mask_bw=None,
                       keep_prob: float = 1.0):
    """Both encoder directions in one time loop (two lanes): -> (hs_fw, hs_bw) (N, B, u).

    Their gates are rebuilt in the backward loop rather than stored: they would otherwise
    sit in memory through the whole decoder backward.
    """
    zeros = ops.zeros((ops.shape(x_fw)[1], fw.units))  # (B, u)
    lanes = [fw.lane_args(x_fw), bw.lane_args(x_bw)]
    hs, _, _ = lstm_lanes(*[list(t) for t in zip(*lanes)][:3], [zeros, zeros],
                          [zeros, zeros], [lanes[0][3], lanes[1][3]],
                          None if mask_fw is None else [mask_fw, mask_bw], keep_prob,
                          recompute=(ENCODER_RECOMPUTE,) * 2)
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
        h, c = _normalised_update(self, pre, c, keep_t)
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
        h, c = _normalised_update(self, pre, c, keep_t)
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

