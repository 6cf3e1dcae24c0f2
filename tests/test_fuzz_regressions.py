"""One test per failure the fuzz campaign found (`python fuzz/campaign.py`), each the
shrunk input Hypothesis reported, now refused in one line (or handled) by the product."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.core.hparams import HParams, preset


def one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and "\r" not in text, text
    return text


# --------------------------------------------------------------------------- hparams
def test_an_unknown_hparam_with_a_newline_is_one_line():
    """hparams.from_json found `{"\\n": null}`: the error printed the key raw, on two lines."""
    with pytest.raises(SketchRNNError) as e:
        HParams.from_json(json.dumps({"\n": None}))
    assert one_line(e) == "unknown hparam(s): '\\n'"


@pytest.mark.parametrize("text", ["random_scale_factor=nan", "learning_rate=inf",
                                  "kl_weight=-inf", "grad_clip=NaN", "min_learning_rate=1e999"])
def test_a_non_finite_hparam_is_refused(text):
    """hparams.overrides found `random_scale_factor=nan` accepted: NaN passes every `< 0`
    and `<= 0` check, and a run would have trained on NaN."""
    name = text.split("=")[0]
    with pytest.raises(SketchRNNError, match=f"hparam {name}=.*: must be finite") as e:
        preset("tiny").with_overrides(text)
    one_line(e)


def test_a_non_finite_hparam_in_json_is_refused():
    """hparams.from_json found `{"random_scale_factor": "NAN"}` and `Infinity` accepted."""
    for value in ('"NAN"', "Infinity", "-Infinity", "NaN"):
        with pytest.raises(SketchRNNError, match="must be finite"):
            HParams.from_json('{"random_scale_factor": %s}' % value)


# --------------------------------------------------------------------------- .npz
def test_npz_member_names_are_quoted(tmp_path):
    """npz.load found an archive whose only member is named "\\n" (or "\\r", "\\x1e"):
    the 'found:' list printed it raw, splitting the error over two lines."""
    from sketch_rnn.data.npz import load_npz

    path = tmp_path / "odd.npz"
    np.savez(path, **{"\n": np.zeros(1), "\x1e": np.zeros(1)})
    with pytest.raises(SketchRNNError, match="missing split key") as e:
        load_npz(path)
    assert "'\\n'" in one_line(e) and "'\\x1e'" in str(e.value)


# --------------------------------------------------------------------------- QuickDraw
@pytest.mark.parametrize("x", [1e308, -1e300, 2e15, -(2 ** 62)])
def test_raw_coordinates_beyond_any_screen_are_refused(tmp_path, capsys, x):
    """quickdraw.convert found a raw drawing with x = 1e308: simplifying it overflowed
    (RuntimeWarnings on stderr), and np.arange over an infinite arc raised ValueError
    "Maximum allowed size exceeded", a traceback. Now the reader refuses the stroke."""
    from sketch_rnn.cli import main

    source = tmp_path / "cat.ndjson"
    source.write_text(json.dumps({"drawing": [[[0, x], [0, 5]]]}) + "\n")
    out = tmp_path / "out.npz"
    assert main(["convert", str(source), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stroke 0 has x or y beyond" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.ndjson"]


def test_raw_coordinates_within_the_bound_still_convert(tmp_path):
    """The control: a large but finite raw drawing (1e12 pixels wide) converts as before."""
    from sketch_rnn.cli import main
    from sketch_rnn.data.npz import load_npz

    source = tmp_path / "cat.ndjson"
    source.write_text(json.dumps({"drawing": [[[0, 1e12, 1e12], [0, 5, 1e12]]]}) + "\n")
    out = tmp_path / "out.npz"
    assert main(["convert", str(source), "-o", str(out), "--no-progress",
                 "--split", "1,0,0"]) == 0
    (sketch,) = load_npz(out)["train"]
    assert np.abs(sketch[:, :2]).max() <= 255


# --------------------------------------------------------------------------- run directories
def test_a_checkpoint_folder_renamed_to_a_newer_step_is_not_taken(ten_step_run, tmp_path):
    """runs.verify found a checkpoint folder renamed (or linked) under a newer step:
    it verified (its files match its manifest) and was taken as the newest, so a resume
    would have started from step 10 while saying step 40. Now the folder's step must be
    its state.json's."""
    from sketch_rnn.training.checkpoint import newest_checkpoint, quarantine_newer, verify

    run = tmp_path / "run"
    shutil.copytree(ten_step_run, run)
    ckpts = run / "checkpoints"
    os.rename(ckpts / "ckpt-00000010", ckpts / "ckpt-00000040")
    (ckpts / "ckpt-00000050").symlink_to(ckpts / "ckpt-00000040")
    for name in ("ckpt-00000040", "ckpt-00000050"):
        with pytest.raises(SketchRNNError, match="state.json is of step 10, not the folder's") as e:
            verify(ckpts / name)
        one_line(e)
    assert newest_checkpoint(run, warn=False) is None
    # renamed back, it verifies again; quarantine never touches what verifies
    os.unlink(ckpts / "ckpt-00000050")
    os.rename(ckpts / "ckpt-00000040", ckpts / "ckpt-00000010")
    assert newest_checkpoint(run).step == 10
    assert quarantine_newer(run, 10) == []


# --------------------------------------------------------------------------- complete --strokes
@pytest.mark.parametrize("value", ["1" + "0" * 400, "1e300", "-1e39", "NaN", "Infinity"])
def test_a_stroke3_value_beyond_float32_is_refused(tmp_path, value):
    """strokes.complete_strokes found `[[10**400, 0, 0]]`: np.asarray raised OverflowError
    (a traceback); 1e300 became inf with a RuntimeWarning on stderr."""
    import warnings

    from sketch_rnn.cli.complete_command import read_strokes_file

    path = tmp_path / "prefix.json"
    path.write_text(f"[[0, 1, 0], [{value}, 2, 1]]")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SketchRNNError, match="within float32's range") as e:
            read_strokes_file(str(path))
    one_line(e)


def test_a_stroke3_prefix_within_range_is_read(tmp_path):
    """The control: ordinary and large-but-representable values read as float32."""
    from sketch_rnn.cli.complete_command import read_strokes_file

    path = tmp_path / "prefix.json"
    path.write_text("[[0, 1, 0], [3e38, -2.5, 1]]")
    s = read_strokes_file(str(path))
    assert s.dtype == np.float32 and s.tolist() == [[0, 1, 0], [np.float32(3e38), -2.5, 1]]


# --------------------------------------------------------------------------- edited checkpoints
def _resign(folder: Path) -> None:
    """Rewrite the manifest to match the files: a hand edit, not an accident."""
    import hashlib

    files = {f: hashlib.sha256((folder / f).read_bytes()).hexdigest()
             for f in ("model.weights.h5", "callbacks.pkl", "state.json")}
    (folder / "MANIFEST.json").write_text(json.dumps({"format": 1, "files": files}))


@pytest.mark.parametrize("edit", [{"hparams": None}, {"hparams": [1, 2]}, {"seed": "0"},
                                  {"data": None}, {"data": {"paths": []}},
                                  {"data": {"paths": [], "scale_factor": -1.0}}])
def test_a_hand_edited_state_json_is_one_line(ten_step_run, tmp_path, edit):
    """runs.verify found a re-signed state.json without `hparams`: `info` raised KeyError.
    The same for what load_run reads (seed, data.paths, data.scale_factor)."""
    from sketch_rnn.training.runs import info, load_run

    run = tmp_path / "run"
    shutil.copytree(ten_step_run, run)
    folder = run / "checkpoints" / "ckpt-00000010"
    state = json.loads((folder / "state.json").read_text())
    state.update({k: v for k, v in edit.items() if v is not None})
    for k in [k for k, v in edit.items() if v is None]:
        del state[k]
    (folder / "state.json").write_text(json.dumps(state))
    _resign(folder)
    field = next(iter(edit))
    summary = info(run)  # info reports what is there
    assert summary["step"] == 10
    with pytest.raises(SketchRNNError,
                       match=f"state.json: {field}[.a-z_]* missing or malformed") as e:
        load_run(run)
    one_line(e)


@pytest.mark.parametrize("where", [120, 161, 0.5, 0.9])
def test_a_re_signed_damaged_weights_file_is_refused(ten_step_run, tmp_path, where):
    """runs.load found weights files with one bit flipped and the manifest re-signed: in
    the HDF5 header Keras raised a multi-line error (161) or h5py a RuntimeError "wrong
    B-tree signature" (120), a traceback; in the data (half-way, 90 %) the model loaded
    other weights than the run's, silently. Now each is one line, the last by the
    fingerprint state.json records."""
    from sketch_rnn.training.runs import load_run

    run = tmp_path / "run"
    shutil.copytree(ten_step_run, run)
    folder = run / "checkpoints" / "ckpt-00000010"
    weights = bytearray((folder / "model.weights.h5").read_bytes())
    weights[where if isinstance(where, int) else int(where * len(weights))] ^= 1
    (folder / "model.weights.h5").write_bytes(bytes(weights))
    _resign(folder)
    with pytest.raises(SketchRNNError, match="model.weights.h5: (cannot load weights|the "
                                             "weights loaded are not the ones)") as e:
        load_run(run)
    one_line(e)


def test_an_undamaged_run_loads_with_its_recorded_fingerprint(ten_step_run):
    """The control: the run as trained loads, and its variables are the recorded ones."""
    from sketch_rnn.training.checkpoint import fingerprint
    from sketch_rnn.training.runs import load_run

    run = load_run(ten_step_run)
    assert fingerprint(run.model) == run.state["fingerprint"]


# --------------------------------------------------------------------------- Magenta folders
def test_a_garbled_magenta_checkpoint_pointer_falls_back_to_the_newest_index(tmp_path):
    """magenta.magenta_folder found a `checkpoint` file whose first byte had one bit flipped
    (not UTF-8 any more): find_checkpoint raised UnicodeDecodeError, a traceback. The file
    only points at the newest vector-N, which is then found by its name, as without it."""
    from sketch_rnn.serving.magenta_files import find_checkpoint

    source = Path(__file__).parent / "fixtures" / "magenta" / "lstm"
    model = tmp_path / "lstm"
    shutil.copytree(source, model)
    data = bytearray((model / "checkpoint").read_bytes())
    data[0] ^= 0x80
    (model / "checkpoint").write_bytes(bytes(data))
    assert find_checkpoint(model) == model / "vector-3"
