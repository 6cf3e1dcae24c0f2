"""Sketch datasets: packed splits, the scale factor, the data fingerprint and the cache.

Data flows one way: `.npz` file (read and validated by `npz`) -> validated stroke-3 (int
offsets, pen 0/1) -> length filter and clipping (here) -> packed raw int16 `SketchSplit` ->
`batches.train_batch(split, hps, seed, step)` (augmented stroke-5) or `batches.eval_batches`
(plain stroke-5), normalised by the scale factor as the sketches leave the split.

Memory: a split keeps the raw int16 (dx, dy, pen) points (6 bytes a point, the size of the
data itself) plus 16 bytes a sketch (offset, length, label); files are read one at a time and
appended in place, so loading all 345 QuickDraw categories needs about their raw int16 size.
With `cache_dir` the packed arrays are also saved as .npy files and memory-mapped next time.

Pure NumPy: importing this module never imports TensorFlow or Keras.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core import strokes as S
from ..core.errors import SketchRNNError
from ..core.files import file_sha256, publish_dir, read_bytes, temp_dir_for
from ..core.strokes import SPLITS
from .npz import load_npz_packed

DEFAULT_DATA = "data/aaron_sheep.npz"  # the original's default data set, bundled
OFFSET_LIMIT = 1000  # magenta clips |dx|, |dy| to this before normalising
CACHE_FORMAT = 1

# --------------------------------------------------------------------------- packed storage
@dataclass
class SketchSplit:
    """One split of all categories, packed: raw int16 points + offsets + labels.

    Points stay in the data's own integer units (6 bytes a point); dx, dy are divided by
    `scale_factor` only when sketches leave the split (`sketch`, `gather`), a few thousand
    points per batch, so memory stays at the raw size however many categories are loaded.
    """

    name: str
    points: np.ndarray  # (P, 3) int16: dx, dy clipped to +-OFFSET_LIMIT; pen 0/1
    offsets: np.ndarray  # (n + 1,) int64: sketch i is points[offsets[i]:offsets[i+1]]
    labels: np.ndarray  # (n,) int32 category index
    scale_factor: float = 1.0  # dx, dy are divided by it on the way out
    _lengths: np.ndarray = field(init=False, repr=False)
    _max_length: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lengths = np.diff(self.offsets).astype(np.int32)  # (n,)
        self._max_length = int(self._lengths.max()) if len(self._lengths) else 0

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> np.ndarray:
        """(n,) int32 number of points of each sketch."""
        return self._lengths

    def max_length(self) -> int:
        return self._max_length

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """Raw (T, 3) points -> float32 with dx, dy divided by the scale factor."""
        return S.normalise(raw, self.scale_factor)  # (T, 3)

    def sketch(self, i: int) -> np.ndarray:
        """(n_i, 3) float32 normalised stroke-3 of sketch i."""
        return self.normalise(self.points[self.offsets[i]:self.offsets[i + 1]])

    def gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised float32 points (T, 3) and lengths (B,) of the sketches idx, in order."""
        lengths = self._lengths[idx]
        starts = self.offsets[idx]
        total = int(lengths.sum())
        # flat position of point j of the k-th chosen sketch: starts[k] + j
        shift = starts - (np.cumsum(lengths) - lengths)
        flat = np.repeat(shift, lengths) + np.arange(total)
        return self.normalise(np.take(self.points, flat, axis=0)), lengths  # (T, 3), (B,)

    def nbytes(self) -> int:
        """Bytes held by the packed arrays (points, offsets, lengths, labels)."""
        return sum(a.nbytes for a in (self.points, self.offsets, self._lengths, self.labels))


@dataclass
class SketchData:
    """The three splits of one or more category files, normalised by one scale factor."""

    train: SketchSplit
    valid: SketchSplit
    test: SketchSplit
    categories: list[str]
    scale_factor: float
    fingerprint: str
    paths: list[str]
    max_seq_len: int
    dropped: dict[str, int]  # per split: sketches removed (longer than max_seq_len, or empty)

    def split(self, name: str) -> SketchSplit:
        if name not in SPLITS:
            raise SketchRNNError(f"unknown split {name!r}: choose one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def summary(self) -> str:
        """One line for logs: sizes, categories, scale factor and what was dropped."""
        sizes = ", ".join(f"{s} {len(self.split(s))}" for s in SPLITS)
        drop = sum(self.dropped.values())
        return (f"{len(self.categories)} categor{'y' if len(self.categories) == 1 else 'ies'}"
                f" ({', '.join(self.categories)}): {sizes}; scale factor {self.scale_factor:.4f}"
                f"; dropped {drop} sketch(es) longer than max_seq_len={self.max_seq_len} or empty")


# --------------------------------------------------------------------------- building
class _GrowingArray:
    """Rows appended in place, so that a load never holds the data twice.

    The buffer starts as a large *reservation* (address space; pages become resident only
    when written), which makes malloc map it on its own instead of placing it in the heap.
    Growing it is then a realloc = mremap (no copy) to exactly the size needed, so no spare
    capacity is ever zero-filled and no freed copies are left to fragment the heap.
    """

    RESERVE_BYTES = 64 << 20  # above glibc's largest dynamic mmap threshold (32 MiB)

    def __init__(self, dtype: Any, width: int | None = None) -> None:
        self._tail = () if width is None else (width,)
        row_bytes = np.dtype(dtype).itemsize * (width or 1)
        self._buf = np.empty((self.RESERVE_BYTES // row_bytes, *self._tail), dtype)
        self.n = 0

    def extend(self, rows: np.ndarray) -> None:
        need = self.n + len(rows)
        if need > len(self._buf):
            self._buf.resize((need, *self._tail), refcheck=False)
        self._buf[self.n:need] = rows
        self.n = need

    def finish(self) -> np.ndarray:
        self._buf.resize((self.n, *self._tail), refcheck=False)
        return self._buf


_BLOCK = 1 << 18  # points per block when summing for the scale factor


def _clipped_int16(points: np.ndarray) -> np.ndarray:
    """(P, 3) points -> int16 with dx, dy clipped to +-OFFSET_LIMIT (in place when int16)."""
    rows = points if points.dtype == np.int16 else np.empty(points.shape, np.int16)
    rows[:, :2] = np.clip(points[:, :2], -OFFSET_LIMIT, OFFSET_LIMIT)
    if rows is not points:
        rows[:, 2] = points[:, 2]
    return rows  # (P, 3)


class SplitBuilder:
    """One split over all files: keeps the filtered, clipped int16 points and pools stats."""

    def __init__(self, name: str, max_seq_len: int) -> None:
        self.name, self.max_seq_len = name, max_seq_len
        self.points = _GrowingArray(np.int16, 3)
        self.lengths = _GrowingArray(np.int64)
        self.labels = _GrowingArray(np.int32)
        self.dropped = 0
        self.xy_count = self.xy_sum = self.xy_sq = 0  # kept dx, dy: for the scale factor
        self.stats = {"count": 0, "points": 0, "lifts": 0, "length_min": None, "length_max": 0,
                      "too_long": 0}

    def add(self, points: np.ndarray, offsets: np.ndarray, label: int) -> None:
        lengths = np.diff(offsets)  # (n,)
        self._count(points, lengths)
        keep = (lengths > 0) & (lengths <= self.max_seq_len)  # (n,)
        rows = _clipped_int16(points if keep.all() else points[np.repeat(keep, lengths)])
        for block in range(0, len(rows), _BLOCK):  # exact integer sums, small temporaries
            xy = rows[block:block + _BLOCK, :2].astype(np.int64)  # (<= _BLOCK, 2)
            self.xy_count += xy.size
            self.xy_sum += int(xy.sum())
            self.xy_sq += int(np.einsum("ij,ij->", xy, xy))
        self.points.extend(rows)
        self.lengths.extend(lengths[keep])
        self.labels.extend(np.full(int(keep.sum()), label, np.int32))
        self.dropped += int(len(keep) - keep.sum())

    def _count(self, points: np.ndarray, lengths: np.ndarray) -> None:
        st = self.stats
        st["count"] += len(lengths)
        st["points"] += int(lengths.sum())
        st["lifts"] += int(points[:, 2].sum())
        st["too_long"] += int((lengths > self.max_seq_len).sum())
        if len(lengths):
            low = int(lengths.min())
            st["length_min"] = low if st["length_min"] is None else min(st["length_min"], low)
            st["length_max"] = max(st["length_max"], int(lengths.max()))

    def scale_factor(self) -> float:
        """Population std of all kept dx and dy, from exact integer sums."""
        n = self.xy_count
        if n == 0:
            return 1.0
        var = (n * self.xy_sq - self.xy_sum * self.xy_sum) / (n * n)
        return math.sqrt(var) if var > 0 else 1.0

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> points (P, 3) int16, offsets (n + 1,) int64, labels (n,) int32."""
        lengths = self.lengths.finish()
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        del lengths
        return self.points.finish(), offsets, self.labels.finish()

    def report(self) -> dict[str, Any]:
        """The `stats` numbers of this split (all sketches, before the length filter)."""
        st, n = self.stats, self.stats["count"]
        return {
            "count": n,
            "length_min": st["length_min"] or 0,
            "length_mean": round(st["points"] / n, 2) if n else 0.0,
            "length_max": st["length_max"],
            "points": st["points"],
            "pen_lift_fraction": round(st["lifts"] / st["points"], 4) if st["points"] else 0.0,
            "strokes_mean": round(st["lifts"] / n, 2) if n else 0.0,
            "too_long": st["too_long"],
            "kept": n - self.dropped,
        }



def _data_fingerprint(files_hash: str, max_seq_len: int) -> str:
    return hashlib.sha256(f"{files_hash}:max_seq_len={max_seq_len}".encode()).hexdigest()


def scan_splits(paths: list[str], max_seq_len: int) -> tuple[dict[str, SplitBuilder], str]:
    """Read every file once, in order, into the split builders -> (builders, fingerprint).

    Where `load_data` and the `stats` report (`stats.dataset_stats`) both start.

    The fingerprint is sha256 over the files' sha256s in order, and max_seq_len.
    """
    if not paths:
        raise SketchRNNError("no data files given")
    builders = {s: SplitBuilder(s, max_seq_len) for s in SPLITS}
    h = hashlib.sha256()
    for label, path in enumerate(paths):
        content = read_bytes(path)
        h.update(hashlib.sha256(content).digest())
        packed = load_npz_packed(path, content)
        del content
        for split in SPLITS:
            builders[split].add(*packed.pop(split), label)
    return builders, _data_fingerprint(h.hexdigest(), max_seq_len)


def categories_of(paths: Sequence[str]) -> list[str]:
    """Category names: the file names without folder and extension."""
    return [Path(p).stem for p in paths]


def load_data(paths: Sequence[str], max_seq_len: int, scale_factor: float | None = None,
              cache_dir: str | Path | None = None) -> SketchData:
    """Load one .npz per category into packed splits (magenta's preprocessing).

    Sketches longer than max_seq_len (and empty ones) are dropped and counted; offsets are
    clipped to +-1000. The scale factor comes from the kept training sketches of all files
    unless `scale_factor` is given (evaluating other data with a run's own factor); it is
    applied to every split. With `cache_dir`, the packed arrays are saved there once and
    memory-mapped by later loads of the same files (checked by content hash).
    """
    if max_seq_len <= 0:
        raise SketchRNNError(f"max_seq_len={max_seq_len}: must be > 0")
    if scale_factor is not None and not (math.isfinite(scale_factor) and scale_factor > 0):
        raise SketchRNNError(f"scale_factor={scale_factor}: must be a positive number")
    paths = [str(p) for p in paths]
    if cache_dir is not None:
        return _load_cached(paths, max_seq_len, scale_factor, Path(cache_dir))
    builders, fingerprint = scan_splits(paths, max_seq_len)
    arrays = {s: builders[s].finish() for s in SPLITS}
    dropped = {s: builders[s].dropped for s in SPLITS}
    train_factor = builders["train"].scale_factor()
    return _assemble(paths, arrays, fingerprint, max_seq_len, dropped,
                     train_factor if scale_factor is None else scale_factor)


def _assemble(paths: list[str], arrays: dict[str, tuple[np.ndarray, ...]], fingerprint: str,
              max_seq_len: int, dropped: dict[str, int], factor: float) -> SketchData:
    splits = {s: SketchSplit(s, *arrays[s], scale_factor=factor) for s in SPLITS}
    return SketchData(splits["train"], splits["valid"], splits["test"], categories_of(paths),
                      factor, fingerprint, paths, max_seq_len, dropped)


# --------------------------------------------------------------------------- cache
_ARRAY_NAMES = ("points", "offsets", "labels")


def _load_cached(paths: list[str], max_seq_len: int, scale_factor: float | None,
                 cache_dir: Path) -> SketchData:
    """Memory-map the packed arrays of these files from cache_dir, building them on a miss."""
    if not paths:
        raise SketchRNNError("no data files given")
    files = hashlib.sha256(b"".join(file_sha256(p) for p in paths)).hexdigest()
    fingerprint = _data_fingerprint(files, max_seq_len)
    folder = cache_dir / f"packed-{fingerprint[:32]}"
    if not (folder / "meta.json").is_file():
        _write_cache(paths, max_seq_len, folder)
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT or meta.get("fingerprint") != fingerprint:
            raise ValueError("stale cache entry")
        arrays = {s: tuple(np.load(folder / f"{s}-{a}.npy", mmap_mode="r", allow_pickle=False)
                           for a in _ARRAY_NAMES) for s in SPLITS}
        cached_factor, dropped = meta["scale_factor"], meta["dropped"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SketchRNNError(f"{folder}: unreadable data cache ({e}); delete it to rebuild"
                             ) from None
    factor = cached_factor if scale_factor is None else scale_factor
    return _assemble(paths, arrays, fingerprint, max_seq_len, dropped, factor)


def _write_cache(paths: list[str], max_seq_len: int, folder: Path) -> None:
    """Build the packed arrays and save them into `folder`, complete or not at all."""
    builders, fingerprint = scan_splits(paths, max_seq_len)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_for(folder)
    for s in SPLITS:
        for name, arr in zip(_ARRAY_NAMES, builders[s].finish()):
            np.save(tmp / f"{s}-{name}.npy", arr, allow_pickle=False)
        del arr
    meta = {"format": CACHE_FORMAT, "fingerprint": fingerprint, "max_seq_len": max_seq_len,
            "scale_factor": builders["train"].scale_factor(),
            "dropped": {s: builders[s].dropped for s in SPLITS}}
    (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    try:
        publish_dir(tmp, folder)
    except OSError:  # another process finished the same entry first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
