"""The field's reconstruction measure: decode, re-encode, retrieve the source by its code.

RPCL-pix2seq (Neural Networks 2021), SP-gra2seq (AAAI 2023) and Lmser-pix2seq measure how much
of a sketch a model reconstructs this way: the posterior mean mu of each sketch of a split is
decoded *by sampling at a temperature* (a greedy decode of a mixture density network almost
never lifts the pen, so it draws one unbroken spiral), the reconstruction is encoded again, and
its source is looked up among all the split's sketches by the L2 distance of the codes.
`ret_code@k` is the fraction found among the k nearest (chance k / n); ties count against the
query, so identical codes never score by luck.

Two more views (`latent_report`, which `sketch-rnn evaluate` reports):
- raster retrieval: the reconstructions drawn centred and scale-normalised and looked up among
  the originals by chamfer distance (`retrieval.chamfer_matrix`), at the same temperatures;
- teacher-forced code retrieval: no decode at all; each sketch's L_R under every sketch's mu,
  and how often its own mu explains it best (what the code holds, before a decode loses it);
  most competitor codes are ruled out exactly by a lower bound on a prefix (`teacher_forced`).

Temperature: ours is the paper's (logits / tau, sigma * sqrt(tau); `generation.sampling`).
Magenta's sampler divides the logits by tau too but multiplies sigma by tau, so for the
Gaussians our tau equals Magenta's sqrt(tau) (ours 0.25 ~ theirs 0.5).

Noise: sketch i's decode draws from `default_rng([seed, 3, i])` whatever the batch
(`retrieval.decode_codes`), so the numbers do not depend on how the split is cut into batches.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..core.errors import SketchRNNError
from .retrieval import (
    BATCH,
    active_units,
    chamfer_matrix,
    decode_codes,
    distance_maps,
    kl_nats,
    posterior,
    rasterise,
    retrieval_at_k,
)
from .teacher_forced import pruned_teacher_forced_scores
from .teacher_forced import teacher_forced_scores  # noqa: F401 (its home is `teacher_forced`)

TEMPERATURES: tuple = ("greedy", 0.25, 0.5, 1.0)  # the default set; "greedy" = no sampling
KS = (1, 5, 10)
SEED = 0
TEACHER_FORCED_N = 100  # sketches of the teacher-forced view: its cost grows as n^2
CONVENTION = ("tau as in Ha & Eck 2017 eq. 8: logits / tau, sigma * sqrt(tau); Magenta's "
              "sampler multiplies sigma by tau, so for the Gaussians our tau = Magenta's "
              "sqrt(tau) (ours 0.25 ~ theirs 0.5)")


def tau_label(tau: Any) -> str:
    """The suffix of a temperature's keys: "greedy", or "tau_0.25"."""
    if tau == "greedy":
        return "greedy"
    t = float(tau)
    if not (np.isfinite(t) and t > 0):
        raise SketchRNNError(f"temperature={tau!r}: must be > 0 or 'greedy'")
    return f"tau_{t:g}"


# --------------------------------------------------------------------------- pure metrics
def code_distances(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """L2 distance between every query code and every reference code: (Q, R) float64.

    A query row holding NaN (a reconstruction that could not be encoded: nothing drawn)
    is at distance inf from every reference, so with ties counted against it it ranks last.
    """
    q, r = np.asarray(queries, np.float64), np.asarray(references, np.float64)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
        raise SketchRNNError(f"codes: expected (Q, z) and (R, z), got {q.shape} and {r.shape}")
    sq = np.sum(q * q, axis=1)[:, None] + np.sum(r * r, axis=1)[None] - 2.0 * q @ r.T  # (Q, R)
    dist = np.sqrt(np.maximum(sq, 0.0))
    dist[np.isnan(q).any(axis=1)] = np.inf
    return dist


def ret_code(recoded: np.ndarray, mu: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """ret_code@k: query i (the code of sketch i's reconstruction) against all the split's mu.

    {"ret_code_at_1": ..., ...}; chance k / n.
    """
    scores = retrieval_at_k(code_distances(recoded, mu), ks)
    return {k.replace("ret_", "ret_code_"): v for k, v in scores.items()}


# --------------------------------------------------------------------------- the model's part
def recode(model: Any, sketches: Sequence[np.ndarray], scale_factor: float = 1.0,
           batch: int = BATCH) -> np.ndarray:
    """mu of each sketch, (n, z) float64; NaN rows for sketches with nothing to encode."""
    z = int(model.hps.z_size)
    out = np.full((len(sketches), z), np.nan)
    keep = [i for i, s in enumerate(sketches) if len(s) > 0]
    if keep:
        mu, _ = posterior(model, [sketches[i] for i in keep], scale_factor, batch)
        out[keep] = mu
    return out


def latent_report(model: Any, sketches: Sequence[np.ndarray], *,
                  temperatures: Sequence[Any] = TEMPERATURES, seed: int = SEED,
                  ks: Sequence[int] = KS, teacher_forced_n: int = TEACHER_FORCED_N,
                  scale_factor: float = 1.0, batch: int = BATCH,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """What a conditional model's code keeps of its sketches, in three views, plus its size.

    Keys: ret_code_at_{k}_{label} and ret_raster_at_{k}_{label} for each temperature
    (label "greedy" or "tau_0.5"); ret_at_1 / ret_at_5 (= the greedy raster retrieval,
    the key earlier versions reported); ret_tf_at_{k} over the first `teacher_forced_n`
    sketches (ret_tf_count; 0 = skipped); ret_chance_at_1 = 1/n; ret_seed, ret_convention;
    active_units and kl_nats (`retrieval`). Sketches are stroke-3 in data units. `log`
    receives a line before each long part (progress; silent by default).
    """
    if not bool(model.hps.conditional):
        raise SketchRNNError("latent_report: a decoder-only model has no latent code")
    if len(sketches) < 2:
        raise SketchRNNError(f"latent_report: needs at least 2 sketches, got {len(sketches)}")
    log = log or _silent
    mu, presig = posterior(model, sketches, scale_factor, batch)  # (n, z) each
    originals = rasterise(sketches)  # (n, 64, 64)
    original_maps = distance_maps(originals)  # (n, 64 * 64), shared by every temperature
    report: dict[str, Any] = {"active_units": active_units(mu), "kl_nats": kl_nats(mu, presig),
                              "ret_chance_at_1": 1.0 / len(sketches), "ret_seed": int(seed),
                              "ret_convention": CONVENTION}
    for tau in temperatures:
        label = tau_label(tau)
        log(f"evaluate: reconstructing {len(sketches)} sketches ({label}), re-encoding")
        recons = decode_codes(model, mu, tau, seed, scale_factor, batch)
        codes = ret_code(recode(model, recons, scale_factor, batch), mu, ks)
        raster = retrieval_at_k(chamfer_matrix(rasterise(recons), originals, original_maps), ks)
        report.update({f"{k}_{label}": v for k, v in codes.items()})
        report.update({f"{k.replace('ret_', 'ret_raster_')}_{label}": v
                       for k, v in raster.items()})
        if label == "greedy":
            report.update({f"ret_at_{k}": raster[f"ret_at_{k}"] for k in (1, 5) if k in ks})
    m = min(int(teacher_forced_n), len(sketches))
    if m >= 2:
        log(f"evaluate: teacher-forced L_R of {m} sketches under each of their {m} codes")
        scores, _ = pruned_teacher_forced_scores(model, list(sketches[:m]), scale_factor,
                                                 mu=mu[:m])
        tf = retrieval_at_k(scores, ks)  # the full matrix's ranks (`teacher_forced`)
        report.update({k.replace("ret_", "ret_tf_"): v for k, v in tf.items()})
    report["ret_tf_count"] = m if m >= 2 else 0
    return report


def _silent(message: str) -> None:
    """The default progress sink: nothing (the CLI passes one that writes to stderr)."""
