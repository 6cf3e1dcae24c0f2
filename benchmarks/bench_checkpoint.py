"""What a checkpoint costs at the `paper` preset: save time, size, and share of training time.

Trains a few steps of the paper model on the bundled sheep data (so that Adam's
moments exist), then times a full checkpoint (validation on the valid split
included, as in training) and a plain training step, in the same process.
Prints the figures and ends with one JSON line.

    python benchmarks/bench_checkpoint.py [--steps 3] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sketch_rnn.trainer import RunConfig, Trainer  # noqa: E402
from sketch_rnn.hparams import preset  # noqa: E402


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed checkpoints")
    parser.add_argument("--preset", default="paper")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ckpt-"))
    try:
        hps = preset(args.preset).replace(num_steps=10 ** 6, save_every=10 ** 6)
        config = RunConfig(tmp / "run", [str(ROOT / "data" / "aaron_sheep.npz")], hps, 0, "bench", None)
        trainer = Trainer(config, progress=False)
        real_save = trainer.save
        trainer.save = lambda step: None  # time training alone
        trainer.hps = hps.replace(num_steps=1)  # the first step builds the train function
        trainer.fit()
        trainer.hps = hps.replace(num_steps=1 + args.steps)
        t0 = time.perf_counter()
        trainer.fit()
        step_times = [(time.perf_counter() - t0) / args.steps]
        save_times, valid_times = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            path = real_save(10 ** 6 + r)
            save_times.append(time.perf_counter() - t0)
        from sketch_rnn.evaluation import evaluate_split
        t0 = time.perf_counter()
        evaluate_split(trainer.model, trainer.data.valid, trainer.hps)
        valid_times.append(time.perf_counter() - t0)
        size = _dir_size(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    step = statistics.median(step_times)
    save = statistics.median(save_times)
    valid = statistics.median(valid_times)
    every = hps.save_every if args.preset != "paper" else 500
    share = save / (every * step + save)
    print(f"preset {args.preset}: training step {step:.3f} s (mean of {args.steps})")
    print(f"checkpoint: {save:.3f} s (validation {valid:.3f} s of it), {size / 2**20:.1f} MiB")
    print(f"share of training time at save_every {every}: {100 * share:.2f}%")
    print(json.dumps({"preset": args.preset, "save_s": round(save, 4), "validation_s": round(valid, 4),
                      "checkpoint_mib": round(size / 2**20, 2), "step_s": round(step, 4),
                      "save_every": every, "save_share": round(share, 5)}))


if __name__ == "__main__":
    main()
