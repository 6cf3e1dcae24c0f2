"""The benchmark's pen rows for any run: of 100 prior samples at tau 0.25 and 1.0, the fraction
that draw the end-of-sketch state before N_max, and their mean length in points.

    python studies/learning_rate/pen_endings.py checkpoints/sheep checkpoints/sheep_decoder

Why: bench_time_to_quality.py prints these rows for the runs it trains (a few hundred steps);
the shipped runs (thousands of steps) say what the rows of a model that draws whole sheep
look like, so that a low "ended" fraction is not read as a defect of the faster path alone.
"""
from __future__ import annotations

import sys

import numpy as np

from sketch_rnn.generation.sampling import sample
from sketch_rnn.training.runs import load_run

TEMPERATURES = (0.25, 1.0)  # as bench_time_to_quality.py
SAMPLES, SEED = 100, 0


def pen_rows(run_dir: str) -> list[tuple[float, float, float]]:
    """(tau, fraction ended before N_max, mean length) per temperature."""
    run = load_run(run_dir)
    rows = []
    for tau in TEMPERATURES:
        lengths = np.array([len(s) for s in sample(run.model, SAMPLES, temperature=tau,
                                                   seed=SEED)])  # (SAMPLES,)
        rows.append((tau, float(np.mean(lengths < run.hps.max_seq_len)), float(lengths.mean())))
    return rows


if __name__ == "__main__":
    for run_dir in sys.argv[1:]:
        for tau, ended, mean in pen_rows(run_dir):
            print(f"{run_dir}: tau {tau}: {ended:.2f} ended, mean {mean:.0f}", flush=True)
