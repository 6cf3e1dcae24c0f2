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
clusters, the rest of the step is not (measured fastest, see `FastPath`); with
`FastPath.fused` off the same loop runs under plain autodiff (`backend.FastPath`).

Gates are ordered (i, f, g, o) as in `keras.layers.LSTM`. The LSTM stores its forget
bias of 1.0 in the bias variable (Keras' `unit_forget_bias`, identical in value to
Magenta's constant added at run time, and what cuDNN expects); the other two cells add
the 1.0 at run time as Magenta does, since they have no plain bias on every gate.

`precision` (hparam, "float32" | "bfloat16") is each cell's matmul precision
(`precision.matmul`): every weight matmul of a cell runs at it; the HyperLSTM's per-gate
einsum of its small embedding (E = 32) and all element-wise math stay float32.
"""
from __future__ import annotations

import keras
from keras import ops

from ..core.hparams import HParams
from .cell_parts import (FORGET_BIAS, GatewiseOrthogonal, SequenceCellMixin, StandaloneCallMixin,
                         layer_norm, normalised_update, split4)
from .backend import DEFAULT, FastPath, Tensor
from .lanes import gate_scale, lstm_lanes, matmul_rows
from .precision import matmul


class LSTM(SequenceCellMixin, keras.layers.LSTM):
    """Magenta's LSTM cell; weights are a keras.layers.LSTM's (kernel, recurrent_kernel, bias).

    params = (D + u) * 4u + 4u, as Magenta's W_xh, W_hh, bias. Its projections are
    "scaled" (see `lanes.gate_scale`), an internal convention of input_projection/step/sequence.
    """

    def __init__(self, units: int, seed: keras.random.SeedGenerator | None = None,
                 options: FastPath = DEFAULT, precision: str = "float32", **kwargs):
        self.options = options
        self.precision = precision
        super().__init__(
            units,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
            recurrent_initializer=GatewiseOrthogonal(4, seed=seed),
            unit_forget_bias=True,
            return_sequences=True,
            return_state=True,
            **kwargs,
        )

    def scaled_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """(kernel, recurrent_kernel, bias) with the g columns doubled."""
        m, _ = gate_scale(self.units)
        cell = self.cell
        return cell.kernel * m, cell.recurrent_kernel * m, cell.bias * m

    def lane_args(self, x_seq: Tensor, z: Tensor | None = None) -> tuple:
        """(x, w_x, b, w) of this LSTM as a lane (scaled): the z part as a per-sketch bias."""
        kernel, w, bias = self.scaled_weights()
        d = x_seq.shape[-1]
        if z is not None and d < kernel.shape[0]:
            bias = matmul(z, kernel[d:], self.precision) + bias  # (B, 4u): once per sketch
        return x_seq, kernel[:d], bias, w

    def input_projection(self, x_seq: Tensor, z: Tensor | None = None) -> Tensor:
        """x_seq (N, B, d) [, z (B, D-d)] -> (N, B, 4u), bias folded in (plain, unscaled)."""
        kernel, bias = self.cell.kernel, self.cell.bias
        d = x_seq.shape[-1]
        if z is not None and d < kernel.shape[0]:
            bias = matmul(z, kernel[d:], self.precision) + bias  # (B, 4u)
        return matmul_rows(x_seq, kernel[:d], self.precision) + bias

    def step(self, xp_t: Tensor, states: tuple, keep_t: Tensor | None = None
             ) -> tuple[Tensor, tuple]:
        """One step on the variables as they are (the sampler's per-step path)."""
        h, c = states
        i, f, g, o = split4(xp_t + matmul(h, self.cell.recurrent_kernel,
                                          self.precision))  # (B, u) each
        g = ops.tanh(g)
        if keep_t is not None:
            g = g * keep_t
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * g
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, (h, c)

    def run(self, x_seq: Tensor, z: Tensor | None, states: tuple, mask: Tensor | None = None,
            keep_prob: float = 1.0, x_grad: bool = False) -> tuple[Tensor, tuple]:
        """The fast path of `SequenceCellMixin.run`: one lane of the fused kernel."""
        if mask is None and self.precision == "float32" and self.options.cudnn():
            return self._run_keras(x_seq, z, states)
        x, w_x, b, w = self.lane_args(x_seq, z)
        hs, hn, cn = lstm_lanes([x], [w_x], [b], [states[0]], [states[1]], [w],
                                None if mask is None else [mask], keep_prob, x_grad=x_grad,
                                xla=self.options.xla_loops, precision=self.precision,
                                fused=self.options.fused)
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


def bidirectional_lstm(fw: LSTM, bw: LSTM, x_fw: Tensor, x_bw: Tensor,
                       mask_fw: Tensor | None = None, mask_bw: Tensor | None = None,
                       keep_prob: float = 1.0) -> tuple[Tensor, Tensor]:
    """Both encoder directions in one time loop (two lanes): -> (hs_fw, hs_bw) (N, B, u).

    Their gates are stored for the backward loop, or, with `FastPath.encoder_recompute`,
    rebuilt there (they would otherwise sit in memory through the whole decoder backward).
    """
    zeros = ops.zeros((ops.shape(x_fw)[1], fw.units))  # (B, u)
    lanes = [fw.lane_args(x_fw), bw.lane_args(x_bw)]
    hs, _, _ = lstm_lanes(*[list(t) for t in zip(*lanes)][:3], [zeros, zeros],
                          [zeros, zeros], [lanes[0][3], lanes[1][3]],
                          None if mask_fw is None else [mask_fw, mask_bw], keep_prob,
                          recompute=(fw.options.encoder_recompute,) * 2,
                          xla=fw.options.xla_loops, precision=fw.precision,
                          fused=fw.options.fused)
    return hs


class LayerNormLSTM(StandaloneCallMixin, SequenceCellMixin, keras.layers.Layer):
    """Magenta's LayerNormLSTMCell: LN per gate on W_xh x + W_hh h (no bias), LN on c.

    params = (D + u) * 4u + 8u (gate LN gamma, beta) + 2u (c LN gamma, beta).
    """

    def __init__(self, units: int, seed: keras.random.SeedGenerator | None = None,
                 precision: str = "float32", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self._seed = seed
        self.precision = precision

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

    def input_projection(self, x_seq: Tensor, z: Tensor | None = None) -> Tensor:
        d = x_seq.shape[-1]
        xp = matmul(x_seq, self.kernel[:d], self.precision)  # (N, B, 4u)
        if z is not None:
            xp = xp + matmul(z, self.kernel[d:], self.precision)  # (B, 4u) broadcast over N
        return xp

    def step(self, xp_t: Tensor, states: tuple, keep_t: Tensor | None = None
             ) -> tuple[Tensor, tuple]:
        h, c = states
        pre = xp_t + matmul(h, self.recurrent_kernel, self.precision)  # (B, 4u)
        h, c = normalised_update(self, pre, c, keep_t)
        return h, (h, c)


class HyperLSTM(StandaloneCallMixin, SequenceCellMixin, keras.layers.Layer):
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
                 seed: keras.random.SeedGenerator | None = None, precision: str = "float32",
                 **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.precision = precision
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

    def input_projection(self, x_seq: Tensor, z: Tensor | None = None) -> Tensor:
        """-> (N, B, 4u + 4H): W_xh x (scaled per step later) and the hyper cell's x part."""
        d = x_seq.shape[-1]
        w_main, w_hyper = self.kernel, self.hyper_kernel
        p = self.precision
        xp = ops.concatenate([matmul(x_seq, w_main[:d], p),
                              matmul(x_seq, w_hyper[:d], p)], axis=-1)  # (N, B, 4u+4H)
        if z is not None:
            d_all = w_main.shape[0]
            zp = ops.concatenate([matmul(z, w_main[d:], p),
                                  matmul(z, w_hyper[d:d_all], p)], axis=-1)  # (B, 4u+4H)
            xp = xp + zp
        return xp

    def _embed(self, hyper_out, zw_kernel, zw_bias, proj):
        """hyper_out (B, H) -> per-gate (B, 4u) via embedding (B, 4, E) and proj (4, E, u)."""
        E = self.embedding_size
        emb = matmul(hyper_out, zw_kernel, self.precision)  # (B, 4E)
        if zw_bias is not None:
            emb = emb + zw_bias
        emb = ops.reshape(emb, (-1, 4, E))  # (B, 4, E)
        out = ops.einsum("bge,geu->bgu", emb, proj)  # (B, 4, u)
        return ops.reshape(out, (-1, 4 * self.units))

    def step(self, xp_t: Tensor, states: tuple, keep_t: Tensor | None = None
             ) -> tuple[Tensor, tuple]:
        h, c, hh, hc = states
        u = self.units
        d_all = self.kernel.shape[0]
        xh_main, xp_hyper = xp_t[:, :4 * u], xp_t[:, 4 * u:]
        # hyper cell on [x, h]
        hpre = (xp_hyper + matmul(h, self.hyper_kernel[d_all:], self.precision)
                + matmul(hh, self.hyper_recurrent_kernel, self.precision))  # (B, 4H)
        hpre = layer_norm(hpre, self.hyper_ln_gamma, self.hyper_ln_beta, groups=4)
        hi, hf, hg, ho = split4(hpre)
        hc = ops.sigmoid(hf + FORGET_BIAS) * hc + ops.sigmoid(hi) * ops.tanh(hg)
        hh = ops.sigmoid(ho) * ops.tanh(layer_norm(hc, self.hyper_ln_c_gamma,
                                                   self.hyper_ln_c_beta))
        # weight scaling from the hyper output
        alpha_x = self._embed(hh, self.zw_x_kernel, self.zw_x_bias, self.alpha_x)
        alpha_h = self._embed(hh, self.zw_h_kernel, self.zw_h_bias, self.alpha_h)
        beta_h = self._embed(hh, self.zb_h_kernel, None, self.beta_h)
        hh_main = matmul(h, self.recurrent_kernel, self.precision)  # (B, 4u)
        pre = alpha_x * xh_main + alpha_h * hh_main + beta_h + self.bias
        h, c = normalised_update(self, pre, c, keep_t)
        return h, (h, c, hh, hc)


def make_cell(kind: str, units: int, hps: HParams, seed: int | None = None,
              name: str | None = None, options: FastPath = DEFAULT) -> keras.layers.Layer:
    """The cell named by hparam enc_model / dec_model at hparam precision (`options`
    matter to the LSTM only)."""
    if kind == "lstm":
        return LSTM(units, seed=seed, name=name, options=options, precision=hps.precision)
    if kind == "layer_norm":
        return LayerNormLSTM(units, seed=seed, name=name, precision=hps.precision)
    if kind == "hyper":
        return HyperLSTM(units, hps.hyper_num_units, hps.hyper_embedding_size, seed=seed,
                         name=name, precision=hps.precision)
    raise ValueError(f"unknown cell type {kind!r}")
