"""Sketch datasets: safe .npz loading, validation, packed storage and per-step batches.

Data flows one way: `.npz` file -> validated stroke-3 (int offsets, pen 0/1) -> length filter
and clipping -> packed raw int16 `SketchSplit` -> `train_batch(split, hps, seed, step)`
(augmented stroke-5) or `eval_batches` (plain stroke-5), normalised by the scale factor as the
sketches leave the split.

Memory: a split keeps the raw int16 (dx, dy, pen) points (6 bytes a point, the size of the
data itself) plus 16 bytes a sketch (offset, length, label); files are read one at a time and
appended in place, so loading all 345 QuickDraw categories needs about their raw int16 size.
With `cache_dir` the packed arrays are also saved as .npy files and memory-mapped next time.

Pure NumPy: importing this module never imports TensorFlow or Keras.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import numpy.lib.format as npy_format

from . import strokes as S
from .errors import SketchRNNError
from .safepickle import PickleRefused, restricted_loads

SPLITS = ("train", "valid", "test")
DEFAULT_DATA = "data/aaron_sheep.npz"  # the original's default data set, bundled
OFFSET_LIMIT = 1000  # magenta clips |dx|, |dy| to this before normalising
CACHE_FORMAT = 1

try:  # NumPy 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # NumPy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

# --------------------------------------------------------------------------- safe unpickling
# The only globals a pickled NumPy object array of arrays needs, mapped straight to the
# installed objects: numpy.core.* is the NumPy 1 spelling found in old (Python 2) files, and
# resolving it here means NumPy 2 never imports its deprecated numpy.core shim.
SKETCH_PICKLE_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    SKETCH_PICKLE_ALLOWED[(_mod, "_reconstruct")] = _multiarray._reconstruct
    SKETCH_PICKLE_ALLOWED[(_mod, "scalar")] = _multiarray.scalar
_WHY_REFUSED = "only NumPy arrays are allowed in sketch files"


def _read_member(npz: Any, member: str, source: str) -> Any:
    """One .npy member of the zip: numeric arrays directly, object arrays via the allow-list."""
    with npz.zip.open(member) as f:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = npy_format.read_array_header_2_0(f)
        if not dtype.hasobject:
            f.seek(0)
            return npy_format.read_array(f, allow_pickle=False)
        payload = f.read()
    try:
        obj = restricted_loads(payload, SKETCH_PICKLE_ALLOWED, source, why=_WHY_REFUSED,
                               encoding="latin1")
    except PickleRefused:
        raise
    except SketchRNNError as e:  # truncated or garbled pickle: reported as an unreadable split
        raise ValueError(str(e).removeprefix(f"{source}: ")) from None
    if not isinstance(obj, np.ndarray) or obj.shape != tuple(shape):
        raise ValueError(f"pickled object does not match its header shape {shape}")
    return obj


# --------------------------------------------------------------------------- validation
def _as_sketch_list(arr: Any, where: str) -> list[np.ndarray]:
    """An object array of (n, 3) arrays, or a numeric (count, n, 3) array -> list of arrays."""
    if isinstance(arr, np.ndarray) and arr.dtype != object and arr.ndim == 3:
        return list(arr)
    if not isinstance(arr, np.ndarray) or arr.dtype != object or arr.ndim != 1:
        shape = getattr(arr, "shape", None)
        dtype = getattr(arr, "dtype", type(arr).__name__)
        raise SketchRNNError(f"{where}: expected a 1-D object array of sketches, "
                             f"got dtype {dtype} shape {shape}")
    return list(arr)


def _check_shapes(sketches: list[np.ndarray], where: str) -> None:
    for i, s in enumerate(sketches):
        if not isinstance(s, np.ndarray):
            raise SketchRNNError(f"{where}[{i}]: not an array ({type(s).__name__})")
        if s.dtype.kind not in "iuf":
            raise SketchRNNError(f"{where}[{i}]: wrong dtype {s.dtype} (need integers or floats)")
        if s.ndim != 2 or s.shape[1] != 3:
            raise SketchRNNError(f"{where}[{i}]: wrong shape {s.shape} (need (n, 3) stroke-3)")


def _check_values(points: np.ndarray, offsets: np.ndarray, where: str) -> None:
    """Finite, integral offsets and pen in {0, 1}; the error names the first bad sketch.

    Integer points are finite and integral by construction, so only floats pay for those checks.
    """
    checks = []
    if points.dtype.kind == "f":
        checks += [(~np.isfinite(points).all(axis=1), "non-finite value (NaN or inf)"),
                   ((points[:, :2] != np.round(points[:, :2])).any(axis=1), "non-integral offset")]
    checks.append(((points[:, 2] != 0) & (points[:, 2] != 1), "pen value not 0 or 1"))
    for bad, problem in checks:
        rows = np.flatnonzero(bad)
        if len(rows):
            i = int(np.searchsorted(offsets, rows[0], side="right") - 1)
            row = int(rows[0] - offsets[i])
            raise SketchRNNError(f"{where}[{i}]: {problem} at point {row}: "
                                 f"{points[rows[0]].astype(np.float64).tolist()}")


def _pack_native(sketches: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pack in the sketches' own (common) dtype, in one copy: int16 files stay 6 bytes a point."""
    if not sketches:
        return np.zeros((0, 3), np.int16), np.zeros(1, np.int64)
    dtype = np.result_type(*{s.dtype for s in sketches})
    offsets = np.zeros(len(sketches) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, sketches), np.int64, len(sketches)), out=offsets[1:])
    return np.concatenate(sketches, dtype=dtype), offsets  # (P, 3), (n + 1,)


def validate_packed(arr: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Check every sketch of one split -> packed (points (P, 3) in their dtype, offsets (n+1,))."""
    sketches = _as_sketch_list(arr, where)
    _check_shapes(sketches, where)
    points, offsets = _pack_native(sketches)
    _check_values(points, offsets, where)
    return points, offsets


def validate_sketches(arr: Any, where: str) -> list[np.ndarray]:
    """Check every sketch of one split; errors name file, split and index."""
    sketches = _as_sketch_list(arr, where)
    _check_shapes(sketches, where)
    _check_values(*_pack_native(sketches), where)
    return sketches


def load_npz(path: str | Path, content: bytes | None = None) -> dict[str, list[np.ndarray]]:
    """Read and validate a sketch-rnn .npz -> {"train"|"valid"|"test": list of (n, 3) arrays}.

    The zip is opened with allow_pickle=False; each object member is unpickled by an
    allow-list unpickler, so a crafted file can never run code. Every problem becomes a
    one-line SketchRNNError naming the file.
    """
    return _read_npz(str(path), content, validate_sketches)


def load_npz_packed(path: str | Path, content: bytes | None = None
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Like load_npz, but each split packed: (points (P, 3), offsets (n + 1,))."""
    return _read_npz(str(path), content, validate_packed)


def _read_npz(path: str, content: bytes | None, convert: Any) -> dict[str, Any]:
    try:
        if content is None:
            content = Path(path).read_bytes()
    except OSError as e:
        raise SketchRNNError(f"{path}: cannot read ({e.strerror or e})") from None
    _check_zip(path, content)
    try:
        npz = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise SketchRNNError(f"{path}: not a readable .npz archive ({_short(e)})") from None
    with npz:
        missing = [s for s in SPLITS if s not in npz.files]
        if missing:
            raise SketchRNNError(f"{path}: missing split key(s) {', '.join(missing)} "
                                 f"(found: {', '.join(npz.files) or 'none'})")
        result = {}
        for split in SPLITS:
            try:
                arr = _read_member(npz, split + ".npy", path)
            except SketchRNNError:
                raise
            except Exception as e:  # truncated/garbled member, bad header, broken pickle
                raise SketchRNNError(f"{path}: split {split} is unreadable ({_short(e)})") from None
            result[split] = convert(arr, f"{path}: {split}")
            del arr  # one split's Python objects at a time
    return result


def _check_zip(path: str, content: bytes) -> None:
    """Name the usual ways a file is not an .npz before NumPy guesses at it."""
    if content.startswith(b"\x93NUMPY"):
        raise SketchRNNError(f"{path}: a single .npy array, not a .npz archive")
    if not content.startswith(b"PK"):
        raise SketchRNNError(f"{path}: not a .npz file (not a zip archive)")
    if not zipfile.is_zipfile(io.BytesIO(content)):
        raise SketchRNNError(f"{path}: truncated or corrupt .npz (zip) archive")


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


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
        out = np.asarray(raw).astype(np.float32)  # (T, 3)
        out[:, :2] /= np.float32(self.scale_factor)
        return out

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


class _SplitBuilder:
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


def file_sha256(path: str | Path) -> bytes:
    """The file's sha256 digest, read in blocks; an unreadable file is a SketchRNNError."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise SketchRNNError(f"{path}: cannot read ({e.strerror or e})") from None
    return h.digest()


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SketchRNNError(f"{path}: cannot read ({e.strerror or e})") from None


def _data_fingerprint(files_hash: str, max_seq_len: int) -> str:
    return hashlib.sha256(f"{files_hash}:max_seq_len={max_seq_len}".encode()).hexdigest()


def _scan(paths: list[str], max_seq_len: int) -> tuple[dict[str, _SplitBuilder], str]:
    """Read every file once, in order, into the split builders -> (builders, fingerprint).

    The fingerprint is sha256 over the files' sha256s in order, and max_seq_len.
    """
    if not paths:
        raise SketchRNNError("no data files given")
    builders = {s: _SplitBuilder(s, max_seq_len) for s in SPLITS}
    h = hashlib.sha256()
    for label, path in enumerate(paths):
        content = _read_bytes(path)
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
    builders, fingerprint = _scan(paths, max_seq_len)
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
    builders, fingerprint = _scan(paths, max_seq_len)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for s in SPLITS:
        for name, arr in zip(_ARRAY_NAMES, builders[s].finish()):
            np.save(tmp / f"{s}-{name}.npy", arr, allow_pickle=False)
        del arr
    meta = {"format": CACHE_FORMAT, "fingerprint": fingerprint, "max_seq_len": max_seq_len,
            "scale_factor": builders["train"].scale_factor(),
            "dropped": {s: builders[s].dropped for s in SPLITS}}
    (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    try:
        os.rename(tmp, folder)
    except OSError:  # another process finished the same entry first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- batches
def _check_fits(split: SketchSplit, n_max: int) -> None:
    if split.max_length() > n_max:
        raise SketchRNNError(f"split {split.name} holds a sketch of length {split.max_length()}"
                             f" > max_seq_len={n_max}; reload the data with that max_seq_len")


def batch_from_indices(split: SketchSplit, idx: np.ndarray, n_max: int, scale: float = 0.0,
                       prob: float = 0.0, rng: np.random.Generator | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Sketches idx as stroke-5 (B, n_max+1, 5) float32 and lengths (B,) int32, optionally
    augmented (scale, prob > 0 need rng)."""
    points, lengths = split.gather(np.asarray(idx, dtype=np.int64))
    if scale > 0 or prob > 0:
        return S.augment_to_stroke5(points, lengths, n_max, scale, prob, rng)
    return S.packed_to_stroke5(points, lengths, n_max)


def train_batch(split: SketchSplit, hps: Any, seed: int, step: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The training batch of `step`: a pure function of (seed, step).

    Sketch indices (distinct unless the split is smaller than the batch) and augmentation
    come from np.random.default_rng([seed, step]), so batch k can be rebuilt after a resume
    without saving any RNG state. Returns strokes (B, N_max+1, 5) float32 and lengths (B,)
    int32 (points after augmentation, S_0 excluded).
    """
    n, b = len(split), hps.batch_size
    if n == 0:
        raise SketchRNNError(f"split {split.name} is empty: nothing to train on")
    _check_fits(split, hps.max_seq_len)
    rng = np.random.default_rng([int(seed), int(step)])
    idx = rng.choice(n, size=b, replace=n < b)  # (B,)
    return batch_from_indices(split, idx, hps.max_seq_len, hps.random_scale_factor,
                              hps.augment_stroke_prob, rng)


def eval_batches(split: SketchSplit, hps: Any
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Deterministic batches covering the split once, in order, without augmentation.

    The last batch is filled up with copies of the first sketches whose weight is 0, so
    every batch has the same shape; weighted means over all batches are exact split means.
    """
    n, b = len(split), hps.batch_size
    _check_fits(split, hps.max_seq_len)
    for start in range(0, n, b):
        idx = np.arange(start, start + b)  # (B,)
        weights = (idx < n).astype(np.float32)  # (B,)
        strokes, lengths = batch_from_indices(split, idx % n, hps.max_seq_len)
        yield strokes, lengths, weights


# --------------------------------------------------------------------------- stats
def dataset_stats(paths: Sequence[str], max_seq_len: int) -> dict[str, Any]:
    """The `stats` report: per split (all files pooled) and the training scale factor."""
    paths = [str(p) for p in paths]
    builders, fingerprint = _scan(paths, max_seq_len)
    report: dict[str, Any] = {s: builders[s].report() for s in SPLITS}
    report.update(scale_factor=builders["train"].scale_factor(), max_seq_len=max_seq_len,
                  categories=categories_of(paths), fingerprint=fingerprint)
    return report


def _format_stats(report: dict[str, Any]) -> str:
    lines = [f"categories: {', '.join(report['categories'])}"]
    for s in SPLITS:
        r = report[s]
        lines.append(
            f"{s:5s}  count {r['count']:6d}  length min/mean/max {r['length_min']}/"
            f"{r['length_mean']:.1f}/{r['length_max']}  "
            f"pen lifts {100 * r['pen_lift_fraction']:.1f}% ({r['strokes_mean']:.1f} "
            f"strokes/sketch)  longer than {report['max_seq_len']}: {r['too_long']}")
    lines.append(f"scale factor (train, after the length filter): {report['scale_factor']:.6f}")
    return "\n".join(lines)


def stats_command(args: argparse.Namespace) -> int:
    """`sketch-rnn stats DATA.npz ... [--max-seq-len N] [--json]`."""
    if args.max_seq_len <= 0:
        raise SketchRNNError(f"--max-seq-len {args.max_seq_len}: must be > 0")
    report = dataset_stats(args.paths, args.max_seq_len)
    if args.json:
        from .cli import print_json

        print_json(report)
    else:
        print(_format_stats(report))
    return 0
