"""`sketch-rnn export --format magenta-js`, checked by the real browser library in Node.

The reference is `@magenta/sketch` 0.2.0 itself (installed with npm into a cache folder,
run on tfjs' CPU backend, loading the exported JSON over HTTP from 127.0.0.1): the same
strokes go through it and through our Keras model, and the mixture parameters it
computes after every step are compared with ours at the same temperature.

The bound, and how it is derived. The library computes with weights w_q = 10 q / 32767,
each within 5 / 32767 = 1.53e-4 of ours (round to nearest int16; asserted per weight).
Its outputs therefore differ from ours by (a) the effect of that rounding on the whole
recurrence, which we compute exactly by running OUR model with the library's decoded
weights (`quantised`), and (b) float32 arithmetic done in another order (tfjs vs
TensorFlow), FLOAT_TOL. So, step by step and value by value:

    |js - ours| <= |quantised - ours| + FLOAT_TOL,   and   |js - quantised| <= FLOAT_TOL.

The second inequality is the sharp one: a wrong gate order, forget bias, output layout,
unit or temperature convention moves the values by orders of magnitude more than
FLOAT_TOL, while the quantisation itself is allowed for exactly, not by a loose margin.
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import train_tiny

from sketch_rnn import cli
from sketch_rnn.serving import export
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.core.hparams import preset

ROOT = Path(__file__).resolve().parents[1]
DATA = str(ROOT / "data" / "aaron_sheep.npz")
NODE_SCRIPT = ROOT / "tests" / "js" / "magenta_pdf.js"
HPARAMS = ("num_mixture=20,max_seq_len=64,save_every=5,batch_size=8,precision=float32,"
           "bucketed_batches=false")  # one batch shape: one trace of the training step
STEPS = 5
PIXEL_FACTOR = 2.0  # magenta.js' default: its inputs are data units / 2
TAU = 0.6  # our temperature; the library's getPDF(state, TAU, TAU) is the same convention
FLOAT_TOL = 1e-5  # float32 in two implementations (measured: at most 2.4e-7 over 45 steps)
NPM_DIR_ENV = "SKETCH_RNN_NPM_DIR"
FIELDS = ("pi", "muX", "muY", "sigmaX", "sigmaY", "corr", "pen")


# --------------------------------------------------------------------------- Node side
@pytest.fixture(scope="module")
def node_modules() -> Path:
    """node_modules holding @magenta/sketch at the pinned version (npm install once, cached)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not installed: the export is checked by @magenta/sketch in "
                    "Node (apt-get install -y nodejs npm)")
    prefix = Path(os.environ.get(NPM_DIR_ENV, "~/.cache/sketch-rnn/npm")).expanduser()
    package = prefix / "node_modules" / "@magenta" / "sketch" / "package.json"
    wanted = export.MAGENTA_JS_VERSION
    if not package.is_file() or json.loads(package.read_text())["version"] != wanted:
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        "--save-exact", "--prefer-offline",
                        f"{export.MAGENTA_JS_PACKAGE}@{wanted}"],
                       check=True, capture_output=True, text=True, timeout=600)
    assert json.loads(package.read_text())["version"] == wanted
    return prefix / "node_modules"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(folder, base URL): an HTTP server on 127.0.0.1, as the library loads by URL."""
    folder = tmp_path_factory.mktemp("served")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_magenta_js(node_modules: Path, url: str, strokes_px: np.ndarray, work: Path) -> dict:
    """The library's per-step PDFs for `strokes_px` (pixel units) and one sampled sketch."""
    job = {"url": url, "strokes": strokes_px.tolist(), "temperature": TAU,
           "softmax_temperature": TAU, "sample_steps": 64}
    (work / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "NODE_PATH": str(node_modules)}
    result = subprocess.run(["node", str(NODE_SCRIPT), str(work / "job.json"),
                             str(work / "out.json")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads((work / "out.json").read_text())
    out["pdfs"] = {k: np.array([p[k] for p in out["pdfs"]], np.float64) for k in FIELDS}
    return out


# --------------------------------------------------------------------------- our side
def _train(run_dir: Path, hparams: str) -> Path:
    train_tiny(run_dir, STEPS, hparams=hparams, data=DATA)
    return run_dir


@pytest.fixture(scope="module")
def decoder_only_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("dec") / "run", HPARAMS + ",conditional=false")


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("cond") / "run", HPARAMS)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def our_pdfs(model, strokes_norm: np.ndarray, z, states) -> dict:
    """Our decoder over the rows (normalised units), PDFs at TAU by our convention:
    logits / TAU, sigma * sqrt(TAU)."""
    from keras import ops

    from sketch_rnn.model.mixture import split_params

    rows = {k: [] for k in FIELDS}
    for row in strokes_norm:
        raw, states = model.decode_step(row[None], z, states)
        p = [np.asarray(ops.convert_to_numpy(v), np.float64)[0] for v in split_params(raw)]
        pi, mu_x, mu_y, s_x, s_y, rho, pen = p
        values = (_softmax(pi / TAU), mu_x, mu_y, s_x * np.sqrt(TAU), s_y * np.sqrt(TAU), rho,
                  _softmax(pen / TAU))
        for k, v in zip(FIELDS, values):
            rows[k].append(v)
    return {k: np.array(v) for k, v in rows.items()}


def quantised_copy(run_dir: Path, model_json: list):
    """Our model holding the weights the library decoded (z already in the bias)."""
    from sketch_rnn.training.runs import load_run

    model = load_run(run_dir).model
    w = export.to_keras_layout(export.decode_magenta_js(model_json))
    cell = model.decoder.cell
    kernel = np.zeros(cell.kernel.shape, np.float32)  # (5 [+ z], 4u): z rows unused
    kernel[:5] = w["kernel"]
    cell.kernel.assign(kernel)
    cell.recurrent_kernel.assign(w["recurrent_kernel"])
    cell.bias.assign(w["bias"])
    model.head.kernel.assign(w["head_kernel"])
    model.head.bias.assign(w["head_bias"])
    return model


def a_test_sketch(run) -> tuple[int, np.ndarray]:
    """The first test-split sketch that fits the model (data units)."""
    from sketch_rnn.data import load_npz
    from sketch_rnn.data import read_sketches

    items = load_npz(DATA)["test"]
    index = next(i for i, s in enumerate(items) if len(s) <= int(run.hps.max_seq_len))
    return index, read_sketches(DATA, "test", [index], run.hps.max_seq_len)[0]


def input_rows(model, sketch: np.ndarray) -> np.ndarray:
    """S_0 and the sketch's points as stroke-5 rows in DATA units (N, 5)."""
    from sketch_rnn.generation.sampling import sketches_to_stroke5

    strokes, lengths = sketches_to_stroke5(model, [sketch], scale_factor=1.0)
    return strokes[0, :int(lengths[0]) + 1].astype(np.float64)


# --------------------------------------------------------------------------- comparison
def compare(js: dict, ours: dict, quantised: dict) -> dict:
    """Assert the module docstring's bounds; return the largest differences per field."""
    report = {}
    for k in FIELDS:
        assert js[k].shape == ours[k].shape, k
        float_gap = np.abs(js[k] - quantised[k])
        quant_effect = np.abs(quantised[k] - ours[k])
        total = np.abs(js[k] - ours[k])
        assert float_gap.max() <= FLOAT_TOL, (k, float_gap.max())
        assert np.all(total <= quant_effect + FLOAT_TOL), (k, (total - quant_effect).max())
        report[k] = (float(total.max()), float(quant_effect.max()), float(float_gap.max()))
    return report


def check_sample(sample: list, max_len: int) -> None:
    """Well-formed stroke-5: finite offsets, one-hot pen, stops at p3 or at max_len."""
    rows = np.array(sample, np.float64)
    assert rows.ndim == 2 and rows.shape[1] == 5 and 1 <= len(rows) <= max_len
    assert np.all(np.isfinite(rows))
    assert np.all(np.sort(rows[:, 2:], axis=1) == [0, 0, 1])
    ended = np.flatnonzero(rows[:, 4] == 1)
    assert len(ended) == 0 and len(rows) == max_len or list(ended) == [len(rows) - 1]


def test_decoder_only_model_runs_in_magenta_js_as_in_keras(decoder_only_run, node_modules,
                                                           served, tmp_path) -> None:
    from sketch_rnn.training.runs import load_run

    run = load_run(decoder_only_run)
    model_json = export.export_magenta_js(run)
    folder, base = served
    (folder / "dec.gen.json").write_text(json.dumps(model_json))
    _, sketch = a_test_sketch(run)
    rows = input_rows(run.model, sketch)  # (N, 5) data units
    norm = rows.copy()
    norm[:, :2] /= run.scale_factor
    px = rows.copy()
    px[:, :2] /= PIXEL_FACTOR
    start = time.perf_counter()
    js = run_magenta_js(node_modules, f"{base}/dec.gen.json", px, tmp_path)
    node_s = time.perf_counter() - start
    assert js["scale_factor"] == pytest.approx(run.scale_factor / PIXEL_FACTOR, rel=1e-12)
    assert js["num_units"] == run.hps.dec_rnn_size
    u = run.hps.dec_rnn_size
    zeros = run.model.decoder.zero_state(1)
    ours = our_pdfs(run.model, norm.astype(np.float32), None, zeros)
    quantised = our_pdfs(quantised_copy(decoder_only_run, model_json), norm.astype(np.float32),
                         None, zeros)
    report = compare(js["pdfs"], ours, quantised)
    check_sample(js["sample"], 64)
    print(f"\ndecoder-only (u={u}, {len(rows)} steps, node {node_s:.1f} s): max |js-ours|, "
          f"quantisation effect, |js-quantised| per field: {report}")


@pytest.mark.slow  # Node runs magenta.js once in the fast loop (the decoder-only model)
def test_conditional_model_with_fixed_z_runs_in_magenta_js_as_in_keras(
        conditional_run, node_modules, served, tmp_path, capsys) -> None:
    from keras import ops

    from sketch_rnn.training.runs import load_run
    from sketch_rnn.generation.sampling import encode

    run = load_run(conditional_run)
    index, sketch = a_test_sketch(run)
    folder, base = served
    out = folder / "cond.gen.json"
    assert cli.main(["export", "--run-dir", str(conditional_run), "--format", "magenta-js",
                     "-o", str(out), "--z-from", DATA, "--index", str(index)]) == 0
    assert "largest quantisation error" in capsys.readouterr().out
    model_json = json.loads(out.read_text())
    info = model_json[0]
    z = encode(run.model, [sketch], scale_factor=run.scale_factor)  # (1, z_size)
    np.testing.assert_allclose(info["z"], z[0], atol=1e-6)
    assert info["scale_factor"] == run.scale_factor
    assert model_json[1][2] == [5, 4 * run.hps.dec_rnn_size]  # z folded into the bias
    assert 0 < info["max_quantisation_error"] <= export.MAX_QUANTISATION_ERROR
    rows = input_rows(run.model, sketch)
    norm = rows.copy()
    norm[:, :2] /= run.scale_factor
    px = rows.copy()
    px[:, :2] /= PIXEL_FACTOR
    js = run_magenta_js(node_modules, f"{base}/cond.gen.json", px, tmp_path)
    ours = our_pdfs(run.model, norm.astype(np.float32), z, run.model.initial_state(z, 1))
    start = tuple(ops.convert_to_tensor(np.array([info["initial_state"][k]], np.float32))
                  for k in ("h", "c"))
    quantised = our_pdfs(quantised_copy(conditional_run, model_json), norm.astype(np.float32),
                         None, start)
    report = compare(js["pdfs"], ours, quantised)
    check_sample(js["sample"], 64)
    print(f"\nconditional ({len(rows)} steps): {report}")


def test_each_weight_is_stored_within_half_an_int16_step(decoder_only_run) -> None:
    from sketch_rnn.training.runs import load_run

    run = load_run(decoder_only_run)
    floats = export.magenta_js_weights(run.model)
    decoded = export.decode_magenta_js(export.export_magenta_js(run))
    worst = max(float(np.max(np.abs(d - f))) for d, f in zip(decoded, floats))
    assert 0 < worst <= 5 / 32767  # half of one step 10 / 32767


def test_weights_are_little_endian_int16_in_base64() -> None:
    # q = 1, -1, 32767 as little-endian int16: 01 00 ff ff ff 7f
    assert export.encode_weight([10 / 32767, -10 / 32767, 10.0]) == base64.b64encode(
        bytes([0x01, 0x00, 0xFF, 0xFF, 0xFF, 0x7F])).decode()
    with pytest.raises(SketchRNNError, match=r"LSTM bias: \|value\| 10\.5 > 10"):
        export.encode_weight([0.0, -10.5], "LSTM bias")


@pytest.mark.parametrize("field, value", [("dec_model", "layer_norm"), ("dec_model", "hyper"),
                                          ("num_mixture", 5)])
def test_models_the_browser_cannot_run_are_refused(field, value) -> None:
    hps = preset("tiny").replace(**{"num_mixture": 20, field: value})
    with pytest.raises(SketchRNNError, match=f"{field}={value}: @magenta/sketch 0.2.0 runs "
                                             "only a basic LSTM decoder"):
        export.check_exportable(hps)


def test_export_command_errors_are_one_line(decoder_only_run, conditional_run, tmp_path,
                                            capsys) -> None:
    out = str(tmp_path / "m.json")
    cases = [(["--run-dir", str(conditional_run), "-o", out], "--z-from DATA.npz --index I"),
             (["--run-dir", str(decoder_only_run), "-o", out, "--z-prior"], "decoder-only"),
             (["--run-dir", str(conditional_run), "-o", out, "--z-from", DATA, "--z-prior"],
              "give one of them")]
    for args, words in cases:
        assert cli.main(["export", *args]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    assert not Path(out).exists()


def test_z_prior_fixes_the_seeded_prior_draw(conditional_run, tmp_path, capsys) -> None:
    from sketch_rnn.generation.sampling import prior_z

    out = tmp_path / "prior.gen.json"
    assert cli.main(["export", "--run-dir", str(conditional_run), "-o", str(out), "--z-prior",
                     "--seed", "7"]) == 0
    info = json.loads(out.read_text())[0]
    np.testing.assert_array_equal(np.float32(info["z"]), prior_z(1, len(info["z"]), 7)[0])
    u = preset("tiny").dec_rnn_size
    assert len(info["initial_state"]["h"]) == len(info["initial_state"]["c"]) == u
