"""Sketches read from a data file the way a model sees them: the one seam for every command
(sample --from, interpolate --from, complete --from, export --z-from) and the notebooks.

Stroke-3 in the data's own units (float32), offsets clipped to +-OFFSET_LIMIT as training
clips them; no scale factor applied (the sampler's callers pass the run's). `read_split`
gives a whole split (sketches a model cannot take are left out); `read_sketches` gives chosen
ones and refuses, in one line naming the file, the split and the index, any that it cannot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import SketchRNNError
from ..core.strokes import SPLITS
from .dataset import OFFSET_LIMIT
from .npz import load_npz


def _as_model_input(sketch: np.ndarray) -> np.ndarray:
    s = np.asarray(sketch, dtype=np.float32).copy()  # (P, 3)
    np.clip(s[:, :2], -OFFSET_LIMIT, OFFSET_LIMIT, out=s[:, :2])
    return s


def _split_of(path: str | Path, split: str) -> list[np.ndarray]:
    if split not in SPLITS:
        raise SketchRNNError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
    splits = load_npz(path)
    if split not in splits:
        raise SketchRNNError(f"{path}: has no {split!r} split")
    return splits[split]


def read_split(path: str | Path, split: str = "test",
               max_seq_len: int | None = None) -> list[np.ndarray]:
    """Every sketch of one split, in data units; with max_seq_len (a model's N_max), the
    empty ones and those longer than N_max are left out, as training leaves them out."""
    return [_as_model_input(s) for s in _split_of(path, split)
            if max_seq_len is None or 0 < len(s) <= max_seq_len]


def read_sketches(path: str | Path, split: str, indices: Sequence[int], max_seq_len: int,
                  field: str = "index") -> list[np.ndarray]:
    """The sketches at `indices` of one split, in data units. An index outside the split or a
    sketch longer than max_seq_len (the model's N_max) is an error naming `field` (the
    caller's name for the index, e.g. the CLI's "--index"), the file and the split."""
    items, n_max = _split_of(path, split), int(max_seq_len)
    out = []
    for i in indices:
        if not 0 <= i < len(items):
            raise SketchRNNError(f"{field} {i}: {path} [{split}] holds {len(items)} sketches")
        if len(items[i]) > n_max:
            raise SketchRNNError(f"{field} {i}: {path} [{split}] sketch has {len(items[i])} "
                                 f"points; the model takes at most {n_max}")
        out.append(_as_model_input(items[i]))
    return out
