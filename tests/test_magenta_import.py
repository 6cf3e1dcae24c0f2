"""`sketch-rnn import --from magenta`, checked against Magenta's own sketch_rnn code.

The reference is not our code: each fixture in tests/fixtures/magenta/ is a checkpoint that
Magenta's `sketch_rnn_train.train` wrote after a few steps on the bundled sheep, with the
outputs Magenta's graph computed on a fixed batch of test sheep after restoring it
(`make_fixtures.py`, Magenta commit in MAGENTA_COMMIT). Imported, our model must give the
same encoder mu and presig, initial state, per-step mixture parameters and pen logits and
costs to float32 rounding (measured: at most 5e-6 over 250 steps, TOL below is 4x that), and
for the decoder-only fixtures the same variables after one Adam step from Magenta's saved
moments. A mapping that is wrong in one detail (gates in Magenta's order, the forget bias
off by one, layer-norm gain and shift exchanged) is far outside that tolerance.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import fast_first

from sketch_rnn import cli
from sketch_rnn.generation.compiled import encoder
from sketch_rnn.model.backend import compile_fn
from sketch_rnn.model.build import build_model
from sketch_rnn.model.mixture import kl_per_sketch, sketch_loss_terms, split_params
from sketch_rnn.serving import magenta_import as mi
from sketch_rnn.training.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "magenta"
DATA = str(ROOT / "data" / "aaron_sheep.npz")
NAMES = ("lstm", "lstm_uncond", "layer_norm", "layer_norm_uncond", "hyper", "hyper_uncond")
TOL = 2e-5  # float32: two implementations of the same recurrence over N_max = 250 steps


def fixture(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / name / "outputs.npz") as f:
        return dict(f)


def imported_model(name: str):
    """Our model holding the fixture's variables (the import's mapping, no run written)."""
    source = mi.open_magenta(FIXTURES / name)
    model = build_model(source.hps, 0)
    note = mi.load_into(model, source)
    return model, source, note


def magenta_outputs(model, hps, fx) -> dict[str, np.ndarray]:
    """What Magenta's graph reports, computed by our model, in Magenta's layout. The encoder
    and decoder passes run as plain graphs (the eager kernels, so the eager numbers: see
    `backend.compile_fn`), built in well under a second, instead of 250 eager steps a pass."""
    from keras import ops

    x, s = fx["x"], fx["s"]
    out = {}
    z = None
    if hps.conditional:
        mu, presig = (np.asarray(t) for t in encoder(model)(x, s))
        out.update(mean=mu, presig=presig)
        z = fx["z"]
        state = np.concatenate([np.asarray(t) for t in model.initial_state(ops.convert_to_tensor(z))],
                               axis=-1)
        cols = mi.state_columns(hps.dec_model, hps.dec_rnn_size, hps.hyper_num_units)
        magenta_state = np.empty_like(state)
        magenta_state[:, cols] = state
        out["initial_state"] = magenta_state
        kl = np.maximum(np.mean(np.asarray(kl_per_sketch(fx["mean"], fx["presig"]))),
                        hps.kl_tolerance)
    else:
        kl = 0.0
    decode = compile_fn(model, model.decode_sequence, xla=False)
    raw = np.asarray(decode(x, z))  # (B, N_max, K)
    p = split_params(raw.reshape(-1, raw.shape[-1]))
    out.update(pi=np.asarray(ops.softmax(p.pi_logits, axis=-1)), mu1=np.asarray(p.mu_x),
               mu2=np.asarray(p.mu_y), sigma1=np.asarray(p.sigma_x), sigma2=np.asarray(p.sigma_y),
               corr=np.asarray(p.rho), pen_logits=np.asarray(p.pen_logits))
    terms = sketch_loss_terms(np.transpose(raw, (1, 0, 2)), x, s)
    r_cost = float(np.mean(terms["stroke"]) + np.mean(terms["pen"]))
    out.update(r_cost=np.float32(r_cost), kl_cost=np.float32(kl),
               cost=np.float32(r_cost + 0.5 * kl))
    return out


def worst(out: dict, fx: dict) -> tuple[str, float]:
    diffs = {k: float(np.max(np.abs(np.asarray(v, np.float64) - fx[k]))) for k, v in out.items()}
    key = max(diffs, key=diffs.get)
    return key, diffs[key]


@pytest.mark.parametrize("name", NAMES)
def test_import_reproduces_magentas_outputs(name):
    fx = fixture(name)
    model, source, note = imported_model(name)
    assert source.global_step == int(fx["global_step"]) == 4
    assert note.startswith("kept")
    out = magenta_outputs(model, source.hps, fx)
    assert set(out) >= {"pi", "pen_logits", "r_cost"}
    key, diff = worst(out, fx)
    assert diff <= TOL, (key, diff)


@pytest.mark.parametrize("name", fast_first(["lstm_uncond", "layer_norm_uncond", "hyper_uncond"]))
def test_one_training_step_matches_magentas(name):
    """From Magenta's weights and Adam moments, one step on the batch (lr of the step, no
    dropout) gives Magenta's variables after its own train_op."""
    fx = fixture(name)
    source = mi.open_magenta(FIXTURES / name)
    hps = source.hps.replace(use_recurrent_dropout=False)
    model = build_model(hps, 0)
    assert mi.load_into(model, source).startswith("kept")
    model.optimizer.iterations.assign(source.global_step)
    model.optimizer.learning_rate.assign(float(fx["lr_step"]))
    model.kl_weight.assign(0.5)
    model.train_on_batch({"strokes": fx["x"], "lengths": fx["s"]})
    after = {k[len("after/"):].split(":")[0]: v for k, v in fx.items() if k.startswith("after/")}
    got = lambda n: after[n]  # noqa: E731
    for variable, rule in mi.weight_rules(model, hps):
        expected = rule(got, True)
        diff = np.max(np.abs(np.asarray(variable.numpy()) - expected))
        assert diff <= 1e-6, (variable.path, diff)


def _swap_ln_gain_and_bias(original):
    def rules(cell, scope, prefix=""):
        r = original(cell, scope, prefix)
        (g, rg), (b, rb) = r[2], r[3]
        r[2], r[3] = (g, rb), (b, rg)
        return r
    return rules


@pytest.mark.parametrize("name,wrong", [
    ("lstm", "gates"), ("lstm_uncond", "forget"), ("layer_norm", "ln"), ("hyper", "gates"),
    ("hyper_uncond", "ln"), ("layer_norm_uncond", "gates")])
def test_a_wrong_mapping_fails(monkeypatch, name, wrong):
    if wrong == "gates":  # Magenta's (i, j, f, o) taken as ours
        monkeypatch.setattr(mi, "magenta_gates", lambda x: x)
    elif wrong == "forget":  # forget bias off by one
        monkeypatch.setattr(mi, "plus_forget_bias", lambda x: x)
    else:
        monkeypatch.setattr(mi, "_layer_norm_rules", _swap_ln_gain_and_bias(mi._layer_norm_rules))
    fx = fixture(name)
    model, source, _ = imported_model(name)
    key, diff = worst(magenta_outputs(model, source.hps, fx), fx)
    assert diff > 100 * TOL, (key, diff)


def test_cli_import_writes_a_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = cli.main(["import", "--from", "magenta", str(FIXTURES / "lstm"), "-o", str(run_dir),
                     "--data", DATA, "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    fx = fixture("lstm")
    # Magenta's normalizing_scale_factor of the train split, from our data loader
    assert summary["scale_factor"] == pytest.approx(float(fx["scale_factor"]), rel=1e-6)
    run = load_run(run_dir)
    assert run.step == 4 and run.hps.dec_model == "lstm" and run.hps.num_mixture == 3
    # Magenta's training path: full-length batches, float32
    assert run.hps.bucketed_batches is False and run.hps.precision == "float32"
    state = run.state
    imported = state["imported"]
    assert imported["from"] == "magenta" and imported["global_step"] == 4
    assert set(imported["sha256"]) == {"vector-3.index", "vector-3.data-00000-of-00001"}
    assert state["lineage"] == [{"kind": "imported", **imported}]
    # schedules continue from the imported step
    assert state["learning_rate"] == pytest.approx((1e-3 - 1e-5) * 0.9999 ** 4 + 1e-5)
    assert int(run.model.optimizer.iterations.numpy()) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # no overwrite without --force; with it, replaced
    assert cli.main(["import", "--from", "magenta", str(FIXTURES / "lstm"), "-o", str(run_dir),
                     "--scale-factor", "2"]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main(["import", "--from", "magenta", str(FIXTURES / "hyper"), "-o", str(run_dir),
                     "--scale-factor", "2", "--force"]) == 0
    assert load_run(run_dir).hps.dec_model == "hyper"


def _copy_fixture(tmp_path: Path, name: str = "lstm") -> Path:
    import shutil

    dest = tmp_path / "model"
    shutil.copytree(FIXTURES / name, dest)
    return dest


@pytest.mark.parametrize("change,expected", [
    ({"dec_model": "gru"}, "dec_model='gru'"),
    ({"enc_model": "hyper"}, "enc_model='hyper'"),
    ({"use_magic": True}, "unknown option 'use_magic'"),
    ({"dec_rnn_size": 32}, "shape"),
])
def test_bad_config_is_refused_in_one_line(tmp_path, capsys, change, expected):
    model_dir = _copy_fixture(tmp_path)
    config = json.loads((model_dir / "model_config.json").read_text())
    config.update(change)
    (model_dir / "model_config.json").write_text(json.dumps(config))
    code = cli.main(["import", "--from", "magenta", str(model_dir), "-o", str(tmp_path / "run"),
                     "--scale-factor", "1.5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "run").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_refusals(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["import", "--from", "magenta", str(FIXTURES / "lstm"), "-o", out]) == 2
    assert "--scale-factor" in capsys.readouterr().err
    assert cli.main(["import", "--from", "magenta", str(FIXTURES), "-o", out,
                     "--scale-factor", "1"]) == 2
    assert "--model" in capsys.readouterr().err
    model_dir = _copy_fixture(tmp_path)
    (model_dir / "vector-3.data-00000-of-00001").write_bytes(b"not a checkpoint")
    assert cli.main(["import", "--from", "magenta", str(model_dir), "-o", out,
                     "--scale-factor", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "vector-3" in err, err
    assert not Path(out).exists()


def test_model_name_inside_a_folder(tmp_path):
    assert cli.main(["import", "--from", "magenta", str(FIXTURES), "--model", "layer_norm_uncond",
                     "-o", str(tmp_path / "run"), "--scale-factor", "3.5"]) == 0
    run = load_run(tmp_path / "run")
    assert run.hps.dec_model == "layer_norm" and not run.hps.conditional
    assert run.scale_factor == 3.5
