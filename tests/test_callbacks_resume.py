"""Any callback, resumed exactly: the caller's Keras callbacks keep their state across stops.

The evidence (issue 52): runs with a user-defined stateful callback (a per-batch cyclical
w_KL, `stateful_callbacks.CyclicalKL`), Keras' EarlyStopping with patience and
restore_best_weights, and ReduceLROnPlateau with cooldown, stopped by Ctrl-C, SIGTERM and
SIGKILL and resumed, end with the uninterrupted run's fingerprint, every callback's state
and the step at which EarlyStopping stopped; the same callbacks re-created from scratch on
resume (the article's "wrong way") end elsewhere. The reference values come from the
uninterrupted run and from Keras' own rules (EarlyStopping with patience 2 and a min_delta
nothing reaches stops at the third validation: step 30 with checkpoints every 10).
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import stateful_callbacks as sc
from conftest import (ROOT, SHEEP, TINY_HPARAMS, fingerprint, logged_step, sigterm_after,
                      train_cmd, wait_for_step)
from sketch_rnn import cli
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.core.safepickle import NUMPY_ARRAYS, PickleRefused, restricted_loads
from sketch_rnn.training import callback_state
from sketch_rnn.training import checkpoint as ckpt_io
from sketch_rnn.training.callbacks import CheckpointEpochs, from_spec
from sketch_rnn.training.schedules import learning_rate_schedule
from sketch_rnn.training.trainer import Trainer, plan_run

N = 50  # the step target; EarlyStopping ends every run here at STOP
STOP = 30
TESTS = Path(__file__).resolve().parent


def run(run_dir: Path, callbacks, num_steps: int = N, allow=()) -> Trainer:
    trainer = Trainer(plan_run(run_dir, [SHEEP], "tiny", TINY_HPARAMS, num_steps, None,
                               allow_changes=allow), progress=False, callbacks=callbacks)
    trainer.fit()
    return trainer


def log_column(run_dir: Path, name: str) -> dict[int, float]:
    with open(run_dir / "logs" / "train.csv", newline="") as f:
        return {int(r["step"]): float(r[name]) for r in csv.DictReader(f)}


def saved_states(run_dir: Path) -> dict:
    """name -> (class, state) of the newest checkpoint, less the run's own id."""
    newest = ckpt_io.newest_checkpoint(run_dir)
    return {s.name: (s.cls, {k: v for k, v in s.state.items() if k != "run_id"})
            for s in ckpt_io.load_callbacks(newest)}


def early_stop(run_dir: Path) -> dict | None:
    return ckpt_io.newest_checkpoint(run_dir).state.get("early_stop")


@pytest.fixture(scope="session")  # not module: the `kills` tests run on their own worker
def reference(tmp_path_factory) -> tuple[Path, Trainer, list]:
    """The uninterrupted run, with the evidence callbacks (`stateful_callbacks.make`)."""
    run_dir = tmp_path_factory.mktemp("callbacks_straight") / "run"
    callbacks = sc.make()
    trainer = run(run_dir, callbacks)
    assert trainer.outcome == "early_stop" and trainer.step == STOP  # Keras' rule, see above
    # ReduceLROnPlateau (patience 1) halved the learning rate at the second validation (step
    # 20), and the per-batch schedule went on from there: the step numbered s ran with
    # lr(s - 1), halved after step 20 (its cooldown of 1 spares step 30)
    schedule = learning_rate_schedule(trainer.hps)
    for s, lr in log_column(run_dir, "lr").items():
        assert lr == pytest.approx(schedule(s - 1) * (0.5 if s > 20 else 1.0), rel=1e-6)
    return run_dir, trainer, callbacks


# --------------------------------------------------------------------------- no training
def test_from_spec_imports_calls_and_refuses_in_one_line(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_callbacks.py").write_text(
        "import keras\n"
        "def two():\n    return [keras.callbacks.TerminateOnNaN(), keras.callbacks.History()]\n"
        "def one():\n    return keras.callbacks.TerminateOnNaN()\n"
        "def bad():\n    return 3\n"
        "NOT_CALLABLE = 1\n")
    monkeypatch.chdir(tmp_path)  # found beside the user, as `python -m` would
    assert [type(c).__name__ for c in from_spec("my_callbacks:two")] == ["TerminateOnNaN",
                                                                         "History"]
    assert len(from_spec("my_callbacks:one")) == 1
    for spec, said in (("my_callbacks", "expected MODULE:ATTRIBUTE"),
                       ("no_such_module_xyz:f", "cannot import no_such_module_xyz"),
                       ("my_callbacks:nothing", "has no attribute nothing"),
                       ("my_callbacks:NOT_CALLABLE", "is not callable"),
                       ("my_callbacks:bad", "returned int, not a keras.callbacks.Callback")):
        with pytest.raises(SketchRNNError, match=said):
            from_spec(spec)


def test_keras_stateful_callbacks_keep_state_and_take_their_configuration() -> None:
    """EarlyStopping's state travels (best weights included) into an instance configured
    anew; its patience is the one given, not the saved one."""
    weights = [np.arange(6, dtype="float32").reshape(2, 3), np.ones(4, "float32")]
    es = keras.callbacks.EarlyStopping(monitor="val_cost", patience=2)
    es.wait, es.stopped_epoch, es.best, es.best_epoch, es.best_weights = 1, 0, 2.5, 3, weights
    raw = callback_state.encode({"lr_scheduler": _Plain(), "kl_scheduler": _Plain(), "es": es})
    saved = callback_state.decode(raw, "callbacks.pkl")
    again = keras.callbacks.EarlyStopping(monitor="val_cost", patience=5)
    callback_state.load_state(again, saved[2].state)
    assert (again.wait, again.best, again.best_epoch, again.patience) == (1, 2.5, 3, 5)
    np.testing.assert_array_equal(again.best_weights[0], weights[0])
    rlr = keras.callbacks.ReduceLROnPlateau(monitor="val_cost", cooldown=3)
    rlr.wait, rlr.cooldown_counter, rlr.best = 2, 1, 0.7
    assert callback_state.state_of(rlr) == {"wait": 2, "cooldown_counter": 1, "best": 0.7}


class _Plain(keras.callbacks.Callback):
    """No state_dict: its plain attributes are its state, its callables and model are not."""

    def __init__(self) -> None:
        super().__init__()
        self.t, self.seen, self.fn = 4, [[0, 1.5]], lambda x: x


def test_callbacks_pkl_is_plain_data_that_names_no_class() -> None:
    cyc = sc.CyclicalKL()
    cyc.t, cyc.seen = 9, [[0, 2.0]]
    es = keras.callbacks.EarlyStopping()
    es.best_weights = [np.zeros(3, "float32")]
    raw = callback_state.encode({"lr_scheduler": _Plain(), "kl_scheduler": _Plain(),
                                 "CyclicalKL": cyc, "EarlyStopping": es})
    restricted_loads(raw, NUMPY_ARRAYS, "callbacks.pkl")  # NumPy's globals, nothing else
    assert b"stateful_callbacks" in raw  # only as the string of a "class" field
    saved = {s.name: s for s in callback_state.decode(raw, "callbacks.pkl")}
    assert saved["CyclicalKL"].cls == "stateful_callbacks.CyclicalKL"  # a string only
    assert saved["CyclicalKL"].state == {"period": sc.PERIOD, "t": 9, "seen": [[0, 2.0]]}
    assert saved["lr_scheduler"].state == {"t": 4, "seen": [[0, 1.5]]}  # fn is not data


def test_a_state_naming_a_foreign_global_is_refused_before_it_runs(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    raw = pickle.dumps({"format": 2, "callbacks": [
        {"name": "lr_scheduler", "class": "x", "state": {"count": Evil()}}]})
    with pytest.raises(PickleRefused, match="refused to unpickle (posix|os).system"):
        callback_state.decode(raw, "callbacks.pkl")
    assert not marker.exists()


def test_other_callbacks_are_refused_by_name_unless_allowed() -> None:
    saved = [callback_state.SavedCallback("lr_scheduler", "a.L", {}),
             callback_state.SavedCallback("kl_scheduler", "a.K", {}),
             callback_state.SavedCallback("EarlyStopping",
                                          "keras.src.callbacks.early_stopping.EarlyStopping",
                                          {"wait": 1}),
             callback_state.SavedCallback("Gone", "m.Gone", {})]
    lr, kl = type("L", (), {"__module__": "a"})(), type("K", (), {"__module__": "a"})()
    given = {"lr_scheduler": lr, "kl_scheduler": kl,
             "EarlyStopping": keras.callbacks.TerminateOnNaN(), "New": sc.CyclicalKL()}
    with pytest.raises(SketchRNNError) as e:
        callback_state.match(saved, given, False, "ckpt/callbacks.pkl")
    said = str(e.value)
    assert "New (stateful_callbacks.CyclicalKL) was not saved" in said
    assert "Gone (m.Gone) was saved but not given" in said
    assert "EarlyStopping was saved as keras.src.callbacks.early_stopping.EarlyStopping" in said
    assert "--allow-callback-change" in said and "\n" not in said
    states, change = callback_state.match(saved, given, True, "ckpt/callbacks.pkl")
    assert change == {"added": ["New"], "removed": ["Gone"], "replaced": ["EarlyStopping"]}
    assert set(states) == {"lr_scheduler", "kl_scheduler"}  # the changed ones start fresh


def test_callback_names_are_unique_and_ours_are_reserved() -> None:
    a, b = keras.callbacks.TerminateOnNaN(), keras.callbacks.TerminateOnNaN()
    named_cb = sc.CyclicalKL()
    named_cb.name = "lr_scheduler"
    assert list(callback_state.name_callbacks([a, b, named_cb])) == [
        "TerminateOnNaN", "TerminateOnNaN#2", "lr_scheduler#2"]


# --------------------------------------------------------------------------- the evidence
@pytest.mark.slow  # trains tiny runs
@pytest.mark.parametrize("k", [15, 20, 29], ids=["mid-interval", "at-a-checkpoint",
                                                     "just-before-the-stop"])
def test_ctrl_c_and_resume_equals_the_uninterrupted_run(reference, tmp_path, k) -> None:
    """Ctrl-C after step K (a SIGINT to this process), then the same callbacks, made anew,
    given to the resumed run: the instances given hold the uninterrupted run's states."""
    ref_dir, ref, ref_callbacks = reference
    run_dir = tmp_path / "run"
    first = run(run_dir, sc.make(stop_at=k))
    assert first.outcome == "interrupted" and first.step == k and early_stop(run_dir) is None
    again = sc.make()
    resumed = run(run_dir, again)
    assert resumed.outcome == "early_stop" and early_stop(run_dir) == early_stop(ref_dir) == {
        "step": STOP, "callback": "EarlyStopping"}
    assert fingerprint(run_dir) == fingerprint(ref_dir)
    # in memory too: EarlyStopping restored the same best weights at the end of training
    assert ckpt_io.fingerprint(resumed.model) == ckpt_io.fingerprint(ref.model)
    np.testing.assert_equal(saved_states(run_dir), saved_states(ref_dir))
    for mine, theirs in zip(again[:3], ref_callbacks[:3]):  # the caller's own references
        np.testing.assert_equal(callback_state.state_of(mine), callback_state.state_of(theirs))
    # every validation reached the callbacks once: the Ctrl-C's save was not an epoch
    assert [e for e, _ in again[0].seen] == [0, 1, 2]


@pytest.mark.slow  # trains tiny runs
def test_callbacks_recreated_from_scratch_on_resume_end_elsewhere(reference, tmp_path) -> None:
    """The control, the article's "wrong way": the same callbacks re-created on resume
    without their state. The cyclical w_KL restarts its cycle, EarlyStopping its patience."""
    ref_dir = reference[0]
    run_dir = tmp_path / "run"
    run(run_dir, sc.make(stop_at=15))
    trainer = Trainer(plan_run(run_dir, [SHEEP], "tiny", TINY_HPARAMS, N, None),
                      progress=False, callbacks=sc.make())
    fresh = dict(zip(list(trainer.callbacks)[2:], sc.make()))  # nothing restored into these
    trainer.callbacks.update(fresh)
    ours = {n: s for n, s in trainer.epochs.pending.items() if n in callback_state.SCHEDULES}
    trainer.epochs = CheckpointEpochs(trainer.callbacks, ours, trainer.hps.save_every)
    trainer.fit()
    assert fingerprint(run_dir) != fingerprint(ref_dir)
    assert early_stop(run_dir)["step"] == 40 != early_stop(ref_dir)["step"]


@pytest.mark.slow  # trains a tiny run
def test_early_stop_is_saved_reported_and_a_rerun_trains_nothing(reference, tmp_path,
                                                                 capsys) -> None:
    run_dir = tmp_path / "run"
    argv = ["train", "--data", SHEEP, "--run-dir", str(run_dir), "--preset", "tiny",
            "--hparams", TINY_HPARAMS, "--num-steps", str(N), "--no-progress", "--no-samples",
            "--callback", "stateful_callbacks:make"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"stopped early at step {STOP} by EarlyStopping" in out
    assert fingerprint(run_dir) == fingerprint(reference[0])
    assert cli.main([*argv[:-4], "--num-steps", "60", *argv[-3:]]) == 0  # a larger target too
    assert f"stopped early at step {STOP} by EarlyStopping" in capsys.readouterr().out
    assert [p.name for p in ckpt_io.checkpoint_dirs(run_dir)][0] == f"ckpt-{STOP:08d}"
    # the way on: resume without the callback that stopped it, allowing the change
    assert cli.main([*argv[:-2], "--callback", "stateful_callbacks:CyclicalKL",
                     "--allow-callback-change"]) == 0
    assert f"done: step {N} of {N}" in capsys.readouterr().out
    lineage = ckpt_io.newest_checkpoint(run_dir).state["lineage"]
    assert lineage == [{"kind": "callback_change", "step": STOP, "added": [],
                        "removed": ["EarlyStopping", "ReduceLROnPlateau", "SigintAt"],
                        "replaced": []}]


class StopAfter(keras.callbacks.Callback):
    """Stops training after step `at`, between checkpoints (as TerminateOnNaN would)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None) -> None:
        if int(self.model.optimizer.iterations.numpy()) == self.at:
            self.model.stop_training = True


@pytest.mark.slow  # trains a tiny run
def test_a_stop_between_checkpoints_is_saved_there(tmp_path) -> None:
    run_dir = tmp_path / "run"
    trainer = run(run_dir, [StopAfter(13)], num_steps=20)
    assert (trainer.outcome, trainer.step) == ("early_stop", 13)
    assert early_stop(run_dir) == {"step": 13, "callback": "StopAfter"}
    assert run(run_dir, [StopAfter(13)], num_steps=20).outcome == "early_stop"
    assert ckpt_io.newest_checkpoint(run_dir).step == 13


@pytest.mark.slow  # trains a tiny run
def test_other_callbacks_on_resume_are_refused_or_recorded(ten_step_run, tmp_path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(ten_step_run, run_dir)
    with pytest.raises(SketchRNNError, match=r"CyclicalKL \(stateful_callbacks.CyclicalKL\) "
                                             "was not saved"):
        run(run_dir, [sc.CyclicalKL()], num_steps=20)
    assert ckpt_io.newest_checkpoint(run_dir).step == 10  # refused before anything ran
    trainer = run(run_dir, [sc.CyclicalKL()], num_steps=20, allow={"callbacks"})
    assert trainer.outcome == "done"
    lineage = ckpt_io.newest_checkpoint(run_dir).state["lineage"]
    assert lineage == [{"kind": "callback_change", "step": 10, "added": ["CyclicalKL"],
                        "removed": [], "replaced": []}]
    assert saved_states(run_dir)["CyclicalKL"][1]["t"] == 10  # it started fresh at step 10


def _rewrite(ckpt_dir: Path, change) -> None:
    """Change callbacks.pkl's data and make the manifest agree (a deliberate tamper)."""
    path = ckpt_dir / ckpt_io.CALLBACKS
    data = pickle.loads(path.read_bytes())
    change(data)
    path.write_bytes(pickle.dumps(data))
    manifest = json.loads((ckpt_dir / ckpt_io.MANIFEST).read_text())
    manifest["files"][ckpt_io.CALLBACKS] = ckpt_io._sha256(path)
    (ckpt_dir / ckpt_io.MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.slow  # trains tiny runs
def test_a_tampered_callback_state_is_refused_and_runs_nothing(tmp_path, capsys) -> None:
    base = tmp_path / "base"
    run(base, [sc.CyclicalKL()], num_steps=10)

    def other_class(data):
        data["callbacks"][2]["class"] = "os.system"  # a string: never imported

    def other_count(data):
        data["callbacks"][0]["state"]["count"] = 3

    def garbage_count(data):
        data["callbacks"][0]["state"]["count"] = "ten"

    for change, said in ((other_class, "CyclicalKL was saved as os.system"),
                         (other_count, "count is 3 but the optimizer has run 10"),
                         (garbage_count, "malformed saved state")):
        run_dir = tmp_path / change.__name__
        shutil.copytree(base, run_dir)
        _rewrite(ckpt_io.newest_checkpoint(run_dir).path, change)
        argv = ["train", "--run-dir", str(run_dir), "--num-steps", "20", "--no-progress",
                "--no-samples", "--callback", "stateful_callbacks:CyclicalKL"]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err
        assert [p.name for p in ckpt_io.checkpoint_dirs(run_dir)] == ["ckpt-00000010"]


SHIPPED = ("sheep", "sheep_decoder")


@pytest.mark.slow  # one step of the shipped (small preset) models
@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_runs_resume_as_before(tmp_path, name) -> None:
    """checkpoints/sheep and sheep_decoder (callbacks.pkl of format 1, our schedules pickled
    as objects) resume at their counts and save the new format one step later."""
    run_dir = tmp_path / name
    shutil.copytree(ROOT / "checkpoints" / name, run_dir, symlinks=True)
    step = ckpt_io.newest_checkpoint(run_dir).step
    assert b"LearningRateSchedulerPerBatch" in (ckpt_io.newest_checkpoint(run_dir).path
                                                / ckpt_io.CALLBACKS).read_bytes()
    trainer = Trainer(plan_run(run_dir, [SHEEP], None, None, step + 1, None), progress=False)
    assert trainer.lr_callback.count == trainer.kl_callback.count == step
    assert trainer.fit() == 0 and trainer.outcome == "done"
    states = saved_states(run_dir)
    assert list(states) == ["lr_scheduler", "kl_scheduler"]
    assert states["lr_scheduler"][1]["count"] == states["kl_scheduler"][1]["count"] == step + 1


# --------------------------------------------------------------------------- real signals
@pytest.fixture()
def callbacks_importable(monkeypatch) -> None:
    """The trainer processes find `stateful_callbacks` as a user's module on their path."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p))


def _cmd(run_dir: Path) -> list[str]:
    return train_cmd(run_dir, N, "--callback", "stateful_callbacks:make")


@pytest.mark.slow
@pytest.mark.kills
def test_sigterm_and_resume_equal_the_uninterrupted_run(reference, tmp_path,
                                                        callbacks_importable) -> None:
    run_dir = tmp_path / "run"
    stopped = sigterm_after(run_dir, 12, _cmd(run_dir))
    assert 12 <= stopped < STOP and early_stop(run_dir) is None
    done = subprocess.run(_cmd(run_dir), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"stopped early at step {STOP} by EarlyStopping" in done.stdout
    assert fingerprint(run_dir) == fingerprint(reference[0])
    np.testing.assert_equal(saved_states(run_dir), saved_states(reference[0]))
    again = subprocess.run(_cmd(run_dir), cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and f"stopped early at step {STOP}" in again.stdout
    assert "nothing to do" in again.stdout + again.stderr
    assert logged_step(run_dir) == STOP  # it trained nothing


@pytest.mark.slow
@pytest.mark.kills
def test_sigkills_at_random_moments_then_resume_equal_the_uninterrupted_run(
        reference, tmp_path, callbacks_importable) -> None:
    """SIGKILLs of the trainer at random moments (mid-step, mid-save), each followed by the
    same command; the end is the uninterrupted run's bits, states and early stop."""
    run_dir = tmp_path / "run"
    rng = random.Random(52)
    kills = 0
    while kills < 4:
        start = ckpt_io.newest_checkpoint(run_dir, False)
        start = start.step if start else 0
        since = time.time()
        proc = subprocess.Popen(_cmd(run_dir), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        target = min(start + rng.randint(2, 9), STOP - 10)  # the kill lands before the stop
        wait_for_step(run_dir, target, proc, since)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        assert logged_step(run_dir) < STOP
        proc.kill()
        assert proc.wait() == -signal.SIGKILL
        kills += 1
    final = subprocess.run(_cmd(run_dir), cwd=ROOT, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert kills >= 3
    assert fingerprint(run_dir) == fingerprint(reference[0])
    np.testing.assert_equal(saved_states(run_dir), saved_states(reference[0]))
    assert early_stop(run_dir) == {"step": STOP, "callback": "EarlyStopping"}
