"""`convert`: QuickDraw drawings (or a user's own, in the same JSON form) -> a sketch-rnn `.npz`.

Reads any mix of raw/simplified `.ndjson` and `.bin`, simplifies raw drawings as Google
does, fits them to max_seq_len, splits them into train/valid/test and writes each output
atomically once every split is known.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..core.errors import SketchRNNError
from ..core.files import atomic_file
from ..core.strokes import SPLITS
from .readers import Drawing, Progress, file_kind, read_drawings
from .simplify import drawing_lines, fit_to_length, lines_to_stroke3

# The published sketch-rnn files hold 70000 / 2500 / 2500 of 75000 drawings per category.
DEFAULT_SPLIT = (70000 / 75000, 2500 / 75000, 2500 / 75000)



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


def write_npz(path: str, splits: dict[str, Sequence[np.ndarray]]) -> None:
    """Write a sketch-rnn .npz (object arrays of int16 (n, 3)) atomically.

    The original code reads it with np.load(allow_pickle=True, encoding='latin1').
    """
    with atomic_file(path) as f:
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


def check_inputs(paths: Sequence[str]) -> None:
    for path in paths:
        file_kind(path)
        if not os.path.isfile(path):
            raise SketchRNNError(f"{path}: no such file")


def check_output(path: str, per_category: bool) -> None:
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


def plan_outputs(by_word: dict[str, list[np.ndarray]], output: str, per_category: bool,
                  spec: SplitSpec, seed: int) -> Plan:
    """{output path: (splits, kept)}; every split is computed before anything is written."""
    if not per_category:
        pooled = [s for sketches in by_word.values() for s in sketches]
        return {output: (split_sketches(pooled, spec, seed, output), len(pooled))}
    return {_category_file(output, word): (split_sketches(sketches, spec, seed, word),
                                           len(sketches))
            for word, sketches in by_word.items()}


def summary_lines(tally: Tally, plans: Plan, options: ConvertOptions) -> list[str]:
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
