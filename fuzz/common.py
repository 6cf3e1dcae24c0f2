"""What every fuzz target shares: the property "a valid result or one line of our own error",
the seed corpus (the bundled data and the test fixtures) and byte mutations of it.

The corpus is real files, cut small (a few records, a few sketches), so that a mutation
lands in a structure rather than in the middle of a 4 MB file; Hypothesis then mutates
their bytes (truncation, bit flips, byte overwrites, insertions, deletions, splices with
another seed file) and shrinks a failure to a short list of edits of one seed.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from sketch_rnn.core.errors import SketchRNNError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
FIXTURES = ROOT / "tests" / "fixtures"


class PropertyViolation(AssertionError):
    """A target's property did not hold (raised by the targets, reported by the campaign)."""


def check_message(e: SketchRNNError) -> None:
    """Our error is one non-empty line (what the CLI prints after `error:`)."""
    text = str(e)
    if not text.strip() or "\n" in text or "\r" in text:
        raise PropertyViolation(f"not a one-line error: {text!r}")


def ours(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args) or None when it raised our one-line error; anything else propagates."""
    try:
        return fn(*args, **kwargs)
    except SketchRNNError as e:
        check_message(e)
        return None


# --------------------------------------------------------------------------- seed corpus
def _first_lines(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return b"".join(f.readline() for _ in range(n))


@functools.cache
def ndjson_seeds() -> tuple[bytes, ...]:
    """A few records of the bundled raw and simplified QuickDraw files."""
    return (_first_lines(DATA / "quickdraw_raw_8classes.ndjson", 3),
            _first_lines(DATA / "quickdraw_simplified_344x25.ndjson", 3),
            _first_lines(DATA / "quickdraw_raw_8classes.ndjson", 1),
            _first_lines(DATA / "quickdraw_simplified_344x25.ndjson", 1))


@functools.cache
def bin_seeds() -> tuple[bytes, ...]:
    """The bundled `.bin` (one record) and that record twice."""
    one = (DATA / "quickdraw_simplified_bed_1.bin").read_bytes()
    return (one, one + one)


def npz_bytes(**splits: Any) -> bytes:
    """A sketch-rnn .npz's bytes, each split an object array of the given sketches (or, when
    given an array, that array itself)."""
    arrays = {}
    for name, sketches in splits.items():
        if isinstance(sketches, np.ndarray):
            arrays[name] = sketches
            continue
        arr = np.empty(len(sketches), dtype=object)
        for i, s in enumerate(sketches):
            arr[i] = s
        arrays[name] = arr
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@functools.cache
def npz_seeds() -> tuple[bytes, ...]:
    """Small .npz files of real sketches from each bundled data set (3 per split)."""
    from sketch_rnn.data.npz import load_npz

    out = []
    for name in ("aaron_sheep", "kanji_short_kanji", "omniglot"):
        splits = load_npz(DATA / f"{name}.npz")
        out.append(npz_bytes(**{k: v[:3] for k, v in splits.items()}))
    buf = io.BytesIO()  # the compressed form `convert` writes
    splits = load_npz(DATA / "aaron_sheep.npz")
    arrays = {}
    for k, v in splits.items():
        arrays[k] = np.empty(2, dtype=object)
        arrays[k][0], arrays[k][1] = v[0], v[1]
    np.savez_compressed(buf, **arrays)
    out.append(buf.getvalue())
    return tuple(out)


def magenta_dirs() -> list[Path]:
    """The Magenta model folders of the test fixtures (written by Magenta's own code)."""
    return sorted(p for p in (FIXTURES / "magenta").iterdir() if p.is_dir())


# --------------------------------------------------------------------------- mutations
_EDIT = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 1 << 30), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 30), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 30), st.integers(1, 64)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 30)),
    st.tuples(st.just("splice"), st.integers(0, 1 << 30), st.integers(0, 1 << 30),
              st.integers(0, 7)),
)


def apply_edits(data: bytes, edits: list[tuple], others: tuple[bytes, ...] = ()) -> bytes:
    """`data` with each edit applied in turn; positions are taken modulo the current length."""
    b = bytearray(data)
    for edit in edits:
        kind, at = edit[0], edit[1] % (len(b) + 1)
        if kind == "flip" and b:
            b[at % len(b)] ^= 1 << edit[2]
        elif kind == "set" and b:
            b[at % len(b)] = edit[2]
        elif kind == "insert":
            b[at:at] = edit[2]
        elif kind == "delete":
            del b[at:at + edit[2]]
        elif kind == "truncate":
            del b[at:]
        elif kind == "splice" and others:
            other = others[edit[3] % len(others)]
            start = edit[2] % (len(other) + 1)
            b[at:] = other[start:]
    return bytes(b)


def mutated(seeds: tuple[bytes, ...], max_edits: int = 6) -> st.SearchStrategy[bytes]:
    """A seed file with up to `max_edits` byte edits (none: the seed itself)."""
    return st.builds(lambda i, edits: apply_edits(seeds[i], edits, seeds),
                     st.integers(0, len(seeds) - 1), st.lists(_EDIT, max_size=max_edits))


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def files_under(folder: Path) -> set[str]:
    """Every path under `folder`, relative (hidden temporaries included)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}
