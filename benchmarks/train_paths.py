"""Today's training path and the new one as the speed benchmarks run them (issue 23), and
the timing of both on real sheep batches: `bench_train.py --real-batches` runs
`real_batch_comparison`, which times each path in a child (`run_real_child`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from flop_counts import count_flops
from sketch_rnn.core.hparams import preset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_TRAIN = os.path.join(ROOT, "benchmarks", "bench_train.py")  # the children's entry point

# today's path as issue 23 found it: the encoder's gates rebuilt in its backward (the new
# path stores them, `FastPath.encoder_recompute`); children parse it as --tune knobs
TODAY_TUNE = "recompute=1"


def knobs(tune: str) -> dict[str, str]:
    """--tune "k=v,k=v" -> {k: v}."""
    return dict(kv.split("=") for kv in tune.split(",") if kv)


def fast_path(tuned: dict[str, str]):
    """The product's FastPath with the --tune knobs xla_loops / recompute (0 or 1) on top."""
    from dataclasses import replace

    from sketch_rnn.model.backend import DEFAULT
    fields = {"xla_loops": "xla_loops", "recompute": "encoder_recompute"}
    return replace(DEFAULT, **{f: tuned[k] == "1" for k, f in fields.items() if k in tuned})


def weighted_median(value: dict, prob: dict) -> float:
    """Median of a discrete distribution: value[k] with probability prob[k] (midpoint where
    the cumulative probability meets 1/2 exactly, as with an even count of equal draws)."""
    keys = sorted(value, key=value.get)
    cum = np.cumsum([prob[k] for k in keys]) / sum(prob.values())
    i = int(np.searchsorted(cum, 0.5 - 1e-12))
    if abs(cum[i] - 0.5) < 1e-12 and i + 1 < len(keys):
        return (value[keys[i]] + value[keys[i + 1]]) / 2
    return value[keys[i]]


def run_real_child(preset_name: str, bucketed: bool, steps: int, overrides: str,
                   tune: str = "") -> dict:
    """Time training steps on real sheep batches (issue 23).

    The synthetic batch is full length, so it cannot show bucketing: here both paths train
    on `data/aaron_sheep.npz` batches of seed 0 (bucketed_batches false: every batch padded
    to N_max; true: to its length bucket, `data.batches`), one trace per batch shape
    (`trainer.per_shape_train_function`, every shape compiled before the clock starts).
    Every padded length T (bucket) is timed `steps` times; with P(T) the probability that a
    step draws it, the step's distribution gives the MEDIAN step (the T where P's cumulative
    sum crosses 1/2, by each T's median time) and the EXPECTED step (sum of P(T) times T's
    median time: what sets the wall time of a long run). The steps 0..steps-1 as drawn are
    timed as well (best, median): a median of ten draws depends on which buckets they hit.
    Executed FLOPs are counted per batch at its padded T.
    """
    from sketch_rnn.data import load_data, step_batch
    from sketch_rnn.data.batches import (bucket_draw_probabilities, bucket_padded_lengths,
                                         length_buckets)
    from sketch_rnn.model.build import build_model
    from sketch_rnn.training.trainer import configure_determinism, per_shape_train_function

    hps = preset(preset_name).replace(bucketed_batches=bucketed).with_overrides(overrides)
    configure_determinism(0)
    data = load_data([os.path.join(ROOT, "data", "aaron_sheep.npz")], hps.max_seq_len)
    options = fast_path(knobs(tune))
    model = build_model(hps, 0, options=options)
    train = per_shape_train_function(model)
    prob = {hps.max_seq_len: 1.0}  # P(a batch is padded to T), by T
    if bucketed:
        buckets = length_buckets(data.train, hps.batch_size)
        prob = {}
        pads = bucket_padded_lengths(data.train, buckets, hps.max_seq_len)
        for p, t in zip(bucket_draw_probabilities(buckets), pads):
            prob[t] = prob.get(t, 0.0) + float(p)
    batches, by_t, k = [], {}, 0
    while k < steps or min(len(by_t.get(t, [])) for t in prob) < steps:
        s, n = step_batch(data.train, hps, 0, k)
        b = {"strokes": s, "lengths": n}
        batches += [b] * (k < steps)
        by_t.setdefault(s.shape[1] - 1, []).append(b)
        k += 1
    t0 = time.perf_counter()
    for group in by_t.values():  # trace / compile each shape
        train(iter(group[:1]))
    warmup = time.perf_counter() - t0

    def timed(b) -> float:
        t0 = time.perf_counter()
        float(train(iter([b]))["cost"])  # wait for the step
        return time.perf_counter() - t0

    times = [timed(b) for b in batches]
    per_t = {t: float(np.median([timed(b) for b in by_t[t][:steps]])) for t in sorted(prob)}
    flops = [count_flops(hps, hps.batch_size, b["strokes"].shape[1] - 1,
                         recompute=options.encoder_recompute) for b in batches]
    flops = [ex["model"] + ex["recompute"] for ex in flops]
    return {"preset": preset_name, "bucketed": bucketed, "precision": hps.precision,
            "best_s": min(times), "median_s": float(np.median(times)),
            "mean_s": float(np.mean(times)), "warmup_s": warmup, "traces": model.trace_count,
            "expected_s": sum(prob[t] * per_t[t] for t in prob),
            "distribution_median_s": weighted_median(per_t, prob),
            "per_length_s": {str(t): round(v, 4) for t, v in per_t.items()},
            "expected_padded_length": sum(p * t for t, p in prob.items()),
            "executed_gf": float(np.mean(flops)) / 1e9,
            "mean_padded_length": float(np.mean([b["strokes"].shape[1] - 1 for b in batches])),
            "gflops_per_s": float(np.sum(flops) / np.sum(times)) / 1e9}


def real_batch_comparison(preset_name: str, steps: int, overrides: str, peak: float,
                          summary: dict, new_precision: str = "float32", tune: str = "") -> int:
    """Run both paths in children; print them; add paper_step_ratio (today over new, of the
    median step), _mean (of the mean step) and _drawn (of the medians of the steps drawn),
    the statistics of `run_real_child`.

    Today: every batch at N_max, float32, the encoder's gates recomputed (TODAY_TUNE). New:
    bucketed, at `new_precision` (bf16 where the CPU has it), the product's FastPath, i.e.
    what a new `train` run gets on this machine.
    """
    rows = {}
    for name, flag, precision, knobs in (("today", "0", "float32", TODAY_TUNE),
                                         ("new", "1", new_precision, "")):
        hparams = ",".join(filter(None, [f"precision={precision}", overrides]))
        cmd = [sys.executable, BENCH_TRAIN, "--real-child", f"{preset_name}@{flag}",
               "--steps", str(steps), "--hparams", hparams,
               "--tune", ",".join(filter(None, [knobs, tune]))]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        rows[name] = r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"real sheep {preset_name} {name:>5} (bucketed {r['bucketed']}, {r['precision']}): "
              f"median {r['distribution_median_s']:.3f} s/step, mean {r['expected_s']:.3f} "
              f"(padded length {r['expected_padded_length']:.0f}); steps 0-{steps - 1} as "
              f"drawn: best {r['best_s']:.3f}, median {r['median_s']:.3f}, mean padded length "
              f"{r['mean_padded_length']:.0f}, executed {r['executed_gf']:.4g} GF/step, "
              f"{r['gflops_per_s']:.1f} GF/s = {100 * r['gflops_per_s'] / peak:.0f}% of peak, "
              f"{r['traces']} traces")
        print(f"{'':11}per padded length, median s/step: " + ", ".join(
            f"{t}: {v:.3f}" for t, v in r["per_length_s"].items()))
        for key in ("distribution_median_s", "expected_s", "expected_padded_length", "best_s",
                    "median_s", "executed_gf", "gflops_per_s", "mean_padded_length"):
            summary[f"real_{preset_name}_{name}_{key}"] = round(r[key], 4)
        summary[f"real_{preset_name}_{name}_fraction_of_peak"] = round(r["gflops_per_s"] / peak, 3)
    ratios = {stat: rows["today"][key] / rows["new"][key] for stat, key in (
        ("", "distribution_median_s"), ("_mean", "expected_s"), ("_drawn", "median_s"))}
    if f"{preset_name}_step_ratio" in summary:  # the synthetic full-length one: keep it too
        summary[f"{preset_name}_step_ratio_synthetic"] = summary[f"{preset_name}_step_ratio"]
    for stat, ratio in ratios.items():
        summary[f"{preset_name}_step_ratio{stat}"] = round(ratio, 3)
    print(f"{preset_name}_step_ratio (today / new, median steps): {ratios['']:.2f}; of the "
          f"mean steps: {ratios['_mean']:.2f}; of the medians of steps 0-{steps - 1} as "
          f"drawn: {ratios['_drawn']:.2f}")
    return 0
