"""drawing.py on the bundled sheep: SVG parses, PNG decodes, GIF animates, bytes reproducible."""
from __future__ import annotations

import io
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sketch_rnn.generation import drawing
from sketch_rnn.core.errors import SketchRNNError

ROOT = Path(__file__).resolve().parents[1]
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def sheep() -> list[np.ndarray]:
    d = np.load(ROOT / "data" / "aaron_sheep.npz", encoding="latin1", allow_pickle=True)
    return [np.asarray(s) for s in d["test"][:6]]


def n_strokes(s: np.ndarray) -> int:
    """Pen-down runs: one per lifted-pen row, plus an unfinished last one."""
    return int(np.sum(s[:, 2] > 0.5) + (s[-1, 2] < 0.5))


def paths(svg_text: str) -> list[ET.Element]:
    return list(ET.fromstring(svg_text).iter(f"{SVG_NS}path"))


def test_polylines_split_after_pen_lift():
    s = np.array([[1, 0, 0], [1, 0, 1], [0, 5, 0], [2, 0, 0], [1, 1, 1]], float)
    lines = drawing.polylines(s)
    assert [len(p) for p in lines] == [2, 3]
    np.testing.assert_allclose(lines[0], [[1, 0], [2, 0]])
    np.testing.assert_allclose(lines[1], [[2, 5], [4, 5], [5, 6]])


def test_svg_one_path_per_stroke(sheep):
    s = sheep[0]
    root = ET.fromstring(drawing.draw_svg(s, size=200).text)
    assert root.tag == f"{SVG_NS}svg"
    assert len(paths(drawing.draw_svg(s).text)) == n_strokes(s)


def test_svg_fits_box_and_colours_strokes(sheep):
    s = sheep[1]
    svg = drawing.draw_svg(s, size=100, margin=5, colors=["red", "blue"], stroke_width=3).text
    ps = paths(svg)
    assert [p.get("stroke") for p in ps[:3]] == ["red", "blue", "red"]
    assert all(p.get("stroke-width") == "3" for p in ps)
    tokens = [t for p in ps for t in p.get("d").replace("M", " ").replace("L", " ").split()]
    coords = np.array([[float(v) for v in t.split(",")] for t in tokens])
    assert coords.min() >= 5 - 1e-6 and coords.max() <= 95 + 1e-6
    # Fitted: the larger extent fills the inner box.
    extent = coords.max(axis=0) - coords.min(axis=0)
    assert extent.max() == pytest.approx(90, abs=0.02)


def test_grid_svg_groups(sheep):
    svg = drawing.grid_svg(sheep, cols=3, size=64).text
    root = ET.fromstring(svg)
    groups = [g for g in root.iter(f"{SVG_NS}g")]
    assert len(groups) == len(sheep)
    assert [len(list(g.iter(f"{SVG_NS}path"))) for g in groups] == [n_strokes(s) for s in sheep]
    assert root.get("width") == "192px" and root.get("height") == "128px"


def test_animated_svg_parses(sheep):
    svg = drawing.animate_svg(sheep[0], seconds=2).text
    ps = paths(svg)
    assert len(ps) == n_strokes(sheep[0])
    assert all(p.get("visibility") == "hidden" for p in ps)
    assert len(list(ET.fromstring(svg).iter(f"{SVG_NS}animate"))) >= 1


def test_png_decodes_and_is_reproducible(sheep):
    png = drawing.grid_png(sheep, cols=3, size=64)
    img = Image.open(io.BytesIO(png.data))
    assert img.format == "PNG" and img.size == (192, 128)
    pixels = np.asarray(img.convert("L"))
    assert pixels.min() < 100 and pixels.max() == 255  # ink on white
    assert drawing.grid_png(sheep, cols=3, size=64).data == png.data
    assert png._repr_png_() == png.data


def test_gif_has_frames(sheep):
    gif = drawing.animate_gif(sheep[:2], frames=8, size=64)
    img = Image.open(io.BytesIO(gif.data))
    assert img.format == "GIF" and img.n_frames == 8
    first = np.asarray(img.convert("L")).copy()
    img.seek(img.n_frames - 1)
    last = np.asarray(img.convert("L"))
    assert (last < 128).sum() > (first < 128).sum()  # more ink as the strokes are drawn
    assert "data:image/gif;base64," in gif._repr_html_()


def test_save_by_extension_is_byte_identical(sheep, tmp_path):
    for ext, style in ((".svg", {"size": 48}), (".png", {"size": 48}), (".npz", {})):
        a, b = tmp_path / f"a{ext}", tmp_path / f"b{ext}"
        drawing.save_sketches(str(a), sheep, **style)
        drawing.save_sketches(str(b), sheep, **style)
        assert a.read_bytes() == b.read_bytes(), ext
    z = np.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(z["sketch_001"], sheep[1].astype(np.float32))


def test_bad_inputs():
    with pytest.raises(SketchRNNError, match="unknown output extension"):
        drawing.check_extension("out.jpg")
    with pytest.raises(SketchRNNError, match="shape"):
        drawing.draw_svg(np.zeros((4, 2)))
    with pytest.raises(SketchRNNError, match="no sketches"):
        drawing.grid_svg([])


def test_degenerate_sketches_draw():
    dot = np.array([[3.0, 4.0, 1.0]])
    assert len(paths(drawing.draw_svg(dot).text)) == 1
    Image.open(io.BytesIO(drawing.draw_png(dot).data)).load()
    assert paths(drawing.draw_svg(np.zeros((0, 3))).text) == []


def test_no_tensorflow_import():
    code = ("import sys, sketch_rnn.generation.drawing; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
