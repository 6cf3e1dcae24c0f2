"""`sketch-rnn complete`: cut a sketch (or read one) and let a trained run finish it.

The prefix comes from a data set (`--from DATA.npz --index I --keep 0.5`: the first half
of the sketch's points) or from a file (`--strokes FILE`: a stroke-3 JSON list
[[dx, dy, pen], ...] in data units, or one QuickDraw ndjson drawing whose `drawing`
field holds absolute [[x...], [y...]] strokes, converted as `convert` converts them).

Output, side by side: the prefix alone, then prefix + each ending, the prefix in grey
and the endings in colour (.svg, .png); or the same sketches as arrays (.npz:
sketch_000 is the prefix, then one whole sketch per ending): `Model.complete`'s
`Completion`, saved.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..api import Model
from ..api.model import cut
from ..api.sketches import ENDING_COLOR, PREFIX_COLOR  # noqa: F401  (the colours it draws)
from ..core.errors import SketchRNNError
from ..data import read_sketches
from .model_commands import load_run

OUT_EXTENSIONS = (".svg", ".png", ".npz")


def read_strokes_file(path: str) -> np.ndarray:
    """A prefix file -> stroke-3 float32 (data units): a JSON stroke-3 list or a QuickDraw drawing."""
    from ..quickdraw.readers import parse_ndjson_line
    from ..quickdraw.simplify import drawing_lines, lines_to_stroke3

    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise SketchRNNError(f"--strokes {path}: cannot read ({e})") from None
    first = text.splitlines()[0] if text else ""
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None  # perhaps several ndjson lines: take the first drawing
    if isinstance(obj, list):
        return _as_float32(obj, path) if _is_stroke3(obj) else _bad(path)
    drawing = parse_ndjson_line(first if obj is None else text, f"--strokes {path}", "")
    s3 = lines_to_stroke3(drawing_lines(drawing)).astype(np.float32)
    if len(s3) == 0:
        raise SketchRNNError(f"--strokes {path}: the drawing has no points")
    return s3


def _is_stroke3(obj: list) -> bool:
    return all(isinstance(p, list) and len(p) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in p) for p in obj)


def _as_float32(obj: list, path: str) -> np.ndarray:
    """The points as float32; a value float32 cannot hold (an integer of 400 digits, 1e300,
    NaN) is refused here, not turned into inf with a warning or an OverflowError."""
    try:
        s = np.asarray(obj, dtype=np.float64)  # (L, 3)
    except OverflowError:
        s = np.full(1, np.inf)
    if not np.all(np.abs(s) <= np.finfo(np.float32).max):  # False for NaN too
        raise SketchRNNError(f"--strokes {path}: values must be finite numbers within "
                             "float32's range")
    return s.astype(np.float32)


def _bad(path: str) -> np.ndarray:
    raise SketchRNNError(f"--strokes {path}: expected a stroke-3 list [[dx, dy, pen], ...] "
                         "or a QuickDraw drawing {\"drawing\": [[[x...], [y...]], ...]}")


def _prefix(args: argparse.Namespace, run: Any) -> np.ndarray:
    if (args.from_data is None) == (args.strokes is None):
        raise SketchRNNError("give the prefix with either --from DATA.npz or --strokes FILE")
    if args.from_data is not None:
        sketch = read_sketches(args.from_data, args.split, [args.index],
                               run.hps.max_seq_len, "--index")[0]
        return cut(sketch, 0.5 if args.keep is None else args.keep)
    return cut(read_strokes_file(args.strokes), 1.0 if args.keep is None else args.keep)


def cmd_complete(args: argparse.Namespace) -> int:
    """`sketch-rnn complete`: n endings of a prefix (`Model.complete`), drawn or saved as arrays."""
    out = str(args.out)
    if not out.lower().endswith(OUT_EXTENSIONS):
        raise SketchRNNError(f"--out {out}: use a {', '.join(OUT_EXTENSIONS)} file")
    if args.keep is not None and not 0 < args.keep <= 1:
        raise SketchRNNError(f"--keep {args.keep}: must be in (0, 1]")
    run = load_run(args.run_dir)
    model = Model(run, args.run_dir)
    result = model.complete(_prefix(args, run), args.n, temperature=args.temperature,
                            seed=args.seed, z_mode=args.z_mode)
    result.save(out)
    print(f"wrote the prefix ({len(result.prefix)} points) and {len(result.endings)} endings "
          f"to {out}")
    return 0
