"""Reading sketch-rnn `.npz` files safely: allow-list unpickling and validation.

A sketch-rnn `.npz` holds three object arrays (train, valid, test) of stroke-3 int16
arrays, pickled (the published files were written by Python 2). `np.load(allow_pickle=True)`
would run whatever a crafted file names, so each object member is unpickled through an
allow-list that admits NumPy arrays only, and every sketch is checked (shape, dtype, finite
integral offsets, pen in {0, 1}); an error names the file, split and sketch index.

Pure NumPy: importing this module never imports TensorFlow or Keras.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.lib.format as npy_format

from ..core.errors import SketchRNNError
from ..core.files import read_bytes
from ..core.safepickle import NUMPY_ARRAYS, PickleRefused, restricted_loads
from ..core.strokes import SPLITS

# --------------------------------------------------------------------------- safe unpickling
# A pickled NumPy object array of arrays needs NumPy's array globals and nothing else.
SKETCH_PICKLE_ALLOWED: dict[tuple[str, str], Any] = dict(NUMPY_ARRAYS)
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
    if content is None:
        content = read_bytes(path)
    _check_zip(path, content)
    try:
        npz = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise SketchRNNError(f"{path}: not a readable .npz archive ({_short(e)})") from None
    with npz:
        missing = [s for s in SPLITS if s not in npz.files]
        if missing:
            raise SketchRNNError(f"{path}: missing split key(s) {', '.join(missing)} "
                                 f"(found: {', '.join(map(repr, npz.files)) or 'none'})")
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
