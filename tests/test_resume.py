"""The heart of the project: a stopped and resumed run ends with the same bits as an uninterrupted one.

Every run here is the `tiny` preset on the bundled sheep data (sketches of at most
64 points), checkpointing every 10 steps, on full-length batches (`TINY_HPARAMS`: one traced
shape per run); the bucketed path's own resumes are in test_bucketing. The fingerprint
compared is `info --json`'s: the sha256 of all model and optimizer variables.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sketch_rnn import cli
from sketch_rnn.training import checkpoint as ckpt_io
from sketch_rnn.training import runs
from sketch_rnn.training.callbacks import LearningRateSchedulerPerBatch
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.training.schedules import learning_rate_schedule
from sketch_rnn.training.trainer import Trainer, plan_run

from conftest import (ROOT, SHEEP as DATA, TINY_HPARAMS as HPARAMS, fast_first, fingerprint,
                      train_cmd)
from conftest import train_tiny as train
from conftest import sigterm_after

N = 25


def log_column(run_dir: Path, name: str) -> dict[int, float]:
    with open(run_dir / "logs" / "train.csv", newline="") as f:
        return {int(r["step"]): float(r[name]) for r in csv.DictReader(f)}


@pytest.fixture(scope="session")  # not module: the `kills` tests run on their own worker
def straight(tmp_path_factory) -> tuple[Path, str]:
    """The reference: one uninterrupted run to N steps."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    trainer = train(run_dir, N)
    fp = fingerprint(run_dir)
    assert fp == ckpt_io.fingerprint(trainer.model)  # what info reports is the live state
    return run_dir, fp


@pytest.mark.parametrize("k", fast_first([15, 11, 19]),
                         ids=["mid-way", "just-after-save", "just-before-save"])
def test_stop_at_k_and_resume_gives_same_fingerprint(straight, tmp_path, k) -> None:
    run_dir = tmp_path / "run"
    train(run_dir, k)  # stops at K and saves there, as a Ctrl-C would
    assert runs.info(run_dir)["step"] == k
    resumed = train(run_dir, N)
    assert resumed.step == N
    assert fingerprint(run_dir) == straight[1]
    # The learning rate is continuous across the resume: the step numbered s ran with lr(s - 1).
    schedule = learning_rate_schedule(resumed.hps)
    logged = log_column(run_dir, "lr")
    assert sorted(logged) == list(range(1, N + 1))
    for s, lr in logged.items():
        assert lr == pytest.approx(schedule(s - 1), rel=1e-12)
    # The logged cost is each step's own, so the log reads like the uninterrupted run's.
    cost, straight_cost = log_column(run_dir, "cost"), log_column(straight[0], "cost")
    for s in range(1, N + 1):
        assert cost[s] == pytest.approx(straight_cost[s], rel=1e-4)


@pytest.mark.slow  # two more tiny runs of 25 steps
def test_same_seed_same_fingerprint_other_seed_differs(straight, tmp_path) -> None:
    train(tmp_path / "again", N)
    train(tmp_path / "other", N, seed=1)
    assert fingerprint(tmp_path / "again") == straight[1]
    assert fingerprint(tmp_path / "other") != straight[1]


@pytest.mark.slow  # trains a tiny run (the fast loop's resume check is test_resume's stop mid-way)
def test_fresh_callbacks_jump_back_ours_are_refused(straight, tmp_path) -> None:
    """The article's failure: callbacks re-created on resume restart their schedule at count 0."""
    run_dir = tmp_path / "run"
    train(run_dir, 12)
    config = plan_run(run_dir, [DATA], "tiny", HPARAMS, N, None)
    trainer = Trainer(config, progress=False)
    schedule = learning_rate_schedule(trainer.hps)
    naive = LearningRateSchedulerPerBatch(schedule, config.run_id)  # what "re-create it" gives
    naive.set_model(trainer.model)
    with pytest.raises(SketchRNNError, match="count is 0 but the optimizer has run 12"):
        naive.on_train_begin()
    # Without our check the first resumed step would run with lr(0), not lr(12):
    naive.on_train_batch_begin(0)
    assert naive.current == pytest.approx(schedule(0)) and schedule(0) > schedule(12) * 1.05
    # Ours continues exactly where it stopped.
    assert trainer.lr_callback.count == 12
    trainer.lr_callback.set_model(trainer.model)
    trainer.lr_callback.on_train_batch_begin(0)
    assert trainer.lr_callback.current == pytest.approx(schedule(12), rel=1e-12)


def _rewrite_manifest(ckpt_dir: Path) -> None:
    """Make a tampered file pass the manifest, so that only the unpickler stands in the way."""
    manifest = json.loads((ckpt_dir / ckpt_io.MANIFEST).read_text())
    for name in manifest["files"]:
        manifest["files"][name] = ckpt_io._sha256(ckpt_dir / name)
    (ckpt_dir / ckpt_io.MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.slow  # trains a tiny run (the fast loop's resume check is test_resume's stop mid-way)
def test_callback_pickle_from_another_run_is_refused(ten_step_run, tmp_path) -> None:
    shutil.copytree(ten_step_run, tmp_path / "a")
    train(tmp_path / "b", 10)  # trained here: a run of its own
    a = ckpt_io.newest_checkpoint(tmp_path / "a").path
    b = ckpt_io.newest_checkpoint(tmp_path / "b").path
    shutil.copy(a / ckpt_io.CALLBACKS, b / ckpt_io.CALLBACKS)
    _rewrite_manifest(b)
    with pytest.raises(SketchRNNError, match="belongs to another run"):
        train(tmp_path / "b", 20)


def test_tampered_pickle_is_refused_and_nothing_runs(ten_step_run, tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(ten_step_run, run_dir)
    ckpt = ckpt_io.newest_checkpoint(run_dir).path
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (ckpt / ckpt_io.CALLBACKS).write_bytes(pickle.dumps({"lr_scheduler": Evil()}))
    _rewrite_manifest(ckpt)
    # the command a user types, in this process (exit code and stderr are cli.main's)
    assert cli.main(["train", "--run-dir", str(run_dir), "--num-steps", "20",
                     "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "refused to unpickle" in err and "Traceback" not in err
    assert not marker.exists()
    assert (ckpt / ckpt_io.CALLBACKS).exists()  # the evidence is left in place


@pytest.mark.slow  # trains a tiny run (the fast loop's resume check is test_resume's stop mid-way)
def test_truncated_newest_checkpoint_falls_back_to_previous(straight, twenty_step_run, tmp_path,
                                                           caplog) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(twenty_step_run, run_dir)  # trained to 20: ckpt-10 and ckpt-20
    newest = ckpt_io.newest_checkpoint(run_dir).path
    weights = newest / ckpt_io.WEIGHTS
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert ckpt_io.newest_checkpoint(run_dir, warn=False).step == 10
    train(run_dir, N)
    assert any(r.levelname == "WARNING" and "skipping checkpoint" in r.getMessage()
               for r in caplog.records)  # the CLI shows it on stderr as "warning: ..."
    assert fingerprint(run_dir) == straight[1]


def test_info_json_fields(straight) -> None:
    run_dir, fp = straight
    out = subprocess.run([sys.executable, "-m", "sketch_rnn", "info", str(run_dir), "--json"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    info = json.loads(out)
    assert info["step"] == N and info["fingerprint"] == fp
    assert info["checkpoint"] == "ckpt-00000025"
    assert "ckpt-00000025" in info["checkpoints"] and "ckpt-00000020" in info["checkpoints"]
    assert info["hparams"]["dec_rnn_size"] == 32 and info["params"] > 0


def test_info_gives_the_best_checkpoints_own_cost(straight, tmp_path) -> None:
    """`best` names an older checkpoint than `latest`: info must not pair its name with the
    newest checkpoint's valid cost."""
    run_dir = tmp_path / "run"
    shutil.copytree(straight[0], run_dir)
    (run_dir / "best").write_text(json.dumps({"checkpoint": "ckpt-00000020",
                                              "valid_cost": 0.125}) + "\n")
    cmd = [sys.executable, "-m", "sketch_rnn", "info", str(run_dir)]
    info = json.loads(subprocess.run(cmd + ["--json"], capture_output=True, text=True,
                                     check=True, cwd=ROOT).stdout)
    assert (info["best"], info["best_valid_cost"]) == ("ckpt-00000020", 0.125)
    assert info["valid_cost"] != 0.125  # the newest checkpoint's own, a different number
    text = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "best:        ckpt-00000020  (valid cost 0.125)" in text


def test_architecture_change_and_other_data_are_refused(straight, tmp_path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(straight[0], run_dir)
    with pytest.raises(SketchRNNError, match="cannot change dec_rnn_size"):
        plan_run(run_dir, None, None, "dec_rnn_size=64", None, None)
    with pytest.raises(SketchRNNError, match="cannot change max_seq_len"):
        plan_run(run_dir, None, None, "max_seq_len=80", None, None)
    config = plan_run(run_dir, [str(ROOT / "data" / "kanji_short_kanji.npz")], None, None, 30, None)
    with pytest.raises(SketchRNNError, match="is not the data"):
        Trainer(config, progress=False)


# --------------------------------------------------------------------------- real signals
@pytest.mark.slow
@pytest.mark.kills
def test_sigterm_saves_and_resume_is_exact(straight, tmp_path) -> None:
    run_dir = tmp_path / "run"
    # This run also draws sample sketches at each save: they must not disturb training.
    stopped = sigterm_after(run_dir, 5, train_cmd(run_dir, N, samples=True))
    assert 5 <= stopped < N
    subprocess.run(train_cmd(run_dir, N, samples=True), cwd=ROOT, check=True, capture_output=True)
    assert fingerprint(run_dir) == straight[1]
    assert (run_dir / "samples" / f"step-{N:08d}.svg").read_bytes().startswith(b"<svg")


@pytest.mark.slow  # trains a tiny run (the fast loop's resume check is test_resume's stop mid-way)
def test_run_dir_with_only_unreadable_checkpoints_starts_over_and_keeps_them(ten_step_run,
                                                                            tmp_path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(ten_step_run, run_dir)
    first = ckpt_io.newest_checkpoint(run_dir).path
    (first / ckpt_io.STATE).write_text("{not json")
    train(run_dir, 10)  # nothing readable: a new run, the broken checkpoint moved aside
    assert (run_dir / "checkpoints" / "corrupt-ckpt-00000010" / ckpt_io.STATE).read_text() == "{not json"
    assert runs.info(run_dir)["step"] == 10
