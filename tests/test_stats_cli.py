"""`sketch-rnn stats` and the one-line errors for bad data files, through the real CLI."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from npz_helpers import REPO, SHEEP, simple_sketches, write_evil, write_good, write_npz


def run_stats(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sketch_rnn", "stats", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def _sheep_split(name: str) -> list:
    """The split read the plain NumPy way (the file is trusted here), as SOURCES.md says."""
    with np.load(SHEEP, allow_pickle=True, encoding="latin1") as z:
        return list(z[name])


def test_stats_json_on_the_sheep():
    out = run_stats(str(SHEEP), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    # counts and length range as data/README.md and shared SOURCES.md give them
    assert [report[s]["count"] for s in ("train", "valid", "test")] == [7400, 300, 300]
    train = report["train"]
    assert (train["length_min"], train["length_max"], train["too_long"]) == (20, 250, 0)
    # the rest recomputed here from the raw arrays
    sketches = _sheep_split("train")
    lengths = np.array([len(s) for s in sketches])
    lifts = sum(int(s[:, 2].sum()) for s in sketches)
    assert train["length_mean"] == pytest.approx(lengths.mean(), abs=0.005)
    assert train["pen_lift_fraction"] == pytest.approx(lifts / lengths.sum(), abs=5e-5)
    assert train["strokes_mean"] == pytest.approx(lifts / len(sketches), abs=0.005)
    direct = np.std(np.concatenate([s[:, :2].ravel() for s in sketches]))
    assert report["scale_factor"] == pytest.approx(float(direct), rel=1e-9)


def test_stats_counts_sketches_over_max_seq_len_and_stays_light():
    code = ("import sys; from sketch_rnn.cli import main;"
            f"rc = main(['stats', {str(SHEEP)!r}, '--max-seq-len', '100']);"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules;"
            "sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    too_long = sum(len(s) > 100 for s in _sheep_split("train"))
    assert f"longer than 100: {too_long}" in out.stdout
    assert "scale factor" in out.stdout


def _not_zip(p):
    p.write_text("just text\n")


def _truncated(p):
    p.write_bytes(SHEEP.read_bytes()[:1_000_000])


def _single_npy(p):
    with open(p, "wb") as f:
        np.save(f, np.zeros((3, 3)))


def _truncated_member(p):
    """A valid zip whose train member stops in the middle of its pickle."""
    good = p.with_name("good.npz")
    write_good(good)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(p, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, data[: len(data) // 2] if name == "train.npy" else data)


def _missing_keys(p):
    write_npz(p, train=simple_sketches(3))


def _wrong_dtype(p):
    write_npz(p, train=simple_sketches(3), valid=[np.array([["a", "b", "c"]])],
              test=simple_sketches(1))


def _wrong_shape(p):
    write_npz(p, train=simple_sketches(3) + [np.zeros((4, 2), np.int16)],
              valid=simple_sketches(2), test=simple_sketches(1))


def _nan(p):
    bad = simple_sketches(2)[1].astype(np.float32)
    bad[1, 1] = np.nan
    write_npz(p, train=simple_sketches(3), valid=simple_sketches(2), test=[bad])


def _bad_pen(p):
    bad = simple_sketches(1)[0]
    bad[0, 2] = 2
    write_npz(p, train=[bad], valid=simple_sketches(2), test=simple_sketches(1))


def _not_sketches(p):
    np.savez(p, train=np.zeros(5), valid=np.zeros(5), test=np.zeros(5))


def _garbled_member(p):
    with zipfile.ZipFile(p, "w") as z:
        for split in ("train", "valid", "test"):
            z.writestr(f"{split}.npy", b"\x93NUMPY garbage")


BAD = {
    "not a zip": (_not_zip, "not a .npz file (not a zip archive)"),
    "truncated": (_truncated, "truncated or corrupt .npz"),
    "single npy": (_single_npy, "a single .npy array"),
    "missing split keys": (_missing_keys, "missing split key(s) valid, test"),
    "wrong dtype": (_wrong_dtype, "valid[0]: wrong dtype"),
    "wrong shape": (_wrong_shape, "train[3]: wrong shape (4, 2)"),
    "NaN": (_nan, "test[0]: non-finite value"),
    "pen not 0/1": (_bad_pen, "train[0]: pen value not 0 or 1"),
    "not sketches": (_not_sketches, "expected a 1-D object array"),
    "garbled member": (_garbled_member, "split train is unreadable"),
    "truncated member": (_truncated_member, "split train is unreadable"),
}


def _assert_one_line_error(out: subprocess.CompletedProcess, path, problem: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert str(path) in lines[0] and problem in lines[0], lines[0]
    assert out.stdout == ""


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2(tmp_path, case):
    make, problem = BAD[case]
    path = tmp_path / "bad.npz"
    make(path)
    _assert_one_line_error(run_stats(str(path)), path, problem)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    _assert_one_line_error(run_stats(str(write_good(tmp_path / "ok.npz")), str(path)), path,
                           "cannot read")


def test_evil_pickle_via_cli_runs_nothing(tmp_path):
    marker = tmp_path / "PWNED"
    path = write_evil(tmp_path / "evil.npz", marker)
    _assert_one_line_error(run_stats(str(path), "--json"), path, "refused to unpickle")
    assert not marker.exists()
