"""`sketch-rnn report`: the model card of a run (sketch_rnn.evaluation.model_card, card_html,
card_markdown).

End to end on tiny runs (a conditional one with its log, a decoder-only one without): the page
exists, every picture it links is a PNG beside it (relative names, so the folder is
self-contained), the evaluate numbers on the page are those of evaluate.json, and what a run
does not record is said rather than invented. The training time against a hand-made log.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import shutil

import numpy as np
import pytest

from sketch_rnn import cli
from sketch_rnn.evaluation import card_html, model_card

PNG = b"\x89PNG\r\n\x1a\n"


def _report(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["report", *argv])
    return code, out.getvalue(), err.getvalue()


def _linked_pictures(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_training_time_sums_the_sessions() -> None:
    """wall_s restarts at each resume: 3 steps in 30 s, then 2 more in 25 s = 55 s."""
    log = {"step": np.array([1, 2, 3, 4, 5.0]), "wall_s": np.array([10, 20, 30, 12, 25.0])}
    assert model_card.training_time(log) == {"seconds": 55.0, "segments": 2, "steps": 5}
    assert model_card.training_time(None)["seconds"] is None


def test_page_escapes_what_it_reads() -> None:
    page = card_html.render("<script>x</script>", {"hparams": {"dec_model": "<b>"}}, ["a&b"],
                            {"split": "test"}, {}, {"seconds": None})
    assert "<script>x" not in page and "&lt;script&gt;" in page and "a&amp;b" in page
    assert "unknown (no logs/train.csv)" in page and "unknown (no machine recorded" in page


def test_page_names_the_accelerator_a_run_recorded() -> None:
    """A run resumed on a GPU records it beside the CPU (`backend.accelerators`); the card says
    it as a plain list, not a Python repr."""
    machine = {"cpu": "Intel(R) Xeon(R) Processor", "cores": 16, "os": "Linux",
               "accelerators": ["NVIDIA H200"]}
    page = card_html.render("run", {"machine": machine}, [], {"split": "test"}, {},
                            {"seconds": 60.0})
    assert "accelerators: NVIDIA H200" in page and "[" not in page.split("accelerators")[1][:20]


def test_conditional_run_card(ten_step_run, tmp_path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(ten_step_run, run_dir)  # a tiny conditional run, 10 steps, with its log
    out = tmp_path / "card"
    code, stdout, stderr = _report(str(run_dir), "-o", str(out), "--teacher-forced", "8")
    assert code == 0, stderr
    assert "report: evaluating" in stderr and "index.html" in stdout
    page = (out / "index.html").read_text(encoding="utf-8")
    pictures = _linked_pictures(page)
    assert {"curves.png", "reconstructions.png", "interpolation.png", "completions.png",
            "samples_tau_0.25.png", "samples_tau_0.5.png", "samples_tau_1.png"} <= set(pictures)
    for name in pictures:
        assert "/" not in name and (out / name).read_bytes().startswith(PNG), name
    numbers = json.loads((out / "evaluate.json").read_text())
    assert numbers["ret_tf_count"] == 8 and numbers["count"] > 5
    assert f"{numbers['ret_code_at_1_tau_0.5']:.3f}" in page
    assert f"{numbers['recon']:.3f}" in page and f"{numbers['precision_tau_1']:.3f}" in page
    state = json.loads(next((run_dir / "checkpoints").glob("ckpt-*/state.json")).read_text())
    assert state["machine"]["cores"] >= 1 and state["machine"]["cpu"] in page  # new runs say where
    import tensorflow as tf  # this machine's devices, asked independently of backend.accelerators
    if not [d for d in tf.config.list_physical_devices() if d.device_type != "CPU"]:
        assert "accelerators" not in state["machine"]  # a CPU-only run records none
    assert "sessions" not in page and "No training curves" not in page
    card = (out / "card.md").read_text(encoding="utf-8")  # the Markdown twin, for a README
    assert re.findall(r"!\[[^]]*\]\(([^)]+)\)", card) == pictures
    for value in (numbers["ret_code_at_1_tau_0.5"], numbers["recon"], numbers["precision_tau_1"]):
        assert f"| {value:.3f} |" in card or f"| {value:.3f}" in card
    assert card.startswith(f"# Model card: {run_dir}\n")


@pytest.mark.slow  # the card again, for a decoder-only run (the conditional card is the fast loop's)
def test_decoder_only_run_without_a_log(ten_step_decoder_run, tmp_path) -> None:
    """No latent: no reconstructions or interpolation; no log: the page says so. The
    default folder is RUN_DIR/report."""
    run_dir = tmp_path / "dec"
    shutil.copytree(ten_step_decoder_run, run_dir)
    shutil.rmtree(run_dir / "logs")
    code, _, stderr = _report(str(run_dir))
    assert code == 0, stderr
    page = (run_dir / "report" / "index.html").read_text(encoding="utf-8")
    assert "decoder-only" in page and "No training curves" in page
    assert "reconstructions.png" not in page and "ret_code" not in page
    assert "completions.png" in _linked_pictures(page)


def test_missing_data_is_a_one_line_error(ten_step_run, tmp_path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(ten_step_run, run_dir)
    code, _, stderr = _report(str(run_dir), "--data", str(tmp_path / "nope.npz"))
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "nope.npz" in stderr


@pytest.mark.parametrize("args", [["--teacher-forced", "-1"]])
def test_bad_options_are_one_line_errors(tmp_path, args) -> None:
    code, _, stderr = _report(str(tmp_path / "none"), *args)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
