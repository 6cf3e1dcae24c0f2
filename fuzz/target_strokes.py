"""Stroke-3 input a user writes by hand: `complete --strokes FILE` (a stroke-3 JSON list or
QuickDraw ndjson lines), and the stroke format round trips (stroke-3 -> stroke-5 -> stroke-3,
stroke-3 -> polylines -> stroke-3, pack -> unpack)."""
from __future__ import annotations

import functools
import json
import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fuzz.common import PropertyViolation, mutated, ndjson_seeds, ours, write
from sketch_rnn.core import strokes

N_MAX = 250  # the prefix limit checked below: a run's max_seq_len


@functools.cache
def stroke3_seeds() -> tuple[bytes, ...]:
    """Real sketches as the JSON lists `--strokes` takes, and QuickDraw lines."""
    from sketch_rnn.data.npz import load_npz

    sheep = load_npz(Path(__file__).resolve().parents[1] / "data" / "aaron_sheep.npz")["test"]
    lists = tuple(json.dumps(s[:40].tolist()).encode() for s in sheep[:3])
    return lists + ndjson_seeds()


_ODD_NUMBERS = st.one_of(
    st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 1e308, -1e308, 2**63, 2**64, 10**400]))
_VALUE = st.one_of(_ODD_NUMBERS, st.booleans(), st.none(), st.text(max_size=3),
                   st.lists(st.integers(), max_size=2))
_POINT = st.one_of(st.lists(_ODD_NUMBERS, min_size=3, max_size=3),
                   st.lists(_VALUE, max_size=4), _VALUE)


def _json(obj: object) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


STROKES_FILE = st.one_of(
    mutated(stroke3_seeds()),
    st.lists(_POINT, max_size=8).map(_json),
    st.lists(st.lists(st.integers(-300, 300), min_size=3, max_size=3), max_size=300).map(_json),
    st.dictionaries(st.sampled_from(["drawing", "word", "key_id"]),
                    st.recursive(_VALUE, lambda c: st.lists(c, max_size=3), max_leaves=12),
                    max_size=3).map(_json),
    st.binary(max_size=64),
)


@given(STROKES_FILE, st.floats(0.01, 1.0))
def complete_strokes(data: bytes, keep: float) -> None:
    """`complete --strokes FILE`: the prefix the model gets, or one line of our error."""
    from sketch_rnn.cli.complete_command import cut, read_strokes_file
    from sketch_rnn.generation.completion import check_prefix

    with tempfile.TemporaryDirectory() as tmp:
        s3 = ours(read_strokes_file, str(write(Path(tmp), "prefix.json", data)))
    if s3 is None:
        return
    prefix = ours(check_prefix, ours(cut, s3, keep), N_MAX)
    if prefix is None:
        return
    if not (prefix.dtype == np.float32 and prefix.ndim == 2 and prefix.shape[1] == 3
            and 1 <= len(prefix) <= N_MAX and np.isfinite(prefix).all()
            and set(np.unique(prefix[:, 2])) <= {0.0, 1.0}):
        raise PropertyViolation(f"prefix accepted but not stroke-3: {prefix!r}")


def _stroke3(max_len: int = 60, bound: int = 2000) -> st.SearchStrategy[np.ndarray]:
    """Integral stroke-3 sketches (as int16 data holds them), as float32."""
    point = st.tuples(st.integers(-bound, bound), st.integers(-bound, bound), st.integers(0, 1))
    return st.lists(point, min_size=1, max_size=max_len).map(
        lambda rows: np.array(rows, dtype=np.float32).reshape(-1, 3))


@given(_stroke3(), st.integers(0, 20))
def stroke5_round_trip(s3: np.ndarray, pad: int) -> None:
    """stroke-3 -> stroke-5 (S_0 first, padded) -> stroke-3 gives the same points."""
    s5 = strokes.stroke3_to_stroke5(s3, len(s3) + pad)
    if s5.shape != (len(s3) + pad + 1, 5) or not np.array_equal(s5[0], strokes.S_0):
        raise PropertyViolation(f"stroke-5 of shape {s5.shape} starts {s5[0]}")
    if not (s5[1:, 2:].sum(axis=1) == 1).all():
        raise PropertyViolation("a stroke-5 row without exactly one pen state")
    back = strokes.stroke5_to_stroke3(s5)
    if not np.array_equal(back, s3):
        raise PropertyViolation(f"stroke-5 round trip changed the sketch: {s3} -> {back}")


@given(_stroke3())
def polylines_round_trip(s3: np.ndarray) -> None:
    """stroke-3 (last point pen-up) -> absolute polylines -> stroke-3 is the identity, and
    pack -> unpack gives the sketches back."""
    s3 = s3.astype(np.int64)
    s3[-1, 2] = 1
    lines = strokes.stroke3_to_polylines(s3)
    if sum(len(p) for p in lines) != len(s3) or len(lines) != int(s3[:, 2].sum()):
        raise PropertyViolation(f"{len(lines)} polylines for {int(s3[:, 2].sum())} pen-ups")
    back = strokes.polylines_to_stroke3(lines)
    if not np.array_equal(back, s3):
        raise PropertyViolation(f"polyline round trip changed the sketch: {s3} -> {back}")
    points, offsets = strokes.pack([s3, s3[:1], s3])
    parts = strokes.unpack(points, offsets)
    if not all(np.array_equal(a, b) for a, b in zip(parts, [s3, s3[:1], s3])):
        raise PropertyViolation("pack/unpack changed a sketch")
    if not math.isclose(float(points[:, :2].sum()), 2 * float(s3[:, :2].sum()) +
                        float(s3[0, :2].sum()), abs_tol=1e-3):
        raise PropertyViolation("pack lost points")


TARGETS = {"complete_strokes": complete_strokes, "stroke5_round_trip": stroke5_round_trip,
           "polylines_round_trip": polylines_round_trip}
