"""QuickDraw readers, Google's simplification, stroke-3 and `convert`, on the real samples."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import frameworks_imported_by

from sketch_rnn import quickdraw as qd
from sketch_rnn.cli import data_commands as data_cmds
from sketch_rnn.core import strokes as S
from sketch_rnn.cli import build_parser
from sketch_rnn.core.errors import SketchRNNError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SIMPLIFIED = str(DATA / "quickdraw_simplified_344x25.ndjson")
RAW = str(DATA / "quickdraw_raw_8classes.ndjson")
BIN = str(DATA / "quickdraw_simplified_bed_1.bin")
BED_KEY = "4897919444451328"


@pytest.fixture(scope="module")
def simplified() -> dict[str, qd.Drawing]:
    return {d.key_id: d for d in qd.read_ndjson(SIMPLIFIED)}


@pytest.fixture(scope="module")
def raw() -> list[qd.Drawing]:
    return list(qd.read_ndjson(RAW))


def _convert(*argv: str) -> int:
    args = build_parser().parse_args(["convert", *argv, "--no-progress"])
    return data_cmds.cmd_convert(args)


# --------------------------------------------------------------------------- readers
def test_simplified_reader(simplified):
    assert len(simplified) == 8600
    words = Counter(d.word for d in simplified.values())
    assert len(words) == 344 and set(words.values()) == {25}
    assert sum(d.recognized for d in simplified.values()) == 7920
    assert len({d.countrycode for d in simplified.values()}) == 121
    assert all(d.is_simplified for d in simplified.values())
    points = [d.num_points() for d in simplified.values()]
    assert (min(points), max(points)) == (2, 503)
    bed = simplified[BED_KEY]
    assert (bed.word, bed.countrycode, bed.recognized) == ("bed", "US", True)
    assert bed.timestamp == "2017-01-24 22:38:33.58873 UTC"
    assert bed.where.endswith("quickdraw_simplified_344x25.ndjson:701")


def test_raw_reader(raw):
    assert len(raw) == 205
    assert Counter(d.word for d in raw) == {"apple": 37, "bicycle": 26, "cat": 25, "face": 31,
                                            "flamingo": 24, "owl": 20, "pig": 19, "sheep": 23}
    assert all(s.shape[0] == 3 for d in raw for s in d.drawing)  # x, y, t
    assert not any(d.is_simplified for d in raw)
    points = [d.num_points() for d in raw]
    assert (min(points), max(points)) == (42, 685)


def test_bin_reader_matches_its_simplified_twin(simplified):
    (bed,) = qd.read_bin(BIN)
    assert bed.word == "quickdraw_simplified_bed_1"  # .bin files carry no word: the file stem
    assert (bed.key_id, bed.countrycode, bed.recognized, bed.timestamp) == (
        BED_KEY, "US", True, 1485297513)
    twin = simplified[BED_KEY]
    assert len(bed.drawing) == len(twin.drawing) == 6
    for a, b in zip(bed.drawing, twin.drawing):
        np.testing.assert_array_equal(a, b)
    stamp = datetime.strptime(twin.timestamp[:19], "%Y-%m-%d %H:%M:%S")
    assert int(stamp.replace(tzinfo=timezone.utc).timestamp()) == bed.timestamp
    assert (twin.countrycode, twin.recognized) == (bed.countrycode, bed.recognized)


def test_read_drawings_picks_the_reader_by_suffix():
    assert [d.key_id for d in qd.read_drawings(BIN)] == [BED_KEY]
    assert sum(1 for _ in qd.read_drawings(RAW)) == 205
    with pytest.raises(SketchRNNError, match="unknown file type"):
        qd.read_drawings("drawings.csv")


def test_progress_counts_every_byte():
    seen = []
    list(qd.read_ndjson(RAW, progress=seen.append))
    list(qd.read_bin(BIN, progress=seen.append))
    assert sum(seen) == os.path.getsize(RAW) + os.path.getsize(BIN)


# --------------------------------------------------------------------------- simplification
def test_straight_line_collapses_to_two_points():
    xs = np.linspace(100.0, 600.0, 200)
    line = [[xs.tolist(), (0.4 * xs + 7).tolist(), list(range(200))]]
    assert qd.simplify_drawing(line) == [[[0, 255], [0, 102]]]


def test_alignment_and_uniform_scale():
    # A 50 x 20 rectangle far from the origin: moved to (0, 0), longest side scaled to 255
    # (its corners fall on whole pixels of arc length, so resampling keeps them).
    box = [[[1000, 1050, 1050, 1000, 1000], [500, 500, 520, 520, 500]]]
    assert qd.simplify_drawing(box) == [[[0, 255, 255, 0, 0], [0, 0, 102, 102, 0]]]
    # Translating or scaling the input does not change the result.
    shifted = [[[x * 3 - 77 for x in box[0][0]], [y * 3 + 5 for y in box[0][1]]]]
    assert qd.simplify_drawing(shifted) == qd.simplify_drawing(box)


def test_dot_strokes_become_two_equal_points():
    # As in Google's files: a one-point stroke is kept as its start and end point.
    drawing = [[[10], [10], [0]], [[10, 30], [10, 20], [5, 9]]]
    assert qd.simplify_drawing(drawing) == [[[0, 0], [0, 0]], [[0, 255], [0, 128]]]


def _vertex_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Distance of each point to the polyline `line` (its segments)."""
    if len(line) == 1:
        return np.hypot(*(points - line[0]).T)
    a, b = line[:-1], line[1:]                              # (S, 2)
    ab = b - a
    rel = points[:, None, :] - a[None]                      # (P, S, 2)
    t = np.clip((rel * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    nearest = a[None] + t[..., None] * ab[None]
    return np.hypot(*(points[:, None, :] - nearest).transpose(2, 0, 1)).min(axis=1)


def _curve_distance(ours: list[np.ndarray], google: list[np.ndarray]) -> float:
    """Symmetric Hausdorff distance between matching strokes, worst stroke (pixels)."""
    worst = 0.0
    for a, b in zip(ours, google):
        a, b = a.astype(float), b.astype(float)
        worst = max(worst, _vertex_to_polyline(a, b).max(), _vertex_to_polyline(b, a).max())
    return worst


def test_simplify_drawing_agrees_with_google(raw, simplified):
    """The 186 raw drawings whose simplified twin is in the sample, against Google's output.

    The requirement gives the bound: both simplifications keep every resampled point of the
    same aligned, scaled curve within RDP's ε of their polyline, so the two polylines lie
    within 2ε of each other, plus the rounding of both to whole pixels (half a pixel on each
    axis, sqrt(2)/2 each): 2ε + sqrt(2). Simplification never adds or removes a stroke.
    """
    pairs = [(d, simplified[d.key_id]) for d in raw if d.key_id in simplified]
    assert len(pairs) == 186
    same_strokes = same_points = identical = 0
    distances = []
    for r, g in pairs:
        ours = [np.array(s).T for s in qd.simplify_drawing(r.drawing)]
        google = [s.T for s in g.drawing]
        same_strokes += len(ours) == len(google)
        if len(ours) != len(google):
            continue
        if all(len(a) == len(b) for a, b in zip(ours, google)):
            same_points += 1
            identical += all((a == b).all() for a, b in zip(ours, google))
        distances.append(_curve_distance(ours, google))
    distances = np.array(distances)
    print(f"\nsimplify_drawing vs Google on {len(pairs)} drawings: same strokes {same_strokes}, "
          f"same points {same_points}, identical {identical}; curve distance median "
          f"{np.median(distances):.2f} px, max {distances.max():.2f} px, "
          f"<= 1 px: {(distances <= 1).sum()}")
    assert same_strokes == 186
    assert distances.max() <= 2 * qd.SIMPLIFY_EPSILON + np.sqrt(2)


# --------------------------------------------------------------------------- stroke-3
def test_lines_to_stroke3_offsets_and_pen():
    lines = [np.array([[0, 0], [3, 4]]), np.array([[10, 10], [10, 12]])]
    np.testing.assert_array_equal(qd.lines_to_stroke3(lines), [[3, 4, 1], [7, 6, 0], [0, 2, 1]])
    assert qd.lines_to_stroke3(lines).dtype == np.int16
    # A first stroke that is a dot keeps its own row, so it is not joined to the next stroke.
    dot_first = [np.array([[5, 5]]), np.array([[6, 5], [9, 9]])]
    np.testing.assert_array_equal(qd.lines_to_stroke3(dot_first),
                                  [[0, 0, 1], [1, 0, 0], [3, 4, 1]])


def test_stroke3_of_simplified_drawing_redraws_it(simplified):
    bed = simplified[BED_KEY]
    s3 = qd.lines_to_stroke3([s.T for s in bed.drawing])
    assert len(s3) == bed.num_points() - 1 and s3[:, 2].sum() == len(bed.drawing)
    start = bed.drawing[0][:, 0]
    redrawn = np.cumsum(s3[:, :2], axis=0) + start
    np.testing.assert_array_equal(redrawn, np.concatenate([s.T for s in bed.drawing])[1:])


def test_fit_to_length_raises_epsilon_then_gives_up():
    t = np.linspace(0, 6 * np.pi, 400)
    wiggle = np.rint(np.column_stack([t * 13, 120 + 100 * np.sin(t)])).astype(np.int64)
    assert len(qd.lines_to_stroke3([S.rdp(wiggle, qd.SIMPLIFY_EPSILON)])) > 20
    s3, eps = qd.fit_to_length([wiggle], 20)
    assert s3 is not None and len(s3) <= 20 and eps > qd.SIMPLIFY_EPSILON
    many = [np.array([[i, 0], [i, 50]]) for i in range(0, 240, 4)]  # 60 strokes: >= 119 rows
    assert qd.fit_to_length(many, 100) == (None, None)


def test_drawing_to_stroke3_outcomes(simplified):
    d = simplified[BED_KEY]
    n = d.num_points() - 1
    assert qd.drawing_to_stroke3(d)[1] == "kept"
    unrecognized = qd.Drawing(**{**d.__dict__, "recognized": False})
    opts = qd.ConvertOptions(recognized_only=True)
    assert qd.drawing_to_stroke3(unrecognized, opts) == (None, "not recognized")
    assert qd.drawing_to_stroke3(d, qd.ConvertOptions(min_points=n + 2)) == (None, "too short")
    assert qd.drawing_to_stroke3(d, qd.ConvertOptions(min_points=n + 1))[1] == "kept"
    assert qd.drawing_to_stroke3(d, qd.ConvertOptions(max_seq_len=n - 1, fit=False)) == (
        None, "too long")
    s3, outcome = qd.drawing_to_stroke3(d, qd.ConvertOptions(max_seq_len=n - 1))
    assert outcome == "fitted" and len(s3) <= n - 1


# --------------------------------------------------------------------------- splits
def test_split_specs():
    assert qd.split_sizes(75000, qd.parse_split(None), "x") == (70000, 2500, 2500)
    assert qd.split_sizes(100, qd.parse_split("0.8,0.1,0.1"), "x") == (80, 10, 10)
    assert qd.split_sizes(100, qd.parse_split("10,5,5"), "x") == (10, 5, 5)
    for bad in ("1,2", "a,b,c", "0.9,0.2,0.1", "1,0.5,0.5", "-1,2,3"):
        with pytest.raises(SketchRNNError, match="--split"):
            qd.parse_split(bad)
    with pytest.raises(SketchRNNError, match="asks for 30"):
        qd.split_sizes(20, qd.parse_split("10,10,10"), "cat")


# --------------------------------------------------------------------------- convert
def _load_original_way(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=True, encoding="latin1") as f:
        return {k: f[k] for k in f.files}


def test_convert_mixed_formats(tmp_path, capsys):
    out = tmp_path / "mine.npz"
    assert _convert(SIMPLIFIED, RAW, BIN, "-o", str(out)) == 0
    summary = capsys.readouterr().out
    assert "read 8806 drawings (205 raw" in summary and f"wrote {out}" in summary
    assert "dropped" in summary and "longer than 200 points" in summary
    data = _load_original_way(out)
    assert sorted(data) == ["test", "train", "valid"]
    sizes = [len(data[k]) for k in S.SPLITS]
    assert abs(sizes[1] - sum(sizes) / 30) <= 1 and abs(sizes[2] - sum(sizes) / 30) <= 1
    for split in data.values():
        assert split.dtype == object
        assert all(s.dtype == np.int16 and s.ndim == 2 and s.shape[1] == 3 for s in split)
        assert all(1 <= len(s) <= 200 and s[-1, 2] == 1 for s in split)
    assert os.listdir(tmp_path) == ["mine.npz"]  # no temporary file left behind


def test_convert_is_seeded(tmp_path):
    paths = [tmp_path / f"{name}.npz" for name in ("a", "b", "c")]
    for path, seed in zip(paths, ("1", "1", "2")):
        _convert(RAW, "-o", str(path), "--seed", seed, "--split", "0.5,0.25,0.25")
    a, b, c = (_load_original_way(p)["train"] for p in paths)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not all(len(x) == len(y) and (x == y).all() for x, y in zip(a, c))


def test_convert_round_trip_through_our_loader(tmp_path, simplified):
    from sketch_rnn.data import load_npz

    out = tmp_path / "rt.npz"
    _convert(SIMPLIFIED, "-o", str(out), "--split", "0.8,0.1,0.1", "--max-seq-len", "0")
    loaded = load_npz(out)
    assert sum(len(v) for v in loaded.values()) == 8600
    wanted = sorted(qd.lines_to_stroke3([s.T for s in d.drawing]).tobytes()
                    for d in simplified.values())
    got = sorted(np.asarray(s, np.int16).tobytes() for v in loaded.values() for s in v)
    assert got == wanted


def test_convert_per_category_and_filters(tmp_path, capsys):
    out = tmp_path / "cats"
    _convert(RAW, "-o", str(out), "--per-category", "--split", "10,2,2",
             "--recognized-only", "--min-points", "5")
    files = sorted(os.listdir(out))
    assert files == [f"{w}.npz" for w in
                     ("apple", "bicycle", "cat", "face", "flamingo", "owl", "pig", "sheep")]
    cat = _load_original_way(out / "cat.npz")
    assert [len(cat[k]) for k in S.SPLITS] == [10, 2, 2]
    summary = capsys.readouterr().out
    assert "not recognized" in summary
    assert "cat.npz: train 10, valid 2, test 2 (" in summary and "left out by --split" in summary


def test_write_failure_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "x.npz"
    out.write_bytes(b"old")

    def explode(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", explode)
    with pytest.raises(SketchRNNError, match="x.npz: cannot write"):  # one line, naming it
        qd.write_npz(str(out), {"train": [np.zeros((2, 3))], "valid": [], "test": []})
    assert os.listdir(tmp_path) == ["x.npz"] and out.read_bytes() == b"old"


# --------------------------------------------------------------------------- bad input (CLI)
def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sketch_rnn", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def _write_ndjson(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


GOOD = json.dumps({"word": "cat", "key_id": "1", "recognized": True,
                   "drawing": [[[0, 10, 20], [0, 5, 0]]]})


def _bad_case(kind: str, tmp_path: Path) -> tuple[list[str], str]:
    """(convert arguments, expected text in the error line) for one kind of bad input."""
    out = str(tmp_path / "out" / "x.npz")
    if kind == "json":
        src = _write_ndjson(tmp_path / "in.ndjson", [GOOD, '{"word": "cat", "drawing": [[[1'])
        return [src, "-o", out], "in.ndjson:2: not valid JSON"
    if kind == "no-points":
        src = _write_ndjson(tmp_path / "in.ndjson", [GOOD, '{"drawing": [[[], []]]}'])
        return [src, "-o", out], "in.ndjson:2: drawing has no points"
    if kind == "non-numeric":
        src = _write_ndjson(tmp_path / "in.ndjson", ['{"drawing": [[[1, "a"], [2, 3]]]}'])
        return [src, "-o", out], "in.ndjson:1: stroke 0 has non-numeric coordinates"
    if kind == "truncated-bin":
        src = tmp_path / "bed.bin"
        src.write_bytes(Path(BIN).read_bytes()[:50])
        return [str(src), "-o", out], "bed.bin record 1: truncated"
    if kind == "unknown-type":
        (tmp_path / "in.csv").write_text("x,y\n")
        return [str(tmp_path / "in.csv"), "-o", out], "in.csv: unknown file type"
    assert kind == "missing-folder"
    return [BIN, "-o", str(tmp_path / "nope" / "x.npz")], "does not exist"


@pytest.mark.parametrize("kind", ["json", "no-points", "non-numeric", "truncated-bin",
                                  "unknown-type", "missing-folder"])
def test_convert_bad_input_is_one_line_exit_2(kind, tmp_path):
    (tmp_path / "out").mkdir()
    argv, expected = _bad_case(kind, tmp_path)
    result = _cli("convert", *argv, "--no-progress", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr
    assert os.listdir(tmp_path / "out") == []
    assert not (tmp_path / "nope").exists()


def test_skip_bad_continues_and_counts(tmp_path, capsys):
    src = _write_ndjson(tmp_path / "in.ndjson", [GOOD, "not json", '{"drawing": []}', GOOD])
    out = tmp_path / "x.npz"
    assert _convert(src, "-o", str(out), "--skip-bad", "--split", "2,0,0") == 0
    assert "skipped 2 bad records (first: " in capsys.readouterr().out
    assert len(_load_original_way(out)["train"]) == 2
    truncated = tmp_path / "bed.bin"
    truncated.write_bytes(Path(BIN).read_bytes() * 2 + b"\x01\x02")
    bad: list[str] = []
    assert len(list(qd.read_bin(str(truncated), on_bad=bad.append))) == 2
    assert len(bad) == 1 and "record 3: truncated" in bad[0]


def test_convert_needs_no_tensorflow(tmp_path):
    code = ("from sketch_rnn.cli import main\n"
            f"assert main(['convert', {BIN!r}, '-o', 'x.npz', '--no-progress']) == 0\n"
            "assert main(['download', '--list']) == 0\n"
            "import sketch_rnn.quickdraw, sketch_rnn.data")
    assert frameworks_imported_by(code, cwd=tmp_path) == []
    assert (tmp_path / "x.npz").exists()
