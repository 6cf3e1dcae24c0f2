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
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ..core.errors import SketchRNNError
from ..core.hparams import HParams
from ..data import SketchSplit, eval_batches
from ..model.mixture import kl_penalty


def evaluate_split(model: Any, split: SketchSplit, hps: HParams) -> dict[str, float]:
    """Mean L_s, L_p, L_R, KL and cost over the split (deterministic: no augmentation)."""
    totals = np.zeros(2, dtype=np.float64)  # stroke, pen
    kl_dims = np.zeros(hps.z_size, dtype=np.float64)  # KL of each z dimension, summed
    count = 0.0
    for strokes, lengths, weights in eval_batches(split, hps):
        terms = model.loss_terms(strokes, lengths, training=False)
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
