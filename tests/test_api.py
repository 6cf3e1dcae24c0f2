"""The public Python API: `sketch_rnn.train` and `sketch_rnn.load`.

References: the `sketch-rnn train` command in a subprocess (the same run, the same
fingerprint), an uninterrupted run (an interrupted and resumed one ends with its bits), the
generation and drawing functions the API wraps (the same sketches, the same bytes), and the
CLI's own outputs.
"""
from __future__ import annotations

import doctest
import io
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SHEEP, TINY_HPARAMS, fingerprint, frameworks_imported_by, train_cmd

import sketch_rnn
from sketch_rnn import cli
from sketch_rnn.api import model as api_model
from sketch_rnn.api import run as api_run
from sketch_rnn.api import sketches as api_sketches
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.generation import drawing, sampling
from sketch_rnn.generation.completion import complete
from sketch_rnn.training.runs import info

SHEEP_RUN = ROOT / "checkpoints" / "sheep"
DECODER_RUN = ROOT / "checkpoints" / "sheep_decoder"


# --------------------------------------------------------------------------- the package
def test_import_is_lazy_and_cheap():
    """`import sketch_rnn` and reaching for `sketch_rnn.train` / `load` import no TensorFlow."""
    code = ("import sketch_rnn\n"
            "assert callable(sketch_rnn.train) and callable(sketch_rnn.load)\n"
            "assert {'train', 'load', 'Model', 'Sketches'} <= set(dir(sketch_rnn))")
    assert frameworks_imported_by(code, also=("matplotlib",)) == []


def test_the_exports_are_the_api():
    assert sketch_rnn.train is api_run.train and sketch_rnn.load is api_model.load
    assert sorted(sketch_rnn.__all__) == sorted(["Completion", "Model", "Sketches",
                                                  "TrainResult", "load", "train"])
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sketch_rnn.nope  # noqa: B018


@pytest.mark.parametrize("module", [api_sketches, api_model, api_run, sketch_rnn])
def test_docstring_examples_run(module):
    """The examples in the API's docstrings (those that need a trained run are skipped)."""
    failed, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failed == 0


# --------------------------------------------------------------------------- train
class SigintAt(keras.callbacks.Callback):
    """Sends SIGINT to its own process while step `at` runs: the signal Ctrl-C and Jupyter's
    "interrupt kernel" send. (A module-level class: a checkpoint may pickle it.)"""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_train_batch_begin(self, batch, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == self.at - 1:
            os.kill(os.getpid(), signal.SIGINT)


class Steps(keras.callbacks.Callback):
    """Records the optimizer's step count after each step."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))


def tiny(run_dir: Path, num_steps: int, **kwargs) -> api_run.TrainResult:
    return sketch_rnn.train(SHEEP, run_dir, preset="tiny", hparams=TINY_HPARAMS,
                            num_steps=num_steps, progress=False, samples=False, **kwargs)


@pytest.mark.slow  # a `sketch-rnn train` process beside the run in this one
def test_train_in_process_is_the_command(tmp_path):
    """The same arguments give the same run: the command's fingerprint, checkpoints and losses."""
    cmd = train_cmd(tmp_path / "cli", 12, "--seed", "3")
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    result = tiny(tmp_path / "api", 12, seed=3)
    assert (result.outcome, result.exit_code, result.step, result.num_steps) == ("done", 0, 12, 12)
    command = info(tmp_path / "cli")
    assert result.fingerprint == command["fingerprint"] == fingerprint(tmp_path / "api")
    assert result.checkpoint.name == command["checkpoint"] == "ckpt-00000012"
    assert result.valid == command["valid"] and set(result.valid) >= {"cost", "recon", "kl"}
    assert str(result) == f"done: step 12 of 12; checkpoints in {tmp_path / 'api' / 'checkpoints'}"


def test_interrupt_returns_then_resumes_to_the_uninterrupted_bits(tmp_path, twenty_step_run,
                                                                  capfd):
    """SIGINT while step 7 runs: train saves step 7 and returns "interrupted" (no exception,
    no traceback, the previous handler back); the same call resumes to the uninterrupted run."""
    before = signal.getsignal(signal.SIGINT)
    stopped = tiny(tmp_path / "run", 20, callbacks=[SigintAt(7)])
    assert (stopped.outcome, stopped.exit_code, stopped.step) == ("interrupted", 130, 7)
    assert stopped.checkpoint.name == "ckpt-00000007" == info(tmp_path / "run")["checkpoint"]
    assert signal.getsignal(signal.SIGINT) is before
    assert str(stopped) == "stopped at step 7; run the same command again to resume"
    resumed = tiny(tmp_path / "run", 20, callbacks=[SigintAt(7)])
    assert (resumed.outcome, resumed.exit_code, resumed.step) == ("done", 0, 20)
    assert resumed.fingerprint == fingerprint(twenty_step_run) == fingerprint(tmp_path / "run")
    again = tiny(tmp_path / "run", 20, callbacks=[SigintAt(7)])
    assert (again.outcome, again.step, again.fingerprint) == ("nothing_to_do", 20,
                                                               resumed.fingerprint)
    assert "Traceback" not in "".join(capfd.readouterr())


def test_custom_callbacks_run_in_the_fit_loop(tmp_path, ten_step_run):
    """A caller's callback sees every step of the run, after the step's schedules applied."""
    run_dir = tmp_path / "run"
    shutil.copytree(ten_step_run, run_dir)
    steps = Steps()
    result = tiny(run_dir, 14, callbacks=[steps], allow_callback_change=True)
    assert steps.seen == [11, 12, 13, 14] and result.outcome == "done"


@pytest.mark.parametrize("kwargs, match", [
    (dict(seed=-1), "seed=-1"), (dict(seed=2 ** 32), "seed="), (dict(seed=1.5), "seed="),
    (dict(distribute="cluster"), "distribute='cluster'"),
    (dict(hparams={"no_such_field": 1}), "no_such_field"),
])
def test_bad_train_arguments_are_one_line(tmp_path, kwargs, match):
    with pytest.raises(SketchRNNError, match=match):
        sketch_rnn.train(SHEEP, tmp_path / "run", preset="tiny", num_steps=1, **kwargs)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_hparams_as_a_dict_are_the_text(tmp_path, ten_step_run):
    """{"k": v} is "k=v,...": resuming ten_step_run with its own hparams as a dict is allowed."""
    run_dir = tmp_path / "run"
    shutil.copytree(ten_step_run, run_dir)
    as_dict = dict(item.split("=") for item in TINY_HPARAMS.split(","))
    result = sketch_rnn.train(None, run_dir, hparams=as_dict, num_steps=10, progress=False)
    assert result.outcome == "nothing_to_do" and result.step == 10


# --------------------------------------------------------------------------- load
@pytest.fixture(scope="module")
def sheep():
    return sketch_rnn.load(SHEEP_RUN)


def test_load_the_shipped_sheep(sheep):
    assert sheep.step == info(SHEEP_RUN)["step"] and sheep.conditional
    assert sheep.info()["fingerprint"] == info(SHEEP_RUN)["fingerprint"]
    assert "sketch_rnn.Model" in repr(sheep)


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_model_calls_are_the_generation_functions(sheep):
    """Each method gives what the function it wraps gives, with the run's scale factor."""
    m, sf = sheep.keras_model, sheep.scale_factor
    sample = sheep.sample(3, seed=4)
    assert same(sample, sampling.sample(m, 3, temperature=0.5, seed=4, scale_factor=sf))
    assert np.array_equal(sample.z, sampling.prior_z(3, int(sheep.hps.z_size), 4))
    test = sheep.read(SHEEP, [0, 5])
    assert same(sheep.reconstruct(from_data=SHEEP, index=[0, 5], seed=2),
                sampling.reconstruct(m, test, temperature=0.5, seed=2, scale_factor=sf))
    z = sheep.encode(test)
    assert np.array_equal(z, sampling.encode(m, test, scale_factor=sf))
    assert np.array_equal(sheep.encode(test[0]), z[:1])  # one sketch alone
    path = sampling.interpolate(z[0], z[1], 4)
    between = sheep.interpolate(test[0], test[1], steps=4)
    assert same(between, sampling.decode(m, path, temperature=0.1, seed=0, scale_factor=sf))
    assert between.cols == 4 and np.array_equal(between.z, path)
    assert same(sheep.interpolate(from_data=SHEEP, index=(0, 5), steps=4), between)
    assert same(sheep.interpolate(z[0], z[1], steps=4), between)  # codes as the ends
    half = test[1][: len(test[1]) // 2]
    done = sheep.complete(from_data=SHEEP, index=5, n=3, seed=1)
    ref = complete(m, half, 3, 0.25, 1, scale_factor=sf)
    assert np.array_equal(done.prefix, ref.prefix) and same(done.endings, ref.endings)
    assert same(done, [ref.prefix, *ref.sketches()])


def test_model_matches_the_command(sheep, tmp_path):
    """`sketch-rnn sample` and `complete` write what the model's sketches save."""
    assert cli.main(["sample", "--run-dir", str(SHEEP_RUN), "--n", "4", "--seed", "2",
                     "--out", str(tmp_path / "cli.svg")]) == 0
    sheep.sample(4, seed=2).save(tmp_path / "api.svg")
    assert (tmp_path / "cli.svg").read_bytes() == (tmp_path / "api.svg").read_bytes()
    assert cli.main(["complete", "--run-dir", str(SHEEP_RUN), "--from", SHEEP, "--index", "2",
                     "--n", "3", "--out", str(tmp_path / "cli.png")]) == 0
    sheep.complete(from_data=SHEEP, index=2, n=3).save(tmp_path / "api.png")
    assert (tmp_path / "cli.png").read_bytes() == (tmp_path / "api.png").read_bytes()


def test_sketches_draw_inline_and_save(sheep, tmp_path):
    """SVG inline (PNG on request); .svg/.png/.gif/.npz files hold the drawing module's bytes."""
    s = sheep.sample(4, seed=0)
    assert s._repr_svg_() == drawing.grid_svg(list(s)).text and s._repr_png_() is None
    s.inline = "png"
    assert s._repr_png_() == drawing.grid_png(list(s)).data and s._repr_svg_() is None
    for ext, ref in (("svg", drawing.grid_svg(list(s)).text.encode()),
                     ("png", drawing.grid_png(list(s)).data),
                     ("gif", drawing.animate_gif(list(s)).data),
                     ("npz", drawing.npz_bytes(list(s)))):
        s.save(str(tmp_path / f"s.{ext}"))
        assert (tmp_path / f"s.{ext}").read_bytes() == ref, ext
    assert Image.open(io.BytesIO(s.png(size=64).data)).size == (128, 128)  # 2 x 2 cells
    gif = Image.open(tmp_path / "s.gif")
    assert gif.n_frames > 1
    loaded = np.load(tmp_path / "s.npz")
    assert same([loaded[k] for k in sorted(loaded.files)], s)
    assert repr(s).startswith("<Sketches: 4 sketches of")
    with pytest.raises(SketchRNNError, match="unknown output extension"):
        s.save(str(tmp_path / "s.jpg"))


def test_a_completion_draws_prefix_grey_endings_in_colour(sheep):
    done = sheep.complete([[0, 0, 0], [20, 0, 0], [0, 20, 0]], 2, seed=0)
    svg = done.svg().text
    assert api_sketches.PREFIX_COLOR in svg and api_sketches.ENDING_COLOR in svg
    assert len(done) == 3 and np.array_equal(done[0], done.prefix)


def test_load_a_fresh_tiny_run(ten_step_run, few_sheep):
    """A run of ours: sketches from it, and evaluate = `sketch-rnn evaluate`."""
    from sketch_rnn.evaluation.report import evaluate_run

    model = sketch_rnn.load(ten_step_run)
    assert model.step == 10 and len(model.sample(2)) == 2
    got = model.evaluate(few_sheep, split="valid", teacher_forced=4, samples=False)
    assert got == evaluate_run(str(ten_step_run), [str(few_sheep)], "valid",
                               teacher_forced_n=4, samples=False)


def test_load_an_imported_run(tmp_path):
    """A model imported from Magenta loads and draws like a run of ours."""
    run_dir = tmp_path / "imported"
    assert cli.main(["import", "--from", "magenta", str(ROOT / "tests/fixtures/magenta/layer_norm"),
                     "-o", str(run_dir), "--data", SHEEP]) == 0
    model = sketch_rnn.load(run_dir)
    assert model.hps.dec_model == "layer_norm" and len(model.reconstruct(model.read(SHEEP, 0))) == 1


def test_bad_inputs_are_one_line(sheep, tmp_path):
    decoder = sketch_rnn.load(DECODER_RUN)
    for call, match in [
        (lambda: decoder.encode([[0, 0, 1]]), "decoder-only model has no latent space"),
        (lambda: sheep.encode(from_data=SHEEP), "from_data= goes with index="),
        (lambda: sheep.encode(), "give sketches"),
        (lambda: sheep.encode([[0, 0]]), r"sketches\[0\]: expected a stroke-3"),
        (lambda: sheep.read(SHEEP, 10 ** 6), "index 1000000: .* holds"),
        (lambda: sheep.interpolate(a=[[0, 0, 1]]), "give both ends"),
        (lambda: sheep.complete(), "prefix: give a sketch"),
        (lambda: sheep.complete([[0, 0, 0]], keep=0), "keep=0: must be in"),
        (lambda: sheep.evaluate(split="train"), "split='train'"),
        (lambda: sketch_rnn.load(tmp_path / "none"), "none"),
    ]:
        with pytest.raises(SketchRNNError, match=match):
            call()


def test_result_is_plain_data():
    """A TrainResult prints its one line and is JSON-friendly where it matters."""
    r = api_run.TrainResult(Path("r"), 5, 10, "interrupted", 130, None, {"cost": 1.0}, "ab")
    assert str(r).startswith("stopped at step 5") and json.dumps(r.valid)
