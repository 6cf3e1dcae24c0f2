"""tf.distribute training: 2 logical CPU devices (mirrored) and 2 local worker processes
(multi-worker), with the same exactness guarantees as one device.

Every TensorFlow run is a subprocess: logical devices and the multi-worker cluster must be
set up before TensorFlow starts. Runs are the `tiny` preset on the bundled sheep data.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sketch_rnn.training import checkpoint as ckpt_io
from sketch_rnn.training import runs
from sketch_rnn.training import distribute
from sketch_rnn.core.errors import SketchRNNError

ROOT = Path(__file__).resolve().parents[1]
DATA = str(ROOT / "data" / "aaron_sheep.npz")
HPARAMS = "max_seq_len=64,save_every=5,batch_size=8,precision=float32"
# the multi-worker runs (six processes) on full-length batches: one trace of the step per
# process instead of one per length bucket drawn; the mirrored runs keep new runs' bucketed path
FULL_LENGTH = HPARAMS + ",bucketed_batches=false"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", distribute.HEALTH_CHECK_ENV: "1"}


def _train_cmd(run_dir: Path, num_steps: int, *extra: str, hparams: str = HPARAMS
               ) -> list[str]:
    return [sys.executable, "-m", "sketch_rnn", "train", "--data", DATA, "--run-dir", str(run_dir),
            "--preset", "tiny", "--hparams", hparams, "--num-steps", str(num_steps),
            "--no-progress", *extra]


def _train(run_dir: Path, num_steps: int, *extra: str) -> subprocess.CompletedProcess:
    out = subprocess.run(_train_cmd(run_dir, num_steps, *extra), cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _fingerprint(run_dir: Path) -> str:
    return runs.info(run_dir)["fingerprint"]


MIRRORED = ("--distribute", "mirrored", "--cpu-devices", "2")

# every test that trains runs several workers or devices in subprocesses for minutes: `slow`


# --------------------------------------------------------------------------- mirrored
FIRST_STEP = r"""
import json, sys
from sketch_rnn.training import distribute
dist = distribute.setup("mirrored", 2)
import keras, numpy as np
from sketch_rnn.data import load_data
from sketch_rnn.core.hparams import preset
from sketch_rnn.model.build import build_model
from sketch_rnn.training.trainer import TrainStream, configure_determinism

def first_step(d, hps, data):
    configure_determinism(0)
    with d.scope():
        model = build_model(hps, 0, d.make_optimizer(hps))
    grabbed = {}
    class Grab(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            grabbed.update({k: float(v) for k, v in logs.items()})
    model.fit(TrainStream(data.train, hps, 0, 0, 1), epochs=1, verbose=0, shuffle=False,
              callbacks=[Grab()])
    weights = np.concatenate([keras.ops.convert_to_numpy(v).ravel()
                              for v in model.trainable_weights])
    return grabbed, weights

out = {"replicas": dist.replicas}
for name, overrides in json.loads(sys.argv[2]).items():
    hps = preset("tiny").with_overrides(overrides)
    data = load_data([sys.argv[1]], hps.max_seq_len)
    one, w1 = first_step(distribute.single_device(), hps, data)
    two, w2 = first_step(dist, hps, data)
    out[name] = {"one": one, "two": two, "weight_diff": float(abs(w1 - w2).max())}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_mirrored_first_step_matches_one_device() -> None:
    """The global batch is split over 2 replicas; loss and update are one device's.

    With dropout on, each replica still draws the masks one device would give its sketches;
    grad_clip=0.01 clips at step 1, which catches clipping each replica's half separately
    (a 1e-3 difference in the weights).
    """
    cases = {"dropout_off": HPARAMS + ",use_recurrent_dropout=false",
             "dropout_on_clipping": HPARAMS + ",use_recurrent_dropout=true,grad_clip=0.01"}
    out = subprocess.run([sys.executable, "-c", FIRST_STEP, DATA, json.dumps(cases)], cwd=ROOT,
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    for name in cases:
        one, two = result[name]["one"], result[name]["two"]
        # cost is the mean over all 8 sketches, not a per-replica or summed figure
        assert two["cost"] == pytest.approx(one["cost"], rel=1e-6), name
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-6), name
        # gradients summed over replicas of loss / 2, clipped after the sum: the same update
        assert result[name]["weight_diff"] < 1e-6, name


@pytest.fixture(scope="module")
def mirrored_straight(tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("mirrored") / "run"
    out = _train(run_dir, 16, *MIRRORED)
    fp = _fingerprint(run_dir)
    assert f"chief: fingerprint {fp}" in out.stdout
    return run_dir, fp


@pytest.mark.slow
def test_mirrored_resume_is_exact_and_recorded(mirrored_straight, tmp_path) -> None:
    run_dir = tmp_path / "run"
    _train(run_dir, 7, *MIRRORED)  # stops at 7 and saves there, as a Ctrl-C would
    assert runs.info(run_dir)["step"] == 7
    _train(run_dir, 16, *MIRRORED)
    assert _fingerprint(run_dir) == mirrored_straight[1]
    state = ckpt_io.newest_checkpoint(run_dir).state
    assert state["distribute"] == {"kind": "mirrored", "replicas": 2, "workers": 1}


@pytest.mark.slow
def test_other_replica_count_resumes_with_a_warning(mirrored_straight, tmp_path) -> None:
    run_dir = tmp_path / "run"
    subprocess.run(["cp", "-r", str(mirrored_straight[0]), str(run_dir)], check=True)
    out = _train(run_dir, 18)  # one device now
    assert "trained with --distribute mirrored on 2 replica(s)" in out.stderr
    assert "bitwise equality with an uninterrupted run no longer holds" in out.stderr
    assert runs.info(run_dir)["step"] == 18
    assert ckpt_io.newest_checkpoint(run_dir).state["distribute"]["kind"] == "none"


# --------------------------------------------------------------------------- multi-worker
def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(run_dir: Path, num_steps: int, logs: Path) -> list[subprocess.Popen]:
    """Two worker processes on 127.0.0.1; worker 0 is the chief."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": i}})}
        out = open(logs / f"worker{i}.log", "w")
        cmd = _train_cmd(run_dir, num_steps, "--distribute", "multi-worker",
                         hparams=FULL_LENGTH)
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def _finish(procs: list[subprocess.Popen], logs: Path, timeout: float = 240) -> list[str]:
    """Wait for every worker (killing all on a timeout) -> their outputs."""
    try:
        for p in procs:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(logs / f"worker{i}.log").read_text() for i in range(len(procs))]


def _fingerprints(outputs: list[str]) -> list[str]:
    found = []
    for text, task in zip(outputs, ("chief", "worker-1")):
        lines = [ln for ln in text.splitlines() if ln.startswith(f"{task}: fingerprint ")]
        assert lines, text[-3000:]
        found.append(lines[-1].split()[-1])
    return found


@pytest.fixture(scope="module")
def multi_worker_straight(tmp_path_factory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("multi")
    run_dir = base / "run"
    procs = _start_workers(run_dir, 16, base)
    outputs = _finish(procs, base)
    assert [p.returncode for p in procs] == [0, 0], outputs
    chief, worker = _fingerprints(outputs)
    assert chief == worker == _fingerprint(run_dir)  # both workers hold the same weights
    return run_dir, chief


@pytest.mark.slow
def test_multi_worker_writes_one_set_of_checkpoints(multi_worker_straight) -> None:
    run_dir, _ = multi_worker_straight
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "ckpt-00000005", "ckpt-00000010", "ckpt-00000015", "ckpt-00000016"]
    worker_dir = run_dir / "workers" / "worker-1"
    assert (worker_dir / "logs" / "train.csv").exists()  # its log, and nothing else
    assert [p.name for p in worker_dir.iterdir()] == ["logs"]
    state = ckpt_io.newest_checkpoint(run_dir).state
    assert state["distribute"] == {"kind": "multi-worker", "replicas": 2, "workers": 2}


def _wait_for_step(run_dir: Path, step: int, procs: list[subprocess.Popen], logs: Path,
                   timeout: float = 180) -> None:
    csv_path = run_dir / "logs" / "train.csv"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if csv_path.exists():
            lines = csv_path.read_text().splitlines()
            last = lines[-1].split(",")[0] if len(lines) > 1 else ""
            if last.isdigit() and int(last) >= step:
                return
        if any(p.poll() is not None for p in procs):
            tails = [(logs / f"worker{i}.log").read_text()[-2000:] for i in range(len(procs))]
            raise AssertionError(f"a worker ended early: {tails}")
        time.sleep(0.02)
    raise AssertionError("training did not progress")


@pytest.mark.slow
def test_killed_worker_stops_the_job_and_a_restart_resumes_exactly(multi_worker_straight,
                                                                   tmp_path) -> None:
    run_dir = tmp_path / "run"
    procs = _start_workers(run_dir, 16, tmp_path)
    try:
        _wait_for_step(run_dir, 7, procs, tmp_path)  # past the checkpoint at step 5
        procs[1].send_signal(signal.SIGKILL)
    finally:
        outputs = _finish(procs, tmp_path, timeout=120)
    assert procs[0].returncode == 2, outputs[0][-3000:]
    message = outputs[0].strip().splitlines()[-1]
    assert "multi-worker training stopped on chief" in message
    assert "/job:worker/replica:0/task:1 is gone or unreachable" in message
    assert "Restart every worker with the same command" in message
    stopped = runs.info(run_dir)["step"]
    assert 5 <= stopped < 16
    procs = _start_workers(run_dir, 16, tmp_path)
    outputs = _finish(procs, tmp_path)
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert f"resuming {run_dir} from ckpt-{stopped:08d}" in outputs[1]
    assert _fingerprints(outputs) == [multi_worker_straight[1]] * 2
    assert _fingerprint(run_dir) == multi_worker_straight[1]


# --------------------------------------------------------------------------- set-up errors
def test_bad_distribution_arguments_are_clear_errors(monkeypatch, caplog) -> None:
    with pytest.raises(SketchRNNError, match="--cpu-devices needs --distribute mirrored"):
        distribute.setup(None, 2)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(SketchRNNError, match="needs TF_CONFIG"):
        distribute.setup("multi-worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(SketchRNNError, match="TF_CONFIG is not a valid cluster"):
        distribute.setup("multi-worker")
    two = distribute.Distribution("mirrored", None, 2, 1, "chief", True)
    with pytest.raises(SketchRNNError, match="batch_size=7 does not split evenly over 2"):
        two.check_batch(7)
    distribute.check_resume({"kind": "mirrored", "replicas": 2, "workers": 1}, two)
    assert caplog.records == []
    distribute.check_resume(None, two)  # a one-device run continued on 2 replicas
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "trained with one device" in caplog.records[0].getMessage()
