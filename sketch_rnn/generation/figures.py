"""Labelled rows of sketches as one PNG: the figures of the notebooks and the study pages.

`drawing` makes uniform grids; a figure that compares things (temperatures, an input and its
reconstructions, a path through z) needs a label per row and a title per cell, which
matplotlib's subplots give. Only NumPy at import; matplotlib and Pillow when drawing.
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from ..core.errors import SketchRNNError
from .drawing import polylines
from .images import PNGImage


def sketch_rows(rows: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str] | None = None,
                titles: Sequence[Sequence[str]] | None = None, cell: float = 1.3, dpi: int = 80,
                color: str = "black", linewidth: float = 1.2) -> PNGImage:
    """Rows of stroke-3 sketches as one PNG: a label left of each row, a title above each cell.

    `titles` is nested like `rows` (give only a first row for column titles). Each sketch
    is fitted to its own cell (aspect kept, y down). A notebook shows the result inline.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise SketchRNNError("no sketches to draw")
    left = 0.25 + 0.075 * max(len(label) for label in row_labels) if row_labels else 0.1
    titled = [r for r in range(n_rows) if titles and r < len(titles) and any(titles[r])]
    top = 0.3 if 0 in titled else 0.05
    fig = Figure(figsize=(left + n_cols * cell, top + n_rows * cell), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.subplots(n_rows, n_cols, squeeze=False,
                        gridspec_kw=dict(left=left / (left + n_cols * cell), right=0.99,
                                         top=1 - top / (top + n_rows * cell), bottom=0.01,
                                         wspace=0.08, hspace=0.35 if titled else 0.08))
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = grid[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("#dddddd")
            if c < len(row):
                for p in polylines(row[c]):
                    ax.plot(p[:, 0], p[:, 1], color=color, linewidth=linewidth,
                            solid_capstyle="round")
                ax.set_aspect("equal", adjustable="datalim")
                ax.invert_yaxis()
            else:
                ax.set_visible(False)
            if r in titled and c < len(titles[r]):
                ax.set_title(titles[r][c], fontsize=8)
        if row_labels and r < len(row_labels):
            grid[r][0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return PNGImage(_small_png(buf.getvalue()))


def _small_png(data: bytes) -> bytes:
    """The PNG with a 32-colour palette: line drawings look the same at a third of the size."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=32, dither=Image.Dither.NONE).save(out, format="PNG", optimize=True)
    return out.getvalue()
