"""QuickDraw readers: raw and simplified `.ndjson`, and `.bin`, streamed record by record.

Google publishes each drawing three ways: raw `.ndjson` (screen coordinates and times),
simplified `.ndjson` (aligned, scaled to 0-255, resampled, RDP ε = 2) and `.bin` (the
simplified drawing as bytes). The full files are gigabytes, so nothing is read whole.
"""
from __future__ import annotations

import itertools
import json
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import numpy as np

from ..core.errors import SketchRNNError
from ..core.files import open_for_reading

NDJSON_SUFFIXES = (".ndjson", ".jsonl")
BIN_SUFFIXES = (".bin",)
CANVAS_MAX = 255          # simplified drawings span 0..255
# |x|, |y| beyond this cannot be a drawing: raw QuickDraw is screen pixels; the limit keeps
# the simplification's arithmetic (differences, scaling to 0..255) finite
MAX_COORDINATE = 1e15

_BIN_HEADER = struct.Struct("<Q2sBIH")  # key_id, countrycode, recognized, timestamp, n_strokes
_BIN_COUNT = struct.Struct("<H")        # n_points of one stroke

OnBad = Callable[[str], None]           # receives "FILE:LINE: problem" for a skipped record
Progress = Callable[[int], None]        # receives the number of bytes just consumed


@dataclass
class Drawing:
    """One drawing and its QuickDraw metadata.

    `drawing` holds the file's strokes as arrays of shape (2, n) (x, y) or (3, n) (x, y, t
    in the raw files), empty strokes removed. `where` ("FILE:LINE" or "FILE record N") lets
    every later error point at the record.
    """

    word: str
    key_id: str
    countrycode: str
    recognized: bool
    timestamp: str | int | None
    drawing: list[np.ndarray]
    where: str = ""

    @property
    def is_simplified(self) -> bool:
        """True when already in Google's simplified form (integer x, y in 0..255, no times)."""
        return all(s.shape[0] == 2 and s.dtype.kind in "iu" and s.min() >= 0
                   and s.max() <= CANVAS_MAX for s in self.drawing)

    def num_points(self) -> int:
        return sum(s.shape[1] for s in self.drawing)


def _check_strokes(raw: object, where: str) -> list[np.ndarray]:
    """Validate a JSON `drawing` -> list of (2|3, n) numeric arrays, empty strokes dropped."""
    if not isinstance(raw, list):
        raise SketchRNNError(f"{where}: 'drawing' is not a list of strokes")
    strokes = []
    for i, stroke in enumerate(raw):
        if (not isinstance(stroke, list) or len(stroke) not in (2, 3)
                or not all(isinstance(row, list) for row in stroke)):
            raise SketchRNNError(f"{where}: stroke {i} is not [[x...], [y...]] or "
                                 "[[x...], [y...], [t...]]")
        if len({len(row) for row in stroke}) != 1:
            raise SketchRNNError(f"{where}: stroke {i} has x, y (and t) of different lengths")
        if not stroke[0]:
            continue
        try:
            arr = np.array(stroke)
        except (ValueError, OverflowError):
            arr = np.array([], dtype=object)
        if arr.ndim != 2 or arr.dtype.kind not in "iuf":
            raise SketchRNNError(f"{where}: stroke {i} has non-numeric coordinates")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise SketchRNNError(f"{where}: stroke {i} has non-finite coordinates")
        if np.abs(arr[:2].astype(np.float64)).max() > MAX_COORDINATE:
            raise SketchRNNError(f"{where}: stroke {i} has x or y beyond +-{MAX_COORDINATE:g}")
        strokes.append(arr)
    if not strokes:
        raise SketchRNNError(f"{where}: drawing has no points")
    return strokes


def parse_ndjson_line(line: bytes, where: str, default_word: str) -> Drawing:
    """One ndjson line -> Drawing; SketchRNNError names FILE:LINE for anything malformed."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise SketchRNNError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(obj, dict) or "drawing" not in obj:
        raise SketchRNNError(f"{where}: not a QuickDraw record (a JSON object with 'drawing')")
    return Drawing(word=str(obj.get("word", default_word)), key_id=str(obj.get("key_id", "")),
                   countrycode=str(obj.get("countrycode", "")),
                   recognized=bool(obj.get("recognized", True)),
                   timestamp=obj.get("timestamp"),
                   drawing=_check_strokes(obj["drawing"], where), where=where)


def read_ndjson(path: str, on_bad: OnBad | None = None,
                progress: Progress | None = None) -> Iterator[Drawing]:
    """Stream the drawings of a raw or simplified `.ndjson` file, one line at a time.

    A malformed line raises SketchRNNError naming FILE:LINE, unless `on_bad` is given: then it
    receives that message and reading goes on. Lines without a 'word' get the file's stem.
    """
    stem = _stem(path)
    with open_for_reading(path) as f:
        for number, line in enumerate(f, start=1):
            if progress is not None:
                progress(len(line))
            if not line.strip():
                continue
            try:
                yield parse_ndjson_line(line, f"{path}:{number}", stem)
            except SketchRNNError as e:
                if on_bad is None:
                    raise
                on_bad(str(e))


class TruncatedRecord(SketchRNNError):
    """A `.bin` file that ends inside a record: nothing after it can be read."""


def _read_exact(f: BinaryIO, n: int, where: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise TruncatedRecord(f"{where}: truncated (the file ends inside this record)")
    return data


def _read_bin_record(f: BinaryIO, where: str, word: str) -> tuple[Drawing | None, int]:
    """One `.bin` record -> (Drawing, bytes read); (None, 0) at a clean end of file."""
    head = f.read(_BIN_HEADER.size)
    if not head:
        return None, 0
    if len(head) != _BIN_HEADER.size:
        raise TruncatedRecord(f"{where}: truncated (the file ends inside this record)")
    key_id, country, recognized, timestamp, n_strokes = _BIN_HEADER.unpack(head)
    size, strokes = len(head), []
    for _ in range(n_strokes):
        (n,) = _BIN_COUNT.unpack(_read_exact(f, _BIN_COUNT.size, where))
        xy = np.frombuffer(_read_exact(f, 2 * n, where), dtype=np.uint8).reshape(2, n)
        size += _BIN_COUNT.size + 2 * n
        if n:
            strokes.append(xy.astype(np.int64))
    if not strokes:
        raise SketchRNNError(f"{where}: drawing has no points")
    drawing = Drawing(word=word, key_id=str(key_id),
                      countrycode=country.rstrip(b"\0").decode("ascii", "replace"),
                      recognized=bool(recognized), timestamp=timestamp, drawing=strokes,
                      where=where)
    return drawing, size


def read_bin(path: str, on_bad: OnBad | None = None,
             progress: Progress | None = None) -> Iterator[Drawing]:
    """Stream the records of a QuickDraw `.bin` file; the word is the file's stem.

    Layout (little-endian): key_id u64, countrycode 2 bytes, recognized u8, timestamp u32,
    n_strokes u16, then per stroke n_points u16, x u8[n], y u8[n]. A truncated record can
    only be the last one; with `on_bad` it is reported there and reading stops.
    """
    word = _stem(path)
    with open_for_reading(path) as f:
        for number in itertools.count(1):
            where = f"{path} record {number}"
            try:
                drawing, size = _read_bin_record(f, where, word)
            except SketchRNNError as e:
                if on_bad is None:
                    raise
                on_bad(str(e))
                if isinstance(e, TruncatedRecord):
                    return
                continue
            if drawing is None:
                return
            if progress is not None:
                progress(size)
            yield drawing


def file_kind(path: str) -> str:
    """'ndjson' or 'bin' from the file name; anything else is a one-line error."""
    lower = path.lower()
    if lower.endswith(NDJSON_SUFFIXES):
        return "ndjson"
    if lower.endswith(BIN_SUFFIXES):
        return "bin"
    raise SketchRNNError(f"{path}: unknown file type (expected .ndjson or .bin)")


def read_drawings(path: str, on_bad: OnBad | None = None,
                  progress: Progress | None = None) -> Iterator[Drawing]:
    """Stream any supported file (raw/simplified `.ndjson`, `.bin`), picked by its suffix."""
    reader = read_ndjson if file_kind(path) == "ndjson" else read_bin
    return reader(path, on_bad=on_bad, progress=progress)


def _stem(path: str) -> str:
    name = os.path.basename(path)
    return name.rsplit(".", 1)[0] if "." in name else name
