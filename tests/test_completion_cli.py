"""`sketch-rnn complete` on an untrained tiny model (load_run replaced by a fake run)."""
from __future__ import annotations

import io
import json
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_model
from PIL import Image

from sketch_rnn import cli
from sketch_rnn.cli import complete_command as complete_cmd
from sketch_rnn.cli.complete_command import ENDING_COLOR, PREFIX_COLOR

ROOT = Path(__file__).resolve().parents[1]
SHEEP = str(ROOT / "data" / "aaron_sheep.npz")
N_MAX = 250  # the sheep test split's sketches fit


@pytest.fixture(scope="module")
def fake_run():
    m = tiny_model(N_MAX, 2)
    return types.SimpleNamespace(model=m, hps=m.hps, scale_factor=15.0, data_paths=[SHEEP])


@pytest.fixture
def run_cli(monkeypatch, fake_run):
    monkeypatch.setattr(complete_cmd, "load_run", lambda run_dir: fake_run)
    return lambda *argv: cli.run(["complete", "--run-dir", "R", *argv])


def npz_sketches(path) -> list[np.ndarray]:
    z = np.load(path)
    return [z[k] for k in sorted(z.files)]


def test_from_data_keeps_the_first_part(run_cli, tmp_path):
    out = tmp_path / "e.npz"
    assert run_cli("--from", SHEEP, "--index", "3", "--keep", "0.4", "--n", "5",
                   "--temperature", "1.0", "--out", str(out)) == 0
    original = np.load(SHEEP, allow_pickle=True, encoding="latin1")["test"][3]
    k = int(round(0.4 * len(original)))
    got = npz_sketches(out)
    assert len(got) == 6
    np.testing.assert_array_equal(got[0], np.clip(original[:k], -1000, 1000))
    for whole in got[1:]:
        np.testing.assert_array_equal(whole[:k], got[0])
    assert max(len(w) for w in got[1:]) > k  # some ending has points


def test_quickdraw_drawing_and_colours(run_cli, tmp_path):
    drawing = {"word": "sheep", "drawing": [[[10, 20, 30], [10, 10, 20]], [[50, 60], [50, 50]]]}
    path = tmp_path / "d.ndjson"
    path.write_text(json.dumps(drawing) + "\n" + json.dumps(drawing) + "\n")
    assert run_cli("--strokes", str(path), "--n", "3", "--temperature", "1.0",
                   "--out", str(tmp_path / "e.npz")) == 0
    # origin at the first point; pen lifted after each stroke's last point
    want = np.array([[10, 0, 0], [10, 10, 1], [20, 30, 0], [10, 0, 1]], np.float32)
    np.testing.assert_array_equal(npz_sketches(tmp_path / "e.npz")[0], want)

    svg = tmp_path / "e.svg"
    assert run_cli("--strokes", str(path), "--n", "3", "--temperature", "1.0", "--seed", "1",
                   "--out", str(svg)) == 0
    groups = [[p.get("stroke") for p in g] for g in ET.parse(svg).getroot()
              if g.tag.endswith("g")]
    assert len(groups) == 4 and groups[0] == [PREFIX_COLOR] * 2
    for colours in groups[1:]:
        assert colours[:2] == [PREFIX_COLOR] * 2 and set(colours[2:]) <= {ENDING_COLOR}
    assert any(len(c) > 2 for c in groups[1:])  # an ending was drawn


def test_stroke3_json_same_seed_same_png(run_cli, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps([[5, 0, 0], [5, 5, 0], [0, 5, 1], [-5, 0, 0]]))
    files = [tmp_path / f"{k}.png" for k in "ab"]
    for f in files:
        assert run_cli("--strokes", str(path), "--seed", "4", "--out", str(f)) == 0
    assert files[0].read_bytes() == files[1].read_bytes()
    Image.open(io.BytesIO(files[0].read_bytes())).load()


@pytest.mark.parametrize("argv,match", [
    ([], "either --from DATA.npz or --strokes FILE"),
    (["--from", SHEEP, "--strokes", "x.json"], "either --from"),
    (["--from", SHEEP, "--keep", "0"], "--keep 0.0: must be in"),
    (["--from", SHEEP, "--index", "99999"], "--index 99999"),
    (["--strokes", "missing.json"], "cannot read"),
    (["--strokes", "BAD"], "expected a stroke-3 list"),
    (["--strokes", "NOTJSON"], "not valid JSON"),
    (["--from", SHEEP, "--out", "x.gif"], "use a .svg, .png, .npz file"),
    (["--from", SHEEP, "--n", "0"], "n=0"),
])
def test_bad_arguments_are_one_line_errors(run_cli, tmp_path, capsys, argv, match):
    (tmp_path / "BAD").write_text("[[1, 2], [3]]")
    (tmp_path / "NOTJSON").write_text("hello")
    argv = [str(tmp_path / a) if a in ("BAD", "NOTJSON", "missing.json") else a for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "o.svg")]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1, err
