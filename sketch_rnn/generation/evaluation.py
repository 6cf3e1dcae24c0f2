"""`evaluate`: the paper's loss terms over a split (see `training.validation`).

Loads a run, its data with the run's own scale factor, and reports L_R, L_s, L_p, KL and
cost over every sketch of the split.
"""
from __future__ import annotations

from typing import Any

from ..data import load_data
from ..training.runs import load_run
from ..training.validation import evaluate_split


def evaluate_run(run_dir: str, data_paths: list[str] | None = None, split: str = "test"
                 ) -> dict[str, Any]:
    """One JSON-ready dict: the losses over `split` of the run's newest checkpoint."""
    run = load_run(run_dir)
    paths = data_paths or run.data_paths
    data = load_data(paths, run.hps.max_seq_len, scale_factor=run.scale_factor)
    result = evaluate_split(run.model, data.split(split), run.hps)
    result.update(split=split, step=run.step, count=len(data.split(split)))
    return result
