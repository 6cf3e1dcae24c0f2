"""What a checkpoint costs at a preset: save time, size, and share of training time.

Trains a few steps of the preset's model on the bundled sheep data (so that Adam's moments
exist), then times full checkpoints (validation on the valid split included, as in
training) and, in the same process, the training steps.

The share of training time is save / (save_every * step + save), with
- save_every: the PRESET's own (`preset(name).save_every`: 500 at paper, 250 at small, 10 at
  tiny), not the huge interval this script sets so that no checkpoint lands inside the
  timed steps (reading that one made every preset but `paper` look free);
- step: measured here, in one `Trainer.fit` of --steps steps after a warm-up step (data
  stream, schedule callbacks and logger included, checkpoints switched off): the median of
  the per-step intervals of the run's own log (`wall_s` in logs/train.csv), which leaves
  out fit's set-up as a long run amortises it (with --steps 1, the fit's mean, set-up
  included); or the value given with --step-s (e.g. a median from bench_train.py at the
  same preset). The output names the source.
The first validation traces the evaluation graph; one untimed validation runs before the
timed checkpoints, as a long run pays that once. Prints the figures, ends with one JSON line.

    python benchmarks/bench_checkpoint.py [--preset paper] [--steps 4] [--repeats 3]
    python benchmarks/bench_checkpoint.py --preset tiny --steps 2 --repeats 1   # smoke
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sketch_rnn.core.hparams import preset  # noqa: E402
from sketch_rnn.training.trainer import RunConfig, Trainer  # noqa: E402

NEVER = 10 ** 6  # a save interval and step count no timed run reaches


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _log_intervals(run_dir: Path) -> list[float]:
    """Seconds between consecutive steps of the last fit, from its training log."""
    with open(run_dir / "logs" / "train.csv", newline="", encoding="utf-8") as f:
        wall = [float(row["wall_s"]) for row in csv.DictReader(f) if int(row["step"]) >= 2]
    return [b - a for a, b in zip(wall, wall[1:])]


def measure(preset_name: str, steps: int, repeats: int) -> dict:
    """Step times (one fit of `steps` steps), checkpoint and validation times, size."""
    from sketch_rnn.evaluation.losses import evaluate_split

    tmp = Path(tempfile.mkdtemp(prefix="bench-ckpt-"))
    try:
        hps = preset(preset_name).replace(num_steps=NEVER, save_every=NEVER)
        config = RunConfig(tmp / "run", [str(ROOT / "data" / "aaron_sheep.npz")], hps, 0,
                           "bench", None)
        trainer = Trainer(config, progress=False)
        real_save = trainer.save
        trainer.save = lambda step: None  # time training alone
        trainer.hps = hps.replace(num_steps=1)  # the first step builds the train function
        trainer.fit()
        trainer.hps = hps.replace(num_steps=1 + steps)
        t0 = time.perf_counter()
        trainer.fit()
        fit_mean = (time.perf_counter() - t0) / steps
        intervals = _log_intervals(config.run_dir)
        evaluate_split(trainer.model, trainer.data.valid, trainer.hps)  # traces, untimed
        save_times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            path = real_save(NEVER + r)
            save_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        evaluate_split(trainer.model, trainer.data.valid, trainer.hps)
        valid = time.perf_counter() - t0
        return {"fit_mean_s": fit_mean, "intervals": intervals,
                "save_s": statistics.median(save_times), "save_best_s": min(save_times),
                "validation_s": valid, "valid_sketches": len(trainer.data.valid),
                "size": _dir_size(path)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed checkpoints")
    parser.add_argument("--step-s", type=float, default=None,
                        help="seconds per training step measured elsewhere at this preset "
                             "(default: measured here)")
    args = parser.parse_args(argv)

    every = preset(args.preset).save_every  # the preset's own interval, not the timing one
    m = measure(args.preset, args.steps, args.repeats)
    here = statistics.median(m["intervals"]) if m["intervals"] else m["fit_mean_s"]
    here_source = (f"median of {len(m['intervals'])} step intervals of the training log"
                   if m["intervals"] else "mean of 1 step of Trainer.fit, set-up included")
    step, source = ((args.step_s, "--step-s (given)") if args.step_s is not None
                    else (here, f"measured here: {here_source}"))
    share = m["save_s"] / (every * step + m["save_s"])
    print(f"preset {args.preset}: training step {step:.4f} s ({source}); measured here "
          f"{here:.4f} s, mean of the whole fit of {args.steps} steps {m['fit_mean_s']:.4f} s")
    print(f"checkpoint: median {m['save_s']:.3f} s, best {m['save_best_s']:.3f} s of "
          f"{args.repeats} (validation of {m['valid_sketches']} sketches {m['validation_s']:.3f} "
          f"s of it), {m['size'] / 2**20:.2f} MiB")
    print(f"share of training time at the preset's save_every {every}: "
          f"{m['save_s']:.3f} / ({every} x {step:.4f} + {m['save_s']:.3f}) = {100 * share:.2f}%")
    print(json.dumps({"preset": args.preset, "save_every": every,
                      "save_every_source": f"preset({args.preset!r}).save_every",
                      "step_s": round(step, 5), "step_source": source,
                      "step_s_measured_here": round(here, 5),
                      "fit_mean_step_s": round(m["fit_mean_s"], 5),
                      "save_s": round(m["save_s"], 4), "save_best_s": round(m["save_best_s"], 4),
                      "validation_s": round(m["validation_s"], 4),
                      "valid_sketches": m["valid_sketches"],
                      "checkpoint_mib": round(m["size"] / 2**20, 3),
                      "save_share": round(share, 5)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
