"""The batched sampler, encode/decode/interpolate, the sample/interpolate commands (tiny)."""
from __future__ import annotations

import io
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_model
from PIL import Image

from sketch_rnn import cli
from sketch_rnn.cli import model_commands as model_cmds
from sketch_rnn.core import strokes as S
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.generation import decode_loop, reference, sampling

ROOT = Path(__file__).resolve().parents[1]
SHEEP = str(ROOT / "data" / "aaron_sheep.npz")
N_MAX = 24
B = 16


def make_model(**overrides):
    return tiny_model(overrides.pop("max_seq_len", N_MAX), 3, **overrides)


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def uncond():
    return make_model(conditional=False)


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y)
                                    for x, y in zip(a, b))


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_sketches(model):
    a = sampling.sample(model, B, temperature=0.8, seed=7)
    assert same(a, sampling.sample(model, B, temperature=0.8, seed=7))
    assert not same(a, sampling.sample(model, B, temperature=0.8, seed=8))
    assert len(a) == B and all(s.dtype == np.float32 and s.shape[1:] == (3,) for s in a)


def test_greedy_is_deterministic_given_z(model):
    z = sampling.prior_z(B, model.hps.z_size, 0)
    a = sampling.sample(model, B, greedy=True, z=z, seed=1)
    assert same(a, sampling.sample(model, B, greedy=True, z=z, seed=2))  # seed unused
    assert same(a, sampling.decode(model, z, greedy=True))


def test_low_temperature_approaches_greedy(model):
    z = sampling.prior_z(B, model.hps.z_size, 1)
    noise = sampling.step_noise(B, N_MAX, 1)
    greedy, _ = decode_loop.run_sampler(model, z, noise, 1.0, greedy=True, stop_early=False)
    gaps = []
    for tau in (1.0, 1e-2, 1e-6):
        cold, _ = decode_loop.run_sampler(model, z, noise, tau, stop_early=False)
        gaps.append(np.abs(cold[..., :2] - greedy[..., :2]).max())
    np.testing.assert_array_equal(cold[..., 2:], greedy[..., 2:])  # same pen states
    assert gaps[2] < 0.01 and gaps[2] < 0.02 * gaps[1] and gaps[1] < gaps[0]  # ~ sqrt(tau)
    assert max(len(s) for s in sampling.to_stroke3(greedy)) >= 3  # not a trivial comparison


def test_temperature_follows_the_paper():
    """pi and pen logits / tau; sigma * sqrt(tau) (covariance * tau), not magenta's tau^2."""
    from keras import ops

    from sketch_rnn.model.mixture import MixtureParams

    n, tau = 40000, 0.25
    col = lambda *v: ops.convert_to_tensor(np.tile(np.array(v, np.float32), (n, 1)))
    params = MixtureParams(pi_logits=col(0.0, np.log(3.0)), mu_x=col(0.0, 0.0),
                           mu_y=col(5.0, 5.0), sigma_x=col(1.0, 1.0), sigma_y=col(2.0, 2.0),
                           rho=col(0.5, 0.5), pen_logits=col(0.0, 0.0, np.log(3.0)))
    noise = sampling.step_noise(n, 1, 0)[:, 0]  # (n, 4)
    rows = ops.convert_to_numpy(decode_loop.sample_point(params, noise, tau, greedy=False))
    assert np.std(rows[:, 0]) == pytest.approx(np.sqrt(tau), rel=0.03)
    assert np.std(rows[:, 1]) == pytest.approx(2 * np.sqrt(tau), rel=0.03)
    assert np.corrcoef(rows[:, 0], rows[:, 1])[0, 1] == pytest.approx(0.5, abs=0.03)
    # pen probabilities softmax(logits / tau) = (1, 1, 81) / 83
    assert rows[:, 4].mean() == pytest.approx(81 / 83, abs=0.01)
    greedy = ops.convert_to_numpy(decode_loop.sample_point(params, noise, tau, greedy=True))
    np.testing.assert_array_equal(greedy[0], [0.0, 5.0, 0.0, 0.0, 1.0])


# --------------------------------------------------------------------------- same as training
@pytest.mark.parametrize("conditional", [True, False])
def test_sampler_matches_teacher_forcing(model, uncond, conditional):
    m = model if conditional else uncond
    z = sampling.prior_z(B, m.hps.z_size, 2) if conditional else None
    strokes, raw = decode_loop.run_sampler(m, z, sampling.step_noise(B, N_MAX, 2), 0.9,
                                        stop_early=False, record=True)
    inputs = np.concatenate([np.tile(S.S_0, (B, 1, 1)), strokes], axis=1)  # (B, N+1, 5)
    forced = np.asarray(m.decode_sequence(inputs, z))  # (B, N_max, 3+6M)
    assert raw.shape == forced.shape == (B, N_MAX, 3 + 6 * m.hps.num_mixture)
    np.testing.assert_allclose(raw, forced, atol=2e-5)


def test_batched_matches_one_call_per_step(model):
    z = sampling.prior_z(4, model.hps.z_size, 3)
    noise = sampling.step_noise(4, N_MAX, 3)
    batched, _ = decode_loop.run_sampler(model, z, noise, 0.7, stop_early=False)
    for i in range(4):
        one = reference.stepwise_decode(model, z[i], noise[i], 0.7, stop_early=False)
        np.testing.assert_allclose(one, batched[i], atol=1e-4)


def test_reference_discrete_temperature_acts_on_the_pen_and_components_only(model):
    """magenta.js's split temperature in the reference sampler: with the offsets' tau near 0
    and the discrete one near 0 every step takes the most likely component and pen state,
    the greedy decode; with the discrete one at 1 the same offsets' tau draws other pens."""
    z = sampling.prior_z(1, model.hps.z_size, 5)[0]
    noise = sampling.step_noise(1, N_MAX, 5)[0]
    greedy = reference.stepwise_decode(model, z, noise, 1.0, greedy=True, stop_early=False)
    cold = reference.stepwise_decode(model, z, noise, 1e-8, stop_early=False,
                                     discrete_temperature=1e-3)
    np.testing.assert_array_equal(cold[:, 2:], greedy[:, 2:])
    np.testing.assert_allclose(cold[:, :2], greedy[:, :2], atol=1e-2)
    warm = reference.stepwise_decode(model, z, noise, 1e-8, stop_early=False,
                                     discrete_temperature=1.0)
    assert (warm[:, 2:] != greedy[:, 2:]).any()


def test_batched_split_temperature_matches_the_reference(model):
    """The batched sampler with magenta.js's split temperature (offsets at t, components and
    pen at s) draws what the one-call-per-step NumPy reference draws; s = None is s = t."""
    z = sampling.prior_z(4, model.hps.z_size, 8)
    noise = sampling.step_noise(4, N_MAX, 8)
    batched, _ = decode_loop.run_sampler(model, z, noise, 0.3, stop_early=False,
                                      discrete_temperature=2.0)
    for i in range(4):
        one = reference.stepwise_decode(model, z[i], noise[i], 0.3, stop_early=False,
                                        discrete_temperature=2.0)
        np.testing.assert_allclose(one, batched[i], atol=1e-4)
    single, _ = decode_loop.run_sampler(model, z, noise, 0.3, stop_early=False)
    cold, _ = decode_loop.run_sampler(model, z, noise, 0.3, stop_early=False,
                                   discrete_temperature=0.01)
    assert not np.allclose(single, cold, atol=1e-3)  # s acted (components, pens)
    a = sampling.sample(model, 6, temperature=0.4, seed=3)
    assert same(a, sampling.sample(model, 6, temperature=0.4, seed=3, discrete_temperature=0.4))


def test_decoder_only_model(uncond):
    a = sampling.sample(uncond, 5, temperature=0.5, seed=4)
    assert same(a, sampling.sample(uncond, 5, temperature=0.5, seed=4)) and len(a) == 5
    with pytest.raises(SketchRNNError, match="decoder-only"):
        sampling.sample(uncond, 2, z=np.zeros((2, uncond.hps.z_size)))
    with pytest.raises(SketchRNNError, match="decoder-only"):
        sampling.encode(uncond, [np.ones((3, 3))])


# --------------------------------------------------------------------------- ends and units
def test_ends_are_honoured(model):
    z = sampling.prior_z(B, model.hps.z_size, 5)
    strokes, _ = decode_loop.run_sampler(model, z, sampling.step_noise(B, N_MAX, 5), 1.0)
    sketches = sampling.to_stroke3(strokes)
    for s5, s3 in zip(strokes, sketches):
        ends = np.flatnonzero(s5[:, 4] > 0.5)
        n = ends[0] if len(ends) else len(s5)
        assert len(s3) == n
        assert np.all(s5[n:] == S.PAD)  # nothing after the end token
        assert np.all(s5[:n, 4] == 0)
        if n:
            assert s3[-1, 2] == 1
    if all(s5[:, 4].any() for s5 in strokes):
        assert strokes.shape[1] < N_MAX or strokes[:, -1, 4].all()  # stopped when all ended


def test_to_stroke3_cuts_at_end_and_scales():
    s5 = np.array([[[1, 2, 1, 0, 0], [3, 4, 0, 1, 0], [5, 6, 1, 0, 0], [9, 9, 0, 0, 1],
                    [0, 0, 0, 0, 1]]], np.float32)
    (s3,) = sampling.to_stroke3(s5, scale_factor=10.0)
    np.testing.assert_array_equal(s3, [[10, 20, 0], [30, 40, 1], [50, 60, 1]])


def test_output_in_data_units(model):
    a = sampling.sample(model, 4, temperature=0.5, seed=6)
    b = sampling.sample(model, 4, temperature=0.5, seed=6, scale_factor=4.0)
    for x, y in zip(a, b):
        np.testing.assert_allclose(y[:, :2], 4.0 * x[:, :2], rtol=1e-6)
        np.testing.assert_array_equal(y[:, 2], x[:, 2])


# --------------------------------------------------------------------------- encode / reconstruct
def test_encode_reads_sketches_in_data_units(model):
    from sketch_rnn.core.strokes import stroke3_to_stroke5

    rng = np.random.default_rng(0)
    sketches = [np.c_[rng.normal(size=(k, 2)), rng.random(k) < 0.2] for k in (5, 12, N_MAX)]
    mu = sampling.encode(model, sketches)
    assert mu.shape == (3, model.hps.z_size)
    scaled = [np.c_[s[:, :2] * 7.0, s[:, 2]] for s in sketches]
    np.testing.assert_allclose(sampling.encode(model, scaled, scale_factor=7.0), mu, atol=1e-5)
    # alone or in a batch, padded the same way the training data is; and the eager
    # model.encode agrees with the compiled encoder that sampling.encode runs
    alone = np.asarray(model.encode(stroke3_to_stroke5(sketches[0], N_MAX)[None], [5])[0])
    np.testing.assert_allclose(mu[:1], alone, atol=1e-5)
    strokes, lengths = sampling.sketches_to_stroke5(model, sketches)  # the same batch: equal bits
    assert np.array_equal(mu, np.asarray(model.encode(strokes, lengths)[0]))
    z1 = sampling.encode(model, sketches, sample_z=True, seed=1)
    assert np.array_equal(z1, sampling.encode(model, sketches, sample_z=True, seed=1))
    assert not np.allclose(z1, mu)


def test_reconstruct(model):
    sketches = [np.array([[1.0, 0, 0], [0, 1, 0], [-1, 0, 1]]), np.array([[2.0, 2, 1]])]
    out = sampling.reconstruct(model, sketches, temperature=0.3, seed=2)
    assert len(out) == 2
    assert same(out, sampling.reconstruct(model, sketches, temperature=0.3, seed=2))
    with pytest.raises(SketchRNNError, match="points"):
        sampling.encode(model, [np.zeros((N_MAX + 1, 3))])


# --------------------------------------------------------------------------- interpolate
def test_interpolate():
    rng = np.random.default_rng(0)
    z0, z1 = rng.normal(size=8), rng.normal(size=8)
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    path = sampling.interpolate(z0, z1, 5)
    assert path.shape == (5, 8) and path.dtype == np.float32
    np.testing.assert_allclose(path[0], z0, atol=1e-6)
    np.testing.assert_allclose(path[-1], z1, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(z0), rtol=1e-5)
    lerp = sampling.interpolate(z0, z1, 3, method="lerp")
    np.testing.assert_allclose(lerp[1], (z0 + z1) / 2, atol=1e-6)
    np.testing.assert_allclose(sampling.interpolate(z0, z0, 3), np.tile(z0, (3, 1)), atol=1e-6)
    for bad in (dict(steps=1), dict(steps=3, method="cubic")):
        with pytest.raises(SketchRNNError):
            sampling.interpolate(z0, z1, **bad)


# --------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n=0"), (dict(n=-3), "n=-3"), (dict(n=2, temperature=0.0), "temperature"),
    (dict(n=2, temperature=-1.0), "temperature"),
    (dict(n=2, temperature=float("nan")), "temperature"),
    (dict(n=2, discrete_temperature=0.0), "discrete_temperature=0.0"),
    (dict(n=2, z=np.zeros((2, 5))), "z: expected"), (dict(n=3, z=np.zeros((2, 8))), "n=3"),
])
def test_bad_arguments(model, kwargs, match):
    with pytest.raises(SketchRNNError, match=match):
        sampling.sample(model, **kwargs)


# --------------------------------------------------------------------------- commands
@pytest.fixture(scope="module")
def fake_run():
    """A loaded run as checkpoint.load_run returns it, with an untrained tiny model."""
    m = make_model(max_seq_len=250)
    return types.SimpleNamespace(model=m, hps=m.hps, scale_factor=20.0, data_paths=[SHEEP])


def run_cli(argv, monkeypatch=None, run=None):
    if run is not None:
        monkeypatch.setattr(model_cmds, "load_run", lambda run_dir: run)
    return cli.run(argv)


def test_sample_command_same_seed_same_bytes(tmp_path, monkeypatch, fake_run):
    for ext in ("svg", "png", "npz", "gif"):
        files = [tmp_path / f"{k}.{ext}" for k in "ab"]
        for f in files:
            argv = ["sample", "--run-dir", "R", "--n", "4", "--seed", "3", "--out", str(f)]
            assert run_cli(argv, monkeypatch, fake_run) == 0
        assert files[0].read_bytes() == files[1].read_bytes(), ext
    Image.open(io.BytesIO((tmp_path / "a.png").read_bytes())).load()
    z = np.load(tmp_path / "a.npz")
    assert len(z.files) == 4 and all(z[k].ndim == 2 and z[k].shape[1] == 3 for k in z.files)


def test_sample_command_discrete_temperature(tmp_path, monkeypatch, fake_run):
    """--discrete-temperature reaches the sampler: the command's sketches are the library's
    with the same split temperature, and --discrete-temperature T is the default."""
    outs = {}
    for name, extra in (("split", ["--discrete-temperature", "0.05"]),
                        ("same", ["--discrete-temperature", "0.7"]), ("default", [])):
        outs[name] = tmp_path / f"{name}.npz"
        argv = ["sample", "--run-dir", "R", "--n", "6", "--temperature", "0.7", "--seed", "2",
                "--out", str(outs[name]), *extra]
        assert run_cli(argv, monkeypatch, fake_run) == 0
    loaded = {k: [np.load(v)[f] for f in sorted(np.load(v).files)] for k, v in outs.items()}
    lib = sampling.sample(fake_run.model, 6, temperature=0.7, seed=2, scale_factor=20.0,
                          discrete_temperature=0.05)
    assert same(loaded["split"], lib) and same(loaded["same"], loaded["default"])
    assert not same(loaded["split"], loaded["default"])


def test_sample_command_reconstructs(tmp_path, monkeypatch, fake_run, capsys):
    out = tmp_path / "rec.svg"
    argv = ["sample", "--run-dir", "R", "--from", SHEEP, "--index", "0", "2", "--greedy",
            "--out", str(out)]
    assert run_cli(argv, monkeypatch, fake_run) == 0
    groups = ET.fromstring(out.read_text()).iter("{http://www.w3.org/2000/svg}g")
    assert len(list(groups)) == 4  # original, reconstruction, twice
    assert "2 reconstructions" in capsys.readouterr().out


def test_interpolate_command(tmp_path, monkeypatch, fake_run):
    out = tmp_path / "path.npz"
    argv = ["interpolate", "--run-dir", "R", "--from", SHEEP, "--index", "0", "1", "--steps",
            "3", "--out", str(out)]
    assert run_cli(argv, monkeypatch, fake_run) == 0
    assert len(np.load(out).files) == 3
    argv[argv.index("1")] = "99999"
    assert run_cli(argv, monkeypatch, fake_run) == 2


@pytest.mark.parametrize("extra, match", [
    (["--n", "0"], "n=0"), (["--temperature", "0"], "temperature"),
    (["--discrete-temperature", "-1"], "--discrete-temperature=-1.0: must be > 0"),
    (["--out", "x.jpg"], "unknown output extension"), (["--index", "1"], "--from"),
])
def test_sample_command_bad_arguments(tmp_path, capsys, extra, match):
    assert cli.run(["sample", "--run-dir", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_run_dir_without_checkpoint(tmp_path, capsys):
    assert cli.run(["sample", "--run-dir", str(tmp_path), "--out", str(tmp_path / "a.svg")]) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err and err.count("\n") == 1
    assert cli.run(["interpolate", "--run-dir", str(tmp_path)]) == 2
