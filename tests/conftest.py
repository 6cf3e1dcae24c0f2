"""Shared test helpers: the bundled data, tiny training runs, fingerprints, CLI processes.

`slow` marks tests that train real processes repeatedly (signals, kills, several workers);
`python -m pytest -m "not slow" tests` is the fast inner loop, while the README's command
runs everything.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHEEP = str(ROOT / "data" / "aaron_sheep.npz")
# the `tiny` preset on sheep sketches of at most 64 points, a checkpoint every 10 steps, in
# float32 on every CPU (a new run would otherwise pick bfloat16 where the CPU has it)
TINY_HPARAMS = "max_seq_len=64,save_every=10,batch_size=8,precision=float32"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "slow: trains real processes repeatedly (minutes)")


def tiny_model(max_seq_len: int, seed: int, **overrides):
    """An untrained `tiny`-preset SketchRNN (built, not compiled) for tests of generation."""
    from sketch_rnn.core.hparams import preset
    from sketch_rnn.model.vae import SketchRNN

    return SketchRNN(preset("tiny").replace(max_seq_len=max_seq_len, **overrides), seed=seed)


def train_tiny(run_dir: Path, num_steps: int, seed: int | None = None,
               hparams: str = TINY_HPARAMS, data: str = SHEEP):
    """Train (or resume) a `tiny` run in this process; returns the Trainer."""
    from sketch_rnn.training.trainer import Trainer, plan_run

    trainer = Trainer(plan_run(run_dir, [data], "tiny", hparams, num_steps, seed),
                      progress=False)
    assert trainer.fit() == 0
    return trainer


def fingerprint(run_dir: Path) -> str:
    """What `sketch-rnn info --json` reports: the sha256 of every trained variable."""
    from sketch_rnn.training.runs import info

    return info(run_dir)["fingerprint"]


def train_cmd(run_dir: Path, num_steps: int, *extra: str, hparams: str = TINY_HPARAMS,
              samples: bool = False) -> list[str]:
    """The `sketch-rnn train` command line of a tiny run, as a user would type it."""
    return [sys.executable, "-m", "sketch_rnn", "train", "--data", SHEEP, "--run-dir",
            str(run_dir), "--preset", "tiny", "--hparams", hparams, "--num-steps",
            str(num_steps), "--no-progress", *([] if samples else ["--no-samples"]), *extra]


def logged_step(run_dir: Path) -> int:
    """The last step in logs/train.csv (0 when nothing is logged yet)."""
    csv_path = run_dir / "logs" / "train.csv"
    if not csv_path.exists():
        return 0
    lines = csv_path.read_text().splitlines()
    last = lines[-1].split(",")[0] if len(lines) > 1 else ""
    return int(last) if last.isdigit() else 0


def wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, since: float,
                  timeout: float = 300) -> None:
    """Wait until this process (not an earlier, killed one) has logged `step` in train.csv."""
    csv_path = run_dir / "logs" / "train.csv"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if csv_path.exists() and csv_path.stat().st_mtime > since and \
                logged_step(run_dir) >= step:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("training did not progress")
