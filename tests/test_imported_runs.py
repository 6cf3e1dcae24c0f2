"""Every command on a run imported from Magenta, and `train` continuing from it.

The run is the `layer_norm` fixture (conditional, layer-norm encoder and decoder, M = 3,
N_max = 250) imported with the bundled sheep; the commands must run on it as on any run of
ours, and training must continue from Magenta's step 4 and resume bit for bit after a stop
(the reference is the uninterrupted run, as in tests/test_resume.py).
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from conftest import FEW, SHEEP as DATA, fast_first

from sketch_rnn import cli
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.training import runs
from sketch_rnn.training.schedules import learning_rate_schedule
from sketch_rnn.training.trainer import Trainer, plan_run

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "magenta"


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("imported") / "run"
    assert cli.main(["import", "--from", "magenta", str(FIXTURES / "layer_norm"), "-o",
                     str(run_dir), "--data", DATA]) == 0
    return run_dir


@pytest.mark.parametrize("argv", fast_first([
    ["sample", "--n", "2", "--out", "{out}/s.svg"],
    ["sample", "--from", DATA, "--index", "0", "1", "--out", "{out}/r.npz"],
    ["interpolate", "--from", DATA, "--index", "0", "1", "--steps", "3", "--out", "{out}/i.svg"],
    ["complete", "--from", DATA, "--index", "0", "--n", "2", "--out", "{out}/c.svg"],
    ["complete", "--from", DATA, "--index", "0", "--n", "2", "--z-mode", "encode",
     "--out", "{out}/e.npz"],
]), ids=["sample", "reconstruct", "interpolate", "complete", "complete-encode"])
def test_generation_commands(imported, tmp_path, argv):
    argv = [a.replace("{out}", str(tmp_path)) for a in argv]
    assert cli.main([argv[0], "--run-dir", str(imported), *argv[1:]]) == 0
    out = Path(argv[-1])
    assert out.is_file() and out.stat().st_size > 0


@pytest.mark.slow  # `evaluate` again, on an imported run (test_latent_metrics is the fast loop's)
def test_evaluate_and_info(imported, few_sheep, capsys):
    """`evaluate` runs on the imported run: its losses, the latent report and the
    teacher-forced retrieval over FEW real valid sheep (`--data`). The measures are checked on
    runs of ours (test_latent_metrics.py, test_recon_retrieval.py, test_sample_quality.py);
    the samples' precision/recall (`--no-samples` here) only adds four more passes of the
    sampler that `sample` above already runs on this model."""
    assert cli.main(["evaluate", "--run-dir", str(imported), "--split", "valid",
                     "--data", str(few_sheep), "--no-samples"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(isinstance(v, float) for k, v in report.items() if k in ("cost", "recon"))
    assert report["count"] == report["ret_tf_count"] == FEW
    assert 0.0 <= report["ret_code_at_1_greedy"] <= report["ret_code_at_10_greedy"] <= 1.0
    assert cli.main(["info", str(imported), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["step"] == 4 and info["hparams"]["dec_model"] == "layer_norm"


@pytest.mark.slow  # the server again, on an imported run (test_server.py is the fast loop's)
def test_serve(imported):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        from starlette.testclient import TestClient
    from sketch_rnn.serving.server import create_app

    run = runs.load_run(imported)
    prefix = [[0.0, 12.0, 0.0], [15.0, 3.0, 0.0], [4.0, -20.0, 1.0]]
    with TestClient(create_app(run, str(imported)), base_url="http://127.0.0.1",
                    raise_server_exceptions=False) as c:
        assert c.get("/api/info").json()["conditional"] is True
        s = c.post("/api/sample", json={"n": 2, "temperature": 0.5, "seed": 1})
        assert s.status_code == 200 and len(s.json()["sketches"]) == 2
        e = c.post("/api/complete", json={"strokes": prefix, "n": 2, "seed": 0})
        assert e.status_code == 200 and len(e.json()["endings"]) == 2


def test_export_refuses_what_the_browser_cannot_run(imported, tmp_path, capsys):
    assert cli.main(["export", "--run-dir", str(imported), "-o", str(tmp_path / "m.json"),
                     "--z-prior"]) == 2
    assert "dec_model=layer_norm" in capsys.readouterr().err


def _train(run_dir: Path, num_steps: int, data: list[str] | None = None) -> Trainer:
    trainer = Trainer(plan_run(run_dir, data, None, "save_every=1", num_steps, None),
                      progress=False)
    assert trainer.fit() == 0
    return trainer


@pytest.mark.slow  # three trainings at N_max = 250 (minutes on a loaded CPU)
def test_train_continues_and_resumes_bit_exactly(tmp_path):
    """Imported with --scale-factor only: `train` asks for --data, then continues from step 4;
    stopped at 5 and resumed to 6 it ends with the uninterrupted run's bits."""
    base = tmp_path / "base"
    assert cli.main(["import", "--from", "magenta", str(FIXTURES / "lstm_uncond"), "-o",
                     str(base), "--scale-factor", "18.5"]) == 0
    with pytest.raises(SketchRNNError, match="records no training data"):
        plan_run(base, None, None, None, 6, None)
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    shutil.copytree(base, straight)
    shutil.copytree(base, stopped)
    a = _train(straight, 6, [DATA])
    _train(stopped, 5, [DATA])
    b = _train(stopped, 6)  # the data are now the run's own
    assert a.step == b.step == 6
    assert runs.info(straight)["fingerprint"] == runs.info(stopped)["fingerprint"]
    state = runs.load_run(stopped).state
    assert [entry["kind"] for entry in state["lineage"]] == ["imported"]
    assert state["lineage"][0]["from"] == "magenta" and state["lineage"][0]["global_step"] == 4
    assert state["learning_rate"] == pytest.approx(learning_rate_schedule(a.hps)(5))
