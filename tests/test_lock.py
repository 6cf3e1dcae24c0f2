"""One live trainer per run directory, honest recovery, and saves that fail cleanly.

The reference for "bit-identical" is always an uninterrupted in-process run with the same
command (tiny preset, sheep data).
"""
from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, fingerprint, logged_step, train_cmd, train_tiny, wait_for_step
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.core.files import StorageError
from sketch_rnn.training import checkpoint as ckpt_io
from sketch_rnn.training.lock import RunLocked, run_lock
from sketch_rnn.training.runs import info

N = 40  # steps of the runs here: checkpoints at 10, 20, 30, 40


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> str:
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    train_tiny(run_dir, N)
    return fingerprint(run_dir)


# --------------------------------------------------------------------------- the lock itself
def test_second_holder_is_refused_and_named(tmp_path) -> None:
    with run_lock(tmp_path / "run"):
        with pytest.raises(RunLocked, match=rf"in use by another trainer \(PID {os.getpid()} on"):
            with run_lock(tmp_path / "run"):
                pass
    with run_lock(tmp_path / "run"):  # released when the holder's block ends
        pass


def test_lock_is_released_when_the_holder_is_killed(tmp_path) -> None:
    code = ("import sys, time; from sketch_rnn.training.lock import run_lock\n"
            f"with run_lock({str(tmp_path / 'run')!r}):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([os.sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(RunLocked, match=f"PID {proc.pid} on"):
        with run_lock(tmp_path / "run"):
            pass
    proc.kill()
    proc.wait()
    with run_lock(tmp_path / "run"):  # no stale lock after SIGKILL
        pass


# --------------------------------------------------------------------------- two trainers
@pytest.mark.slow
@pytest.mark.kills
def test_second_trainer_is_refused_and_the_first_is_unaffected(straight, tmp_path) -> None:
    run_dir = tmp_path / "run"
    since = time.time()
    first = subprocess.Popen(train_cmd(run_dir, N), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    wait_for_step(run_dir, 1, first, since)
    second = subprocess.run(train_cmd(run_dir, N), cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 2
    assert f"in use by another trainer (PID {first.pid} on host" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert first.poll() is None  # the holder trains on
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert fingerprint(run_dir) == straight
    assert not list((run_dir / "checkpoints").glob("corrupt-*"))


SOAK_N = 80  # long enough for 10 kills at random steps, checkpoints crossed between them


@pytest.mark.slow
@pytest.mark.kills
def test_kill_soak_ends_bit_identical_without_quarantine(tmp_path) -> None:
    """At least 10 SIGKILLs of the trainer itself at random moments, each followed by an
    immediate restart of the same command: the end is the uninterrupted run's bits, and
    no good checkpoint was ever moved aside. Prints the soak's figures."""
    train_tiny(tmp_path / "straight", SOAK_N)
    straight = fingerprint(tmp_path / "straight")
    run_dir = tmp_path / "run"
    rng = random.Random(16)
    kills = mid_run = lost = 0
    resume_s: list[float] = []
    while kills < 10:
        start = info(run_dir)["step"] if ckpt_io.newest_checkpoint(run_dir, False) else 0
        assert start < SOAK_N, "a kill landed after the run's last checkpoint"
        since = time.time()
        proc = subprocess.Popen(train_cmd(run_dir, SOAK_N), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        wait_for_step(run_dir, start + 1, proc, since)  # it resumed and trains
        resumed = time.time()
        resume_s.append(resumed - since)
        # a random moment: some steps on (checkpoints come every 10), then a delay of up to
        # two steps at this machine's own pace, so that a fast CPU (a tiny step in ~10 ms on a
        # Zen 5) kills as often mid-step and mid-save as a slow one, and never past the end
        target = min(start + rng.randint(2, 14), SOAK_N - 4)
        wait_for_step(run_dir, target, proc, since)
        step_s = (time.time() - resumed) / (target - start - 1)  # s per step here
        time.sleep(rng.uniform(0.0, 2.0) * step_s)
        if proc.poll() is not None:  # finished before the kill: not counted as a kill
            assert proc.returncode == 0, proc.stderr.read()
            break
        reached = logged_step(run_dir)
        proc.kill()
        assert proc.wait() == -signal.SIGKILL
        kills += 1
        newest = ckpt_io.newest_checkpoint(run_dir, False)
        mid_run += newest is not None and 0 < newest.step < SOAK_N
        lost += reached - (newest.step if newest else 0)  # steps to redo after this kill
    final = subprocess.run(train_cmd(run_dir, SOAK_N), cwd=ROOT, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert kills >= 10 and mid_run >= 1
    assert fingerprint(run_dir) == straight
    assert not list((run_dir / "checkpoints").glob("corrupt-*"))
    assert "moved checkpoint" not in final.stderr
    resume_s.sort()
    print(json.dumps({"kills": kills, "mid_run_kills": mid_run, "corrupt_dirs": 0,
                      "steps_redone": lost, "median_time_to_resume_s":
                      round(resume_s[len(resume_s) // 2], 2)}))


# --------------------------------------------------------------------------- recovery
@pytest.mark.slow  # trains a tiny run (the fast loop's resume check is test_resume's stop mid-way)
def test_quarantine_names_the_failing_file_and_spares_good_checkpoints(tmp_path, caplog) -> None:
    run_dir = tmp_path / "run"
    train_tiny(run_dir, 30)
    bad = run_dir / "checkpoints" / "ckpt-00000030"
    (bad / ckpt_io.CALLBACKS).write_bytes(b"garbage")
    caplog.clear()
    moved = ckpt_io.quarantine_newer(run_dir, 10)  # 20 verifies, 30 does not
    err = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert [p.name for p in moved] == ["corrupt-ckpt-00000030"]
    assert "ckpt-00000030" in err and "callbacks.pkl does not match its sha256" in err
    assert (run_dir / "checkpoints" / "ckpt-00000020").is_dir()  # good: left alone
    listed = info(run_dir)["quarantined"]
    assert listed == [{"name": "corrupt-ckpt-00000030",
                       "bytes": sum(f.stat().st_size for f in moved[0].iterdir())}]
    from sketch_rnn.cli import main

    assert main(["info", str(run_dir), "--remove-corrupt"]) == 0
    assert info(run_dir)["quarantined"] == []


@pytest.mark.slow  # trains a tiny run (the fast loop's resume check is test_resume's stop mid-way)
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_failed_save_leaves_previous_checkpoint_and_latest_intact(ten_step_run, tmp_path,
                                                                   monkeypatch, err) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(ten_step_run, run_dir)
    before = {p.name: p.stat().st_mtime for p in (run_dir / "checkpoints").iterdir()}
    latest = (run_dir / "latest").read_text()
    real_fill = ckpt_io.CheckpointWriter._fill

    def fill_then_fail(tmp: Path, *args) -> None:
        real_fill(tmp, *args)  # the temporary directory now holds a whole checkpoint...
        raise OSError(err, os.strerror(err))  # ...and the storage refuses what comes next

    monkeypatch.setattr(ckpt_io.CheckpointWriter, "_fill", staticmethod(fill_then_fail))
    with pytest.raises(StorageError) as caught:
        train_tiny(run_dir, 20)
    message = str(caught.value)
    assert "\n" not in message and os.strerror(err) in message
    assert "ckpt-00000010 is intact" in message and "run the same command again" in message
    assert (run_dir / "latest").read_text() == latest
    assert {p.name: p.stat().st_mtime for p in (run_dir / "checkpoints").iterdir()} == before
    assert ckpt_io.newest_checkpoint(run_dir).step == 10
    monkeypatch.undo()
    train_tiny(run_dir, 20)  # the same command resumes
    assert ckpt_io.newest_checkpoint(run_dir).step == 20


def test_lock_refuses_file_systems_without_locks(tmp_path, monkeypatch) -> None:
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(SketchRNNError, match="does not support locks.*SKETCH_RNN_NO_LOCK=1"):
        with run_lock(tmp_path / "run"):
            pass
    monkeypatch.setenv("SKETCH_RNN_NO_LOCK", "1")
    with run_lock(tmp_path / "run"):  # the documented way out
        pass
