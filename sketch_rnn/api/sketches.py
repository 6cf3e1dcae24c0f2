"""What the model's calls return: sketches that draw themselves inline and save to a file.

`Sketches` is a list of stroke-3 arrays (n, 3) of (dx, dy, pen) in data units, as the data
files hold them, so NumPy code and the drawing functions take it as it is. It adds what a
person wants next: `_repr_svg_` (a notebook draws the grid inline), `.svg()`, `.png()`,
`.gif()` (the image objects of `generation.drawing`) and `.save("x.svg" | ".png" | ".gif" |
".npz")`. `Completion` is the sketches `Model.complete` returns: the prefix, then prefix +
each ending, drawn with the prefix in grey and the endings in colour.

Only NumPy at import; the drawing libraries load when something is drawn.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..core.errors import SketchRNNError

PREFIX_COLOR = "#9a9a9a"  # a completion's prefix
ENDING_COLOR = "#d62728"  # and its endings
MOST_COLUMNS = 9  # a completion's drawing: the prefix and up to 8 endings a row


class Sketches(list):
    """Stroke-3 sketches (float32 (n, 3) arrays, data units) that draw and save themselves.

    `cols` and `colors` are the drawing's defaults (a row for an interpolation, one colour
    per stroke in turn); `z` the latent codes they were decoded from, when there were any.
    In a notebook the grid is shown as SVG; `inline = "png"` shows it as PNG instead.

    >>> s = Sketches([[[0, 0, 0], [10, 0, 0], [0, 10, 1]]])
    >>> len(s), s[0].shape
    (1, (3, 3))
    >>> s.svg().text.startswith("<svg")
    True
    """

    def __init__(self, items: Iterable[Any] = (), *, cols: int | None = None,
                 colors: str | Sequence[str] | None = None, z: np.ndarray | None = None,
                 inline: str = "svg") -> None:
        super().__init__(np.asarray(s, dtype=np.float32) for s in items)
        self.cols, self.colors, self.z, self.inline = cols, colors, z, inline

    def __getitem__(self, i: Any) -> Any:
        """One sketch's array; a slice is `Sketches` again (its codes sliced with it)."""
        got = super().__getitem__(i)
        if not isinstance(i, slice):
            return got
        return Sketches(got, colors=self.colors, inline=self.inline,
                        z=None if self.z is None else self.z[i])

    def __repr__(self) -> str:
        sizes = ", ".join(str(len(s)) for s in self[:8]) + (", ..." if len(self) > 8 else "")
        return f"<{type(self).__name__}: {len(self)} sketches of {sizes} points>"

    # ----------------------------------------------------------------- drawing
    def _drawn(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        """The sketches a drawing shows and its default style."""
        return list(self), {"cols": self.cols, "colors": self.colors}

    def _styled(self, style: dict[str, Any]) -> tuple[list[np.ndarray], dict[str, Any]]:
        drawn, defaults = self._drawn()
        if not drawn:
            raise SketchRNNError("no sketches to draw")
        return drawn, {**{k: v for k, v in defaults.items() if v is not None}, **style}

    def svg(self, **style: Any) -> Any:
        """The grid as an `SVGImage` (style: cols, size, margin, stroke_width, colors, ...)."""
        from ..generation.drawing import grid_svg

        drawn, style = self._styled(style)
        return grid_svg(drawn, **style)

    def png(self, **style: Any) -> Any:
        """The grid as a `PNGImage` (the same style arguments as `svg`)."""
        from ..generation.drawing import grid_png

        drawn, style = self._styled(style)
        return grid_png(drawn, **style)

    def gif(self, **style: Any) -> Any:
        """An animated `GIFImage` drawing the points in order (frames, frame_ms, hold_ms, ...)."""
        from ..generation.drawing import animate_gif

        drawn, style = self._styled(style)
        return animate_gif(drawn, **style)

    def save(self, path: str, **style: Any) -> None:
        """Write to `path` by its extension: .svg/.png grid, .gif animation, .npz arrays
        (one float32 (n, 3) array per sketch, keys sketch_000, ...; plain `np.load`)."""
        from ..generation.drawing import check_extension, save_sketches

        if check_extension(str(path)) == ".npz":
            save_sketches(str(path), list(self))
            return
        drawn, style = self._styled(style)
        save_sketches(str(path), drawn, **style)

    def _repr_svg_(self) -> str | None:
        return self.svg().text if self.inline == "svg" and self else None

    def _repr_png_(self) -> bytes | None:
        return self.png().data if self.inline == "png" and self else None


class Completion(Sketches):
    """A prefix and the model's endings: the items are the prefix, then prefix + each ending.

    `prefix` (L, 3) and `endings` (each ending's first offset is from the prefix's last
    point) keep the parts; `z` the codes used (None for a decoder-only model). Drawn with
    the prefix in grey and the endings in colour, the prefix first, at most 9 a row; saved
    as .npz it holds the prefix, then each whole sketch.
    """

    def __init__(self, prefix: np.ndarray, endings: Sequence[np.ndarray],
                 z: np.ndarray | None = None) -> None:
        prefix = np.asarray(prefix, dtype=np.float32)
        whole = [np.concatenate([prefix, np.asarray(e, np.float32)]) for e in endings]
        super().__init__([prefix, *whole], z=z)
        self.prefix, self.endings = prefix, [np.asarray(e, np.float32) for e in endings]

    def _drawn(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        sketches, colors = drawable(self.prefix, self.endings)
        return sketches, {"cols": min(len(sketches), MOST_COLUMNS), "colors": colors}


def drawable(prefix: np.ndarray, endings: Sequence[np.ndarray]) -> tuple[list, list[str]]:
    """Sketches to draw (prefix, then prefix + each ending) and the colour of each stroke.

    The prefix's strokes are closed at its last point so they can take their own colour;
    when the prefix ended with the pen down, each ending starts with a zero move from
    that point, so the segment joining them is drawn, in the ending's colour.
    """
    from ..generation.drawing import polylines

    head = np.array(prefix, dtype=np.float32)
    pen_down = head[-1, 2] < 0.5
    head[-1, 2] = 1.0
    joint = np.zeros((1 if pen_down else 0, 3), np.float32)
    sketches = [head] + [np.concatenate([head, joint, e]) if len(e) else head for e in endings]
    n_head = len(polylines(head))
    most = max(len(polylines(s)) for s in sketches)
    return sketches, [PREFIX_COLOR] * n_head + [ENDING_COLOR] * max(most - n_head, 1)


def as_sketch_list(sketches: Any, name: str = "sketches") -> list[np.ndarray]:
    """One sketch or several, as a list of float32 (n, 3) arrays.

    Accepted: a stroke-3 array (n, 3) or list [[dx, dy, pen], ...] (one sketch); a
    sequence of those, e.g. `Sketches` or a data split; an array (B, n, 3).
    """
    if isinstance(sketches, np.ndarray):
        items = [sketches] if sketches.ndim == 2 else list(sketches)
    else:
        items = list(sketches)
        if items and np.asarray(items[0], dtype=object).ndim == 1:  # one [dx, dy, pen] row
            items = [items]
    out = []
    for i, s in enumerate(items):
        try:
            a = np.asarray(s, dtype=np.float32)
        except (TypeError, ValueError):
            raise SketchRNNError(f"{name}[{i}]: expected [dx, dy, pen] numbers") from None
        if a.ndim != 2 or a.shape[1] != 3:
            raise SketchRNNError(f"{name}[{i}]: expected a stroke-3 array (n, 3), got {a.shape}")
        out.append(a)
    if not out:
        raise SketchRNNError(f"{name}: no sketches given")
    return out
