"""`sketch-rnn import`: a model of another implementation as a normal run directory.

`--from magenta` reads a TensorFlow 1 checkpoint of Magenta's sketch_rnn
(`serving.magenta_import`), `--from magenta-js` a `@magenta/sketch` model JSON
(`serving.magenta_js_import`). TensorFlow is imported by the import itself, not here.
"""
from __future__ import annotations

import argparse

from ..core.errors import SketchRNNError
from .output import print_json

SOURCES = ("magenta", "magenta-js")


def add_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import Magenta's sketch_rnn checkpoints or magenta.js models")
    p.add_argument("path", metavar="PATH",
                   help="magenta: a model directory (model_config.json + vector-N), or a folder "
                        "of them with --model; magenta-js: the model .json")
    p.add_argument("--from", dest="source", required=True, choices=SOURCES)
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="run directory to write")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="magenta: the model inside PATH, e.g. aaron_sheep/lstm")
    p.add_argument("--data", nargs="+", default=None, metavar="DATA.npz",
                   help="magenta: the data it was trained on (its scale factor, as Magenta computes "
                        "it; recorded as the run's data)")
    p.add_argument("--scale-factor", type=float, default=None, metavar="F",
                   help="magenta: the scale factor, when the data is not at hand")
    p.add_argument("--force", action="store_true", help="replace an existing RUN_DIR")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    if args.source == "magenta":
        from ..serving.magenta_import import import_magenta

        summary = import_magenta(args.path, args.output, args.model, args.data,
                                 args.scale_factor, args.force)
    else:
        if args.model is not None:
            raise SketchRNNError("--model: only with --from magenta")
        from ..serving.magenta_js_import import import_magenta_js

        summary = import_magenta_js(args.path, args.output, args.data, args.scale_factor,
                                    args.force)
    if args.json:
        print_json(summary)
    else:
        print(f"imported {args.path} -> {summary['run_dir']} ({summary['checkpoint']}, "
              f"step {summary['step']}, dec_model={summary['dec_model']}, "
              f"conditional={summary['conditional']}, scale factor "
              f"{summary['scale_factor']:.4f}); optimizer: {summary['optimizer']}")
    return 0
