"""The run planner (`run_state.plan_run`): a new run, a resume, a refusal, and old run dirs.

Runs are written by hand here (a state.json and a manifest; the weights are never loaded by
planning), and every expected outcome is written out below, not taken from the planner:
the one-line messages users see, the seed and data a resume keeps, the lineage entries.
No TensorFlow is needed (every new run names its precision, so no CPU default is asked for).
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.core.hparams import preset
from sketch_rnn.training import run_state
from sketch_rnn.training.run_state import plan_run

ROOT = Path(__file__).resolve().parents[1]
IMPORTED = {"from": "magenta", "source": "/models/owl", "global_step": 4,
            "optimizer": "Adam moments kept"}


def write_run(run_dir: Path, step: int = 10, **state_changes) -> Path:
    """A run directory with one checkpoint that verifies: bf16, bucketed, seed 7."""
    ckpt = run_dir / "checkpoints" / f"ckpt-{step:08d}"
    ckpt.mkdir(parents=True)
    hparams = preset("tiny").replace(precision="bfloat16", bucketed_batches=True,
                                     num_steps=20).to_dict()
    state = {"format": 1, "step": step, "seed": 7, "run_id": "run-abc",
             "data": {"paths": ["a.npz"], "fingerprint": "f" * 64, "scale_factor": 1.5,
                      "categories": []},
             "hparams": hparams, "fingerprint": "0" * 64,
             "distribute": {"kind": "none", "replicas": 1, "workers": 1}, **state_changes}
    (ckpt / "state.json").write_text(json.dumps(state))
    (ckpt / "model.weights.h5").write_bytes(b"weights")
    (ckpt / "callbacks.pkl").write_bytes(b"callbacks")
    files = {name: hashlib.sha256((ckpt / name).read_bytes()).hexdigest()
             for name in ("state.json", "model.weights.h5", "callbacks.pkl")}
    (ckpt / "MANIFEST.json").write_text(json.dumps({"format": 1, "files": files}))
    return run_dir


def refusal(run_dir: Path, *args, **kwargs) -> str:
    with pytest.raises(SketchRNNError) as caught:
        plan_run(run_dir, *args, **kwargs)
    return str(caught.value)


# --------------------------------------------------------------------------- new runs
def test_a_new_run(tmp_path) -> None:
    config = plan_run(tmp_path / "new", ["x.npz"], "tiny", "precision=float32,batch_size=8",
                      5, None)
    assert config.resume_from is None and config.lineage == []
    assert config.data_paths == ["x.npz"] and config.seed == 0
    assert (config.hps.num_steps, config.hps.batch_size, config.hps.precision) == (5, 8, "float32")
    assert re.fullmatch(r"[0-9a-f]{32}", config.run_id)
    other = plan_run(tmp_path / "other", None, "tiny", "precision=float32", None, 3)
    assert other.seed == 3 and other.data_paths == ["data/aaron_sheep.npz"]
    assert other.run_id != config.run_id


# --------------------------------------------------------------------------- resumes
def test_a_resume_keeps_seed_data_and_saved_hparams(tmp_path) -> None:
    run = write_run(tmp_path / "run")
    config = plan_run(run, None, None, None, 50, None)
    assert config.resume_from.step == 10 and config.resume_from.path.name == "ckpt-00000010"
    assert (config.seed, config.run_id, config.data_paths) == (7, "run-abc", ["a.npz"])
    assert (config.hps.num_steps, config.hps.precision, config.hps.bucketed_batches) == (
        50, "bfloat16", True)
    assert config.lineage == []
    assert plan_run(run, ["b.npz"], None, "save_every=5", None, 7).data_paths == ["b.npz"]


def test_a_resume_is_told_its_hparams_win_only_where_the_preset_differs(tmp_path,
                                                                         caplog) -> None:
    """The precision a new run took from its CPU (bfloat16 here, the preset says float32)
    is not a difference from `--preset`; another batch size is."""
    caplog.set_level("INFO", logger=run_state.log.name)
    plan_run(write_run(tmp_path / "same"), None, "tiny", None, None, None)
    assert "win over --preset" not in caplog.text
    assert preset("tiny").precision == "float32"  # the run's bfloat16 is not the preset's
    other = preset("tiny").batch_size + 1
    hparams = preset("tiny").replace(precision="bfloat16", bucketed_batches=True,
                                     batch_size=other).to_dict()
    plan_run(write_run(tmp_path / "other", hparams=hparams), None, "tiny", None, None, None)
    assert "its saved hparams win over --preset tiny" in caplog.text


def test_a_resume_on_a_cpu_with_other_vector_units_is_warned(tmp_path, caplog,
                                                             monkeypatch) -> None:
    """The kernel flags a checkpoint's machine recorded against this CPU's: AMX saved, an
    AVX512_BF16 CPU resuming (another oneDNN kernel, other bits) warns; the same flags, or a
    checkpoint that recorded none, do not."""
    from sketch_rnn.core import machine

    monkeypatch.setattr(machine, "cpuinfo_text",
                        lambda: "flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 avx512vl\n")
    caplog.set_level("INFO", logger=run_state.log.name)
    amx = {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "os": "Linux",
           "isa": ["amx_bf16", "avx2", "avx512_bf16", "avx512f"]}
    plan_run(write_run(tmp_path / "amx", machine=amx), None, None, None, None, None)
    assert ("on a CPU with other vector units (amx_bf16 avx2 avx512_bf16 avx512f -> "
            "avx2 avx512_bf16 avx512f)") in caplog.text
    caplog.clear()
    same = {**amx, "isa": ["avx2", "avx512_bf16", "avx512f"]}
    plan_run(write_run(tmp_path / "same", machine=same), None, None, None, None, None)
    old = {k: v for k, v in amx.items() if k != "isa"}
    plan_run(write_run(tmp_path / "old", machine=old), None, None, None, None, None)
    plan_run(write_run(tmp_path / "none"), None, None, None, None, None)
    assert "vector units" not in caplog.text


def test_refusals_are_one_line_naming_what(tmp_path) -> None:
    run = write_run(tmp_path / "run")
    assert refusal(run, None, None, "dec_rnn_size=64", None, None) == (
        f"{run}: cannot change dec_rnn_size of an existing run (the weights' shapes or the "
        "training sketches); use a new --run-dir")
    assert refusal(run, None, None, "max_seq_len=80", None, None) == (
        f"{run}: cannot change max_seq_len of an existing run (the weights' shapes or the "
        "training sketches); use a new --run-dir")
    assert refusal(run, None, None, None, None, 3) == (
        f"{run}: the run was started with --seed 7, not 3")
    assert refusal(run, None, None, "precision=float32", None, None) == (
        f"{run}: cannot change precision of an existing run (bfloat16 -> float32) unless "
        "asked for with --allow-precision-change")
    assert refusal(run, None, None, "bucketed_batches=false", None, None,
                   allow_changes={"precision"}) == (
        f"{run}: cannot change bucketed_batches of an existing run (True -> False) unless "
        "asked for with --allow-batching-change")
    no_data = write_run(tmp_path / "imported", data={"paths": [], "fingerprint": None,
                                                     "scale_factor": 18.5, "categories": []})
    assert refusal(no_data, None, None, None, 6, None) == (
        f"{no_data}: the run records no training data; give --data DATA.npz")


def test_an_allowed_path_change_joins_the_lineage(tmp_path) -> None:
    run = write_run(tmp_path / "run")
    config = plan_run(run, None, None, "precision=float32,bucketed_batches=false", None, None,
                      allow_changes={"precision", "bucketed_batches"})
    assert (config.hps.precision, config.hps.bucketed_batches) == ("float32", False)
    assert config.lineage == [
        {"kind": "path_change", "step": 10, "field": "bucketed_batches", "from": True,
         "to": False},
        {"kind": "path_change", "step": 10, "field": "precision", "from": "bfloat16",
         "to": "float32"}]


def test_state_json_of_before_the_one_lineage_is_read(tmp_path) -> None:
    """"lineage" without kinds (imports) and "path_changes", as state.json held them."""
    run = write_run(tmp_path / "run", lineage=[IMPORTED], path_changes=[
        {"step": 6, "field": "bucketed_batches", "from": False, "to": True}])
    config = plan_run(run, None, None, "precision=float32", None, None,
                      allow_changes={"precision"})
    assert config.lineage == [
        {"kind": "imported", "from": "magenta", "source": "/models/owl", "global_step": 4,
         "optimizer": "Adam moments kept"},
        {"kind": "path_change", "step": 6, "field": "bucketed_batches", "from": False,
         "to": True},
        {"kind": "path_change", "step": 10, "field": "precision", "from": "bfloat16",
         "to": "float32"}]
    # today's entries are read as written
    again = write_run(tmp_path / "again", lineage=config.lineage)
    assert plan_run(again, None, None, None, None, None).lineage == config.lineage


def test_a_malformed_state_json_is_one_line(tmp_path) -> None:
    run = write_run(tmp_path / "run", seed="seven")
    assert refusal(run, None, None, None, None, None) == (
        f"{run / 'checkpoints' / 'ckpt-00000010' / 'state.json'}: seed missing or malformed")


SHIPPED = sorted(p.name for p in (ROOT / "checkpoints").glob("*") if (p / "checkpoints").is_dir())


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_runs_plan_a_resume(tmp_path, name) -> None:
    """The shipped checkpoints (state.json from before distribute, lineage, precision)."""
    run = tmp_path / name
    shutil.copytree(ROOT / "checkpoints" / name, run, symlinks=True)
    newest = sorted((run / "checkpoints").glob("ckpt-*"))[-1]
    saved = json.loads((newest / "state.json").read_text())
    config = plan_run(run, None, None, None, None, None)
    assert config.resume_from.path == newest and config.lineage == []
    assert (config.seed, config.run_id) == (saved["seed"], saved["run_id"])
    assert config.data_paths == saved["data"]["paths"]
    # the fields a run saved before them lacks take the path it was trained on
    assert config.hps.precision == saved["hparams"].get("precision", "float32")
    assert config.hps.bucketed_batches == saved["hparams"].get("bucketed_batches", False)
    assert run_state.read_state(config.resume_from).distribute == saved.get("distribute")
