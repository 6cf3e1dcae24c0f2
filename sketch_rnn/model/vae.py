"""The Sketch-RNN model (Ha & Eck 2017): encoder, latent z, decoder and its head; the head's
mixture and the losses are in `mixture`.

Shapes: B sketches, N_max steps, M mixture components, K = 3 + 6M head outputs.
Inputs are stroke-5 `strokes` (B, N_max+1, 5) with S_0 = (0, 0, 1, 0, 0) prepended and
`lengths` (B,), the true number of points after S_0. Inside, sequences are time-major
(N_max, B, .) because the recurrent loops index time first.

Randomness: every draw during training (z noise, dropout masks) comes from one
`keras.random.SeedGenerator` whose state is set to a function of (seed, optimizer
iterations) at the start of each step, so a resumed run needs no saved RNG state.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..core.hparams import HParams
from .cells import LSTM, bidirectional_lstm, make_cell
from .mixture import batch_cost, greedy_point, sketch_loss_terms, split_params
from .backend import DEFAULT, FastPath, Tensor, replica_slot, stateless_iterations
from .optimizer import make_optimizer
from .precision import dense

_DRAWS_PER_STEP = 8  # RNG state stride per training step (each draw advances it by one)
_EVAL_STREAM = 2**31 - 8  # RNG counter used when not training (deterministic evaluation)


class SketchRNN(keras.Model):
    """Sketch-RNN VAE (or decoder-only when hps.conditional is False).

    fit() takes x = {"strokes": (B, N_max+1, 5), "lengths": (B,)} and no y.
    """

    def __init__(self, hps: HParams, seed: int = 0, options: FastPath = DEFAULT, **kwargs):
        super().__init__(**kwargs)
        self.hps = hps
        self.seed = int(seed)
        self.num_outputs = 3 + 6 * hps.num_mixture  # K
        init_seed = keras.random.SeedGenerator(self.seed)  # initial weights only
        small = keras.initializers.RandomNormal(0.0, 0.001, seed=init_seed)
        if hps.conditional:
            self.encoder_fw = make_cell(hps.enc_model, hps.enc_rnn_size, hps, init_seed,
                                        "encoder_fw", options)
            self.encoder_bw = make_cell(hps.enc_model, hps.enc_rnn_size, hps, init_seed,
                                        "encoder_bw", options)
            # Magenta starts mu at 0.001 * h: z = mu + sigma * eps is then noise to the decoder,
            # which learns to ignore it before the encoder has said anything (issue 12)
            mu_init = keras.initializers.RandomNormal(0.0, hps.mu_init_std, seed=init_seed)
            self.mu_dense = keras.layers.Dense(hps.z_size, kernel_initializer=mu_init, name="mu")
            self.presig_dense = keras.layers.Dense(hps.z_size, kernel_initializer=small,
                                                   name="presig")
        self.decoder = make_cell(hps.dec_model, hps.dec_rnn_size, hps, init_seed, "decoder",
                                  options)
        if hps.conditional:
            self.initial_state_dense = keras.layers.Dense(
                sum(self.decoder.state_sizes), kernel_initializer=small, name="initial_state")
        self.head = keras.layers.Dense(
            self.num_outputs, kernel_initializer=keras.initializers.GlorotUniform(init_seed),
            name="head")
        self.kl_weight = keras.Variable(hps.kl_weight_start, trainable=False, dtype="float32",
                                        name="kl_weight")
        self.rng = keras.random.SeedGenerator(self.seed, name="train_rng")
        self._step_override = None
        self.cost_tracker = keras.metrics.Mean(name="cost")
        self.recon_tracker = keras.metrics.Mean(name="recon")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.w_kl_tracker = keras.metrics.Mean(name="w_kl")
        self.build()

    # ------------------------------------------------------------------ building
    def build(self, input_shape=None) -> None:
        """Create every weight now, so load_weights works before any call."""
        hps = self.hps
        dec_in = 5 + (hps.z_size if hps.conditional else 0)
        if hps.conditional:
            self.encoder_fw.build((None, None, 5))
            self.encoder_bw.build((None, None, 5))
            self.mu_dense.build((None, 2 * hps.enc_rnn_size))
            self.presig_dense.build((None, 2 * hps.enc_rnn_size))
            self.initial_state_dense.build((None, hps.z_size))
        self.decoder.build((None, None, dec_in))
        self.head.build((None, hps.dec_rnn_size))

    # ------------------------------------------------------------------ randomness
    def _train_step_counter(self):
        """optimizer.iterations of the step being computed (a tracer inside JAX's step)."""
        if self._step_override is not None:
            return self._step_override
        if getattr(self, "optimizer", None) is not None and self.optimizer.built:
            return self.optimizer.iterations
        return 0

    def _reset_rng(self, counter) -> None:
        """Seed the step's draws from (seed, counter): no hidden RNG state to save."""
        dtype = self.rng.state.dtype
        base = ops.convert_to_tensor(np.array([self.seed, 0]), dtype=dtype)
        stride = ops.convert_to_tensor(np.array([0, _DRAWS_PER_STEP]), dtype=dtype)
        self.rng.state.assign(base + ops.cast(counter, dtype) * stride)

    def _keep_bool(self, shape, keep_prob: float):
        """Dropout keep mask (True: kept), one byte a unit rather than a float multiplier."""
        return self._draw(keras.random.uniform, shape) < keep_prob

    def _keep_mask(self, shape, keep_prob: float):
        """Inverted-dropout multiplier: 0 or 1/keep_prob."""
        return ops.cast(self._keep_bool(shape, keep_prob), "float32") / keep_prob

    def _draw(self, draw, shape):
        """draw(shape, seed=self.rng); every draw here has the batch on axis -2.

        Under tf.distribute each replica draws the values of the whole global batch and
        keeps its own rows, so every sketch gets the numbers one device would give it.
        """
        index, count = replica_slot()
        if count == 1:
            return draw(shape, seed=self.rng)
        full = (*shape[:-2], shape[-2] * count, shape[-1])
        start = [0] * len(shape)
        start[-2] = index * shape[-2]
        return ops.slice(draw(full, seed=self.rng), start, shape)

    def train_step(self, *args, **kwargs) -> dict | tuple:
        # JAX's step is stateless: the iteration count comes from the optimizer state it is
        # given, not from the (stale) Python-side variable; None on TensorFlow
        self._step_override = stateless_iterations(self.optimizer, args)
        try:
            return super().train_step(*args, **kwargs)
        finally:
            self._step_override = None

    # ------------------------------------------------------------------ encoder
    def _encode_tm(self, strokes, lengths, training: bool = False):
        """strokes (B, N_max+1, 5) -> (mu, presig) (B, z) reading strokes[:, 1:] up to lengths."""
        hps = self.hps
        x = strokes[:, 1:]  # (B, N_max, 5)
        n_max = ops.shape(x)[1]  # N_max (the padded T; a tensor in a graph traced for any T)
        lengths = ops.cast(lengths, "int32")
        t = ops.arange(n_max, dtype="int32")[None, :]  # (1, N_max)
        rev_idx = ops.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, N_max)
        x_rev = ops.take_along_axis(x, rev_idx[:, :, None], axis=1)  # (B, N_max, 5)
        x_fw = ops.transpose(x, (1, 0, 2))  # (N_max, B, 5)
        x_bw = ops.transpose(x_rev, (1, 0, 2))
        batch = ops.shape(x)[0]
        u = hps.enc_rnn_size
        p = hps.recurrent_dropout_prob
        mask_fw = mask_bw = None
        if training and hps.use_recurrent_dropout:
            mask_fw = self._keep_bool((n_max, batch, u), p)
            mask_bw = self._keep_bool((n_max, batch, u), p)
        fw, bw = self.encoder_fw, self.encoder_bw
        if isinstance(fw, LSTM):  # both directions in one time loop
            hs_fw, hs_bw = bidirectional_lstm(fw, bw, x_fw, x_bw, mask_fw, mask_bw, p)
        else:
            hs_fw, _ = fw.run(x_fw, None, fw.zero_state(batch), mask_fw, p)
            hs_bw, _ = bw.run(x_bw, None, bw.zero_state(batch), mask_bw, p)
        # the state after each sketch's last point: a one-hot pick over time (N_max, B, 1),
        # whose gradient is a multiply, not a scatter
        last = ops.maximum(lengths - 1, 0)
        pick = ops.cast(ops.arange(n_max, dtype="int32")[:, None] == last[None, :], "float32")
        h_fw = ops.sum(hs_fw * pick[:, :, None], axis=0)  # (B, u_enc)
        h_bw = ops.sum(hs_bw * pick[:, :, None], axis=0)
        h = ops.concatenate([h_fw, h_bw], axis=-1)  # (B, 2 u_enc)
        p = hps.precision
        return dense(self.mu_dense, h, p), dense(self.presig_dense, h, p)

    def encode(self, strokes: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, presig), each (B, z_size); sigma = exp(presig / 2). No dropout."""
        return self._encode_tm(ops.convert_to_tensor(strokes, "float32"),
                               ops.convert_to_tensor(lengths, "int32"), training=False)

    # ------------------------------------------------------------------ decoder
    def initial_state(self, z: Tensor | None, batch_size: int | None = None) -> tuple:
        """h0, c0 (and the hyper cell's) = tanh(Dense(z)); zeros in decoder-only mode."""
        if not self.hps.conditional or z is None:
            return self.decoder.zero_state(batch_size)
        flat = ops.tanh(dense(self.initial_state_dense, z,
                              self.hps.precision))  # (B, sum(state sizes))
        sizes = self.decoder.state_sizes
        bounds = np.cumsum(sizes)[:-1].tolist()
        return tuple(ops.split(flat, bounds, axis=-1))

    def _decode_tm(self, s_prev_tm, z, states, training: bool = False):
        """s_prev_tm (N, B, 5) -> raw (N, B, K), teacher-forced from `states`."""
        hps = self.hps
        n, batch = ops.shape(s_prev_tm)[:2]
        x, x_grad = s_prev_tm, False
        if training and hps.use_stroke_dropout:  # whole points, unscaled: "unknown", not noise
            x = x * ops.cast(self._keep_bool((n, batch, 1), hps.stroke_dropout_prob), "float32")
        if training and hps.use_input_dropout:
            if z is not None:  # dropout on [S_{i-1}, z]: z is then part of every step's input
                z_all = ops.broadcast_to(z[None], (n, batch, z.shape[-1]))
                x, x_grad = ops.concatenate([x, z_all], axis=-1), True  # (N, B, 5+z)
            x = x * self._keep_mask((n, batch, x.shape[-1]), hps.input_dropout_prob)
        mask = None
        if training and hps.use_recurrent_dropout:
            mask = self._keep_bool((n, batch, hps.dec_rnn_size), hps.recurrent_dropout_prob)
        hs, _ = self.decoder.run(x, None if x_grad else z, states, mask,
                                 hps.recurrent_dropout_prob, x_grad=x_grad)  # (N, B, u)
        if training and hps.use_output_dropout:
            hs = hs * self._keep_mask((n, batch, hps.dec_rnn_size), hps.output_dropout_prob)
        return dense(self.head, hs, hps.precision)  # (N, B, K)

    def decode_step(self, s_prev: Tensor, z: Tensor | None, states: tuple
                    ) -> tuple[Tensor, tuple]:
        """One decoder step: s_prev (B, 5), z (B, z)|None -> (raw (B, K), new states)."""
        s_prev = ops.convert_to_tensor(s_prev, "float32")
        z = None if (z is None or not self.hps.conditional) else ops.convert_to_tensor(z)
        xp = self.decoder.input_projection(s_prev[None], z)[0]  # (B, P)
        h, states = self.decoder.step(xp, tuple(states))
        return dense(self.head, h, self.hps.precision), states

    def decode_sequence(self, strokes: Tensor, z: Tensor | None) -> Tensor:
        """Teacher-forced raw head outputs (B, N_max, K) for inputs strokes[:, :-1]."""
        strokes = ops.convert_to_tensor(strokes, "float32")
        z = None if (z is None or not self.hps.conditional) else ops.convert_to_tensor(z)
        states = self.initial_state(z, ops.shape(strokes)[0])
        s_prev = ops.transpose(strokes[:, :-1], (1, 0, 2))  # (N_max, B, 5)
        return ops.transpose(self._decode_tm(s_prev, z, states), (1, 0, 2))

    # ------------------------------------------------------------------ forward + loss
    def _forward(self, strokes, lengths, training: bool):
        """-> dict(raw (N_max, B, K) time-major, mu, presig (B, z) or None)."""
        hps = self.hps
        strokes = ops.convert_to_tensor(strokes, "float32")
        lengths = ops.convert_to_tensor(lengths, "int32")
        counter = self._train_step_counter() if training else _EVAL_STREAM
        needs_rng = hps.conditional or (training and (
            hps.use_recurrent_dropout or hps.use_input_dropout or hps.use_output_dropout
            or hps.scheduled_sampling_prob > 0))
        if needs_rng:
            self._reset_rng(counter)
        batch = ops.shape(strokes)[0]
        mu = presig = z = None
        if hps.conditional:
            mu, presig = self._encode_tm(strokes, lengths, training)
            eps = self._draw(keras.random.normal, (batch, hps.z_size))
            z = mu + ops.exp(presig / 2.0) * eps  # (B, z)
        states = self.initial_state(z, batch)
        s_prev = ops.transpose(strokes[:, :-1], (1, 0, 2))  # (N_max, B, 5)
        if training and hps.scheduled_sampling_prob > 0:
            s_prev = self._scheduled_inputs(s_prev, z, states, lengths)
        raw = self._decode_tm(s_prev, z, states, training)
        return {"raw": raw, "mu": mu, "presig": presig}

    def _scheduled_inputs(self, s_prev_tm, z, states, lengths):
        """Scheduled sampling (Bengio et al. 2015) in one parallel pass: each real input
        S_{i-1} (1 <= i-1 <= length) is swapped, with probability `scheduled_sampling_prob`,
        for the decoder's own greedy guess of it, made teacher-forced from the true points
        before it, without dropout and without gradient.

        Why: a decoder trained only on true inputs has never been fed its own moves; the
        greedy decode feeds back its most likely moves, which are shorter than real ones,
        and the drawing curls up (issue 12). s_prev_tm (N, B, 5) -> (N, B, 5).
        """
        n, batch = ops.shape(s_prev_tm)[:2]
        raw = ops.stop_gradient(self._decode_tm(s_prev_tm, z, states))  # (N, B, K)
        guess = greedy_point(split_params(raw))  # (N, B, 5); guess[t] is for S_{t+1}
        guess = ops.concatenate([s_prev_tm[:1], guess[:-1]], axis=0)  # aligned with s_prev
        t = ops.arange(n, dtype="int32")[:, None]  # (N, 1)
        real = (t >= 1) & (t <= ops.cast(lengths, "int32")[None, :])  # (N, B)
        swap = self._draw(keras.random.uniform, (n, batch, 1)) < self.hps.scheduled_sampling_prob
        swap = swap & real[:, :, None]  # (N, B, 1)
        return ops.where(swap, guess, s_prev_tm)

    def call(self, inputs, training: bool = False):
        """{"raw": (N_max, B, K) TIME-major head outputs[, "mu", "presig": (B, z)]}.

        What compute_loss takes; for batch-major outputs use decode_sequence.
        """
        out = self._forward(inputs["strokes"], inputs["lengths"], training)
        if out["mu"] is None:
            return {"raw": out["raw"]}
        return out

    def loss_terms(self, strokes: Tensor, lengths: Tensor, training: bool = False) -> dict:
        """Per-sketch (B,) terms whose batch means are L_s, L_p and KL (before the floor)."""
        out = self._forward(strokes, lengths, training)
        return sketch_loss_terms(out["raw"], strokes, lengths, out["mu"], out["presig"],
                                 n_max=self.hps.max_seq_len)

    def compute_loss(self, x: dict | None = None, y: object = None, y_pred: dict | None = None,
                     sample_weight: object = None, training: bool = True) -> Tensor:
        """cost = L_s + L_p + w_KL * kl_penalty; updates the metric trackers."""
        terms = sketch_loss_terms(y_pred["raw"], x["strokes"], x["lengths"],
                                  y_pred.get("mu"), y_pred.get("presig"),
                                  n_max=self.hps.max_seq_len)  # bucketed batches: T < N_max
        cost, recon, kl = batch_cost(terms, self.kl_weight, self.hps)
        for tracker, value in ((self.cost_tracker, cost), (self.recon_tracker, recon),
                               (self.kl_tracker, kl), (self.w_kl_tracker, self.kl_weight)):
            if training:  # fit's logs then hold this step's values, not a mean since fit began
                tracker.reset_state()
            tracker.update_state(value)
        replicas = replica_slot()[1]  # tf.distribute sums the replicas' gradients
        return cost / replicas if replicas > 1 else cost

    def compile_for_training(self, **kwargs) -> None:
        """compile() with the project's one optimizer (`build.make_optimizer`)."""
        self.compile(optimizer=make_optimizer(self.hps), **kwargs)
