"""Shared test helpers: the bundled data, tiny training runs, fingerprints, CLI processes.

`slow` marks tests that train real processes repeatedly (signals, kills, several workers,
fresh TensorFlow processes) and all but one parameter of a training check;
`python -m pytest -m "not slow" tests` is the fast inner loop, while the README's command
runs everything.

The README's command runs the suite on pytest-xdist workers (`-n auto --dist loadgroup`).
`pytest_collection_modifyitems` below keeps on one worker, one after another, the tests that
share a module-scoped fixture (so a tiny run a module trains once is trained once, not once
per worker), and puts every test marked `kills` (it signals a live trainer at chosen moments)
into one group, so no two of them ever compete for the cores with each other.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHEEP = str(ROOT / "data" / "aaron_sheep.npz")
# the `tiny` preset on sheep sketches of at most 64 points, a checkpoint every 10 steps, in
# float32 on every CPU (a new run would otherwise pick bfloat16 where the CPU has it)
TINY_HPARAMS = "max_seq_len=64,save_every=10,batch_size=8,precision=float32"


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "slow: trains real processes repeatedly, or is one more "
                            "parameter of a training check the fast loop runs once (minutes)")
    config.addinivalue_line("markers", "kills: signals a live trainer at chosen moments; "
                            "these run on one xdist worker, one at a time")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    """Give xdist's `loadgroup` its groups: tests joined by a module- or class-scoped fixture
    of ours form one group (union-find over the fixtures they use); the groups holding a
    `kills` test merge into one. Session fixtures join nothing: each worker builds its own."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    def join(a: str, b: str) -> None:
        parent[root(a)] = root(b)

    for item in items:
        own = f"test:{item.nodeid}"
        root(own)
        for name in item.fixturenames:
            defs = item._fixtureinfo.name2fixturedefs.get(name, ())
            if defs and defs[-1].scope in ("module", "class") and defs[-1].baseid:
                join(own, f"{defs[-1].baseid}::{name}")
        if item.get_closest_marker("kills"):
            join(own, "kills")
    members: dict[str, int] = {}
    for item in items:
        key = root(f"test:{item.nodeid}")
        members[key] = members.get(key, 0) + 1
    for item in items:
        key = root(f"test:{item.nodeid}")
        if members[key] > 1 or key == root("kills"):
            item.add_marker(pytest.mark.xdist_group(key.removeprefix("test:")))


@pytest.fixture(scope="session")
def ten_step_run(tmp_path_factory) -> Path:
    """A `tiny` run trained 10 steps (TINY_HPARAMS: one checkpoint, ckpt-00000010), trained
    once per worker: a test that breaks or resumes such a run takes a copy
    (`shutil.copytree`) instead of training the same 10 steps again."""
    run_dir = tmp_path_factory.mktemp("ten_steps") / "run"
    train_tiny(run_dir, 10)
    return run_dir


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
