"""Batches: the training batch of a step (a pure function of (seed, step)) and eval batches.

Sketches leave a packed `SketchSplit` normalised by its scale factor, are optionally
augmented (random scale, dropped points) and padded to stroke-5 with S_0 first.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..core import strokes as S
from ..core.errors import SketchRNNError
from .dataset import SketchSplit


def _check_fits(split: SketchSplit, n_max: int) -> None:
    if split.max_length() > n_max:
        raise SketchRNNError(f"split {split.name} holds a sketch of length {split.max_length()}"
                             f" > max_seq_len={n_max}; reload the data with that max_seq_len")


def batch_from_indices(split: SketchSplit, idx: np.ndarray, n_max: int, scale: float = 0.0,
                       prob: float = 0.0, rng: np.random.Generator | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Sketches idx as stroke-5 (B, n_max+1, 5) float32 and lengths (B,) int32, optionally
    augmented (scale, prob > 0 need rng)."""
    points, lengths = split.gather(np.asarray(idx, dtype=np.int64))
    if scale > 0 or prob > 0:
        return S.augment_to_stroke5(points, lengths, n_max, scale, prob, rng)
    return S.packed_to_stroke5(points, lengths, n_max)


def train_batch(split: SketchSplit, hps: Any, seed: int, step: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The training batch of `step`: a pure function of (seed, step).

    Sketch indices (distinct unless the split is smaller than the batch) and augmentation
    come from np.random.default_rng([seed, step]), so batch k can be rebuilt after a resume
    without saving any RNG state. Returns strokes (B, N_max+1, 5) float32 and lengths (B,)
    int32 (points after augmentation, S_0 excluded).
    """
    n, b = len(split), hps.batch_size
    if n == 0:
        raise SketchRNNError(f"split {split.name} is empty: nothing to train on")
    _check_fits(split, hps.max_seq_len)
    rng = np.random.default_rng([int(seed), int(step)])
    idx = rng.choice(n, size=b, replace=n < b)  # (B,)
    return batch_from_indices(split, idx, hps.max_seq_len, hps.random_scale_factor,
                              hps.augment_stroke_prob, rng)


def eval_batches(split: SketchSplit, hps: Any
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Deterministic batches covering the split once, in order, without augmentation.

    The last batch is filled up with copies of the first sketches whose weight is 0, so
    every batch has the same shape; weighted means over all batches are exact split means.
    """
    n, b = len(split), hps.batch_size
    _check_fits(split, hps.max_seq_len)
    for start in range(0, n, b):
        idx = np.arange(start, start + b)  # (B,)
        weights = (idx < n).astype(np.float32)  # (B,)
        strokes, lengths = batch_from_indices(split, idx % n, hps.max_seq_len)
        yield strokes, lengths, weights
