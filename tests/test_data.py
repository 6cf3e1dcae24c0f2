"""Loading, validation, packed storage and batches (sketch_rnn.data)."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from npz_helpers import REPO, SHEEP, simple_sketches, write_evil, write_good, write_npz

from sketch_rnn.core import strokes as S
from sketch_rnn.data import eval_batches, load_data, load_npz, train_batch
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.core.hparams import HParams

HPS = HParams(batch_size=16, max_seq_len=250, random_scale_factor=0.15, augment_stroke_prob=0.1)


@pytest.fixture(scope="module")
def sheep():
    return load_data([str(SHEEP)], 250)


@pytest.fixture(scope="module")
def sheep_raw():
    """The bundled (trusted) file read the plain way, as a reference."""
    with np.load(SHEEP, allow_pickle=True, encoding="latin1") as z:
        return {k: list(z[k]) for k in ("train", "valid", "test")}


def test_load_npz_matches_plain_numpy(sheep_raw):
    ours = load_npz(SHEEP)
    for split in ("train", "valid", "test"):
        assert len(ours[split]) == len(sheep_raw[split])
        for i in (0, 17, len(ours[split]) - 1):
            np.testing.assert_array_equal(ours[split][i], sheep_raw[split][i])
    assert (len(ours["train"]), len(ours["valid"]), len(ours["test"])) == (7400, 300, 300)


def test_scale_factor_and_normalised_points(sheep, sheep_raw):
    kept = [s for s in sheep_raw["train"] if len(s) <= 250]
    direct = np.std(np.concatenate([np.clip(s[:, :2], -1000, 1000).ravel() for s in kept]))
    assert sheep.scale_factor == pytest.approx(float(direct), rel=1e-9)
    i = 123
    np.testing.assert_allclose(sheep.train.sketch(i)[:, :2],
                               sheep_raw["train"][i][:, :2] / direct, rtol=1e-6)
    np.testing.assert_array_equal(sheep.valid.sketch(5)[:, 2], sheep_raw["valid"][5][:, 2])
    # the training scale factor is applied to the other splits too
    np.testing.assert_allclose(sheep.test.sketch(7)[:, :2] * direct,
                               sheep_raw["test"][7][:, :2], atol=1e-3)
    assert sheep.train.points.dtype == np.int16  # raw units; normalised on the way out
    assert sheep.train.offsets[-1] == len(sheep.train.points)
    np.testing.assert_array_equal(sheep.train.lengths(), [len(s) for s in sheep_raw["train"]])


def test_length_filter_and_clipping(tmp_path):
    long = simple_sketches(3, length=40)  # 40-42 points
    short = simple_sketches(5, length=6, big=5000)  # first dx 5000 -> clipped to 1000
    path = write_npz(tmp_path / "mix.npz", train=long + short, valid=long[:1] + short[:2],
                     test=short[:1])
    data = load_data([str(path)], 30)
    assert (len(data.train), len(data.valid), len(data.test)) == (5, 2, 1)
    assert data.dropped == {"train": 3, "valid": 1, "test": 0}
    assert "dropped 4" in data.summary()
    pts = np.concatenate([np.clip(s[:, :2], -1000, 1000) for s in short]).astype(float)
    assert data.scale_factor == pytest.approx(np.std(pts), rel=1e-9)
    assert data.train.sketch(0)[0, 0] * data.scale_factor == pytest.approx(1000, rel=1e-5)


def test_several_categories_have_labels(tmp_path):
    a = write_good(tmp_path / "cat.npz", n=(12, 5, 4))
    b = write_good(tmp_path / "pig.npz", n=(7, 3, 2), seed=9)
    data = load_data([str(a), str(b)], 50)
    assert data.categories == ["cat", "pig"]
    np.testing.assert_array_equal(data.train.labels, [0] * 12 + [1] * 7)
    np.testing.assert_array_equal(data.test.labels, [0] * 4 + [1] * 2)
    # one scale factor over the pooled training sketches of both files
    raw = load_npz(a)["train"] + load_npz(b)["train"]
    assert data.scale_factor == pytest.approx(S.scale_factor(raw), rel=1e-9)


def test_fingerprint_tracks_content_and_max_seq_len(tmp_path):
    a = write_good(tmp_path / "a.npz")
    fp = load_data([str(a)], 50).fingerprint
    assert fp == load_data([str(a)], 50).fingerprint
    assert fp != load_data([str(a)], 60).fingerprint
    b = write_good(tmp_path / "b.npz", seed=4)
    assert fp != load_data([str(b)], 50).fingerprint
    assert len(fp) == 64 and int(fp, 16) >= 0


def test_train_batch_layout(sheep):
    strokes, lengths = train_batch(sheep.train, HPS, seed=1, step=3)
    assert strokes.shape == (16, 251, 5) and strokes.dtype == np.float32
    assert lengths.dtype == np.int32
    np.testing.assert_array_equal(strokes[:, 0], np.tile([0, 0, 1, 0, 0], (16, 1)))
    steps = np.arange(251)[None, :]
    real = (steps >= 1) & (steps <= lengths[:, None])
    np.testing.assert_array_equal(strokes[..., 4], (steps > lengths[:, None]).astype(np.float32))
    np.testing.assert_array_equal(strokes[..., 2][real] + strokes[..., 3][real], 1)
    assert (strokes[..., :4][steps.repeat(16, 0) > lengths[:, None]] == 0).all()
    # every sketch still ends with a pen-up: the last real row has p2 = 1
    assert (strokes[np.arange(16), lengths, 3] == 1).all()


def test_train_batch_is_a_pure_function_of_seed_and_step(sheep):
    a, la = train_batch(sheep.train, HPS, seed=1, step=3)
    b, lb = train_batch(sheep.train, HPS, seed=1, step=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    c, _ = train_batch(sheep.train, HPS, seed=1, step=4)
    d, _ = train_batch(sheep.train, HPS, seed=2, step=3)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_train_batch_augments(sheep):
    plain = HPS.replace(random_scale_factor=0.0, augment_stroke_prob=0.0)
    aug = HPS.replace(augment_stroke_prob=0.5)
    s0, l0 = train_batch(sheep.train, plain, seed=0, step=0)
    s1, l1 = train_batch(sheep.train, aug, seed=0, step=0)
    assert (l1 <= l0).all() and l1.sum() < l0.sum()  # same sketches, points dropped
    # stroke count unchanged (p2 sums), drawings only rescaled by at most 15 % per axis
    np.testing.assert_array_equal(s1[..., 3].sum(1), s0[..., 3].sum(1))
    ratio = s1[:, :, :2].sum(1) / s0[:, :, :2].sum(1)
    assert ((ratio > 0.85 - 1e-4) & (ratio < 1.15 + 1e-4)).all()


def _batch_digest(seed: int, step: int) -> str:
    code = (
        "import hashlib, sys; from sketch_rnn.data import load_data, train_batch;"
        "from sketch_rnn.core.hparams import HParams;"
        f"d = load_data([{str(SHEEP)!r}], 250);"
        "h = HParams(batch_size=16, random_scale_factor=0.15, augment_stroke_prob=0.1);"
        f"s, l = train_batch(d.train, h, {seed}, {step});"
        "print(hashlib.sha256(s.tobytes() + l.tobytes()).hexdigest());"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    return out.stdout.strip()


def test_train_batch_identical_in_another_process(sheep):
    s, l = train_batch(sheep.train, HPS, 11, 42)
    here = hashlib.sha256(s.tobytes() + l.tobytes()).hexdigest()
    assert _batch_digest(11, 42) == here


def test_eval_batches_cover_the_split_once(sheep):
    hps = HPS.replace(batch_size=128)
    batches = list(eval_batches(sheep.valid, hps))
    assert len(batches) == 3  # 300 = 128 + 128 + 44
    weights = np.concatenate([w for _, _, w in batches])
    assert weights.sum() == 300 and (weights[:300] == 1).all() and (weights[300:] == 0).all()
    lengths = np.concatenate([l for _, l, _ in batches])[:300]
    np.testing.assert_array_equal(lengths, sheep.valid.lengths())
    np.testing.assert_array_equal(batches[1][0][5],
                                  S.stroke3_to_stroke5(sheep.valid.sketch(133), 250))
    again = list(eval_batches(sheep.valid, hps))
    np.testing.assert_array_equal(batches[2][0], again[2][0])


def test_batch_larger_than_max_seq_len_is_an_error(sheep):
    with pytest.raises(SketchRNNError, match="max_seq_len"):
        train_batch(sheep.train, HPS.replace(max_seq_len=100), 0, 0)


@pytest.mark.parametrize("nested", [False, True])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, nested):
    marker = tmp_path / "PWNED"
    path = write_evil(tmp_path / "evil.npz", marker, nested=nested)
    with pytest.raises(SketchRNNError) as err:
        load_data([str(path)], 250)
    assert str(path) in str(err.value) and "system" in str(err.value)
    assert not marker.exists()


def test_validation_names_file_split_and_index(tmp_path):
    bad = simple_sketches(4)
    bad[2] = bad[2].astype(np.float64)
    bad[2][1, 0] = 0.5
    path = write_npz(tmp_path / "frac.npz", train=simple_sketches(3), valid=bad,
                     test=simple_sketches(2))
    with pytest.raises(SketchRNNError, match=r"frac\.npz: valid\[2\]: non-integral offset"):
        load_npz(path)


# --------------------------------------------------------------------------- storage at scale
def test_packed_storage_keeps_raw_int16(sheep, sheep_raw):
    """6 bytes a point plus 16 a sketch: the raw size, whatever the number of categories."""
    train = sheep.train
    assert train.points.dtype == np.int16 and train.points.shape[1] == 3
    np.testing.assert_array_equal(train.points[train.offsets[9]:train.offsets[10]],
                                  sheep_raw["train"][9])
    assert train.nbytes() == len(train.points) * 6 + len(train) * 16 + 8
    # what leaves the split is normalised float32, computed per batch
    out = train.sketch(9)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :2], sheep_raw["train"][9][:, :2].astype(np.float32)
                                  / np.float32(sheep.scale_factor))


def test_given_scale_factor_is_used_for_every_split(sheep, sheep_raw):
    other = load_data([str(SHEEP)], 250, scale_factor=10.0)
    assert other.scale_factor == 10.0 and other.fingerprint == sheep.fingerprint
    np.testing.assert_allclose(other.test.sketch(3)[:, :2], sheep_raw["test"][3][:, :2] / 10.0,
                               rtol=1e-6)
    a, _ = train_batch(other.train, HPS.replace(random_scale_factor=0.0, augment_stroke_prob=0.0),
                       0, 0)
    b, _ = train_batch(sheep.train, HPS.replace(random_scale_factor=0.0, augment_stroke_prob=0.0),
                       0, 0)
    np.testing.assert_allclose(a[..., :2] * 10.0, b[..., :2] * sheep.scale_factor, atol=1e-3)
    with pytest.raises(SketchRNNError, match="scale_factor"):
        load_data([str(SHEEP)], 250, scale_factor=0.0)


def test_float_files_are_stored_clipped_as_int16(tmp_path):
    sketches = [s.astype(np.float64) for s in simple_sketches(4)]
    sketches[1][0, 0] = 40000.0  # beyond int16: clipped before the cast
    path = write_npz(tmp_path / "f.npz", train=sketches, valid=sketches[:1], test=sketches[:1])
    data = load_data([str(path)], 50)
    assert data.train.points.dtype == np.int16
    assert data.train.points[data.train.offsets[1], 0] == 1000
    np.testing.assert_array_equal(data.train.points[: len(sketches[0])], sketches[0])


def test_cache_maps_the_same_arrays(tmp_path):
    a = write_good(tmp_path / "cat.npz", n=(30, 5, 4))
    b = write_good(tmp_path / "pig.npz", n=(20, 3, 2), seed=9)
    plain = load_data([str(a), str(b)], 50)
    built = load_data([str(a), str(b)], 50, cache_dir=tmp_path / "cache")
    mapped = load_data([str(a), str(b)], 50, cache_dir=tmp_path / "cache")
    assert isinstance(mapped.train.points, np.memmap)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    for data in (built, mapped):
        assert (data.fingerprint, data.scale_factor, data.dropped, data.categories) == \
            (plain.fingerprint, plain.scale_factor, plain.dropped, plain.categories)
        for s in ("train", "valid", "test"):
            for name in ("points", "offsets", "labels"):
                np.testing.assert_array_equal(getattr(data.split(s), name),
                                              getattr(plain.split(s), name))
        hps = HPS.replace(max_seq_len=50)
        np.testing.assert_array_equal(train_batch(data.train, hps, 4, 2)[0],
                                      train_batch(plain.train, hps, 4, 2)[0])
    # other content -> another entry; a given scale factor does not need one
    write_good(tmp_path / "pig.npz", n=(20, 3, 2), seed=10)
    load_data([str(a), str(b)], 50, cache_dir=tmp_path / "cache", scale_factor=3.0)
    assert len(list((tmp_path / "cache").iterdir())) == 2
