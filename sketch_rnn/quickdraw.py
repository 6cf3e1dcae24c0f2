"""QuickDraw in: readers, Google's simplification, stroke-3, `convert` and `download`.

Google publishes each drawing three ways: raw `.ndjson` (screen coordinates and times),
simplified `.ndjson` (aligned, scaled to 0-255, resampled, RDP ε = 2) and `.bin` (the
simplified drawing as bytes). The readers stream record by record because the full files are
gigabytes. `convert` turns any mix of them (or a user's own drawings in the same JSON form)
into a sketch-rnn `.npz`; `download` fetches the published sketch-rnn `.npz` files.

Pure NumPy: nothing here imports TensorFlow or Keras, so both commands start fast.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import secrets
import struct
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, Sequence

import numpy as np

from .errors import SketchRNNError
from .strokes import polylines_to_stroke3, rdp

DEFAULT_BASE_URL = "https://storage.googleapis.com/quickdraw_dataset/sketchrnn/"
CANVAS_MAX = 255          # simplified drawings span 0..255
SIMPLIFY_EPSILON = 2.0    # Google's RDP ε for the simplified files
RESAMPLE_SPACING = 1.0    # pixels between resampled points
# ε values tried, in order, to bring a long drawing under max_seq_len (then it is dropped).
FIT_EPSILONS = (2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0)
SPLITS = ("train", "valid", "test")
# The published sketch-rnn files hold 70000 / 2500 / 2500 of 75000 drawings per category.
DEFAULT_SPLIT = (70000 / 75000, 2500 / 75000, 2500 / 75000)
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
BIN_SUFFIXES = (".bin",)

_BIN_HEADER = struct.Struct("<Q2sBIH")  # key_id, countrycode, recognized, timestamp, n_strokes
_BIN_COUNT = struct.Struct("<H")        # n_points of one stroke

OnBad = Callable[[str], None]           # receives "FILE:LINE: problem" for a skipped record
Progress = Callable[[int], None]        # receives the number of bytes just consumed

# The 345 QuickDraw categories: the 344 words of data/quickdraw_simplified_344x25.ndjson plus
# 'zigzag' (tests/test_quickdraw.py checks this). Kept here so `download --list` needs no data.
CATEGORIES: tuple[str, ...] = (
    'The Eiffel Tower', 'The Great Wall of China', 'The Mona Lisa', 'aircraft carrier', 'airplane',
    'alarm clock', 'ambulance', 'angel', 'animal migration', 'ant', 'anvil', 'apple', 'arm',
    'asparagus', 'axe', 'backpack', 'banana', 'bandage', 'barn', 'baseball', 'baseball bat',
    'basket', 'basketball', 'bat', 'bathtub', 'beach', 'bear', 'beard', 'bed', 'bee', 'belt',
    'bench', 'bicycle', 'binoculars', 'bird', 'birthday cake', 'blackberry', 'blueberry', 'book',
    'boomerang', 'bottlecap', 'bowtie', 'bracelet', 'brain', 'bread', 'bridge', 'broccoli', 'broom',
    'bucket', 'bulldozer', 'bus', 'bush', 'butterfly', 'cactus', 'cake', 'calculator', 'calendar',
    'camel', 'camera', 'camouflage', 'campfire', 'candle', 'cannon', 'canoe', 'car', 'carrot',
    'castle', 'cat', 'ceiling fan', 'cell phone', 'cello', 'chair', 'chandelier', 'church',
    'circle', 'clarinet', 'clock', 'cloud', 'coffee cup', 'compass', 'computer', 'cookie', 'cooler',
    'couch', 'cow', 'crab', 'crayon', 'crocodile', 'crown', 'cruise ship', 'cup', 'diamond',
    'dishwasher', 'diving board', 'dog', 'dolphin', 'donut', 'door', 'dragon', 'dresser', 'drill',
    'drums', 'duck', 'dumbbell', 'ear', 'elbow', 'elephant', 'envelope', 'eraser', 'eye',
    'eyeglasses', 'face', 'fan', 'feather', 'fence', 'finger', 'fire hydrant', 'fireplace',
    'firetruck', 'fish', 'flamingo', 'flashlight', 'flip flops', 'floor lamp', 'flower',
    'flying saucer', 'foot', 'fork', 'frog', 'frying pan', 'garden', 'garden hose', 'giraffe',
    'goatee', 'golf club', 'grapes', 'grass', 'guitar', 'hamburger', 'hammer', 'hand', 'harp',
    'hat', 'headphones', 'hedgehog', 'helicopter', 'helmet', 'hexagon', 'hockey puck',
    'hockey stick', 'horse', 'hospital', 'hot air balloon', 'hot dog', 'hot tub', 'hourglass',
    'house', 'house plant', 'hurricane', 'ice cream', 'jacket', 'jail', 'kangaroo', 'key',
    'keyboard', 'knee', 'knife', 'ladder', 'lantern', 'laptop', 'leaf', 'leg', 'light bulb',
    'lighter', 'lighthouse', 'lightning', 'line', 'lion', 'lipstick', 'lobster', 'lollipop',
    'mailbox', 'map', 'marker', 'matches', 'megaphone', 'mermaid', 'microphone', 'microwave',
    'monkey', 'moon', 'mosquito', 'motorbike', 'mountain', 'mouse', 'moustache', 'mouth', 'mug',
    'mushroom', 'nail', 'necklace', 'nose', 'ocean', 'octagon', 'octopus', 'onion', 'oven', 'owl',
    'paint can', 'paintbrush', 'palm tree', 'panda', 'pants', 'paper clip', 'parachute', 'parrot',
    'passport', 'peanut', 'pear', 'peas', 'pencil', 'penguin', 'piano', 'pickup truck',
    'picture frame', 'pig', 'pillow', 'pineapple', 'pizza', 'pliers', 'police car', 'pond', 'pool',
    'popsicle', 'postcard', 'potato', 'power outlet', 'purse', 'rabbit', 'raccoon', 'radio', 'rain',
    'rainbow', 'rake', 'remote control', 'rhinoceros', 'rifle', 'river', 'roller coaster',
    'rollerskates', 'sailboat', 'sandwich', 'saw', 'saxophone', 'school bus', 'scissors',
    'scorpion', 'screwdriver', 'sea turtle', 'see saw', 'shark', 'sheep', 'shoe', 'shorts',
    'shovel', 'sink', 'skateboard', 'skull', 'skyscraper', 'sleeping bag', 'smiley face', 'snail',
    'snake', 'snorkel', 'snowflake', 'snowman', 'soccer ball', 'sock', 'speedboat', 'spider',
    'spoon', 'spreadsheet', 'square', 'squiggle', 'squirrel', 'stairs', 'star', 'steak', 'stereo',
    'stethoscope', 'stitches', 'stop sign', 'stove', 'strawberry', 'streetlight', 'string bean',
    'submarine', 'suitcase', 'sun', 'swan', 'sweater', 'swing set', 'sword', 'syringe', 't-shirt',
    'table', 'teapot', 'teddy-bear', 'telephone', 'television', 'tennis racquet', 'tent', 'tiger',
    'toaster', 'toe', 'toilet', 'tooth', 'toothbrush', 'toothpaste', 'tornado', 'tractor',
    'traffic light', 'train', 'tree', 'triangle', 'trombone', 'truck', 'trumpet', 'umbrella',
    'underwear', 'van', 'vase', 'violin', 'washing machine', 'watermelon', 'waterslide', 'whale',
    'wheel', 'windmill', 'wine bottle', 'wine glass', 'wristwatch', 'yoga', 'zebra', 'zigzag',
)


# =========================================================================== readers
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
        strokes.append(arr)
    if not strokes:
        raise SketchRNNError(f"{where}: drawing has no points")
    return strokes


def _parse_ndjson_line(line: bytes, where: str, default_word: str) -> Drawing:
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
    with _open(path) as f:
        for number, line in enumerate(f, start=1):
            if progress is not None:
                progress(len(line))
            if not line.strip():
                continue
            try:
                yield _parse_ndjson_line(line, f"{path}:{number}", stem)
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
    with _open(path) as f:
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


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as e:
        raise SketchRNNError(f"{path}: cannot read ({e.strerror})") from None


# =========================================================================== simplification
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


@dataclass(frozen=True)
class ConvertOptions:
    """What `convert` keeps.

    max_seq_len counts stroke-3 rows (0: no limit); fit=False drops long drawings instead of
    simplifying them further; min_points counts the simplified drawing's points.
    """

    max_seq_len: int = 200
    fit: bool = True
    recognized_only: bool = False
    min_points: int = 2


def drawing_to_stroke3(drawing: Drawing, options: ConvertOptions = ConvertOptions()
                       ) -> tuple[np.ndarray | None, str]:
    """Drawing -> (stroke-3 int16 or None, outcome).

    outcome is 'kept', 'fitted' (kept after extra RDP), or why it was dropped: 'not
    recognized', 'too short', 'too long'.
    """
    if options.recognized_only and not drawing.recognized:
        return None, "not recognized"
    lines = drawing_lines(drawing)
    s3, outcome = lines_to_stroke3(lines), "kept"
    if options.max_seq_len and len(s3) > options.max_seq_len:
        if not options.fit:
            return None, "too long"
        s3, eps = fit_to_length(lines, options.max_seq_len)
        if s3 is None:
            return None, "too long"
        outcome = "fitted"
    if sum(len(line) for line in lines) < options.min_points:
        return None, "too short"
    return s3, outcome


# =========================================================================== splits
@dataclass(frozen=True)
class SplitSpec:
    """How to split: fractions (each in [0, 1], sum <= 1) or exact counts."""

    values: tuple[float, float, float]
    counts: bool = False


def parse_split(text: str | None) -> SplitSpec:
    """"train,valid,test" -> SplitSpec. Integers are counts, numbers with a '.' fractions."""
    if text is None:
        return SplitSpec(DEFAULT_SPLIT)
    parts = [p.strip() for p in text.split(",")]
    usage = (f"--split {text!r}: expected three counts (70000,2500,2500) "
             "or fractions (0.9,0.05,0.05)")
    if len(parts) != 3:
        raise SketchRNNError(usage)
    is_fraction = ["." in p or "e" in p.lower() for p in parts]
    try:
        values = tuple(float(p) if f else int(p) for p, f in zip(parts, is_fraction))
    except ValueError:
        raise SketchRNNError(usage) from None
    if any(is_fraction) != all(is_fraction) or any(not np.isfinite(v) or v < 0 for v in values):
        raise SketchRNNError(usage)
    if all(is_fraction) and sum(values) > 1 + 1e-9:
        raise SketchRNNError(f"--split {text!r}: fractions add up to more than 1")
    return SplitSpec(values, counts=not any(is_fraction))  # type: ignore[arg-type]


def split_sizes(n: int, spec: SplitSpec, name: str) -> tuple[int, int, int]:
    """Sizes of train/valid/test for n sketches; too few sketches for the counts is an error."""
    if spec.counts:
        sizes = tuple(int(v) for v in spec.values)
        if sum(sizes) > n:
            raise SketchRNNError(f"{name}: {n} drawings kept, but --split asks for "
                                 f"{sum(sizes)} ({','.join(map(str, sizes))})")
        return sizes  # type: ignore[return-value]
    bounds = np.rint(n * np.cumsum(spec.values)).astype(int).clip(0, n)
    return int(bounds[0]), int(bounds[1] - bounds[0]), int(bounds[2] - bounds[1])


def split_sketches(sketches: Sequence[np.ndarray], spec: SplitSpec, seed: int, name: str = "output"
                   ) -> dict[str, list[np.ndarray]]:
    """Shuffle with `seed` and cut into train/valid/test (each word shuffled on its own)."""
    order = np.random.default_rng(seed).permutation(len(sketches))
    sizes = split_sizes(len(sketches), spec, name)
    out, start = {}, 0
    for split, size in zip(SPLITS, sizes):
        out[split] = [sketches[i] for i in order[start:start + size]]
        start += size
    return out


# =========================================================================== writing
def _object_array(sketches: Sequence[np.ndarray]) -> np.ndarray:
    arr = np.empty(len(sketches), dtype=object)
    for i, s in enumerate(sketches):
        arr[i] = np.asarray(s, dtype=np.int16)
    return arr


def _temp_path(dest: str, tag: str) -> tuple[str, int]:
    """A new hidden file next to dest (same file system, so os.replace is atomic) -> (path, fd)."""
    folder, name = os.path.split(os.path.abspath(dest))
    path = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.{tag}")
    return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)


@contextlib.contextmanager
def _atomic_file(dest: str, tag: str = "tmp") -> Iterator[tuple[BinaryIO, str]]:
    """Write to a temporary file, then rename it to dest; on any failure remove it."""
    try:
        tmp, fd = _temp_path(dest, tag)
    except OSError as e:
        raise SketchRNNError(f"{dest}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_npz(path: str, splits: dict[str, Sequence[np.ndarray]]) -> None:
    """Write a sketch-rnn .npz (object arrays of int16 (n, 3)) atomically.

    The original code reads it with np.load(allow_pickle=True, encoding='latin1').
    """
    with _atomic_file(path) as (f, _):
        np.savez_compressed(f, **{name: _object_array(s) for name, s in splits.items()})


# =========================================================================== convert
@dataclass
class Tally:
    """What happened to every record, for the summary."""

    read: int = 0
    bad: int = 0
    raw: int = 0
    outcomes: Counter = field(default_factory=Counter)
    first_bad: str = ""

    def count_bad(self, message: str) -> None:
        self.bad += 1
        self.first_bad = self.first_bad or message


def _progress_bar(total: int, disabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="convert", file=sys.stderr,
                disable=True if disabled else None, leave=False)


def collect_sketches(paths: Sequence[str], options: ConvertOptions, skip_bad: bool = False,
                     progress: Progress | None = None) -> tuple[dict[str, list[np.ndarray]], Tally]:
    """Read every file -> ({word: [stroke-3, ...]} in reading order, Tally)."""
    tally, by_word = Tally(), {}
    on_bad = tally.count_bad if skip_bad else None
    for path in paths:
        for drawing in read_drawings(path, on_bad=on_bad, progress=progress):
            tally.read += 1
            tally.raw += not drawing.is_simplified
            s3, outcome = drawing_to_stroke3(drawing, options)
            tally.outcomes[outcome] += 1
            if s3 is not None:
                by_word.setdefault(drawing.word, []).append(s3)
    return by_word, tally


def _check_inputs(paths: Sequence[str]) -> None:
    for path in paths:
        file_kind(path)
        if not os.path.isfile(path):
            raise SketchRNNError(f"{path}: no such file")


def _check_output(path: str, per_category: bool) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise SketchRNNError(f"{path}: folder {parent} does not exist")
    if per_category and os.path.exists(path) and not os.path.isdir(path):
        raise SketchRNNError(f"{path}: --per-category needs a folder, and this is a file")
    if not per_category and os.path.isdir(path):
        raise SketchRNNError(f"{path}: is a folder (use --per-category for one file per word)")


def _category_file(folder: str, word: str) -> str:
    name = word.replace("/", "_").replace(os.sep, "_").strip() or "unnamed"
    return os.path.join(folder, ("_" + name if name.startswith(".") else name) + ".npz")


Plan = dict[str, tuple[dict[str, list[np.ndarray]], int]]  # path -> (splits, sketches kept)


def _plan_outputs(by_word: dict[str, list[np.ndarray]], output: str, per_category: bool,
                  spec: SplitSpec, seed: int) -> Plan:
    """{output path: (splits, kept)}; every split is computed before anything is written."""
    if not per_category:
        pooled = [s for sketches in by_word.values() for s in sketches]
        return {output: (split_sketches(pooled, spec, seed, output), len(pooled))}
    return {_category_file(output, word): (split_sketches(sketches, spec, seed, word),
                                           len(sketches))
            for word, sketches in by_word.items()}


def _summary(tally: Tally, plans: Plan, options: ConvertOptions) -> list[str]:
    """The lines printed after a conversion: what was read, kept, dropped (why), written."""
    o = tally.outcomes
    skipped = f", skipped {tally.bad} bad records (first: {tally.first_bad})" if tally.bad else ""
    lines = [f"read {tally.read} drawings"
             + (f" ({tally.raw} raw, simplified with Google's pipeline)" if tally.raw else "")
             + skipped]
    limit = options.max_seq_len or "no limit"
    lines.append(f"kept {o['kept'] + o['fitted']}" + (
        f" ({o['fitted']} simplified further with RDP to fit max_seq_len {limit})"
        if o["fitted"] else ""))
    why = {"not recognized": "not recognized", "too short": f"fewer than {options.min_points} "
           "points", "too long": f"longer than {limit} points"}
    dropped = ", ".join(f"{o[k]} {text}" for k, text in why.items() if o[k])
    lines.append(f"dropped {sum(o[k] for k in why)}" + (f": {dropped}" if dropped else ""))
    for path, (splits, kept) in plans.items():
        sizes = ", ".join(f"{name} {len(splits[name])}" for name in SPLITS)
        rest = kept - sum(len(v) for v in splits.values())
        lines.append(f"wrote {path}: {sizes}" + (f" ({rest} left out by --split)" if rest else ""))
    return lines


def convert_command(args: argparse.Namespace) -> int:
    """`sketch-rnn convert IN ... -o OUT.npz`: QuickDraw files -> a sketch-rnn .npz."""
    options = ConvertOptions(max_seq_len=args.max_seq_len, fit=not getattr(args, "no_fit", False),
                             recognized_only=args.recognized_only, min_points=args.min_points)
    if options.max_seq_len < 0 or options.min_points < 0:
        raise SketchRNNError("--max-seq-len and --min-points must be >= 0")
    spec = parse_split(args.split)
    _check_inputs(args.inputs)
    _check_output(args.output, args.per_category)
    total = sum(os.path.getsize(p) for p in args.inputs)
    with _progress_bar(total, args.no_progress) as bar:
        by_word, tally = collect_sketches(args.inputs, options, args.skip_bad, bar.update)
    if not by_word:
        raise SketchRNNError(f"no drawing kept out of {tally.read} read; nothing written "
                             f"({dict(tally.outcomes)})")
    plans = _plan_outputs(by_word, args.output, args.per_category, spec, args.seed)
    if args.per_category:
        os.makedirs(args.output, exist_ok=True)
    for path, (splits, _) in plans.items():
        write_npz(path, splits)
    print("\n".join(_summary(tally, plans, options)))
    return 0


# =========================================================================== download
def category_url(category: str, base_url: str = DEFAULT_BASE_URL) -> str:
    """URL of a category's .npz; spaces and other characters are percent-quoted."""
    return base_url.rstrip("/") + "/" + urllib.parse.quote(category) + ".npz"


def _canonical_category(name: str) -> str:
    """The official spelling of a category name (matched case-insensitively)."""
    lookup = {c.lower(): c for c in CATEGORIES}
    found = lookup.get(name.strip().lower())
    if found is None:
        raise SketchRNNError(f"unknown category {name!r} (`sketch-rnn download --list` shows "
                             f"the {len(CATEGORIES)} names)")
    return found


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.strip().isdigit() else None


def _open_url(url: str, timeout: float) -> http.client.HTTPResponse:
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        raise SketchRNNError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise SketchRNNError(f"{url}: {e.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:
        raise SketchRNNError(f"{url}: {e}") from None


def _fetch(url: str, out: BinaryIO, show_progress: bool, timeout: float) -> int:
    """Copy url's body into out with a progress bar; a short body is an error. -> bytes."""
    from tqdm.auto import tqdm

    got = 0
    with _open_url(url, timeout) as response:
        expected = _content_length(response)
        with tqdm(total=expected, unit="B", unit_scale=True, desc=os.path.basename(url),
                  file=sys.stderr, disable=None if show_progress else True, leave=False) as bar:
            while True:
                try:
                    chunk = response.read(1 << 16)
                except (http.client.HTTPException, OSError):
                    chunk = None
                if not chunk:
                    break
                out.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
            if chunk is None or (expected is not None and got != expected):
                raise SketchRNNError(f"{url}: download cut off after {got} of "
                                     f"{expected if expected is not None else '?'} bytes")
    return got


def _verify_npz(path: str, url: str) -> dict:
    """Load the downloaded file with our safe loader; anything wrong is a one-line error."""
    from .data import load_npz

    try:
        return load_npz(path)
    except Exception as e:  # an untrusted file may fail in any way; report, never crash
        raise SketchRNNError(f"{url}: the downloaded file is not a valid sketch-rnn .npz "
                             f"({e})") from None


def download_category(category: str, to_dir: str, base_url: str = DEFAULT_BASE_URL,
                      show_progress: bool = True, timeout: float = 60.0) -> str:
    """Fetch one category's .npz into to_dir -> its path.

    The body goes to a hidden temporary file that is renamed only once it is complete and
    loads; on any failure it is removed, so a file named <category>.npz is always whole.
    """
    dest = os.path.join(to_dir, category + ".npz")
    url = category_url(category, base_url)
    with _atomic_file(dest, "part") as (f, tmp):
        _fetch(url, f, show_progress, timeout)
        f.flush()
        _verify_npz(tmp, url)
    return dest


def _describe_npz(path: str) -> str:
    from .data import load_npz

    splits = load_npz(path)
    return ", ".join(f"{name} {len(splits[name])}" for name in SPLITS if name in splits)


def download_command(args: argparse.Namespace) -> int:
    """`sketch-rnn download CATEGORY ... [--to DIR] [--base-url URL] [--list]`."""
    if args.list:
        print("\n".join(CATEGORIES))
        return 0
    if not args.categories:
        raise SketchRNNError("name at least one CATEGORY (`sketch-rnn download --list` shows them)")
    base_url = args.base_url or DEFAULT_BASE_URL
    names = [_canonical_category(c) if base_url == DEFAULT_BASE_URL else c
             for c in args.categories]
    try:
        os.makedirs(args.to, exist_ok=True)
    except OSError as e:
        raise SketchRNNError(f"--to {args.to}: cannot create the folder ({e.strerror})") from None
    for name in names:
        dest = os.path.join(args.to, name + ".npz")
        if os.path.exists(dest):
            print(f"{dest}: already there, not downloaded again (delete it to refresh)")
            continue
        download_category(name, args.to, base_url, show_progress=not args.no_progress)
        print(f"{dest}: {_describe_npz(dest)}")
    return 0
