"""Handlers of the commands that need no model: convert, download, stats.

Nothing here imports TensorFlow or Keras, so these commands start in a fraction of a second.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..core.errors import SketchRNNError
from ..core.strokes import SPLITS
from ..data import dataset_stats, load_npz
from ..quickdraw.categories import CATEGORIES
from ..quickdraw.convert import (
    ConvertOptions,
    check_inputs,
    check_output,
    collect_sketches,
    parse_split,
    plan_outputs,
    summary_lines,
    write_npz,
)
from ..quickdraw.download import DEFAULT_BASE_URL, canonical_category, download_category
from .output import print_json


def _progress_bar(total: int, disabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="convert", file=sys.stderr,
                disable=True if disabled else None, leave=False)


def _describe_npz(path: str) -> str:
    splits = load_npz(path)
    return ", ".join(f"{name} {len(splits[name])}" for name in SPLITS if name in splits)


def cmd_convert(args: argparse.Namespace) -> int:
    """`sketch-rnn convert IN ... -o OUT.npz`: QuickDraw files -> a sketch-rnn .npz."""
    options = ConvertOptions(max_seq_len=args.max_seq_len, fit=not getattr(args, "no_fit", False),
                             recognized_only=args.recognized_only, min_points=args.min_points)
    if options.max_seq_len < 0 or options.min_points < 0:
        raise SketchRNNError("--max-seq-len and --min-points must be >= 0")
    spec = parse_split(args.split)
    check_inputs(args.inputs)
    check_output(args.output, args.per_category)
    total = sum(os.path.getsize(p) for p in args.inputs)
    with _progress_bar(total, args.no_progress) as bar:
        by_word, tally = collect_sketches(args.inputs, options, args.skip_bad, bar.update)
    if not by_word:
        raise SketchRNNError(f"no drawing kept out of {tally.read} read; nothing written "
                             f"({dict(tally.outcomes)})")
    plans = plan_outputs(by_word, args.output, args.per_category, spec, args.seed)
    if args.per_category:
        os.makedirs(args.output, exist_ok=True)
    for path, (splits, _) in plans.items():
        write_npz(path, splits)
    print("\n".join(summary_lines(tally, plans, options)))
    return 0



def add_pretrained_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pretrained", action="store_true",
                   help="NAMEs are Magenta's published models (aaron_sheep/lstm, cat.gen, "
                        "large/cat.vae, ...): download and import each as TO/<name>")
    p.add_argument("--data", nargs="+", default=None, metavar="DATA.npz",
                   help="with --pretrained: the data a TF1 checkpoint was trained on (its "
                        "scale factor; aaron_sheep/* default to the bundled sheep)")
    p.add_argument("--scale-factor", type=float, default=None, metavar="F",
                   help="with --pretrained: the scale factor instead of --data")
    p.add_argument("--force", action="store_true", help="with --pretrained: import again")


def cmd_pretrained(args: argparse.Namespace) -> int:
    """`sketch-rnn download --pretrained NAME ... [--to DIR] [--base-url URL] [--list]`."""
    from ..serving import pretrained

    if args.list:
        print("\n".join(pretrained.names()))
        return 0
    if not args.categories:
        raise SketchRNNError("name at least one model (`sketch-rnn download --pretrained --list`)")
    for name in args.categories:  # every name checked before anything is fetched
        pretrained.resolve(name, args.base_url)
    to_dir = args.to or "models"
    for name in args.categories:
        done = pretrained.fetch_and_import(name, to_dir, args.base_url, args.data,
                                           args.scale_factor, args.force, not args.no_progress)
        if done.get("skipped"):
            print(f"{done['run_dir']}: already there, not imported again (--force to redo)")
        else:
            print(f"{name} -> {done['run_dir']} (step {done['step']}, {done['dec_model']}, "
                  f"conditional={done['conditional']}, scale factor {done['scale_factor']:.4f})")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """`sketch-rnn download CATEGORY ... [--to DIR] [--base-url URL] [--list]`."""
    if getattr(args, "pretrained", False):
        return cmd_pretrained(args)
    args.to = args.to or "data"
    if args.list:
        print("\n".join(CATEGORIES))
        return 0
    if not args.categories:
        raise SketchRNNError("name at least one CATEGORY (`sketch-rnn download --list` shows them)")
    base_url = args.base_url or DEFAULT_BASE_URL
    names = [canonical_category(c) if base_url == DEFAULT_BASE_URL else c
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


def format_stats(report: dict[str, Any]) -> str:
    """The `stats` report as the lines a person reads."""
    lines = [f"categories: {', '.join(report['categories'])}"]
    for s in SPLITS:
        r = report[s]
        lines.append(
            f"{s:5s}  count {r['count']:6d}  length min/mean/max {r['length_min']}/"
            f"{r['length_mean']:.1f}/{r['length_max']}  "
            f"pen lifts {100 * r['pen_lift_fraction']:.1f}% ({r['strokes_mean']:.1f} "
            f"strokes/sketch)  longer than {report['max_seq_len']}: {r['too_long']}")
    lines.append(f"scale factor (train, after the length filter): {report['scale_factor']:.6f}")
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace) -> int:
    """`sketch-rnn stats DATA.npz ... [--max-seq-len N] [--json]`."""
    if args.max_seq_len <= 0:
        raise SketchRNNError(f"--max-seq-len {args.max_seq_len}: must be > 0")
    report = dataset_stats(args.paths, args.max_seq_len)
    if args.json:
        print_json(report)
    else:
        print(format_stats(report))
    return 0
