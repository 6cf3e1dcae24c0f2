"""Sketch datasets: safe .npz loading, validation, packed storage and per-step batches.

Data flows one way: `.npz` file -> validated stroke-3 (int offsets, pen 0/1) -> length filter,
clipping, normalisation by the training split's scale factor -> packed `SketchSplit` ->
`train_batch(split, hps, seed, step)` (augmented stroke-5) or `eval_batches` (plain stroke-5).

Pure NumPy: importing this module never imports TensorFlow or Keras.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import math
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import numpy.lib.format as npy_format

from . import strokes as S
from .errors import SketchRNNError

SPLITS = ("train", "valid", "test")
OFFSET_LIMIT = 1000  # magenta clips |dx|, |dy| to this before normalising

try:  # NumPy 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # NumPy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

# --------------------------------------------------------------------------- safe unpickling
# The only globals a pickled NumPy object array of arrays needs. numpy.core.* is the NumPy 1
# spelling found in old (Python 2) files; both resolve to the installed module directly, so
# NumPy 2 never imports its deprecated numpy.core shim.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_mod, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED_GLOBALS[(_mod, "scalar")] = _multiarray.scalar


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Resolves only NumPy array reconstruction; any other global is refused before it runs."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise SketchRNNError(
                f"{self._source}: refused to unpickle {module}.{name} "
                "(only NumPy arrays are allowed in sketch files)") from None


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
        obj = _ArrayOnlyUnpickler(f, source).load()
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
    """Finite, integral offsets and pen in {0, 1}; the error names the first bad sketch."""
    checks = (
        (~np.isfinite(points).all(axis=1), "non-finite value (NaN or inf)"),
        ((points[:, :2] != np.round(points[:, :2])).any(axis=1), "non-integral offset"),
        ((points[:, 2] != 0) & (points[:, 2] != 1), "pen value not 0 or 1"),
    )
    for bad, problem in checks:
        rows = np.flatnonzero(bad)
        if len(rows):
            i = int(np.searchsorted(offsets, rows[0], side="right") - 1)
            row = int(rows[0] - offsets[i])
            raise SketchRNNError(f"{where}[{i}]: {problem} at point {row}: "
                                 f"{points[rows[0]].tolist()}")


def validate_sketches(arr: Any, where: str) -> list[np.ndarray]:
    """Check every sketch of one split; errors name file, split and index."""
    sketches = _as_sketch_list(arr, where)
    _check_shapes(sketches, where)
    points, offsets = S.pack(sketches, dtype=np.float64)
    _check_values(points, offsets, where)
    return sketches


def load_npz(path: str | Path, content: bytes | None = None) -> dict[str, list[np.ndarray]]:
    """Read and validate a sketch-rnn .npz -> {"train"|"valid"|"test": list of (n, 3) arrays}.

    The zip is opened with allow_pickle=False; each object member is unpickled by an
    allow-list unpickler, so a crafted file can never run code. Every problem becomes a
    one-line SketchRNNError naming the file.
    """
    path = str(path)
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
            result[split] = validate_sketches(arr, f"{path}: {split}")
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
    """One split of all categories, packed: normalised points + offsets + labels."""

    name: str
    points: np.ndarray  # (P, 3) float32: dx, dy divided by the scale factor; pen 0/1
    offsets: np.ndarray  # (n + 1,) int64: sketch i is points[offsets[i]:offsets[i+1]]
    labels: np.ndarray  # (n,) int32 category index
    _lengths: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lengths = np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> np.ndarray:
        """(n,) number of points of each sketch."""
        return self._lengths

    def max_length(self) -> int:
        return int(self._lengths.max()) if len(self) else 0

    def sketch(self, i: int) -> np.ndarray:
        """(n_i, 3) float32 normalised stroke-3 of sketch i."""
        return self.points[self.offsets[i]:self.offsets[i + 1]]

    def gather(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Packed points (T, 3) and lengths (B,) of the sketches idx, in order."""
        lengths = self._lengths[idx]
        starts = self.offsets[idx]
        total = int(lengths.sum())
        # flat position of point j of the k-th chosen sketch: starts[k] + j
        shift = starts - (np.cumsum(lengths) - lengths)
        flat = np.repeat(shift, lengths) + np.arange(total)
        return np.take(self.points, flat, axis=0), lengths  # (T, 3); faster than points[flat]


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


def _keep_mask(sketches: list[np.ndarray], max_seq_len: int) -> np.ndarray:
    lengths = np.fromiter((len(s) for s in sketches), dtype=np.int64, count=len(sketches))
    return (lengths > 0) & (lengths <= max_seq_len)


def _pack_split(name: str, per_file: list[list[np.ndarray]], keeps: list[np.ndarray],
                factor: float) -> SketchSplit:
    kept: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for label, (sketches, keep) in enumerate(zip(per_file, keeps)):
        kept.extend(s for s, k in zip(sketches, keep) if k)
        labels.append(np.full(int(keep.sum()), label, dtype=np.int32))
    points, offsets = S.pack(kept, dtype=np.float32)
    np.clip(points[:, :2], -OFFSET_LIMIT, OFFSET_LIMIT, out=points[:, :2])
    points[:, :2] /= np.float32(factor)
    return SketchSplit(name, points, offsets, np.concatenate(labels) if labels else
                       np.zeros(0, np.int32))


def _train_scale_factor(per_file: list[list[np.ndarray]], keeps: list[np.ndarray]) -> float:
    """std of all dx, dy of the kept, clipped training sketches (magenta's scale factor)."""
    kept = [s for sketches, keep in zip(per_file, keeps) for s, k in zip(sketches, keep) if k]
    if not kept:
        return 1.0
    points, _ = S.pack(kept, dtype=np.float64)
    np.clip(points[:, :2], -OFFSET_LIMIT, OFFSET_LIMIT, out=points[:, :2])
    factor = S.scale_factor(points)
    return factor if factor > 0 else 1.0


def _read_files(paths: Sequence[str]) -> tuple[list[dict[str, list[np.ndarray]]], str]:
    """Load every file once; fingerprint = sha256 over the files' sha256s in order."""
    if not paths:
        raise SketchRNNError("no data files given")
    h = hashlib.sha256()
    raws = []
    for p in paths:
        try:
            content = Path(p).read_bytes()
        except OSError as e:
            raise SketchRNNError(f"{p}: cannot read ({e.strerror or e})") from None
        h.update(hashlib.sha256(content).digest())
        raws.append(load_npz(p, content))
    return raws, h.hexdigest()


def categories_of(paths: Sequence[str]) -> list[str]:
    """Category names: the file names without folder and extension."""
    return [Path(p).stem for p in paths]


def load_data(paths: Sequence[str], max_seq_len: int) -> SketchData:
    """Load one .npz per category into packed, normalised splits (magenta's preprocessing).

    Sketches longer than max_seq_len (and empty ones) are dropped and counted; offsets are
    clipped to +-1000; the scale factor comes from the kept training sketches of all files
    and is applied to every split.
    """
    if max_seq_len <= 0:
        raise SketchRNNError(f"max_seq_len={max_seq_len}: must be > 0")
    paths = [str(p) for p in paths]
    raws, files_hash = _read_files(paths)
    return _build_data(paths, raws, files_hash, max_seq_len)


def _build_data(paths: list[str], raws: list[dict[str, list[np.ndarray]]], files_hash: str,
                max_seq_len: int) -> SketchData:
    keeps = {s: [_keep_mask(r[s], max_seq_len) for r in raws] for s in SPLITS}
    factor = _train_scale_factor([r["train"] for r in raws], keeps["train"])
    splits = {s: _pack_split(s, [r[s] for r in raws], keeps[s], factor) for s in SPLITS}
    dropped = {s: int(sum(len(k) - k.sum() for k in keeps[s])) for s in SPLITS}
    fingerprint = hashlib.sha256(f"{files_hash}:max_seq_len={max_seq_len}".encode()).hexdigest()
    return SketchData(splits["train"], splits["valid"], splits["test"], categories_of(paths),
                      factor, fingerprint, paths, max_seq_len, dropped)


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


def num_eval_batches(split: SketchSplit, batch_size: int) -> int:
    return math.ceil(len(split) / batch_size)


# --------------------------------------------------------------------------- stats
def _split_stats(sketches: list[np.ndarray], max_seq_len: int) -> dict[str, Any]:
    lengths = np.fromiter((len(s) for s in sketches), dtype=np.int64, count=len(sketches))
    points, _ = S.pack(sketches, dtype=np.float64)
    lifts = int(points[:, 2].sum())
    return {
        "count": len(sketches),
        "length_min": int(lengths.min()) if len(lengths) else 0,
        "length_mean": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
        "length_max": int(lengths.max()) if len(lengths) else 0,
        "points": int(lengths.sum()),
        "pen_lift_fraction": round(lifts / len(points), 4) if len(points) else 0.0,
        "strokes_mean": round(lifts / len(sketches), 2) if len(sketches) else 0.0,
        "too_long": int((lengths > max_seq_len).sum()),
        "kept": int(((lengths > 0) & (lengths <= max_seq_len)).sum()),
    }


def dataset_stats(paths: Sequence[str], max_seq_len: int) -> dict[str, Any]:
    """The `stats` report: per split (all files pooled) and the training scale factor."""
    paths = [str(p) for p in paths]
    raws, files_hash = _read_files(paths)
    data = _build_data(paths, raws, files_hash, max_seq_len)
    report: dict[str, Any] = {
        s: _split_stats([sk for r in raws for sk in r[s]], max_seq_len) for s in SPLITS}
    report.update(scale_factor=data.scale_factor, max_seq_len=max_seq_len,
                  categories=data.categories, fingerprint=data.fingerprint)
    return report


def _format_stats(report: dict[str, Any]) -> str:
    lines = [f"categories: {', '.join(report['categories'])}"]
    for s in SPLITS:
        r = report[s]
        lines.append(
            f"{s:5s}  count {r['count']:6d}  length min/mean/max {r['length_min']}/"
            f"{r['length_mean']:.1f}/{r['length_max']}  "
            f"pen lifts {100 * r['pen_lift_fraction']:.1f}% ({r['strokes_mean']:.1f} strokes/sketch)  longer than {report['max_seq_len']}: "
            f"{r['too_long']}")
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
