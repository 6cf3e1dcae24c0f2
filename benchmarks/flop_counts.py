"""FLOP counts of one SketchRNN training step, the nominal (Magenta's formulation) and the
executed one (ours), so that the benchmarks' GF/s and fractions of peak rest on a count
written down once and pinned by `self_check`.

What bench_train.py counts (by formula from the hparams; matmuls only, 2*m*n*k each; every sketch at
full length N_max, which the synthetic batch guarantees; element-wise ops, layer norms,
the loss and the optimizer are not counted):

- NOMINAL: the original (Magenta) formulation. The decoder reads [S_{i-1}, z] at every step,
  so z's share of the input projection is paid N_max times per sketch; each cell step is
  one matmul of [x, h]; backward = 2x forward (gradients of both operands), 3x in all.
- EXECUTED: what our implementation runs. z is projected once per sketch (a per-sketch
  bias, `cells.LSTM.lane_args` / `input_projection`); the stroke columns of a cell's input
  are data, so their backward is the weight gradient only (2x forward, not 3x: the
  hand-written LSTM backward never forms that input gradient, and TensorFlow's gradient
  of an unwatched operand is skipped or pruned for the autodiff cells). With input dropout
  on [S, z] or the cuDNN decoder, z is part of every step's input again and the decoder is
  counted as nominal.
- RECOMPUTE (part of EXECUTED, reported on its own): with `FastPath.encoder_recompute` the
  LSTM encoder's gates are rebuilt in its backward loop, one more forward of both
  directions' cell matmuls. It is real work but no model arithmetic, so it is shown apart.
"""
from __future__ import annotations

from sketch_rnn.core.hparams import HParams, preset

STROKE = 5  # stroke-5 columns of a cell's data input


def _cell(kind: str, d_z: int, u: int, hps: HParams, z_per_step: bool, data_passes: int):
    """Forward FLOPs of one sketch's cell matmuls: (per step [(flops, passes)], per sketch [...]).

    passes: 3 = forward and both operands' gradients, 2 = forward and the weight gradient only.
    """
    widths = [4 * u]  # gate columns fed by the cell's input [S, z]
    step = [(2 * u * 4 * u, 3)]  # h @ W_hh
    if kind == "hyper":
        H, E = hps.hyper_num_units, hps.hyper_embedding_size
        widths.append(4 * H)  # the hyper cell reads [x, h] too
        step += [(2 * (u + H) * 4 * H, 3),  # h, hyper_h @ hyper kernels
                 (2 * H * 12 * E, 3),  # zw_x, zw_h, zb_h embeddings
                 (3 * 2 * 4 * E * u, 3)]  # alpha_x, alpha_h, beta_h per gate
    step += [(2 * STROKE * w, data_passes) for w in widths]
    z_terms = [(2 * d_z * w, 3) for w in widths if d_z]
    return (step + z_terms, []) if z_per_step else (step, z_terms)


def count_flops(hps: HParams, batch: int, n_max: int, original: bool = False,
                recompute: bool = True, cudnn: bool = False) -> dict:
    """FLOPs of one training step: {"model": ..., "recompute": ...} (integers).

    original=True gives the nominal (Magenta) count, else the executed one (module docstring).
    """
    K = 3 + 6 * hps.num_mixture
    u_d, z = hps.dec_rnn_size, hps.z_size
    per_step = [(2 * u_d * K, 3)]  # mixture head
    per_sketch, extra = [], 0
    if hps.conditional:
        u_e = hps.enc_rnn_size
        for _ in range(2):  # the two directions
            s, _ = _cell(hps.enc_model, 0, u_e, hps, True, 3 if original else 2)
            per_step += s
        per_sketch += [(2 * 2 * u_e * z, 3)] * 2  # mu, presig
        state = 2 * u_d + (2 * hps.hyper_num_units if hps.dec_model == "hyper" else 0)
        per_sketch += [(2 * z * state, 3)]  # initial state = tanh(Dense(z))
        if recompute and not original and hps.enc_model == "lstm":
            extra = batch * n_max * 2 * 2 * (STROKE + u_e) * 4 * u_e  # both lanes' gates again
    as_nominal = original or cudnn or (hps.conditional and hps.use_input_dropout)
    s, k = _cell(hps.dec_model, z if hps.conditional else 0, u_d, hps, as_nominal,
                 3 if as_nominal else 2)
    per_step, per_sketch = per_step + s, per_sketch + k
    total = lambda terms: sum(f * p for f, p in terms)  # noqa: E731
    return {"model": batch * (n_max * total(per_step) + total(per_sketch)), "recompute": extra}


def nominal_flops(hps: HParams, batch: int, n_max: int) -> int:
    return count_flops(hps, batch, n_max, original=True)["model"]


def self_check() -> None:
    """Pin the counts, so that an edit to the counting cannot drift silently."""
    hps, B, N = preset("paper"), 100, 250
    assert round(nominal_flops(hps, B, N) / 1e9, 1) == 287.9
    for dec, w in (("lstm", 4 * hps.dec_rnn_size),
                   ("hyper", 4 * hps.dec_rnn_size + 4 * hps.hyper_num_units)):
        h = hps.replace(dec_model=dec)
        ex = count_flops(h, B, N)
        z_term = 3 * B * (N - 1) * 2 * h.z_size * w  # z projected once per sketch, not N times
        data_term = B * N * 2 * STROKE * (w + 2 * 4 * h.enc_rnn_size)  # no stroke input grad
        assert nominal_flops(h, B, N) - ex["model"] == z_term + data_term, dec
        assert ex["recompute"] == B * N * 2 * 2 * (STROKE + h.enc_rnn_size) * 4 * h.enc_rnn_size
    # the cuDNN decoder pays for z at every step again: only the encoder's data term is left
    nominal, cudnn = nominal_flops(hps, B, N), count_flops(hps, B, N, cudnn=True)["model"]
    assert nominal - cudnn == B * N * 2 * STROKE * 2 * 4 * hps.enc_rnn_size
