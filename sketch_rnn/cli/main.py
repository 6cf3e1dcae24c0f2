"""The `sketch-rnn` command: the parser of every subcommand and the dispatch.

Handlers live in `model_commands` (train, sample, interpolate, evaluate, report, info) and
`data_commands` (convert, download, stats); they import TensorFlow only when they need a
model, so `convert`, `download` and `stats` start in a fraction of a second. Every
`SketchRNNError` becomes one line on stderr and exit status 2; `terminal` decides what else
reaches the terminal (our log records; TensorFlow's chatter only with --verbose).
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Callable, Sequence

from ..core.compile_cache import HELP as COMPILE_CACHE_HELP
from ..core.errors import SketchRNNError
from ..data import DEFAULT_DATA
from ..serving import guards
from . import complete_command as complete_cmd
from . import data_commands as data_cmds
from . import import_commands as import_cmds
from . import model_commands as model_cmds
from . import serving_commands as serving_cmds
from . import terminal

VERBOSE_HELP = "also show TensorFlow's own log lines and third-party warnings"


# --------------------------------------------------------------------------- parsers
def _seed(text: str) -> int:
    """A random seed: an integer in [0, 2**32), what NumPy and Keras both accept."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 2**32)")
    return value


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train (or resume) a model; Ctrl-C saves and stops",
                       epilog=COMPILE_CACHE_HELP)
    p.add_argument("--data", nargs="+", default=None,
                   help=f"sketch-rnn .npz files, one per category (default: {DEFAULT_DATA})")
    p.add_argument("--run-dir", default="runs/sheep", help="checkpoints and logs (default: runs/sheep)")
    p.add_argument("--preset", default=None, choices=("tiny", "small", "paper"),
                   help="hyperparameter preset for a new run (default: small)")
    p.add_argument("--hparams", default=None, help='overrides, "k=v,k=v" (see --hparams help)')
    p.add_argument("--num-steps", type=int, default=None, help="total step target (also on resume)")
    p.add_argument("--seed", type=_seed, default=None, help="random seed of a new run (default 0)")
    p.add_argument("--allow-batching-change", action="store_true",
                   help="resume with another --hparams bucketed_batches=... than the run's "
                        "(recorded in state.json; the run then no longer matches an "
                        "uninterrupted one)")
    p.add_argument("--allow-precision-change", action="store_true",
                   help="resume with another --hparams precision=... than the run's (recorded "
                        "in state.json; the run then no longer matches an uninterrupted one)")
    p.add_argument("--callback", action="append", default=[], metavar="MODULE:ATTR",
                   help="add Keras callbacks: ATTR of MODULE (importable, e.g. from the current "
                        "directory), called without arguments, returns a callback or a list; "
                        "repeatable. Their state is saved in every checkpoint; they see the "
                        "validation losses (val_cost, val_recon, val_kl, ...) at each one")
    p.add_argument("--allow-callback-change", action="store_true",
                   help="resume with other --callback callbacks than the run saved (the changed "
                        "ones start fresh; recorded in state.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--no-samples", action="store_true",
                   help="do not draw sample sketches into RUN_DIR/samples at each checkpoint")
    p.add_argument("--distribute", default=None, choices=("mirrored", "multi-worker"),
                   help="tf.distribute strategy (default: one device)")
    p.add_argument("--cpu-devices", type=int, default=None,
                   help="with --distribute mirrored on CPU: split the CPU into N logical devices")
    p.set_defaults(func=model_cmds.cmd_train)


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw sketches from a trained run")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--n", type=int, default=16, help="number of sketches")
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--discrete-temperature", type=float, default=None, metavar="S",
                   help="divide the mixture and pen logits by S instead of the temperature "
                        "(magenta.js's softmaxTemperature, 0.5 + 0.5 * temperature there by "
                        "default); default: the temperature, as in the paper")
    p.add_argument("--greedy", action="store_true", help="most likely component and its mean")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", default="samples.svg", help="output .svg, .png, .gif or .npz")
    p.add_argument("--from", dest="from_data", default=None,
                   help="reconstruct sketches of this .npz instead of sampling z from the prior")
    p.add_argument("--index", type=int, nargs="+", default=None,
                   help="with --from: indices of the sketches to reconstruct")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.set_defaults(func=model_cmds.cmd_sample)


def _add_interpolate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interpolate", help="decode points on a path between two latent codes")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--from", dest="from_data", default=None, help=".npz holding the two sketches")
    p.add_argument("--index", type=int, nargs=2, default=None, help="indices of the two sketches")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--steps", type=int, default=10, help="points on the path, ends included")
    p.add_argument("--method", default="slerp", choices=("slerp", "lerp"))
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", default="interpolation.svg")
    p.set_defaults(func=model_cmds.cmd_interpolate)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="losses over a whole split, as one JSON object",
                       epilog=COMPILE_CACHE_HELP)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--data", nargs="+", default=None, help="default: the run's own data")
    p.add_argument("--split", default="test", choices=("valid", "test"))
    p.add_argument("--teacher-forced", type=int, default=100, metavar="N",
                   help="conditional models: the teacher-forced code retrieval over the first "
                        "N sketches (its cost grows as N^2; 0: skip it)")
    p.add_argument("--no-samples", action="store_true",
                   help="skip the samples' precision/recall (prior samples at each temperature)")
    p.set_defaults(func=model_cmds.cmd_evaluate)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="a model card: one HTML page with its PNGs")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="folder of index.html, its PNGs and evaluate.json (default RUN_DIR/report)")
    p.add_argument("--data", nargs="+", default=None, help="default: the run's own data")
    p.add_argument("--split", default="test", choices=("valid", "test"))
    p.add_argument("--teacher-forced", type=int, default=100, metavar="N",
                   help="conditional models: sketches of the teacher-forced code retrieval")
    p.set_defaults(func=model_cmds.cmd_report)


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="QuickDraw .ndjson/.bin (raw or simplified) -> sketch-rnn .npz")
    p.add_argument("inputs", nargs="+", metavar="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    p.add_argument("--max-seq-len", type=int, default=200,
                   help="longer drawings get RDP with rising epsilon until they fit (0: no limit)")
    p.add_argument("--no-fit", action="store_true", help="drop drawings longer than --max-seq-len")
    p.add_argument("--split", default=None, help='train,valid,test counts or fractions, e.g. "0.9,0.05,0.05"')
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--recognized-only", action="store_true")
    p.add_argument("--min-points", type=int, default=2)
    p.add_argument("--per-category", action="store_true", help="one output per word (OUT is a folder)")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed lines and count them")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=data_cmds.cmd_convert)


def _add_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="fetch QuickDraw sketch-rnn .npz files, or with "
                       "--pretrained Magenta's published models (imported as runs)")
    p.add_argument("categories", nargs="*", metavar="CATEGORY")
    p.add_argument("--to", default=None, help="destination folder (default: data; with "
                   "--pretrained: models)")
    p.add_argument("--base-url", default=None)
    p.add_argument("--list", action="store_true", help="list the 345 category names "
                   "(with --pretrained: the model names)")
    data_cmds.add_pretrained_options(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=data_cmds.cmd_download)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="what a run directory holds (step, checkpoints, fingerprint)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true")
    p.add_argument("--remove-corrupt", action="store_true",
                   help="delete the checkpoints moved aside as corrupt-ckpt-* (listed by info)")
    p.set_defaults(func=model_cmds.cmd_info)


def _add_stats(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="per-split statistics of sketch-rnn .npz files")
    p.add_argument("paths", nargs="+", metavar="DATA.npz")
    p.add_argument("--max-seq-len", type=int, default=250)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=data_cmds.cmd_stats)


def _add_export(sub: argparse._SubParsersAction) -> None:
    runtime = f"{serving_cmds.MAGENTA_JS_PACKAGE} {serving_cmds.MAGENTA_JS_VERSION}"
    p = sub.add_parser("export", help=f"write a trained decoder as a browser model ({runtime})")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--format", default="magenta-js", choices=("magenta-js",),
                   help="magenta-js: the [info, dims, weights] JSON of @magenta/sketch")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.json")
    p.add_argument("--z-from", default=None, metavar="DATA.npz",
                   help="conditional models: fix z to the code of a sketch of this .npz")
    p.add_argument("--index", type=int, default=None, help="with --z-from: which sketch")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--z-prior", action="store_true",
                   help="conditional models: fix z to a draw from N(0, I) (see --seed)")
    p.add_argument("--seed", type=_seed, default=0, help="with --z-prior")
    p.set_defaults(func=serving_cmds.cmd_export)


def _add_complete(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("complete", help="let a trained run finish a partial sketch")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--from", dest="from_data", default=None, help="a sketch-rnn .npz")
    p.add_argument("--index", type=int, default=0, help="with --from: which sketch")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--keep", type=float, default=None,
                   help="fraction of the sketch's points kept as the prefix "
                        "(default 0.5 with --from, 1 with --strokes)")
    p.add_argument("--strokes", default=None,
                   help="a JSON file: stroke-3 [[dx, dy, pen], ...] or one QuickDraw drawing")
    p.add_argument("--n", type=int, default=8, help="number of endings")
    p.add_argument("--temperature", type=float, default=0.25)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--z-mode", default="prior", choices=("prior", "encode"),
                   help="conditional models: z from the prior (varied) or the encoded prefix")
    p.add_argument("--out", default="endings.svg", help="output .svg, .png or .npz")
    p.set_defaults(func=complete_cmd.cmd_complete)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a local web page: draw, and the model finishes it")
    p.add_argument("--run-dir", required=True, help="a training run directory")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="also accept this Host header, e.g. a proxy's name (repeatable; "
                        "'*' accepts any). By default only the names of the bound address")
    p.add_argument("--max-body", type=int, default=guards.MAX_BODY, metavar="BYTES",
                   help=f"largest request body; larger ones get 413 (default {guards.MAX_BODY})")
    p.add_argument("--timeout", type=float, default=guards.TIMEOUT_S, metavar="S",
                   help="seconds for a request's body to arrive (else 408) and for its turn at "
                        f"the model (else 503) (default {guards.TIMEOUT_S:g})")
    p.add_argument("--queue", type=int, default=guards.QUEUE_SIZE, metavar="N",
                   help="requests that may wait for the model; more get 503 with Retry-After "
                        f"(default {guards.QUEUE_SIZE})")
    p.add_argument("--log-requests", action="store_true",
                   help="keep the last request bodies and serve them at GET /api/log "
                        "(other people's drawings: off by default)")
    p.set_defaults(func=serving_cmds.cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sketch-rnn", description="Sketch-RNN: train, resume exactly, sample and draw.")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_sample, _add_interpolate, _add_evaluate, _add_report,
                _add_convert,
                _add_download, _add_info, _add_stats, _add_complete, _add_serve,
                _add_export, import_cmds.add_import):
        add(sub)
    for command in sub.choices.values():  # `--verbose` before or after the command
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help=VERBOSE_HELP)
    return parser


def run(argv: Sequence[str] | None, parser: argparse.ArgumentParser | None = None) -> int:
    """Parse and dispatch; user errors are one line on stderr and exit status 2."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        with terminal.session(verbose=args.verbose):
            return int(handler(args) or 0)
    except SketchRNNError as e:
        print(f"sketch-rnn {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"sketch-rnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away, e.g. `sketch-rnn info RUN | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: TensorFlow's start-up chatter hidden unless --verbose (`terminal`)."""
    return run(argv)


def console(argv: Sequence[str] | None = None) -> int:
    """main() for a process that ends when it returns: the `sketch-rnn` executable and the
    `python -m` entry points.

    Once TensorFlow is imported, the interpreter's last garbage collections at exit walk its
    millions of objects for about a second (measured on a Zen 5 core: 1.06 s after a bare
    `import tensorflow`, 0.09 s frozen) and find nothing to free that matters: every file of
    a command is written and closed before main returns. gc.freeze() lets the command end
    then. Not in main(): in a long-lived process (tests, notebooks) frozen objects would
    never be collected.
    """
    code = main(argv)
    gc.freeze()
    return code


if __name__ == "__main__":
    raise SystemExit(console())
