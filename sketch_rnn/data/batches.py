"""Batches: the training batch of a step (a pure function of (seed, step)) and eval batches.

Sketches leave a packed `SketchSplit` normalised by its scale factor, are optionally
augmented (random scale, dropped points) and padded to stroke-5 with S_0 first.

Length buckets (hparam `bucketed_batches`): the bundled sheep average 125 points of
N_max = 250, so a batch padded to N_max is half padding. A bucketed batch is drawn from one
of `NUM_BUCKETS` equal-count groups of the length-sorted split and padded to that group's
own length (`bucket_padded_lengths`), so a step computes about the points it has. Draw:
bucket j with probability |G_j| / n, then B distinct sketches uniformly inside it; sketch
i is then in a batch with probability (|G_j| / n) (B / |G_j|) = B / n, as in the uniform
draw, so no sketch is seen more or less often (only which sketches share a batch changes).
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


NUM_BUCKETS = 8  # length groups: few shapes to compile, padding at most ~1/8 of the range
PAD_MULTIPLE = 8  # a bucket's padded length is its longest sketch rounded up to this


def length_buckets(split: SketchSplit, batch_size: int) -> list[np.ndarray]:
    """The split's sketch indices in equal-count groups of increasing length.

    A stable sort of the lengths, cut into min(NUM_BUCKETS, n // B) groups by
    np.array_split (sizes differ by at most one), so each holds at least B sketches and a
    batch can be drawn inside one without replacement. A split smaller than B is one group.
    """
    order = np.argsort(split.lengths(), kind="stable")  # (n,)
    k = max(1, min(NUM_BUCKETS, len(split) // batch_size))
    return np.array_split(order, k)


def bucket_padded_lengths(split: SketchSplit, buckets: list[np.ndarray], n_max: int) -> list[int]:
    """Per bucket, the number of points its batches are padded to (S_0 excluded).

    The bucket's longest sketch rounded up to a multiple of PAD_MULTIPLE, plus one, so every
    sketch has at least one end-of-sketch step after its last point (where L_p learns to
    stop), capped at N_max. Augmentation only removes points, so it stays an upper bound.
    At most NUM_BUCKETS distinct values: a bounded set of shapes for the compiled loops.
    """
    lengths = split.lengths()
    out = []
    for idx in buckets:
        longest = int(lengths[idx].max()) + 1
        out.append(min(n_max, -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE))
    return out


def bucket_draw_probabilities(buckets: list[np.ndarray]) -> np.ndarray:
    """P(a step draws bucket j), (k,) float64: proportional to its size, so every sketch of
    the split is equally likely to be seen, whichever bucket it fell in."""
    sizes = np.array([len(g) for g in buckets], dtype=np.float64)  # (k,)
    return sizes / sizes.sum()


def bucketed_train_batch(split: SketchSplit, hps: Any, seed: int, step: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The bucketed training batch of `step`, a pure function of (seed, step).

    rng = np.random.default_rng([seed, step]) picks a bucket (probability proportional to
    its size), then B distinct sketches in it, then the augmentation. Returns strokes
    (B, T+1, 5) float32 with T the bucket's padded length (<= N_max) and lengths (B,) int32.
    """
    n, b = len(split), hps.batch_size
    if n == 0:
        raise SketchRNNError(f"split {split.name} is empty: nothing to train on")
    _check_fits(split, hps.max_seq_len)
    buckets, pads = _bucket_table(split, b, hps.max_seq_len)
    rng = np.random.default_rng([int(seed), int(step)])
    j = int(rng.choice(len(buckets), p=bucket_draw_probabilities(buckets)))
    group = buckets[j]
    idx = group[rng.choice(len(group), size=b, replace=len(group) < b)]  # (B,)
    return batch_from_indices(split, idx, pads[j], hps.random_scale_factor,
                              hps.augment_stroke_prob, rng)


_TABLES: dict = {}


def _bucket_table(split: SketchSplit, batch_size: int, n_max: int
                  ) -> tuple[list[np.ndarray], list[int]]:
    """length_buckets and their padded lengths, computed once per (split, B, N_max)."""
    key = (id(split), batch_size, n_max)
    cached = _TABLES.get(key)
    if cached is None or cached[0] is not split:
        buckets = length_buckets(split, batch_size)
        cached = (split, buckets, bucket_padded_lengths(split, buckets, n_max))
        if len(_TABLES) >= 8:  # the table holds its split: keep only a few alive
            _TABLES.clear()
        _TABLES[key] = cached
    return cached[1], cached[2]


def step_batch(split: SketchSplit, hps: Any, seed: int, step: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """The batch training step `step` sees: bucketed or full-length, as hps says."""
    if getattr(hps, "bucketed_batches", False):
        return bucketed_train_batch(split, hps, seed, step)
    return train_batch(split, hps, seed, step)


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
