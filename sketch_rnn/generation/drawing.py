"""Drawing stroke-3 sketches: SVG (svgwrite), PNG (matplotlib Agg), animations (GIF, SVG).

A sketch is a stroke-3 array (n, 3) of (dx, dy, pen) in data units: each row moves the
pen by (dx, dy) from the previous point, and pen = 1 lifts the pen *after* that point,
so the segment to the next point is not drawn. y grows downwards (as in QuickDraw and
SVG), so every output here puts y down.

Every function returns a small image object (`SVGImage`, `PNGImage`, `GIFImage`) that
a notebook displays inline (`_repr_svg_`, `_repr_png_`, `_repr_html_`) and that can be
saved with `.save(path)`. All outputs are a pure function of their inputs (no dates, no
random ids), so the same sketches give byte-identical files.

This module needs no TensorFlow: it imports only NumPy, svgwrite, matplotlib, Pillow.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.errors import SketchRNNError
from .images import GIFImage, PNGImage, SVGImage, write_bytes

Colors = str | Sequence[str] | None

DEFAULT_COLOR = "black"
SAVE_EXTENSIONS = (".svg", ".png", ".gif", ".npz")


# --------------------------------------------------------------------------- geometry
def check_strokes(strokes: np.ndarray, name: str = "sketch") -> np.ndarray:
    """A float64 (n, 3) copy of a stroke-3 array, or a SketchRNNError naming the problem."""
    a = np.asarray(strokes)
    if a.ndim != 2 or a.shape[1] != 3:
        raise SketchRNNError(f"{name}: expected a stroke-3 array of shape (n, 3), got {a.shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise SketchRNNError(f"{name}: contains NaN or infinite values")
    return a


def polylines(strokes: np.ndarray) -> list[np.ndarray]:
    """Absolute (k, 2) point lists, one per pen-down stroke, in data units.

    The starting origin is not a point: the first row moves the pen to the first point.
    A stroke ends after each row with pen = 1 (and at the last row in any case).
    """
    a = check_strokes(strokes)
    if len(a) == 0:
        return []
    points = np.cumsum(a[:, :2], axis=0)  # (n, 2)
    ends = np.flatnonzero(a[:, 2] > 0.5) + 1
    ends = ends[ends < len(a)]
    return [p for p in np.split(points, ends) if len(p)]


def _bounds(lines: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not lines:
        return np.zeros(2), np.zeros(2)
    allp = np.concatenate(lines)
    return allp.min(axis=0), allp.max(axis=0)


def fit_to_box(lines: list[np.ndarray], x0: float, y0: float, width: float, height: float,
               margin: float) -> list[np.ndarray]:
    """Scale (keeping the aspect ratio) and centre the polylines inside a box, in pixels."""
    lo, hi = _bounds(lines)
    extent = np.maximum(hi - lo, 1e-9)
    inner = np.array([max(width - 2 * margin, 1.0), max(height - 2 * margin, 1.0)])
    scale = float(np.min(inner / extent))
    if np.all(hi - lo < 1e-9):  # a single dot: no size to fit
        scale = 1.0
    centre_data = (lo + hi) / 2
    centre_box = np.array([x0 + width / 2, y0 + height / 2])
    return [(p - centre_data) * scale + centre_box for p in lines]


def stroke_colors(n_strokes: int, colors: Colors) -> list[str]:
    """One colour per stroke: one colour for all, or a list used in turn (cycled)."""
    if colors is None:
        return [DEFAULT_COLOR] * n_strokes
    if isinstance(colors, str):
        return [colors] * n_strokes
    colors = list(colors)
    if not colors:
        raise SketchRNNError("colors: expected a colour or a non-empty list of colours")
    return [colors[i % len(colors)] for i in range(n_strokes)]


@dataclass(frozen=True)
class _Layout:
    """Every sketch's strokes in pixel coordinates on a width x height canvas."""

    width: int
    height: int
    sketches: list[list[np.ndarray]]  # per sketch, per stroke: (k, 2) pixels


def _grid_shape(n: int, cols: int | None) -> tuple[int, int]:
    if cols is None:
        cols = max(1, math.ceil(math.sqrt(n)))
    if cols <= 0:
        raise SketchRNNError(f"cols={cols}: must be > 0")
    cols = min(cols, max(n, 1))
    return max(1, math.ceil(n / cols)), cols


def _layout(sketches: Sequence[np.ndarray], cell: int, cols: int | None, margin: float) -> _Layout:
    if cell <= 0:
        raise SketchRNNError(f"size={cell}: must be > 0")
    rows, cols = _grid_shape(len(sketches), cols)
    placed = []
    for i, s in enumerate(sketches):
        r, c = divmod(i, cols)
        lines = polylines(check_strokes(s, f"sketch {i}"))
        placed.append(fit_to_box(lines, c * cell, r * cell, cell, cell, margin))
    return _Layout(cols * cell, rows * cell, placed)


def _as_list(sketches: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Accept one sketch (n, 3) or a sequence of them."""
    if isinstance(sketches, np.ndarray) and sketches.ndim == 2:
        return [sketches]
    out = list(sketches)
    if not out:
        raise SketchRNNError("no sketches to draw")
    return out


# --------------------------------------------------------------------------- SVG
def _path_d(p: np.ndarray) -> str:
    """'M x,y L x,y ...'; a single point becomes a zero-length segment (a round dot)."""
    pts = [f"{x:.2f},{y:.2f}" for x, y in p]
    if len(pts) == 1:
        pts.append(pts[0])
    return "M" + pts[0] + " L" + " ".join(pts[1:])


def _svg_drawing(layout: _Layout, background: str | None):
    import svgwrite

    dwg = svgwrite.Drawing(size=(f"{layout.width}px", f"{layout.height}px"), profile="full",
                           viewBox=f"0 0 {layout.width} {layout.height}")
    if background:
        dwg.add(dwg.rect(insert=(0, 0), size=(layout.width, layout.height), fill=background))
    return dwg


def _svg_path(dwg, p: np.ndarray, color: str, stroke_width: float):
    return dwg.path(d=_path_d(p), stroke=color, fill="none", stroke_width=stroke_width,
                    stroke_linecap="round", stroke_linejoin="round")


def grid_svg(sketches: Sequence[np.ndarray], *, cols: int | None = None, size: int = 128,
             margin: float = 8.0, stroke_width: float = 2.0, colors: Colors = None,
             background: str | None = "white") -> SVGImage:
    """Sketches on a grid of size x size cells, each fitted to its cell.

    One <g> per sketch holding one <path> per stroke (pen-down run); `colors` is one
    colour or a list given to the strokes in turn.
    """
    sketches = _as_list(sketches)
    layout = _layout(sketches, size, cols, margin)
    dwg = _svg_drawing(layout, background)
    for lines in layout.sketches:
        group = dwg.g()
        for p, color in zip(lines, stroke_colors(len(lines), colors)):
            group.add(_svg_path(dwg, p, color, stroke_width))
        dwg.add(group)
    return SVGImage(dwg.tostring())


def draw_svg(strokes: np.ndarray, *, size: int = 256, margin: float = 10.0,
             stroke_width: float = 2.0, colors: Colors = None,
             background: str | None = "white") -> SVGImage:
    """One sketch fitted to a size x size box."""
    return grid_svg([strokes], cols=1, size=size, margin=margin, stroke_width=stroke_width,
                    colors=colors, background=background)


def animate_svg(sketches: np.ndarray | Sequence[np.ndarray], *, seconds: float = 3.0,
                cols: int | None = None, size: int = 256, margin: float = 10.0,
                stroke_width: float = 2.0, colors: Colors = None,
                background: str | None = "white") -> SVGImage:
    """An SVG (SMIL) animation that draws each sketch's strokes in order, pen speed constant.

    Each stroke is hidden until its turn, then traced by animating stroke-dashoffset
    from its length to 0; all sketches of a grid draw at the same time, in `seconds`.
    """
    if seconds <= 0:
        raise SketchRNNError(f"seconds={seconds}: must be > 0")
    sketches = _as_list(sketches)
    layout = _layout(sketches, size, cols, margin)
    dwg = _svg_drawing(layout, background)
    for lines in layout.sketches:
        lengths = [float(np.sum(np.linalg.norm(np.diff(p, axis=0), axis=1))) for p in lines]
        total = max(sum(lengths), 1e-9)
        group, t = dwg.g(), 0.0
        for p, color, length in zip(lines, stroke_colors(len(lines), colors), lengths):
            dur = seconds * length / total
            path = _svg_path(dwg, p, color, stroke_width)
            path["visibility"] = "hidden"
            path.add(dwg.set(attributeName="visibility", to="visible", begin=f"{t:.3f}s",
                             fill="freeze"))
            if length > 0:
                dash = f"{length:.2f}"
                path["stroke-dasharray"] = dash
                path["stroke-dashoffset"] = dash
                path.add(dwg.animate(attributeName="stroke-dashoffset", values=f"{dash};0",
                                     begin=f"{t:.3f}s", dur=f"{max(dur, 1e-3):.3f}s",
                                     fill="freeze"))
            group.add(path)
            t += dur
        dwg.add(group)
    return SVGImage(dwg.tostring())


# --------------------------------------------------------------------------- matplotlib
def _figure(layout: _Layout, background: str | None):
    """An Agg figure whose one axes maps pixel coordinates 1:1, y down (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(layout.width / dpi, layout.height / dpi), dpi=dpi,
                 facecolor=background or "none")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, layout.width)
    ax.set_ylim(layout.height, 0)
    ax.set_axis_off()
    return fig, ax


def _line_collection(lines: list[np.ndarray], colors: list[str], stroke_width: float):
    from matplotlib.collections import LineCollection

    # A one-point stroke becomes a zero-length segment so the round cap shows a dot.
    segs = [p if len(p) > 1 else np.repeat(p, 2, axis=0) for p in lines]
    # matplotlib widths are points (1/72 in); SVG widths are pixels at 100 dpi here.
    return LineCollection(segs, colors=colors, linewidths=stroke_width * 72 / 100,
                          capstyle="round", joinstyle="round")


def _add_sketch(ax, lines: list[np.ndarray], colors: Colors, stroke_width: float) -> None:
    if lines:
        ax.add_collection(_line_collection(lines, stroke_colors(len(lines), colors), stroke_width))


def grid_png(sketches: Sequence[np.ndarray], *, cols: int | None = None, size: int = 128,
             margin: float = 8.0, stroke_width: float = 2.0, colors: Colors = None,
             background: str | None = "white") -> PNGImage:
    """The grid of `grid_svg` rendered to PNG by matplotlib's Agg backend."""
    sketches = _as_list(sketches)
    layout = _layout(sketches, size, cols, margin)
    fig, ax = _figure(layout, background)
    for lines in layout.sketches:
        _add_sketch(ax, lines, colors, stroke_width)
    buf = io.BytesIO()
    # metadata Software=None: no version string, so the bytes depend only on the drawing.
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None},
                facecolor=fig.get_facecolor())
    return PNGImage(buf.getvalue())


def draw_png(strokes: np.ndarray, *, size: int = 256, margin: float = 10.0,
             stroke_width: float = 2.0, colors: Colors = None,
             background: str | None = "white") -> PNGImage:
    """One sketch fitted to a size x size PNG."""
    return grid_png([strokes], cols=1, size=size, margin=margin, stroke_width=stroke_width,
                    colors=colors, background=background)


def _partial(lines: list[np.ndarray], k: int) -> list[np.ndarray]:
    """The first k points of a sketch, still split into strokes."""
    out, left = [], k
    for p in lines:
        if left <= 0:
            break
        out.append(p[:left])
        left -= len(p)
    return out


def animate_gif(sketches: np.ndarray | Sequence[np.ndarray], *, frames: int = 40,
                frame_ms: int = 60, hold_ms: int = 1000, cols: int | None = None,
                size: int = 256, margin: float = 10.0, stroke_width: float = 2.0,
                colors: Colors = None, background: str = "white") -> GIFImage:
    """An animated GIF drawing the points in order; a grid's sketches draw side by side.

    Frame f shows the first ceil(f / frames * n_i) points of sketch i, so every sketch
    finishes on the last frame, which is held for `hold_ms`.
    """
    from PIL import Image

    if frames < 1 or frame_ms <= 0 or hold_ms < 0:
        raise SketchRNNError(f"frames={frames}, frame_ms={frame_ms}, hold_ms={hold_ms}: "
                             "need frames >= 1, frame_ms > 0, hold_ms >= 0")
    sketches = _as_list(sketches)
    layout = _layout(sketches, size, cols, margin)
    counts = [sum(len(p) for p in lines) for lines in layout.sketches]
    fig, ax = _figure(layout, background)
    images = []
    for f in range(1, frames + 1):
        for coll in list(ax.collections):
            coll.remove()
        for lines, n in zip(layout.sketches, counts):
            _add_sketch(ax, _partial(lines, math.ceil(f * n / frames)), colors, stroke_width)
        fig.canvas.draw()
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]  # (H, W, 3)
        images.append(Image.fromarray(rgb).quantize(colors=64, dither=Image.Dither.NONE))
    durations = [frame_ms] * (frames - 1) + [frame_ms + hold_ms]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=durations, loop=0, disposal=1)
    return GIFImage(buf.getvalue())


# --------------------------------------------------------------------------- files
def check_extension(path: str) -> str:
    """The lower-case extension of an output path, if it is one we can write."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in SAVE_EXTENSIONS:
        raise SketchRNNError(f"{path}: unknown output extension {ext or '(none)'!r}; "
                             f"use one of {', '.join(SAVE_EXTENSIONS)}")
    return ext


def save_sketches(path: str, sketches: Sequence[np.ndarray], *, cols: int | None = None,
                  **style) -> None:
    """Write sketches to `path` by its extension: .svg/.png grid, .gif animation, .npz arrays.

    The .npz holds one float32 (n_i, 3) array per sketch, keys sketch_000, ... (load with
    plain np.load, no pickle); its zip entries carry a fixed date so the bytes depend only
    on the data (np.savez stamps the current time).
    """
    ext = check_extension(path)
    sketches = _as_list(sketches)
    if ext == ".svg":
        grid_svg(sketches, cols=cols, **style).save(path)
    elif ext == ".png":
        grid_png(sketches, cols=cols, **style).save(path)
    elif ext == ".gif":
        animate_gif(sketches, cols=cols, **style).save(path)
    else:
        _save_npz(path, sketches)


def npz_bytes(sketches: Sequence[np.ndarray]) -> bytes:
    """An .npz archive of the sketches with fixed zip timestamps (reproducible bytes)."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, s in enumerate(sketches):
            info = zipfile.ZipInfo(f"sketch_{i:03d}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.asarray(s, np.float32), allow_pickle=False)
            zf.writestr(info, arr.getvalue())
    return buf.getvalue()


def _save_npz(path: str, sketches: Sequence[np.ndarray]) -> None:
    write_bytes(path, npz_bytes(sketches))
