"""`stats`: per-split counts, lengths and pen lifts of sketch-rnn files, and the scale factor."""
from __future__ import annotations

from typing import Any, Sequence

from ..core.strokes import SPLITS
from .dataset import categories_of, scan_splits


def dataset_stats(paths: Sequence[str], max_seq_len: int) -> dict[str, Any]:
    """The `stats` report: per split (all files pooled) and the training scale factor."""
    paths = [str(p) for p in paths]
    builders, fingerprint = scan_splits(paths, max_seq_len)
    report: dict[str, Any] = {s: builders[s].report() for s in SPLITS}
    report.update(scale_factor=builders["train"].scale_factor(), max_seq_len=max_seq_len,
                  categories=categories_of(paths), fingerprint=fingerprint)
    return report
