"""Stroke formats, normalisation, augmentation and RDP simplification (pure NumPy).

Formats (Ha & Eck 2017, section 3.1):

* stroke-3: (n, 3) rows (dx, dy, pen). dx, dy are offsets from the previous point (the
  first from the origin); pen = 1 means the pen is lifted *after* this point, so the point
  ends a stroke.
* stroke-5: rows (dx, dy, p1, p2, p3). For the n real points p1 = 1 - pen, p2 = pen, p3 = 0;
  the start token S_0 = (0, 0, 1, 0, 0) is prepended and every row after the sketch is the
  padding row (0, 0, 0, 0, 1), so a sketch padded to N_max has N_max + 1 rows.
* polylines: a list of (k, 2) arrays of absolute coordinates, one per stroke.
* packed: many stroke-3 sketches as one flat (P, 3) array plus their lengths (or offsets).
  The batch functions work on packed arrays so that a whole batch is a handful of NumPy
  calls instead of a Python loop over sketches and points.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

S_0 = np.array([0.0, 0.0, 1.0, 0.0, 0.0], dtype=np.float32)  # start token
PAD = np.array([0.0, 0.0, 0.0, 0.0, 1.0], dtype=np.float32)  # end-of-sketch / padding row
PEN_END = 2  # index of p3 (end of sketch) among the pen states (p1, p2, p3)
SPLITS = ("train", "valid", "test")  # the three arrays of a sketch-rnn .npz

# augment_strokes never drops the first KEEP_HEAD points of a stroke.
KEEP_HEAD = 3


# --------------------------------------------------------------------------- stroke-5
def stroke3_to_stroke5(stroke3: np.ndarray, max_len: int | None = None) -> np.ndarray:
    """One stroke-3 sketch -> (max_len + 1, 5) stroke-5 with S_0 first and padding after.

    max_len defaults to the sketch's own length (no padding rows).
    """
    stroke3 = np.asarray(stroke3)
    n = len(stroke3)
    out, _ = packed_to_stroke5(stroke3, np.array([n]), n if max_len is None else max_len)
    return out[0]  # (max_len+1, 5)


def stroke5_to_stroke3(stroke5: np.ndarray, has_start: bool = True) -> np.ndarray:
    """stroke-5 (with S_0 first when has_start) -> stroke-3, cut at the first end-of-sketch row.

    The pen is read as p2 > 0.5 and the end as p3 > 0.5, so one-hot model samples and data
    batches both convert; a sketch without an end row keeps all its rows.
    """
    s5 = np.asarray(stroke5)
    if has_start:
        s5 = s5[1:]
    ends = np.flatnonzero(s5[:, 4] > 0.5)
    n = int(ends[0]) if len(ends) else len(s5)
    out = np.empty((n, 3), dtype=np.float32)
    out[:, :2] = s5[:n, :2]
    out[:, 2] = s5[:n, 3] > 0.5
    return out  # (n, 3)


def packed_to_stroke5(points: np.ndarray, lengths: np.ndarray,
                      max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed stroke-3 sketches -> ((B, max_len + 1, 5) float32 stroke-5, lengths (B,) int32).

    Raises ValueError when a sketch is longer than max_len.
    """
    points = np.asarray(points)
    return _columns_to_stroke5(points[:, 0], points[:, 1], points[:, 2], lengths, max_len)


@functools.lru_cache(maxsize=8)
def _stroke5_template(batch: int, max_len: int) -> np.ndarray:
    """(B, max_len + 1, 5): S_0 then padding rows; copied, never written."""
    t = np.zeros((batch, max_len + 1, 5), dtype=np.float32)
    t[:, 0] = S_0
    t[:, 1:] = PAD
    t.flags.writeable = False
    return t


def _columns_to_stroke5(x: np.ndarray, y: np.ndarray, pen: np.ndarray, lengths: np.ndarray,
                        max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Scatter packed columns into a padded stroke-5 batch with one 20-byte-row copy."""
    lengths = np.asarray(lengths, dtype=np.int64)
    b = len(lengths)
    if b and lengths.max() > max_len:
        raise ValueError(f"sketch of length {lengths.max()} exceeds max_len {max_len}")
    out = _stroke5_template(b, max_len).copy()  # (B, N_max+1, 5)
    total = len(x)
    rows = np.empty((total, 5), dtype=np.float32)  # (P, 5) the real points
    rows[:, 0] = x
    rows[:, 1] = y
    rows[:, 3] = pen
    np.subtract(1, rows[:, 3], out=rows[:, 2])
    rows[:, 4] = 0
    # row of point j of sketch k in the flattened output: k * (max_len + 1) + 1 + j
    starts = np.cumsum(lengths) - lengths
    shift = np.arange(b, dtype=np.int64) * (max_len + 1) + 1 - starts
    dest = np.repeat(shift, lengths) + np.arange(total)  # (P,)
    np.put(out.view(_ROW).reshape(-1), dest, rows.view(_ROW).reshape(-1))
    return out, lengths.astype(np.int32)


_ROW = np.dtype((np.void, 5 * 4))  # one float32 stroke-5 row as an opaque 20-byte item


def pack(sketches: Sequence[np.ndarray], dtype: np.dtype | type = np.float32
         ) -> tuple[np.ndarray, np.ndarray]:
    """List of stroke-3 arrays -> (points (P, 3), offsets (n + 1,) int64)."""
    lengths = np.fromiter((len(s) for s in sketches), dtype=np.int64, count=len(sketches))
    offsets = np.zeros(len(sketches) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if len(sketches):
        points = np.concatenate([np.asarray(s).reshape(-1, 3) for s in sketches]).astype(dtype)
    else:
        points = np.zeros((0, 3), dtype=dtype)
    return points, offsets


def unpack(points: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Inverse of pack: views into points, one (n_i, 3) array per sketch."""
    return np.split(points, offsets[1:-1])


# --------------------------------------------------------------------------- polylines
def stroke3_to_polylines(stroke3: np.ndarray, origin: Sequence[float] = (0.0, 0.0)
                         ) -> list[np.ndarray]:
    """Offsets -> absolute coordinates, split after every pen-up point.

    Trailing points after the last pen-up still form a (last) polyline, so nothing drawn is
    lost; converting back then marks that final point with pen = 1.
    """
    s = np.asarray(stroke3)
    xy = np.cumsum(s[:, :2], axis=0) + np.asarray(origin)  # (n, 2)
    cuts = np.flatnonzero(s[:-1, 2] == 1) + 1
    return [p for p in np.split(xy, cuts) if len(p)]


def polylines_to_stroke3(polylines: Sequence[np.ndarray],
                         origin: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """Polylines of absolute coordinates -> stroke-3 (the last point of each has pen = 1)."""
    lines = [np.asarray(p).reshape(-1, 2) for p in polylines if len(p)]
    if not lines:
        return np.zeros((0, 3))
    xy = np.concatenate(lines)  # (n, 2)
    out = np.zeros((len(xy), 3), dtype=np.result_type(xy.dtype, np.asarray(origin).dtype))
    out[:, :2] = np.diff(xy, axis=0, prepend=np.asarray(origin, dtype=out.dtype)[None, :])
    out[np.cumsum([len(p) for p in lines]) - 1, 2] = 1
    return out


# --------------------------------------------------------------------------- normalisation
def scale_factor(sketches: Sequence[np.ndarray] | np.ndarray) -> float:
    """Population std of all dx and dy pooled (magenta's normalizing scale factor).

    Dividing offsets by it gives unit variance, which suits the mixture head's init.
    Accepts a list of stroke-3 arrays or a packed (P, 3) array.
    """
    if isinstance(sketches, np.ndarray):
        xy = sketches[:, :2]
    else:
        xy = np.concatenate([np.asarray(s)[:, :2] for s in sketches]) if len(sketches) else \
            np.zeros((0, 2))
    if xy.size == 0:
        return 1.0
    return float(np.std(xy.astype(np.float64)))


def normalise(stroke3: np.ndarray, factor: float) -> np.ndarray:
    """float32 copy with dx, dy divided by factor (pen untouched)."""
    out = np.array(stroke3, dtype=np.float32)
    out[:, :2] /= np.float32(factor)
    return out


def denormalise(stroke3: np.ndarray, factor: float) -> np.ndarray:
    """Inverse of normalise: dx, dy multiplied by factor."""
    out = np.array(stroke3, dtype=np.float32)
    out[:, :2] *= np.float32(factor)
    return out


# --------------------------------------------------------------------------- augmentation
def random_scale(stroke3: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Scale dx by U[1-s, 1+s] and dy by an independent draw (magenta's random_scale)."""
    pts, _ = augment_packed(np.asarray(stroke3, dtype=np.float32), np.array([len(stroke3)]),
                            s, 0.0, rng)
    return pts


def augment_strokes(stroke3: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
    """Drop interior points with probability prob, keeping the drawing's shape.

    Semantics of magenta's augment_strokes (see augment_packed for the rule).
    """
    pts, _ = augment_packed(np.asarray(stroke3, dtype=np.float32), np.array([len(stroke3)]),
                            0.0, prob, rng)
    return pts


def droppable(pen: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Which points augment_strokes may drop: (P,) bool.

    A stroke segment starts at a sketch's first point or right after a pen-up point. A point
    may be dropped when its own pen is 0 and it is at least the 4th point of its segment
    (magenta's `count > 2`): pen-up points, the point after a pen-up and the first three
    points of every stroke always stay, so the stroke count never changes. Equivalently:
    no segment starts at this point or the KEEP_HEAD - 1 points before it.
    """
    up = np.asarray(pen) == 1  # (P,)
    seg = np.empty_like(up)  # (P,) a segment starts here
    if len(up):
        seg[0] = True
        seg[1:] = up[:-1]
        seg[np.asarray(starts)[np.asarray(starts) < len(up)]] = True
    blocked = up | seg
    for k in range(1, KEEP_HEAD):
        blocked[k:] |= seg[:-k]
    return ~blocked


def augment_packed(points: np.ndarray, lengths: np.ndarray, scale: float, prob: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Augment many packed sketches at once -> (points (P', 3) float32, lengths (B,) int64).

    1. Random scale: each sketch's dx is multiplied by U[1-scale, 1+scale] and its dy by an
       independent draw (magenta's random_scale).
    2. Point dropping (magenta's augment_strokes): each droppable point (see `droppable`) is
       dropped with probability prob and its (dx, dy) is added to the previous kept point,
       so that point moves to where the dropped one was. Every later absolute position, the
       end point and the stroke count are unchanged; only some interior vertices vanish.

    Random draws, in this order: (B, 2) scale factors if scale > 0, then (P,) float32
    uniforms if prob > 0, so the result is a pure function of the generator's state.
    """
    points = np.asarray(points, dtype=np.float32)
    x, y, pen, lengths = _augment_columns(points[:, 0], points[:, 1], points[:, 2], lengths,
                                          scale, prob, rng)
    return np.stack([x, y, pen], axis=1), lengths


def augment_to_stroke5(points: np.ndarray, lengths: np.ndarray, max_len: int, scale: float,
                       prob: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """augment_packed then packed_to_stroke5, fused: (B, max_len + 1, 5) float32, (B,) int32."""
    points = np.asarray(points, dtype=np.float32)
    x, y, pen, lengths = _augment_columns(points[:, 0], points[:, 1], points[:, 2], lengths,
                                          scale, prob, rng)
    return _columns_to_stroke5(x, y, pen, lengths, max_len)


def _augment_columns(x: np.ndarray, y: np.ndarray, pen: np.ndarray, lengths: np.ndarray,
                     scale: float, prob: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The work of augment_packed on separate (P,) columns; returns new columns + lengths.

    Scaling commutes with merging (both linear), so it is applied after the drop, to fewer
    points.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    f = rng.uniform(1.0 - scale, 1.0 + scale, size=(len(lengths), 2)) if scale > 0 else None
    if prob > 0 and len(x):
        offsets = np.cumsum(lengths) - lengths
        drop = droppable(pen, offsets)
        drop &= rng.random(len(x), dtype=np.float32) < prob
        x, y, pen, lengths = _merge_dropped(x, y, pen, lengths, drop)
    else:
        x, y, pen = (np.array(c, dtype=np.float32) for c in (x, y, pen))
    if f is not None:
        x *= np.repeat(f[:, 0].astype(np.float32), lengths)  # (P',)
        y *= np.repeat(f[:, 1].astype(np.float32), lengths)
    return x, y, pen, lengths


def _merge_dropped(x: np.ndarray, y: np.ndarray, pen: np.ndarray, lengths: np.ndarray,
                   drop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Remove dropped points, adding each one's offset to the previous kept point.

    Every sketch's first point is kept (droppable is False there), so a dropped point's
    previous kept point is always in its own sketch.
    """
    keep = ~drop
    kept = np.flatnonzero(keep)  # (P',)
    gone = np.flatnonzero(drop)  # (D,)
    n_kept = np.cumsum(keep)  # (P,) kept points up to and including each point
    owner = n_kept[gone] - 1  # (D,) index in the kept arrays of the receiving point
    kx, ky = np.take(x, kept).astype(np.float32), np.take(y, kept).astype(np.float32)
    np.add.at(kx, owner, np.take(x, gone))  # in order, like magenta's running sum
    np.add.at(ky, owner, np.take(y, gone))
    ends = np.cumsum(lengths)
    counts = np.concatenate(([0], n_kept))
    new_lengths = counts[ends] - counts[ends - lengths]
    return kx, ky, np.take(pen, kept).astype(np.float32), new_lengths


# --------------------------------------------------------------------------- RDP
def _segment_distances(pts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each point to the line through a and b (to a itself when a == b)."""
    d = b - a
    norm = np.hypot(d[0], d[1])
    rel = pts - a
    if norm == 0:
        return np.hypot(rel[:, 0], rel[:, 1])
    return np.abs(d[0] * rel[:, 1] - d[1] * rel[:, 0]) / norm


def rdp(points: np.ndarray, epsilon: float) -> np.ndarray:
    """Ramer-Douglas-Peucker: keep the endpoints and every point farther than epsilon.

    A segment's interior is kept only when its farthest point lies more than epsilon from the
    line through the segment's ends (distance to the start when both ends coincide); then the
    segment is split there and both halves are simplified. Iterative with a stack, each
    segment's distances computed in one NumPy call. Returns (m, 2) in the input's dtype.
    """
    pts = np.asarray(points)
    n = len(pts)
    if n < 3:
        return pts.copy()
    xy = pts[:, :2].astype(np.float64)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        dist = _segment_distances(xy[i + 1:j], xy[i], xy[j])
        k = int(np.argmax(dist))
        if dist[k] > epsilon:
            k += i + 1
            keep[k] = True
            stack.append((k, j))
            stack.append((i, k))
    return pts[keep]
