"""`sketch-rnn evaluate`: the paper's loss terms over a split (`losses.evaluate_split`).

Loads a run, its data with the run's own scale factor, and reports L_R, L_s, L_p, KL and
cost over every sketch of the split. For conditional models it also reports how much of each
sketch its code keeps (`retrieval.latent_report`): ret_at_1 / ret_at_5 (a greedy
reconstruction from mu retrieves its own sketch among the split's; chance ret_chance_at_1 =
1/n), active_units and kl_nats (KL summed over z, in nats per sketch) -- a low `recon` alone
can hide a code the decoder ignores.
"""
from __future__ import annotations

from typing import Any

from ..data import load_data
from ..training.runs import load_run
from .losses import evaluate_split
from .retrieval import latent_report


def evaluate_run(run_dir: str, data_paths: list[str] | None = None, split: str = "test"
                 ) -> dict[str, Any]:
    """One JSON-ready dict: the losses over `split` of the run's newest checkpoint."""
    run = load_run(run_dir)
    paths = data_paths or run.data_paths
    data = load_data(paths, run.hps.max_seq_len, scale_factor=run.scale_factor)
    sketches = data.split(split)
    result = evaluate_split(run.model, sketches, run.hps)
    result.update(split=split, step=run.step, count=len(sketches))
    if run.hps.conditional:
        normalised = [sketches.sketch(i) for i in range(len(sketches))]
        result.update(latent_report(run.model, normalised, scale_factor=1.0),
                      ret_chance_at_1=1.0 / len(sketches))
    return result
