"""The teacher-forced view's time per row-step, as `evaluate` runs it and in two variants of the
layer-norm LSTM's step that keep its matmul on oneDNN: the bf16 recurrent kernel cast once
before the time loop instead of at every step, and that plus the step's element-wise part
(layer norms, gates) as one XLA cluster (`model.backend.xla_cluster`).

    python studies/evaluate_floor/step_variants.py

Each variant replaces the shipped sheep decoder's `sequence` in this process only, and
`teacher_forced._graph` (the view's own graph) is traced afresh under it, for 400 and 2000
sketch-code pairs of the test split. All six graphs are then called in turn, ROUNDS times
(interleaved, so that the machine's drift falls on all alike); prints the median and best
per row-step and the largest difference of the scores from the shipped step's (absolute: a
score, L_s + L_p per step, can be near 0). Ends with one JSON line.
"""
import json
import time
from types import SimpleNamespace

import numpy as np
from keras import ops

from sketch_rnn.core.machine import describe
from sketch_rnn.evaluation import teacher_forced as teacher
from sketch_rnn.evaluation.report import load_split
from sketch_rnn.model import cell_parts
from sketch_rnn.model.backend import xla_cluster
from sketch_rnn.model.precision import matmul, operand
from sketch_rnn.training.runs import load_run

ROWS = (400, 2000)
run = load_run("checkpoints/sheep")
model, cell = run.model, run.model.decoder
split, _ = load_split(run, "checkpoints/sheep", None, "test")
strokes, lengths, mu = teacher._inputs(model, [split.sketch(i) for i in range(100)], 1.0, None)


ROUNDS = 7


def traced(rows: int):
    """(a call of the view's graph on `rows` pairs, its scores), traced under the decoder's
    `sequence` as it is now."""
    for key in [k for k in model.__dict__ if "compiled" in k]:  # `backend.compiled`'s cache
        model.__dict__.pop(key)
    j, i = np.repeat(np.arange(100), 100)[:rows], np.tile(np.arange(100), 100)[:rows]
    graph, args = teacher._graph(model, 250), (strokes[j], lengths[j], mu[i])
    return (lambda: graph(*args)), np.asarray(graph(*args))  # (rows,)


def fused_update(pre_in, hw, c, gamma, beta, c_gamma, c_beta):
    """`cell_parts.normalised_update` on tensors (an XLA cluster takes no Keras variables)."""
    norms = SimpleNamespace(ln_gamma=gamma, ln_beta=beta, ln_c_gamma=c_gamma, ln_c_beta=c_beta)
    return cell_parts.normalised_update(norms, pre_in + hw, c, None)


def sequence_variant(fuse: bool):
    """A `sequence` for the decoder: kernel cast once; with `fuse`, the update as a cluster."""
    update = xla_cluster(fused_update)

    def sequence(xp, states, keep=None):
        w = operand(cell.recurrent_kernel, cell.precision)  # cast once, before the loop
        norms = [ops.convert_to_tensor(v.value) for v in
                 (cell.ln_gamma, cell.ln_beta, cell.ln_c_gamma, cell.ln_c_beta)]

        def step(xp_t, carry, keep_t=None):
            h, c = carry
            hw = matmul(h, w, cell.precision)  # (B, 4u) on oneDNN
            if fuse:
                h, c = update(xp_t, hw, c, *norms)
            else:
                h, c = cell_parts.normalised_update(cell, xp_t + hw, c, keep_t)
            return h, (h, c)

        return cell_parts.scan_sequence(step, xp, tuple(states), keep)

    return sequence


calls: dict = {}
results: dict = {}
reference: dict = {}
for name, variant in [("shipped", None), ("cast_once", False), ("cast_once_xla_update", True)]:
    if variant is not None:
        cell.sequence = sequence_variant(variant)
    for rows in ROWS:
        calls[name, rows], scores = traced(rows)
        reference.setdefault(rows, scores)
        results[f"{name}_{rows}_max_abs_diff"] = float(np.max(np.abs(scores - reference[rows])))
times: dict = {key: [] for key in calls}
for _ in range(ROUNDS):
    for key, call in calls.items():
        t = time.perf_counter()
        call()
        times[key].append((time.perf_counter() - t) / key[1] / 250 * 1e6)  # us a row-step
for (name, rows), values in times.items():
    diff = results[f"{name}_{rows}_max_abs_diff"]
    results[f"{name}_{rows}_us_median"] = round(float(np.median(values)), 2)
    results[f"{name}_{rows}_us_best"] = round(min(values), 2)
    print(f"{name:>22} {rows:5d} rows: median {np.median(values):6.2f} us a row-step (best "
          f"{min(values):6.2f}), scores "
          f"{'identical' if diff == 0 else f'differ by up to {diff:.1e}'} (scores "
          f"{np.min(reference[rows]):.3f} to {np.max(reference[rows]):.3f})")
print(json.dumps({"study": "evaluate_floor/step_variants", "rounds": ROUNDS, **results,
                  "cpu": describe()["cpu"]}))
