"""The losses over a whole split, the way the paper's Table 1 reports them.

The trainer validates with them at every checkpoint (`training.trainer`); `sketch-rnn
evaluate` reports the same numbers (`report.evaluate_run`). Pure model and data code: this
module sits below the training layer (ARCHITECTURE.md), the rest of `evaluation` above
generation.

Per-sketch terms from `model.loss_terms` are averaged over every sketch of
the split exactly once (the padded rows of the last batch carry weight 0):
- stroke = L_s: mixture NLL summed over the sketch's real points, divided by N_max;
- pen    = L_p: pen cross-entropy summed over all N_max steps (the end-of-sketch
  steps after the last point included, as in the original), divided by N_max;
- recon  = L_R = L_s + L_p;
- kl     = L_KL before the tolerance floor (0 for decoder-only models);
- cost   = L_R + w_KL * max(kl, kl_tolerance) with the model's current w_KL (with
  `kl_floor_per_dim`, the floor applies to each z dimension: `model.mixture.kl_penalty`).

The batches run through one compiled graph of `model.loss_terms` (`loss_terms_fn`), traced
once per model and batch shape and kept on the model, so a checkpoint's validation reuses
the previous one's graph. Eager, each batch made one framework call per point and per
layer: 300 sheep at `small` took 5.8 s, several times the graph's time. A plain graph, not
XLA, so the numbers are the eager ones to float32 rounding; `eager=True` runs today's eager
calls, the reference the tests compare with and the benchmarks' old path.
"""
from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np

from ..core.errors import SketchRNNError
from ..core.hparams import HParams
from ..data import SketchSplit, eval_batches
from ..model.backend import compiled
from ..model.mixture import kl_penalty


def loss_terms_fn(model: Any, eager: bool = False) -> Callable[[Any, Any], dict]:
    """(strokes (B, N_max+1, 5), lengths (B,)) -> model.loss_terms(..., training=False):
    the model's compiled graph of it (built on first use, kept on the model), or with
    eager=True the eager method itself."""
    def terms(strokes: Any, lengths: Any) -> dict:
        return model.loss_terms(strokes, lengths, training=False)

    return terms if eager else compiled(model, ("loss_terms",), lambda: terms, xla=False)


def evaluate_split(model: Any, split: SketchSplit, hps: HParams, eager: bool = False
                   ) -> dict[str, float]:
    """Mean L_s, L_p, L_R, KL and cost over the split (deterministic: no augmentation);
    eager=True: without the compiled graph (`loss_terms_fn`), same numbers, slower."""
    loss_terms = loss_terms_fn(model, eager)
    totals = np.zeros(2, dtype=np.float64)  # stroke, pen
    kl_dims = np.zeros(hps.z_size, dtype=np.float64)  # KL of each z dimension, summed
    count = 0.0
    for strokes, lengths, weights in eval_batches(split, hps):
        terms = loss_terms(strokes, lengths)
        for i, key in enumerate(("stroke", "pen")):
            totals[i] += float(np.sum(keras.ops.convert_to_numpy(terms[key]) * weights))
        if hps.conditional:
            kl_dims += np.sum(keras.ops.convert_to_numpy(terms["kl_dims"]) * weights[:, None], 0)
        count += float(np.sum(weights))
    if count == 0:
        raise SketchRNNError(f"the {split.name} split has no sketches (after the max_seq_len filter)")
    stroke, pen = (totals / count).tolist()
    kl, floor = 0.0, 0.0
    if hps.conditional:
        kl = float(np.mean(kl_dims / count))  # the per-sketch KL is the mean over z
        floor = float(keras.ops.convert_to_numpy(
            kl_penalty(kl_dims / count, hps.kl_tolerance, hps.kl_floor_per_dim)))
    w_kl = float(keras.ops.convert_to_numpy(model.kl_weight))
    return {"recon": stroke + pen, "stroke": stroke, "pen": pen, "kl": kl,
            "cost": stroke + pen + w_kl * floor}
