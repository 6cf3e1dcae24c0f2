"""The notebooks run top to bottom, and a bad parameter is one clear message, not a traceback.

Each notebook is executed with nbclient from `notebooks/` (Jupyter's working directory
when a notebook is opened there; their default paths are relative to it). Training is
shortened with SKETCH_RNN_NOTEBOOK_STEPS; the committed outputs come from the real defaults.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from sketch_rnn import notebook as nb_helpers  # noqa: E402
from sketch_rnn.core.errors import SketchRNNError  # noqa: E402
from sketch_rnn.notebook import ENV_STEPS  # noqa: E402


ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ONE_SHAPE = 'HPARAMS = "save_every=6,bucketed_batches=false,precision=float32"'
CI_STEPS = "30"  # interrupted at step 12, resumed to 30: every check of the notebook, half the steps
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def execute(name: str, overrides: str | None = None, timeout: int = 300):
    """Run a notebook in notebooks/; `overrides` is a code cell placed after the parameters
    cell (as papermill does). Returns the executed notebook (also when a cell failed)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:  # the committed outputs of the real run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if overrides:
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(overrides))
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError:
        pass  # the caller looks at the outputs
    return nb


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def text_of(output: dict) -> str:
    if output["output_type"] == "stream":
        return output["text"]
    if output["output_type"] == "error":
        return ANSI.sub("", "\n".join(output["traceback"]))
    return str(output.get("data", {}).get("text/plain", ""))


def assert_ran_cleanly(nb) -> str:
    errors = [text_of(o) for o in outputs(nb) if o["output_type"] == "error"]
    assert not errors, errors[0]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a cell did not run"
    # print() may arrive as several stream messages: join streams as they were written
    return "".join(text_of(o) if o["output_type"] == "stream" else text_of(o) + "\n"
                   for o in outputs(nb))


def assert_one_clear_message(nb, *needles: str) -> None:
    """Exactly one error output, one line long, saying what is wrong; nothing ran after it."""
    errors = [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert len(errors) == 1, [text_of(o) for _, o in errors]
    index, error = errors[0]
    message = text_of(error)
    assert "\n" not in message.strip(), message
    assert error["ename"] == "SketchRNNError", message
    for needle in needles:
        assert needle in message, message
    for o in outputs(nb):
        assert "Traceback (most recent call last)" not in text_of(o)
        assert 'File "' not in text_of(o)
    later = [c for c in nb.cells[index + 1:] if c.cell_type == "code"]
    assert all(not c.get("outputs") and not c.execution_count for c in later)


@pytest.mark.slow  # executes the notebook
def test_01_train_and_resume(monkeypatch) -> None:
    monkeypatch.setenv(ENV_STEPS, CI_STEPS)
    # full-length float32 batches: one trace of the step in each of its three `train`
    # calls instead of one per length bucket drawn (the checks are about the resume); a
    # checkpoint every 6 steps, so that EarlyStopping sees a validation before and after
    text = assert_ran_cleanly(execute("01_train_and_resume.ipynb", ONE_SHAPE))
    assert "outcome: interrupted; the newest checkpoint is ckpt-00000012" in text
    assert "stopped at step 12; run the same command again to resume" in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert "refused: LearningRateSchedulerPerBatch: its count is 0" in text
    assert "refused: KLWeightScheduler: its count is 0" in text
    assert "ours follows lr(s - 1) at every step: True" in text
    assert "identical" in text and "DIFFERENT" not in text
    assert "lr and w_KL identical at every step: True" in text
    # the callbacks given to `train` resumed with their state (the `callbacks` branch's part)
    assert "CostWatch: starting with 12 steps seen" in text
    assert "CostWatch identical: True" in text and "EarlyStopping identical: True" in text


@pytest.mark.slow  # executes the notebook
def test_02_generate_and_draw() -> None:
    """Needs the shipped pretrained model, checkpoints/sheep."""
    nb = execute("02_generate_and_draw.ipynb")
    assert_ran_cleanly(nb)
    kinds = {k for o in outputs(nb) for k in o.get("data", {})}
    assert {"image/png", "image/svg+xml", "text/html"} <= kinds


@pytest.mark.slow  # executes the notebook
def test_03_quickdraw_data() -> None:
    text = assert_ran_cleanly(execute("03_quickdraw_data.ipynb"))
    assert "wrote " in text and "scale factor" in text


@pytest.mark.slow  # executes the notebook
def test_04_paper_models() -> None:
    """Offline: the shipped checkpoints/sheep_decoder exported to magenta.js and imported back.

    References outside the import: the file's own sha256 (hashlib), the original's weights
    rounded to the int16 grid in NumPy (its test losses), and the original's weights."""
    nb = execute("04_paper_models.ipynb")
    text = assert_ran_cleanly(nb)
    assert "sha256 matches the file: True" in text
    assert "lineage: ['magenta-js']" in text
    assert "every weight within half an int16 step: True" in text
    gap = float(re.search(r"imported vs rounded original: \|ΔL_R\| = (\S+)", text).group(1))
    assert gap < 1e-4, text
    kinds = {k for o in outputs(nb) for k in o.get("data", {})}
    assert "image/png" in kinds
    work = Path(re.search(r"-o (\S+)/sheep\.gen\.json", text).group(1))
    assert work.name.startswith("sketch-rnn-04-") and not work.exists()  # nothing left behind


@pytest.mark.slow  # executes the notebook
@pytest.mark.parametrize("name, overrides, needles", [
    ("02_generate_and_draw.ipynb", 'RUN_DIR = "no/such/run"',
     ("RUN_DIR = 'no/such/run'", "no such run directory")),
    ("04_paper_models.ipynb", 'RUN_DIR = "no/such/run"',
     ("RUN_DIR = 'no/such/run'", "no such run directory")),
    ("01_train_and_resume.ipynb", 'DATA = "no_such.npz"', ("DATA = 'no_such.npz'", "no such file")),
    ("03_quickdraw_data.ipynb", 'RAW = "missing.ndjson"',
     ("RAW = 'missing.ndjson'", "no such file")),
], ids=["missing-run-dir", "04-missing-run-dir", "missing-data", "missing-ndjson"])
def test_bad_parameter_is_one_clear_message(name: str, overrides: str, needles: tuple) -> None:
    assert_one_clear_message(execute(name, overrides), *needles)


# --------------------------------------------------------------------------- the helpers alone
def test_steps_from_env(monkeypatch) -> None:
    monkeypatch.delenv(ENV_STEPS, raising=False)
    assert nb_helpers.steps_from_env(400) == 400
    monkeypatch.setenv(ENV_STEPS, "40")
    assert nb_helpers.steps_from_env(400) == 40
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv(ENV_STEPS, bad)
        with pytest.raises(SketchRNNError, match=ENV_STEPS):
            nb_helpers.steps_from_env(400)


def test_require_helpers_name_the_parameter(tmp_path) -> None:
    with pytest.raises(SketchRNNError, match="DATA = .*no such file.*parameters cell"):
        nb_helpers.require_file(tmp_path / "none.npz", "DATA")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(SketchRNNError, match="RUN_DIR = .*no complete checkpoint"):
        nb_helpers.require_run(tmp_path / "empty_run")
    assert not nb_helpers.show_errors_briefly()  # outside IPython: nothing to change


def test_output_reader_ends_even_when_the_end_is_seen_early() -> None:
    """The end of a command's output may be read before the process is seen to exit."""
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", "print('one'); print('two')"],
                            stdout=subprocess.PIPE, text=True)
    out = nb_helpers._Lines(proc, echo=False)
    started = time.monotonic()
    while out.pump(wait=0.1):
        assert time.monotonic() - started < 30
    proc.wait()
    out.drain()  # returned at once: the end was already consumed by pump()
    assert out.lines == ["one", "two"]
