"""`sketch-rnn complete`: cut a sketch (or read one) and let a trained run finish it.

The prefix comes from a data set (`--from DATA.npz --index I --keep 0.5`: the first half
of the sketch's points) or from a file (`--strokes FILE`: a stroke-3 JSON list
[[dx, dy, pen], ...] in data units, or one QuickDraw ndjson drawing whose `drawing`
field holds absolute [[x...], [y...]] strokes, converted as `convert` converts them).

Output, side by side: the prefix alone, then prefix + each ending, the prefix in grey
and the endings in colour (.svg, .png); or the same sketches as arrays (.npz:
sketch_000 is the prefix, then one whole sketch per ending).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import SketchRNNError
from ..data import read_sketches
from .model_commands import load_run

PREFIX_COLOR = "#9a9a9a"
ENDING_COLOR = "#d62728"
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


def cut(sketch: np.ndarray, keep: float) -> np.ndarray:
    """The first round(keep * n) points (at least one) of a stroke-3 sketch."""
    if not 0 < keep <= 1:
        raise SketchRNNError(f"--keep {keep}: must be in (0, 1]")
    return sketch[:max(1, int(round(keep * len(sketch))))]


def drawable(prefix: np.ndarray, endings: list[np.ndarray]) -> tuple[list, list[str]]:
    """Sketches to draw (prefix, then prefix + each ending) and the colour of each stroke.

    The prefix's strokes are closed at its last point so they can take their own colour;
    when the prefix ended with the pen down, each ending starts with a zero move from
    that point, so the segment joining them is drawn, in the ending's colour.
    """
    from ..generation.drawing import polylines

    head = prefix.copy()
    pen_down = head[-1, 2] < 0.5
    head[-1, 2] = 1.0
    joint = np.zeros((1 if pen_down else 0, 3), np.float32)
    sketches = [head] + [np.concatenate([head, joint, e]) if len(e) else head for e in endings]
    n_head = len(polylines(head))
    most = max(len(polylines(s)) for s in sketches)
    return sketches, [PREFIX_COLOR] * n_head + [ENDING_COLOR] * max(most - n_head, 1)


def _prefix(args: argparse.Namespace, run: Any) -> np.ndarray:
    if (args.from_data is None) == (args.strokes is None):
        raise SketchRNNError("give the prefix with either --from DATA.npz or --strokes FILE")
    if args.from_data is not None:
        sketch = read_sketches(args.from_data, args.split, [args.index],
                               run.hps.max_seq_len, "--index")[0]
        return cut(sketch, 0.5 if args.keep is None else args.keep)
    return cut(read_strokes_file(args.strokes), 1.0 if args.keep is None else args.keep)


def cmd_complete(args: argparse.Namespace) -> int:
    """`sketch-rnn complete`: n endings of a prefix, drawn or saved as arrays."""
    from ..generation.completion import check_prefix, complete
    from ..generation.drawing import save_sketches

    out = str(args.out)
    if not out.lower().endswith(OUT_EXTENSIONS):
        raise SketchRNNError(f"--out {out}: use a {', '.join(OUT_EXTENSIONS)} file")
    if args.keep is not None and not 0 < args.keep <= 1:
        raise SketchRNNError(f"--keep {args.keep}: must be in (0, 1]")
    run = load_run(args.run_dir)
    prefix = check_prefix(_prefix(args, run), int(run.hps.max_seq_len), "prefix")
    result = complete(run.model, prefix, args.n, args.temperature, args.seed,
                      z_mode=args.z_mode, scale_factor=run.scale_factor)
    sketches, colors = drawable(result.prefix, result.endings)
    if out.lower().endswith(".npz"):
        save_sketches(out, [result.prefix] + result.sketches())
    else:
        save_sketches(out, sketches, cols=min(len(sketches), 9), colors=colors)
    print(f"wrote the prefix ({len(prefix)} points) and {len(result.endings)} endings to {out}")
    return 0
