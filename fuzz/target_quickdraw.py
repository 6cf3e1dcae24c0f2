"""QuickDraw files: raw and simplified `.ndjson`, `.bin`, read and converted end to end
(`sketch-rnn convert`), and a drawing through `convert` and back.

`convert`'s property: exit 0 and a readable .npz, or exit 2 with one line on stderr and the
output folder exactly as it was (no partial file, no temporary left, nothing written
beside the output asked for)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fuzz.common import (
    PropertyViolation,
    bin_seeds,
    files_under,
    mutated,
    ndjson_seeds,
    ours,
    write,
)
from sketch_rnn.quickdraw.readers import Drawing, read_bin, read_ndjson

_COORD = st.one_of(st.integers(0, 255), st.integers(-2**40, 2**40),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0, 255, 256, -1, 1e308, 2**63, 2**64]))
_STROKE = st.integers(0, 4).flatmap(lambda n: st.lists(
    st.lists(_COORD, min_size=n, max_size=n), min_size=2, max_size=3))
_RECORD = st.fixed_dictionaries(
    {"drawing": st.one_of(st.lists(_STROKE, max_size=4),
                          st.recursive(st.integers(), lambda c: st.lists(c, max_size=3)))},
    optional={"word": st.one_of(st.text(max_size=8), st.integers()),
              "recognized": st.one_of(st.booleans(), st.integers()),
              "key_id": st.text(max_size=4), "countrycode": st.none(),
              "timestamp": st.text(max_size=4)})

NDJSON = st.one_of(
    mutated(ndjson_seeds()),
    st.lists(st.one_of(_RECORD.map(json.dumps), st.text(max_size=10)), max_size=4).map(
        lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
)
BIN = st.one_of(mutated(bin_seeds()), st.binary(max_size=80))


def _drain(reader, path: Path, skip_bad: bool) -> list[Drawing]:
    bad: list[str] = []
    out = list(reader(str(path), on_bad=bad.append if skip_bad else None))
    for message in bad:
        if "\n" in message:
            raise PropertyViolation(f"a skipped record's message has a newline: {message!r}")
    return out


def _check_drawings(drawings: list[Drawing]) -> None:
    for d in drawings:
        if not d.drawing or any(s.ndim != 2 or s.shape[0] not in (2, 3) or s.shape[1] == 0
                                or s.dtype.kind not in "iuf" or not np.isfinite(s).all()
                                for s in d.drawing):
            raise PropertyViolation(f"{d.where}: a drawing read with bad strokes")


@given(NDJSON, st.booleans())
def ndjson(data: bytes, skip_bad: bool) -> None:
    """Raw and simplified ndjson: drawings with finite (2|3, n) strokes, or our error."""
    with tempfile.TemporaryDirectory() as tmp:
        drawings = ours(_drain, read_ndjson, write(Path(tmp), "cat.ndjson", data), skip_bad)
    if drawings is not None:
        _check_drawings(drawings)


@given(BIN, st.booleans())
def bin_file(data: bytes, skip_bad: bool) -> None:
    """`.bin`: drawings of uint8 strokes, or our error."""
    with tempfile.TemporaryDirectory() as tmp:
        drawings = ours(_drain, read_bin, write(Path(tmp), "cat.bin", data), skip_bad)
    if drawings is not None:
        _check_drawings(drawings)


def run_cli(argv: list[str]) -> tuple[int, str]:
    """`sketch-rnn ARGV` in this process -> (exit status, stderr). The callers check what it
    wrote in their folder; here, that it wrote nothing into the working directory."""
    from sketch_rnn.cli import main

    err = io.StringIO()
    cwd = set(os.listdir("."))
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    if set(os.listdir(".")) != cwd:
        raise PropertyViolation(f"{argv} wrote {sorted(set(os.listdir('.')) ^ cwd)} into the "
                                "working directory")
    return code, err.getvalue()


def check_refusal(code: str | int, err: str, argv: list[str]) -> None:
    """Exit 2 and one line `sketch-rnn CMD: error: ...`, after at most our own warnings
    (a skipped checkpoint is one `warning:` line each); no traceback."""
    lines = [line for line in err.split("\n") if line.strip()]
    if (code != 2 or not lines or ": error: " not in lines[-1]
            or not all(line.startswith("warning: ") for line in lines[:-1])):
        raise PropertyViolation(f"{argv}: exit {code}, stderr {err!r}")


@given(st.one_of(NDJSON.map(lambda b: ("in.ndjson", b)), BIN.map(lambda b: ("in.bin", b))),
       st.sampled_from([[], ["--skip-bad"], ["--max-seq-len", "8"], ["--per-category"],
                        ["--split", "1,0,0"], ["--no-fit", "--max-seq-len", "5"]]))
def convert(named: tuple[str, bytes], options: list[str]) -> None:
    """`sketch-rnn convert`: a readable .npz of int16 stroke-3, or one line and no file."""
    from sketch_rnn.data.npz import load_npz

    name, data = named
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = write(folder, name, data)
        out = folder / ("out" if "--per-category" in options else "out.npz")
        before = files_under(folder)
        argv = ["convert", str(source), "-o", str(out), "--no-progress", *options]
        code, err = run_cli(argv)
        after = files_under(folder)
        if code != 0:
            check_refusal(code, err, argv)
            if after != before:
                raise PropertyViolation(f"{argv} failed but left {sorted(after - before)}")
            return
        written = [folder / p for p in sorted(after - before) if p.endswith(".npz")]
        if not written or any(not p.startswith("out") for p in after - before):
            raise PropertyViolation(f"{argv} wrote {sorted(after - before)}")
        for path in written:
            splits = ours(load_npz, path)
            if splits is None or any(s.dtype != np.int16 for v in splits.values() for s in v):
                raise PropertyViolation(f"{path}: convert wrote a file load_npz refuses")


_POINT = st.tuples(st.integers(0, 255), st.integers(0, 255))
_SIMPLE = st.lists(st.lists(_POINT, min_size=1, max_size=12), min_size=1, max_size=5)


@given(_SIMPLE)
def convert_round_trip(lines: list[list[tuple[int, int]]]) -> None:
    """A simplified drawing -> stroke-3 (what `convert` stores) -> absolute strokes again:
    the same points, stroke by stroke, as int16 codes written and read back by the .npz."""
    from sketch_rnn.core.strokes import stroke3_to_polylines
    from sketch_rnn.data.npz import load_npz
    from sketch_rnn.quickdraw.convert import ConvertOptions, drawing_to_stroke3, write_npz

    strokes = [np.array(line, dtype=np.int64).T for line in lines]  # (2, n) each
    drawing = Drawing("cat", "", "", True, None, strokes)
    s3, outcome = drawing_to_stroke3(drawing, ConvertOptions(max_seq_len=0, min_points=1))
    if s3 is None or s3.dtype != np.int16:
        raise PropertyViolation(f"a simplified drawing was dropped ({outcome})")
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "one.npz")
        write_npz(path, {"train": [s3], "valid": [], "test": []})
        back = load_npz(path)["train"][0]
    if not np.array_equal(back, s3) or back.dtype != np.int16:
        raise PropertyViolation("the .npz changed the int16 codes")
    origin = np.array(lines[0][0])
    polylines = stroke3_to_polylines(back.astype(np.int64), origin)
    if len(lines[0]) > 1:  # the first point is the origin itself, without a row
        polylines[0] = np.concatenate([origin[None], polylines[0]])
    expected = [np.array(line) for line in lines]
    if len(polylines) != len(expected) or not all(
            np.array_equal(a, b) for a, b in zip(polylines, expected)):
        raise PropertyViolation(f"convert and back: {expected} -> {polylines}")


TARGETS = {"ndjson": ndjson, "bin": bin_file, "convert": convert,
           "convert_round_trip": convert_round_trip}
CI_EXAMPLES = {"convert": 15}
