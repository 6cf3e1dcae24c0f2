"""What the decoder's head means, and the losses it is trained on.

The head emits K = 3 + 6M numbers per step: a mixture of M bivariate Gaussians for (dx, dy)
and 3 pen-state logits. Here they are split (`split_params`), read greedily
(`greedy_point`), and scored: the mixture NLL L_s, the pen cross-entropy L_p, the KL of
q(z|S) to N(0, I) and its floor (`kl_penalty`), and the batch cost. Kept apart from the model
class so that the sampler, validation and the study read the same formulas without the
layers.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from keras import ops

from ..core.hparams import HParams
from .backend import Tensor

NLL_EPSILON = 1e-6  # inside the log of the mixture density, as Magenta


class MixtureParams(NamedTuple):
    """The head's output, split and transformed (sigma = exp, rho = tanh applied)."""

    pi_logits: Tensor  # (..., M)
    mu_x: Tensor
    mu_y: Tensor
    sigma_x: Tensor
    sigma_y: Tensor
    rho: Tensor
    pen_logits: Tensor  # (..., 3)


def split_params(raw: Tensor) -> MixtureParams:
    """raw (..., 3+6M), Magenta's layout: pen logits, then pi, mu_x, mu_y, s_x, s_y, rho."""
    pen_logits = raw[..., :3]
    pi_logits, mu_x, mu_y, s_x, s_y, rho = ops.split(raw[..., 3:], 6, axis=-1)
    return MixtureParams(pi_logits, mu_x, mu_y, ops.exp(s_x), ops.exp(s_y), ops.tanh(rho),
                         pen_logits)


def greedy_point(p: MixtureParams) -> Tensor:
    """The decoder's most likely next point, (..., 5): the most likely component's mean and
    the most likely pen state, one-hot. One rule for what a greedy decode draws and for what
    scheduled sampling feeds back in training, so the two cannot drift apart."""
    k = ops.expand_dims(ops.argmax(p.pi_logits, axis=-1), -1)  # (..., 1)
    dx = ops.take_along_axis(p.mu_x, k, axis=-1)  # (..., 1)
    dy = ops.take_along_axis(p.mu_y, k, axis=-1)  # (..., 1)
    pen = ops.one_hot(ops.argmax(p.pen_logits, axis=-1), 3, dtype=dx.dtype)  # (..., 3)
    return ops.concatenate([dx, dy, pen], axis=-1)  # (..., 5)


def step_losses(raw: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-step mixture NLL (unmasked) and pen cross-entropy.

    raw (..., K), target (..., 5) -> (nll (...), pen_ce (...)).
    """
    p = split_params(raw)
    dx, dy = target[..., 0:1], target[..., 1:2]
    n1, n2 = dx - p.mu_x, dy - p.mu_y
    s1s2 = p.sigma_x * p.sigma_y
    zz = (ops.square(n1 / p.sigma_x) + ops.square(n2 / p.sigma_y)
          - 2.0 * p.rho * n1 * n2 / s1s2)
    one_minus_rho2 = 1.0 - ops.square(p.rho)
    density = ops.exp(-zz / (2.0 * one_minus_rho2)) / (
        2.0 * math.pi * s1s2 * ops.sqrt(one_minus_rho2))  # (..., M)
    pi = ops.softmax(p.pi_logits, axis=-1)
    nll = -ops.log(ops.sum(pi * density, axis=-1) + NLL_EPSILON)
    pen_ce = -ops.sum(target[..., 2:] * ops.log_softmax(p.pen_logits, axis=-1), axis=-1)
    return nll, pen_ce


def kl_per_dim(mu: Tensor, presig: Tensor) -> Tensor:
    """KL(q(z_d|S) || N(0, 1)) of each dimension: (B, z) -> (B, z)."""
    return -0.5 * (1.0 + presig - ops.square(mu) - ops.exp(presig))


def kl_per_sketch(mu: Tensor, presig: Tensor) -> Tensor:
    """Magenta's KL(q(z|S) || N(0, I)), averaged (not summed) over z: (B, z) -> (B,)."""
    return ops.mean(kl_per_dim(mu, presig), axis=-1)


def kl_penalty(kl_dims: Tensor, kl_tolerance: float, per_dim: bool) -> Tensor:
    """The KL term before w_KL, from the batch-mean KL of each dimension kl_dims (z,).

    Magenta floors the mean over z: max(KL, tol). That floor can be met by shrinking every
    sigma a little, which tells the decoder nothing about the sketch. Flooring each dimension
    instead (free bits, Kingma et al. 2016: mean_d max(KL_d, tol)) leaves no dimension's
    first tol nats worth saving, so the encoder may as well spend them on information.
    """
    if per_dim:
        return ops.mean(ops.maximum(kl_dims, kl_tolerance))
    return ops.maximum(ops.mean(kl_dims), kl_tolerance)


def sketch_loss_terms(raw_tm: Tensor, strokes: Tensor, lengths: Tensor, mu: Tensor | None = None,
                      presig: Tensor | None = None, n_max: int | None = None) -> dict:
    """Per-sketch stroke (L_s), pen (L_p) and kl terms, each (B,), and kl_dims (B, z).

    raw_tm (T, B, K) time-major head outputs for targets strokes[:, 1:], T <= N_max. As
    Magenta: L_s is masked after each sketch's end, L_p runs over all T steps, and both are
    summed over steps and divided by N_max (`n_max`, hps.max_seq_len; default T), so batch
    means give Magenta's r_cost parts.

    A length-bucketed batch (T < N_max, data.batches) gives the same L_s as the full-length
    batch of the same sketches (the masked steps add 0, the divisor is still N_max). Its L_p
    computes the end-of-sketch terms up to T only (each sketch keeps at least one of them:
    T >= its length + 1); the N_max - T terms after T, all -log p(end | past the end) with
    the same input S_{i-1} = (0, 0, 0, 0, 1), are stood in for by the last computed one,
    counted N_max - T more times. Why: left out, the "stay ended" terms lose most of their
    weight (about 125 of 250 per sheep), and the learned pen states lag far behind the
    full-length path's (valid L_p 0.65 against 0.24 after 20 steps); counted this way the
    loss keeps Magenta's weights, and equals it exactly when T = N_max. Validation and
    `evaluate` always use full-length batches, so the L_R they report is Magenta's.
    """
    strokes = ops.convert_to_tensor(strokes, "float32")
    lengths = ops.cast(ops.convert_to_tensor(lengths), "int32")
    stroke, pen = _reconstruction_terms(raw_tm, strokes, lengths, n_max)
    if mu is None:
        return {"stroke": stroke, "pen": pen, "kl": ops.zeros_like(stroke)}
    kl_dims = kl_per_dim(mu, presig)  # (B, z)
    return {"stroke": stroke, "pen": pen, "kl": ops.mean(kl_dims, axis=-1), "kl_dims": kl_dims}


def _reconstruction_terms(raw_tm, strokes, lengths, n_max: int | None = None):
    """(stroke (B,), pen (B,)): the masked mixture NLL and the pen cross-entropy over the
    batch's T steps (the last one counted N_max - T more times: sketch_loss_terms), each
    divided by N_max (n_max; T when not given)."""
    steps = ops.shape(raw_tm)[0]  # T: an int, or a tensor in a step traced for any T
    target = ops.transpose(strokes[:, 1:], (1, 0, 2))  # (T, B, 5)
    nll, pen_ce = step_losses(raw_tm, target)  # (T, B) each
    mask = ops.cast(ops.arange(steps, dtype="int32")[:, None] < lengths[None, :], "float32")
    pen = ops.sum(pen_ce, axis=0)  # (B,)
    if n_max is None:
        n_max = steps if isinstance(steps, int) else ops.cast(steps, "float32")
    elif not isinstance(steps, int):  # T known only when run: count the missing terms
        pen = pen + ops.cast(int(n_max) - steps, "float32") * pen_ce[-1]  # + 0 when T = N_max
    elif n_max > steps:  # the end-of-sketch terms past a bucket's padded length
        pen = pen + (int(n_max) - steps) * pen_ce[-1]
    return ops.sum(nll * mask, axis=0) / n_max, pen / n_max


def batch_cost(terms: dict, kl_weight: Tensor | float, hps: HParams
               ) -> tuple[Tensor, Tensor, Tensor]:
    """(cost, L_R, KL): cost = L_R + w_KL * kl_penalty; L_R alone if unconditional."""
    recon = ops.mean(terms["stroke"]) + ops.mean(terms["pen"])
    kl = ops.mean(terms["kl"])
    if not hps.conditional:
        return recon, recon, kl
    penalty = kl_penalty(ops.mean(terms["kl_dims"], axis=0), hps.kl_tolerance,
                         hps.kl_floor_per_dim)
    return recon + kl_weight * penalty, recon, kl
