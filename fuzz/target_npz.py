"""Sketch-rnn `.npz` files: random and mutated bytes of real files, and well-formed
containers with hostile values (wrong dtypes, shapes, NaN, huge or fractional offsets, pens
other than 0/1, nested objects, missing or extra splits). Every reader of an `.npz` (the
sketches, packed for training, a split by index as `--from` reads it) gives validated
stroke-3 or one line of our error."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fuzz.common import PropertyViolation, mutated, npz_bytes, npz_seeds, ours, write
from sketch_rnn.core.strokes import SPLITS

_DTYPES = st.sampled_from(["int16", "int8", "int32", "int64", "uint8", "uint16", "float16",
                           "float32", "float64", "bool", "complex64", "U2", "S2", "O"])


def _hostile_array() -> st.SearchStrategy:
    """One 'sketch': mostly stroke-3 shaped, of any dtype and values, sometimes not an array."""
    shapes = st.one_of(st.tuples(st.integers(0, 6), st.just(3)),
                       hnp.array_shapes(min_dims=0, max_dims=3, max_side=4))

    def build(dtype: str, shape: tuple) -> st.SearchStrategy:
        if dtype == "O":
            return st.builds(lambda v: np.full(shape, v, dtype=object),
                             st.one_of(st.integers(), st.text(max_size=2), st.none()))
        return hnp.arrays(np.dtype(dtype), shape)

    arrays = st.tuples(_DTYPES, shapes).flatmap(lambda ds: build(*ds))
    return st.one_of(arrays, st.integers(), st.text(max_size=3), st.none(),
                     st.lists(st.integers(), max_size=3))


_SPLIT = st.one_of(st.lists(_hostile_array(), max_size=4),
                   hnp.arrays(np.dtype("int16"), hnp.array_shapes(min_dims=1, max_dims=3,
                                                                 max_side=4)))


HOSTILE = st.dictionaries(st.one_of(st.sampled_from(SPLITS), st.text(max_size=3)), _SPLIT,
                          min_size=0, max_size=4).map(lambda d: npz_bytes(**d))
_STROKE3_SHAPED = st.builds(
    lambda dtype, n: hnp.arrays(np.dtype(dtype), (n, 3)),
    st.sampled_from(["int16", "int32", "float32", "float64", "uint8", "int64"]),
    st.integers(0, 5)).flatmap(lambda s: s)
WELL_FORMED = st.builds(lambda *s: npz_bytes(**dict(zip(SPLITS, s))),
                        *[st.lists(_STROKE3_SHAPED, max_size=3)] * 3)
NPZ = st.one_of(mutated(npz_seeds(), max_edits=4), HOSTILE, WELL_FORMED, st.binary(max_size=64),
                st.builds(lambda *s: npz_bytes(**dict(zip(SPLITS, s))),
                          *[st.lists(_hostile_array(), max_size=3)] * 3))


def _check_split(sketches: list, where: str) -> None:
    for s in sketches:
        if not (isinstance(s, np.ndarray) and s.ndim == 2 and s.shape[1] == 3
                and s.dtype.kind in "iuf"):
            raise PropertyViolation(f"{where}: accepted a sketch that is not stroke-3")
        v = s.astype(np.float64)
        if not (np.isfinite(v).all() and (v[:, :2] == np.round(v[:, :2])).all()
                and np.isin(v[:, 2], (0, 1)).all()):
            raise PropertyViolation(f"{where}: accepted bad values {s.tolist()}")


@given(NPZ, st.integers(-1, 4), st.sampled_from(SPLITS))
def load(data: bytes, index: int, split: str) -> None:
    """load_npz, load_npz_packed, read_sketches (`--from DATA --index I`) on one file."""
    from sketch_rnn.data.npz import load_npz, load_npz_packed
    from sketch_rnn.data.reading import read_sketches

    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), "data.npz", data)
        splits = ours(load_npz, path)
        packed = ours(load_npz_packed, path)
        picked = ours(read_sketches, path, split, [index], 250, "--index")
    if (splits is None) != (packed is None):
        raise PropertyViolation("load_npz and load_npz_packed disagree about the file")
    if splits is None:
        if picked is not None:
            raise PropertyViolation("read_sketches accepted a file load_npz refuses")
        return
    for name, sketches in splits.items():
        _check_split(sketches, name)
        points, offsets = packed[name]
        if len(offsets) != len(sketches) + 1 or (
                sketches and not np.array_equal(points, np.concatenate(sketches))):
            raise PropertyViolation(f"{name}: packed split differs from the sketches")
    if picked is not None:
        s = picked[0]
        if not (s.dtype == np.float32 and s.ndim == 2 and s.shape[1] == 3 and len(s) <= 250
                and np.isfinite(s).all()):
            raise PropertyViolation(f"read_sketches gave {s!r}")


@given(NPZ)
def stats(data: bytes) -> None:
    """`sketch-rnn stats FILE`: exit 0 or one line and exit 2."""
    from fuzz.target_quickdraw import check_refusal, run_cli

    with tempfile.TemporaryDirectory() as tmp:
        argv = ["stats", str(write(Path(tmp), "data.npz", data))]
        code, err = run_cli(argv)
    if code != 0:
        check_refusal(code, err, argv)


TARGETS = {"load": load, "stats": stats}
