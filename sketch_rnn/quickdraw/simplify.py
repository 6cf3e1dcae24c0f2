"""Google's simplification of raw drawings, and drawings -> stroke-3 within a length limit.

Raw drawings are aligned to the top-left, scaled to 0..255, resampled every pixel and
simplified with RDP (ε = 2), the pipeline of the published simplified files; a drawing
still longer than max_seq_len is simplified further with rising ε until it fits.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.strokes import polylines_to_stroke3, rdp
from .readers import CANVAS_MAX, Drawing

SIMPLIFY_EPSILON = 2.0    # Google's RDP ε for the simplified files
RESAMPLE_SPACING = 1.0    # pixels between resampled points
# ε values tried, in order, to bring a long drawing under max_seq_len (then it is dropped).
FIT_EPSILONS = (2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)


def _resample(points: np.ndarray, spacing: float) -> np.ndarray:
    """Points every `spacing` pixels along the polyline (its last point always kept). (m, 2)"""
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(np.diff(points, axis=0) != 0, axis=1)
    pts = points[keep]
    if len(pts) < 2:  # a dot: Google's files keep it as two equal points, start and end
        return np.repeat(pts, 2, axis=0)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])  # (n,)
    at = np.arange(0.0, arc[-1], spacing)
    if arc[-1] - at[-1] > 1e-9:
        at = np.append(at, arc[-1])
    return np.column_stack([np.interp(at, arc, pts[:, 0]), np.interp(at, arc, pts[:, 1])])


def simplify_lines(lines: Sequence[np.ndarray], epsilon: float = SIMPLIFY_EPSILON
                   ) -> list[np.ndarray]:
    """Google's pipeline on polylines ((n, 2) arrays) -> integer polylines in 0..255.

    Align to the top-left corner (minimum 0), scale uniformly so the largest coordinate is
    255, resample every stroke at 1-pixel spacing, RDP with `epsilon`, round to integers.
    """
    lines = [np.asarray(line, dtype=np.float64).reshape(-1, 2) for line in lines if len(line)]
    if not lines:
        return []
    xy = np.concatenate(lines)
    low = xy.min(axis=0)
    extent = float((xy.max(axis=0) - low).max()) or 1.0
    out = []
    for line in lines:
        # (p - low) * 255 / extent, in this order: it matches Google's rounding most often.
        resampled = _resample((line - low) * CANVAS_MAX / extent, RESAMPLE_SPACING)
        out.append(np.rint(rdp(resampled, epsilon)).astype(np.int64))
    return out


def simplify_drawing(drawing: Sequence[Sequence[Sequence[float]]]) -> list[list[list[int]]]:
    """A raw QuickDraw drawing ([[x...], [y...], [t...]] per stroke) -> Google's simplified form.

    Returns [[x...], [y...]] integer strokes in 0..255, as in the simplified `.ndjson` files,
    so that raw drawings and a user's own drawings train like the published data.
    """
    lines = [np.asarray(stroke, dtype=np.float64)[:2].T for stroke in drawing
             if len(stroke) >= 2 and len(stroke[0])]
    return [[line[:, 0].tolist(), line[:, 1].tolist()] for line in simplify_lines(lines)]


def drawing_lines(drawing: Drawing) -> list[np.ndarray]:
    """The drawing as simplified integer polylines ((n, 2) arrays); raw input is simplified."""
    lines = [stroke[:2].T for stroke in drawing.drawing]
    return lines if drawing.is_simplified else simplify_lines(lines)


# =========================================================================== stroke-3
def lines_to_stroke3(lines: Sequence[np.ndarray]) -> np.ndarray:
    """Integer polylines -> (n, 3) int16 stroke-3 whose drawing starts at the origin.

    Each row is the offset from the previous point, pen = 1 on each stroke's last point.
    The first point is the origin, so it needs no row of its own, unless it is a one-point
    stroke: then a (0, 0, 1) row keeps that dot separate from the next stroke.
    """
    lines = [np.asarray(line).reshape(-1, 2) for line in lines if len(line)]
    if not lines:
        return np.zeros((0, 3), dtype=np.int16)
    s3 = polylines_to_stroke3(lines, origin=lines[0][0])  # (n, 3), first row (0, 0, pen)
    if len(lines[0]) > 1:
        s3 = s3[1:]
    return s3.astype(np.int16)


def fit_to_length(lines: Sequence[np.ndarray], max_len: int
                  ) -> tuple[np.ndarray | None, float | None]:
    """Raise RDP's ε through FIT_EPSILONS until the stroke-3 has at most max_len rows.

    This is how the published sketch-rnn files kept long drawings. Returns (stroke3, ε), or
    (None, None) when even the largest ε is not enough.
    """
    for eps in FIT_EPSILONS:
        s3 = lines_to_stroke3([rdp(np.asarray(line), eps) for line in lines])
        if len(s3) <= max_len:
            return s3, eps
    return None, None
