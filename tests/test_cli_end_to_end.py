"""The commands a user chains after training, on real (tiny) checkpoints: evaluate, sample."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import fast_first, train_cmd

from sketch_rnn import cli
from sketch_rnn.training.runs import load_run
from sketch_rnn.data import load_data
from sketch_rnn.evaluation.losses import evaluate_split

ROOT = Path(__file__).resolve().parents[1]
DATA = str(ROOT / "data" / "aaron_sheep.npz")


@pytest.fixture
def conditional_run(ten_step_run) -> Path:
    """The session's tiny conditional run (TINY_HPARAMS, 10 steps); the commands here only
    read it."""
    return ten_step_run


@pytest.fixture
def decoder_only_run(ten_step_decoder_run) -> Path:
    return ten_step_decoder_run


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sketch_rnn", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_evaluate_prints_paper_losses_matching_the_model(conditional_run, capsys) -> None:
    # the command in this process (its exit code and streams are cli.main's); a fresh
    # `python -m sketch_rnn` process is test_sample_from_a_trained_run_is_reproducible's
    # (the samples' precision/recall and the teacher-forced retrieval have their own tests)
    assert cli.main(["evaluate", "--run-dir", str(conditional_run), "--split", "valid",
                     "--no-samples", "--teacher-forced", "0"]) == 0
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 1  # progress goes to stderr
    assert "evaluate: reconstructing" in err
    report = json.loads(out)
    for key in ("recon", "stroke", "pen", "kl", "cost"):
        assert math.isfinite(report[key])
    assert report["recon"] == pytest.approx(report["stroke"] + report["pen"], rel=1e-9)
    assert report["kl"] > 0
    run = load_run(conditional_run)
    w_kl = float(keras.ops.convert_to_numpy(run.model.kl_weight))
    assert report["cost"] == pytest.approx(
        report["recon"] + w_kl * max(report["kl"], run.hps.kl_tolerance), rel=1e-9)
    data = load_data(run.data_paths, run.hps.max_seq_len)
    assert report["count"] == len(data.valid)
    assert evaluate_split(run.model, data.valid, run.hps)["cost"] == pytest.approx(report["cost"], rel=1e-6)


def test_evaluate_is_independent_of_batching(decoder_only_run) -> None:
    """Without z there is no noise: the split's mean equals one big batch of every sketch."""
    run = load_run(decoder_only_run)
    data = load_data(run.data_paths, run.hps.max_seq_len)
    report = evaluate_split(run.model, data.valid, run.hps)  # batches of 8, last one padded
    whole = run.hps.replace(batch_size=len(data.valid))
    from sketch_rnn.data import eval_batches

    (strokes, lengths, weights), = list(eval_batches(data.valid, whole))
    assert weights.min() == 1.0
    terms = run.model.loss_terms(strokes, lengths)
    stroke = float(np.mean(keras.ops.convert_to_numpy(terms["stroke"])))
    pen = float(np.mean(keras.ops.convert_to_numpy(terms["pen"])))
    assert report["stroke"] == pytest.approx(stroke, rel=1e-5)
    assert report["pen"] == pytest.approx(pen, rel=1e-5)
    assert report["kl"] == 0.0 and report["cost"] == pytest.approx(stroke + pen, rel=1e-5)


@pytest.mark.slow  # two fresh TensorFlow processes
def test_sample_from_a_trained_run_is_reproducible(conditional_run, tmp_path) -> None:
    outs = []
    for name in ("a.svg", "b.svg"):
        out = tmp_path / name
        result = _cli("sample", "--run-dir", str(conditional_run), "--n", "4", "--seed", "3",
                      "--out", str(out))
        assert result.returncode == 0, result.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"<g") >= 4  # one group per sketch


def _tensorboard_scalars(log_dir: Path) -> dict[tuple[int, str], float]:
    """(step, tag) -> value of every scalar in the run's TensorBoard event files."""
    import tensorflow as tf

    found = {}
    for path in sorted((log_dir / "tensorboard").iterdir()):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found[event.step, value.tag] = float(tf.make_ndarray(value.tensor))
    return found


@pytest.mark.slow  # trains a tiny run in a fresh process
def test_a_finished_train_process_leaves_its_logs_whole(tmp_path) -> None:
    """The executable skips the collector's pass at exit (`cli.console`): whatever a command
    wrote must be on disk when its process has ended, up to the last save's TensorBoard
    scalars. Checked against the two other records of the same numbers: train.csv's rows and
    the lines the command printed."""
    run_dir = tmp_path / "run"
    out = subprocess.run(train_cmd(run_dir, 20), cwd=ROOT, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    scalars = _tensorboard_scalars(run_dir / "logs")
    with open(run_dir / "logs" / "train.csv", newline="") as f:
        rows = {int(r["step"]): r for r in csv.DictReader(f)}
    assert sorted(rows) == list(range(1, 21))
    for step in (10, 20):  # TensorBoard gets every 10th step and each save's valid losses
        for tag in ("cost", "recon", "kl"):
            assert scalars[step, tag] == pytest.approx(float(rows[step][tag]), rel=1e-6)
        printed = next(ln for ln in out.stdout.splitlines()
                       if ln.startswith(f"step {step}: saved"))
        valid_cost = float(printed.rsplit("cost=", 1)[1])  # printed with 4 decimals
        assert scalars[step, "valid/cost"] == pytest.approx(valid_cost, abs=5e-5)


@pytest.mark.parametrize("name", fast_first(["sheep", "sheep_decoder"]))
def test_shipped_pretrained_model_loads_exactly(name: str) -> None:
    """checkpoints/sheep and checkpoints/sheep_decoder (TensorFlow, CPU, bf16 matmuls)
    load on this backend with every variable intact, and sample."""
    from sketch_rnn.training.checkpoint import fingerprint
    from sketch_rnn.generation.sampling import sample

    run = load_run(ROOT / "checkpoints" / name)
    assert fingerprint(run.model) == run.state["fingerprint"]
    sketches = sample(run.model, 4, temperature=0.25, seed=0, scale_factor=run.scale_factor)
    assert len(sketches) == 4 and all(s.shape[1] == 3 and len(s) > 1 for s in sketches)


def test_shipped_decoder_only_model_exports_for_the_browser(tmp_path) -> None:
    """checkpoints/sheep_decoder is what @magenta/sketch runs (decoder-only LSTM, M = 20): it
    exports, and the browser's int16 weights give back ours within the quantisation step."""
    from sketch_rnn.serving.export import decode_magenta_js, to_keras_layout

    run = load_run(ROOT / "checkpoints" / "sheep_decoder")
    hps = run.hps
    assert (hps.conditional, hps.dec_model, hps.num_mixture) == (False, "lstm", 20)
    out = tmp_path / "sheep.gen.json"
    assert cli.main(["export", "--run-dir", str(ROOT / "checkpoints" / "sheep_decoder"),
                     "--format", "magenta-js", "-o", str(out)]) == 0
    back = to_keras_layout(decode_magenta_js(json.loads(out.read_text())))
    cell, head = run.model.decoder.cell, run.model.head
    ours = {"kernel": cell.kernel, "recurrent_kernel": cell.recurrent_kernel,
            "bias": cell.bias, "head_kernel": head.kernel, "head_bias": head.bias}
    for key, variable in ours.items():  # int16 steps of 10/32767, rounded to nearest
        error = np.max(np.abs(back[key] - np.asarray(variable, dtype=np.float64)))
        assert error <= 5 / 32767 + 1e-6, (key, error)


@pytest.mark.parametrize("seed", ["-1", "4294967296", "x"])
def test_bad_seed_is_a_usage_error(seed) -> None:
    result = _cli("sample", "--run-dir", "nowhere", "--seed", seed)
    assert result.returncode == 2 and "--seed" in result.stderr and "Traceback" not in result.stderr
