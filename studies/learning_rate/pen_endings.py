"""The benchmark's pen rows for any run: of 100 prior samples at tau 0.25 and 1.0, the fraction
that draw the end-of-sketch state before N_max, and their mean length in points.

    python studies/learning_rate/pen_endings.py checkpoints/sheep checkpoints/sheep_decoder

Why: bench_time_to_quality.py prints these rows for the runs it trains (a few hundred steps);
the shipped runs (thousands of steps) say what the rows of a model that draws whole sheep
look like, so that a low "ended" fraction is not read as a defect of the faster path alone.
The rows are the benchmark's own (`pen_states`), with its sample count and seed.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "benchmarks"))

from bench_time_to_quality import pen_states  # noqa: E402

from sketch_rnn.training.runs import load_run  # noqa: E402

SAMPLES, SEED = 100, 0  # the benchmark's defaults (--samples, seed 0)

if __name__ == "__main__":
    for run_dir in sys.argv[1:]:
        for tau, row in pen_states(load_run(run_dir).model, SAMPLES, SEED).items():
            print(f"{run_dir}: tau {tau}: {row['ended_before_n_max']:.2f} ended, "
                  f"mean {row['mean_length']:.0f}", flush=True)
