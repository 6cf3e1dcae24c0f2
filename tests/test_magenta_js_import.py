"""`sketch-rnn import --from magenta-js`, the inverse of the export.

References: `@magenta/sketch` 0.2.0 itself in Node for a `.gen.json` (the harness of
tests/test_export.py: the library's per-step PDFs against our imported model's, which holds
exactly the weights the library decodes, so only float32 arithmetic order separates them:
FLOAT_TOL), and for a `.vae.json`, whose runtime (tensorflow/magenta-demos
sketch-rnn-js/lib/sketch_rnn.js) is not on npm, a NumPy transcription of that file's
LSTMCell.forward, encode and get_init_state_from_latent_vector. The model files are made
here from seeded random int16 codes: any such file is a model the runtimes run.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from test_export import (FIELDS, FLOAT_TOL, PIXEL_FACTOR, input_rows, node_modules,  # noqa: F401
                         our_pdfs, run_magenta_js, served)

from sketch_rnn import cli
from sketch_rnn.serving import export
from sketch_rnn.training.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
DATA = str(ROOT / "data" / "aaron_sheep.npz")
U, ENC, Z = 16, 8, 4
K = 3 + 6 * 20


def _codes(rng, shape, scale=3000):
    return rng.integers(-scale, scale + 1, size=shape).astype("<i2")


def _b64(codes) -> str:
    return base64.b64encode(codes.astype("<i2").tobytes()).decode()


def make_model_json(mode: str, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    gen = [(U, K), (K,), (5 + (Z if mode == "vae" else 0), 4 * U), (U, 4 * U), (4 * U,)]
    dims = gen
    if mode == "vae":
        enc = [(5, 4 * ENC), (ENC, 4 * ENC), (4 * ENC,)]
        dims = enc + enc + [(2 * ENC, Z), (Z,), (2 * ENC, Z), (Z,), (Z, 2 * U), (2 * U,)] + gen
    info = {"mode": mode, "name": "synthetic", "version": 6, "scale_factor": 37.5,
            "max_seq_len": 120}
    return [info, [list(d) for d in dims], [_b64(_codes(rng, d)) for d in dims]]


def test_gen_json_round_trip_gives_the_same_numbers(tmp_path, capsys):
    model_json = make_model_json("gen")
    src = tmp_path / "m.gen.json"
    src.write_text(json.dumps(model_json))
    run_dir = tmp_path / "run"
    assert cli.main(["import", "--from", "magenta-js", str(src), "-o", str(run_dir)]) == 0
    assert "started fresh" in capsys.readouterr().out
    run = load_run(run_dir)
    assert run.scale_factor == 37.5 and run.hps.max_seq_len == 120
    assert not run.hps.conditional and run.hps.dec_rnn_size == U
    assert run.state["imported"]["from"] == "magenta-js"
    out = tmp_path / "again.gen.json"
    assert cli.main(["export", "--run-dir", str(run_dir), "-o", str(out)]) == 0
    again = json.loads(out.read_text())
    assert again[1] == model_json[1]
    assert again[2] == model_json[2]  # every int16 code back as it was
    assert again[0]["scale_factor"] == 37.5 and again[0]["max_seq_len"] == 120


def test_gen_json_import_runs_as_magenta_js_does(tmp_path, node_modules, served):  # noqa: F811
    model_json = make_model_json("gen", seed=3)
    folder, base = served
    (folder / "synthetic.gen.json").write_text(json.dumps(model_json))
    run_dir = tmp_path / "run"
    assert cli.main(["import", "--from", "magenta-js", str(folder / "synthetic.gen.json"),
                     "-o", str(run_dir)]) == 0
    run = load_run(run_dir)
    from sketch_rnn.data import read_sketches

    sketch = read_sketches(DATA, "test", [0], run.hps.max_seq_len)[0]
    rows = input_rows(run.model, sketch)[:60]  # (N, 5) data units
    norm, px = rows.copy(), rows.copy()
    norm[:, :2] /= run.scale_factor
    px[:, :2] /= PIXEL_FACTOR
    js = run_magenta_js(node_modules, f"{base}/synthetic.gen.json", px, tmp_path)
    assert js["num_units"] == U
    ours = our_pdfs(run.model, norm.astype(np.float32), None, run.model.decoder.zero_state(1))
    for k in FIELDS:
        gap = float(np.max(np.abs(js["pdfs"][k] - ours[k])))
        assert gap <= FLOAT_TOL, (k, gap)


# --------------------------------------------------------------------------- .vae.json
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _js_lstm(x, h, c, w_xh, w_hh, b):
    """sketch_rnn.js LSTMCell.forward: gates (i, g, f, o), forget bias 1.0 at run time."""
    hidden = np.concatenate([x, h]) @ np.concatenate([w_xh, w_hh]) + b
    i, g, f, o = np.split(hidden, 4)
    c = c * _sigmoid(f + 1.0) + np.tanh(g) * _sigmoid(i)
    return np.tanh(c) * _sigmoid(o), c


def test_vae_json_matches_sketch_rnn_js(tmp_path):
    model_json = make_model_json("vae", seed=5)
    src = tmp_path / "m.vae.json"
    src.write_text(json.dumps(model_json))
    run_dir = tmp_path / "run"
    assert cli.main(["import", "--from", "magenta-js", str(src), "-o", str(run_dir)]) == 0
    run = load_run(run_dir)
    assert run.hps.conditional and (run.hps.enc_rnn_size, run.hps.z_size) == (ENC, Z)
    w = [export.decode_weight(s, tuple(d)).astype(np.float64)
         for d, s in zip(model_json[1], model_json[2])]
    from sketch_rnn.data import read_sketches

    sketch = read_sketches(DATA, "test", [1], run.hps.max_seq_len)[0]
    rows = input_rows(run.model, sketch)  # S_0 then the points, data units
    seq = rows[1:].copy()
    seq[:, :2] /= run.scale_factor
    # encode: fw over the points, bw over them reversed, mu from [h_fw, h_bw]
    h = {}
    for side, (a, b_, c_), order in (("fw", w[0:3], seq), ("bw", w[3:6], seq[::-1])):
        hs, cs = np.zeros(ENC), np.zeros(ENC)
        for x in order:
            hs, cs = _js_lstm(x, hs, cs, a, b_, c_)
        h[side] = hs
    mu = np.concatenate([h["fw"], h["bw"]]) @ w[6] + w[7]
    presig = np.concatenate([h["fw"], h["bw"]]) @ w[8] + w[9]
    ours_mu, ours_presig = (np.asarray(t)[0] for t in run.model.encode(
        rows[None].astype(np.float32) / [run.scale_factor, run.scale_factor, 1, 1, 1],
        np.array([len(seq)])))
    np.testing.assert_allclose(ours_mu, mu, atol=1e-5)
    np.testing.assert_allclose(ours_presig, presig, atol=1e-5)
    # decode from z = mu: state [c, h] = tanh(z W + b), input [x, z] at every step
    state = np.tanh(mu @ w[10] + w[11])
    c, hd = state[:U], state[U:]
    norm = rows.copy()
    norm[:, :2] /= run.scale_factor
    z = mu[None].astype(np.float32)
    states = run.model.initial_state(z, 1)
    np.testing.assert_allclose(np.asarray(states[0])[0], hd, atol=1e-5)
    np.testing.assert_allclose(np.asarray(states[1])[0], c, atol=1e-5)
    for x in norm[:40]:
        hd, c = _js_lstm(np.concatenate([x, mu]), hd, c, w[14], w[15], w[16])
        expected = hd @ w[12] + w[13]
        raw, states = run.model.decode_step(x[None].astype(np.float32), z, states)
        np.testing.assert_allclose(np.asarray(raw)[0], expected, atol=2e-5)


@pytest.mark.parametrize("edit,expected", [
    (lambda m: m[0].update(mode="hyper"), "info.mode='hyper'"),
    (lambda m: m[1].__setitem__(3, [U, 4 * U + 4]), "weight 'decoder W_hh'"),
    (lambda m: m[1].__setitem__(0, [U, 33]), "weight 'output kernel'"),
    (lambda m: m[2].pop(), "has 5 weights"),
    (lambda m: m[0].update(scale_factor=-1), "info.scale_factor=-1"),
])
def test_bad_files_are_refused_in_one_line(tmp_path, capsys, edit, expected):
    model_json = make_model_json("gen")
    edit(model_json)
    src = tmp_path / "bad.gen.json"
    src.write_text(json.dumps(model_json))
    code = cli.main(["import", "--from", "magenta-js", str(src), "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "run").exists()


def test_not_json_is_refused(tmp_path, capsys):
    src = tmp_path / "x.gen.json"
    src.write_text("<html>not found</html>")
    assert cli.main(["import", "--from", "magenta-js", str(src), "-o", str(tmp_path / "r")]) == 2
    assert "not JSON" in capsys.readouterr().err
