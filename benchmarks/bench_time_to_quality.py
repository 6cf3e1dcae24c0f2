"""Wall time until the model is good: today's training path against the new one, side by side.

    python benchmarks/bench_time_to_quality.py [--budget 1800] [--validate-every 250]
        [--levels 0.8,0.6,0.45] [--seeds 0] [--new-hparams precision=bfloat16] [--png out.png]
    python benchmarks/bench_time_to_quality.py --budget 60 --validate-every 50   # smoke
    python benchmarks/bench_time_to_quality.py --seeds 0,1,2 ...   # + quality-spread table
    python benchmarks/bench_time_to_quality.py ... --curves points.json  # + every point as JSON

Each run trains the `small` preset from scratch on data/aaron_sheep.npz in its own child
process (one after the other, same cores): "today" with bucketed_batches=false,
precision=float32, learning_rate=0.001, batch_size=100 (every batch padded to N_max, Adam
from the paper's 1e-3, B 100: the path before issue 23), "new" with the `small` preset's own
learning rate and batch (3e-3 and 50 since issue 23), bucketed_batches=true,
precision=float32, then --new-hparams (later keys win, so
`--new-hparams precision=bfloat16` adds the bf16 matmuls; a new run's own default precision
depends on the CPU, so both are pinned here). Both paths run the product's FastPath (the
encoder's gates stored since, not rebuilt as when issue 23 was filed: bit-identical in float32,
a few % faster, so today's times are if anything shorter than that path's were).
Every --validate-every steps the clock stops and the model is scored with
the unchanged validation (`evaluation.losses.evaluate_split`: masked L_R over the whole
valid split, full-length N_max batches, what `sketch-rnn evaluate` reports); the clock then
resumes. "Wall seconds" are training seconds only (validation excluded; traces and XLA
compiles included, a user pays them: the new path traces its step once and XLA compiles
its loops once per bucket length, up to 8, each the first time its bucket is drawn, so a
very short --budget shows mostly that); each point also carries the total seconds.
A level's time is interpolated linearly between the validations either side of its first
crossing (the first validation at or below it would round it up by up to --validate-every
steps). A path stops at --budget training seconds.

At the end each run samples 100 sketches from the prior at tau 0.25 and 1.0 and reports
the fraction that end (draw the end-of-sketch state) before N_max steps: what the bucketed
loss' missing late end-of-sketch pen terms could change in the learned pen states
(model.mixture.sketch_loss_terms).

Output: a table of seconds per level and path, the curves PNG (valid L_R against training
seconds), CPU model and flags, the pen-state rows, with --seeds the table of valid L_R at
equal steps (today's min..max over the seeds, new path's first seed), and ONE final JSON line
with `time_to_quality_ratio` = the smallest today/new ratio over the levels both reached
(null when none). On a shared CPU the seconds are noisy: compare runs of one invocation.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sketch_rnn.core.machine import cpu_flags, cpu_model  # noqa: E402  (no TF import)

DATA = os.path.join(ROOT, "data", "aaron_sheep.npz")
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
TEMPERATURES = (0.25, 1.0)
# today's path: the training before issue 23 (every batch N_max long, float32, Adam from 1e-3,
# B 100)
TODAY = "bucketed_batches=false,precision=float32,learning_rate=0.001,batch_size=100"


def cpu_model_and_flags() -> tuple[str, dict[str, bool]]:
    """(model name, which of FLAGS /proc/cpuinfo lists)."""
    flags = cpu_flags()
    return cpu_model(), {f: f in flags for f in FLAGS}


# --------------------------------------------------------------------------- child: one run
def run_child(overrides: str, seed: int, budget: float, every: int, samples: int) -> dict:
    """Train small from scratch until `budget` training seconds; the curve and pen rows."""
    import keras

    from sketch_rnn.training.trainer import Trainer, TrainStream, plan_run
    from sketch_rnn.evaluation.losses import evaluate_split

    big = 10**7
    with tempfile.TemporaryDirectory() as tmp:
        plan = plan_run(os.path.join(tmp, "run"), [DATA], "small", overrides, big, seed)
        trainer = Trainer(plan, progress=False)
    model, hps, data = trainer.model, trainer.hps, trainer.data
    curve: list[dict] = []
    t_start = time.perf_counter()

    class Clock(keras.callbacks.Callback):
        """Validates every `every` steps with the clock stopped; stops after the budget."""

        def __init__(self) -> None:
            super().__init__()
            self.train_s, self.since = 0.0, time.perf_counter()

        def point(self, step: int) -> None:
            self.train_s += time.perf_counter() - self.since
            valid = evaluate_split(model, data.valid, hps)
            curve.append({"step": step, "train_s": round(self.train_s, 2),
                          "total_s": round(time.perf_counter() - t_start, 2),
                          "recon": valid["recon"], "stroke": valid["stroke"],
                          "pen": valid["pen"], "kl": valid["kl"]})
            print(json.dumps(curve[-1]), file=sys.stderr, flush=True)
            if self.train_s >= budget:
                self.model.stop_training = True
            self.since = time.perf_counter()

        def on_train_begin(self, logs=None) -> None:
            self.point(0)

        def on_train_batch_end(self, batch, logs=None) -> None:
            if (batch + 1) % every == 0:
                self.point(batch + 1)

    stream = TrainStream(data.train, hps, plan.seed, 0, big)
    model.fit(stream.fit_input(model), epochs=1, verbose=0, shuffle=False,
              callbacks=[trainer.lr_callback, trainer.kl_callback, Clock()])
    return {"curve": curve, "pen": pen_states(model, samples, seed),
            "traces": getattr(model, "trace_count", 1),
            "hparams": {"bucketed_batches": hps.bucketed_batches}}


def pen_states(model, samples: int, seed: int) -> dict[str, dict[str, float]]:
    """Per temperature: the fraction of `samples` prior samples that draw the end-of-sketch
    state before N_max, and their mean length in points."""
    from sketch_rnn.generation.sampling import sample

    pen = {}
    for tau in TEMPERATURES:
        lengths = np.array([len(s) for s in sample(model, samples, temperature=tau,
                                                   seed=seed)])  # (samples,)
        pen[str(tau)] = {"ended_before_n_max": float(np.mean(lengths < model.hps.max_seq_len)),
                         "mean_length": float(lengths.mean())}
    return pen


# --------------------------------------------------------------------------- parent
def level_times(today: list[dict], new: list[dict],
                levels: list[float]) -> tuple[dict[str, dict], list[float]]:
    """Per level, each path's `time_to` and their ratio (today / new); and the ratios found.
    `benchmarks/record.py` recomputes a committed `--curves` file's line with it."""
    per_level, ratios = {}, []
    for level in levels:
        a, b = time_to(today, level), time_to(new, level)
        r = a / b if a is not None and b is not None and b > 0 else None
        if r is not None:
            ratios.append(r)
        per_level[str(level)] = {"today_s": a, "new_s": b, "ratio": r}
    return per_level, ratios


def time_to(curve: list[dict], level: float) -> float | None:
    """Training seconds at which valid L_R first reaches `level`: linear between the last
    validation above it and the first at or below it (validations every k steps would
    otherwise round each path's time up to its next validation, by up to k steps' time)."""
    for before, p in zip([None] + curve[:-1], curve):
        if p["recon"] <= level:
            if before is None or before["recon"] <= level:
                return p["train_s"]
            frac = (before["recon"] - level) / (before["recon"] - p["recon"])
            return before["train_s"] + frac * (p["train_s"] - before["train_s"])
    return None


def run_path(overrides: str, seed: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", overrides, "--seeds", str(seed),
           "--budget", str(args.budget), "--validate-every", str(args.validate_every),
           "--samples", str(args.samples)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                                                   "PYTHONPATH": ROOT})
    if out.returncode != 0:
        raise SystemExit(f"child {overrides!r} seed {seed} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(runs: dict[str, dict], path: str, levels: list[float]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in runs.items():
        c = r["curve"]
        ax.plot([p["train_s"] for p in c], [p["recon"] for p in c], marker=".", label=name)
    for level in levels:
        ax.axhline(level, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("training wall seconds (validation excluded)")
    ax.set_ylabel("valid L_R (full-length, as `evaluate`)")
    ax.set_title("small on aaron_sheep: time to quality")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def spread_table(runs: dict[str, dict], seeds: list[int]) -> list[dict]:
    """At each step every run validated: today's min..max over seeds, the new path's value."""
    today = [{p["step"]: p["recon"] for p in runs[f"today seed {s}"]["curve"]} for s in seeds]
    new = {p["step"]: p["recon"] for p in runs[f"new seed {seeds[0]}"]["curve"]}
    steps = sorted(set(new).intersection(*today))
    rows = []
    for step in steps:
        lo, hi = min(t[step] for t in today), max(t[step] for t in today)
        rows.append({"step": step, "today_min": lo, "today_max": hi, "new": new[step],
                     "within": lo <= new[step] <= hi})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=float, default=1800.0, help="training seconds per path")
    p.add_argument("--validate-every", type=int, default=250, help="steps between validations")
    p.add_argument("--levels", default="0.8,0.6,0.45", help="valid L_R levels to time")
    p.add_argument("--seeds", default="0", help="seeds; several: today's path on each, the "
                   "new path on the first, and the quality-spread table")
    p.add_argument("--new-hparams", default="", help="extra k=v overrides of the new path")
    p.add_argument("--today-hparams", default="", help="extra k=v overrides of today's path")
    p.add_argument("--samples", type=int, default=100, help="prior samples per temperature")
    p.add_argument("--png", default="time_to_quality.png", help="curves PNG path")
    p.add_argument("--curves", default="", help="also write every run's validation points "
                   "(step, training s, L_R, L_s, L_p, KL) and pen rows to this JSON file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.child is not None:
        print(json.dumps(run_child(args.child, seeds[0], args.budget, args.validate_every,
                                   args.samples)))
        return 0

    levels = [float(v) for v in args.levels.split(",")]
    cpu, flags = cpu_model_and_flags()
    print(f"CPU {cpu}; {os.cpu_count()} CPUs; flags " +
          " ".join(f"{k}={'yes' if v else 'no'}" for k, v in flags.items()))
    today_hp = ",".join(x for x in (TODAY, args.today_hparams) if x)
    new_hp = ",".join(x for x in ("bucketed_batches=true,precision=float32", args.new_hparams)
                      if x)
    print(f"today: --hparams {today_hp}\nnew:   --hparams {new_hp}\n"
          f"budget {args.budget:.0f} training s per path, validation every "
          f"{args.validate_every} steps; load average {os.getloadavg()[0]:.2f}")
    runs: dict[str, dict] = {}
    for i, seed in enumerate(seeds):
        runs[f"today seed {seed}"] = run_path(today_hp, seed, args)
        if i == 0:
            runs[f"new seed {seed}"] = run_path(new_hp, seed, args)
    today, new = runs[f"today seed {seeds[0]}"], runs[f"new seed {seeds[0]}"]

    print(f"\n{'level':>8} {'today s':>9} {'new s':>9} {'today/new':>10}")
    per_level, ratios = level_times(today["curve"], new["curve"], levels)
    for level in levels:
        a, b, r = (per_level[str(level)][k] for k in ("today_s", "new_s", "ratio"))
        seconds = [f"{v:.0f}" if v is not None else "-" for v in (a, b)]
        print(f"{level:8.3f} {seconds[0]:>9} {seconds[1]:>9} "
              f"{f'{r:.2f}' if r is not None else '-':>10}")
    for name, r in runs.items():
        last = r["curve"][-1]
        print(f"{name}: {last['step']} steps in {last['train_s']:.0f} training s "
              f"({last['total_s']:.0f} s with validation), final valid L_R {last['recon']:.4f} "
              f"(L_s {last['stroke']:.4f}, L_p {last['pen']:.4f}), {r['traces']} step traces")
    print(f"\npen states of {args.samples} prior samples per tau (fraction ending before N_max, "
          "mean length):")
    for name, r in runs.items():
        cells = ", ".join(f"tau {t}: {v['ended_before_n_max']:.2f} ended, mean {v['mean_length']:.0f}"
                          for t, v in r["pen"].items())
        print(f"  {name}: {cells}")
    spread = None
    if len(seeds) > 1:
        spread = spread_table(runs, seeds)
        print(f"\nvalid L_R at equal steps: today over seeds {seeds} (min..max) vs new seed "
              f"{seeds[0]}")
        for row in spread:
            print(f"  step {row['step']:6d}: today {row['today_min']:.4f}..{row['today_max']:.4f}"
                  f"  new {row['new']:.4f}  {'within' if row['within'] else 'OUTSIDE'}")
    plot(runs, args.png, levels)
    print(f"curves: {args.png}")
    if args.curves:
        with open(args.curves, "w", encoding="utf-8") as f:
            json.dump({"cpu": cpu, "today_hparams": today_hp, "new_hparams": new_hp,
                       "runs": runs}, f, indent=1)
        print(f"points: {args.curves}")
    summary = {"cpu": cpu, "flags": flags, "cpu_count": os.cpu_count(), "budget_s": args.budget,
               "validate_every": args.validate_every, "new_hparams": new_hp, "levels": per_level,
               "time_to_quality_ratio": round(min(ratios), 3) if ratios else None,
               "steps": {k: v["curve"][-1]["step"] for k, v in runs.items()},
               "pen": {k: v["pen"] for k, v in runs.items()},
               "spread_within": None if spread is None else all(r["within"] for r in spread)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
