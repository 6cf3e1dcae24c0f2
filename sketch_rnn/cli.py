"""The `sketch-rnn` command: argument parsing and one small handler per subcommand.

Handlers import their module lazily: `convert`, `download` and `stats` never
import TensorFlow, so they start in a fraction of a second. Every
`SketchRNNError` becomes one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Sequence

from .data import DEFAULT_DATA
from .errors import SketchRNNError



# --------------------------------------------------------------------------- handlers
def _cmd_train(args: argparse.Namespace) -> int:
    if args.hparams == "help":  # list the fields without importing TensorFlow
        from .hparams import HParams, describe

        defaults = HParams().to_dict()
        for name, why in describe().items():
            print(f"{name:24s} {defaults[name]!s:12s} {why}")
        return 0
    from .trainer import train_from_args

    return train_from_args(args)


def _cmd_sample(args: argparse.Namespace) -> int:
    from .sampling import sample_command

    return sample_command(args)


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from .sampling import interpolate_command

    return interpolate_command(args)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_command

    return evaluate_command(args)


def _cmd_convert(args: argparse.Namespace) -> int:
    from .quickdraw import convert_command

    return convert_command(args)


def _cmd_download(args: argparse.Namespace) -> int:
    from .quickdraw import download_command

    return download_command(args)


def _cmd_info(args: argparse.Namespace) -> int:
    from .checkpoint import info_command

    return info_command(args)


def _cmd_stats(args: argparse.Namespace) -> int:
    from .data import stats_command

    return stats_command(args)


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
    p = sub.add_parser("train", help="train (or resume) a model; Ctrl-C saves and stops")
    p.add_argument("--data", nargs="+", default=None,
                   help=f"sketch-rnn .npz files, one per category (default: {DEFAULT_DATA})")
    p.add_argument("--run-dir", default="runs/sheep", help="checkpoints and logs (default: runs/sheep)")
    p.add_argument("--preset", default=None, choices=("tiny", "small", "paper"),
                   help="hyperparameter preset for a new run (default: small)")
    p.add_argument("--hparams", default=None, help='overrides, "k=v,k=v" (see --hparams help)')
    p.add_argument("--num-steps", type=int, default=None, help="total step target (also on resume)")
    p.add_argument("--seed", type=_seed, default=None, help="random seed of a new run (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    p.add_argument("--no-samples", action="store_true",
                   help="do not draw sample sketches into RUN_DIR/samples at each checkpoint")
    p.add_argument("--distribute", default=None, choices=("mirrored", "multi-worker"),
                   help="tf.distribute strategy (default: one device)")
    p.add_argument("--cpu-devices", type=int, default=None,
                   help="with --distribute mirrored on CPU: split the CPU into N logical devices")
    p.set_defaults(func=_cmd_train)


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw sketches from a trained run")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--n", type=int, default=16, help="number of sketches")
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--greedy", action="store_true", help="most likely component and its mean")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", default="samples.svg", help="output .svg, .png, .gif or .npz")
    p.add_argument("--from", dest="from_data", default=None,
                   help="reconstruct sketches of this .npz instead of sampling z from the prior")
    p.add_argument("--index", type=int, nargs="+", default=None,
                   help="with --from: indices of the sketches to reconstruct")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.set_defaults(func=_cmd_sample)


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
    p.set_defaults(func=_cmd_interpolate)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="losses over a whole split, as one JSON object")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--data", nargs="+", default=None, help="default: the run's own data")
    p.add_argument("--split", default="test", choices=("valid", "test"))
    p.set_defaults(func=_cmd_evaluate)


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
    p.set_defaults(func=_cmd_convert)


def _add_download(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="fetch QuickDraw sketch-rnn .npz files")
    p.add_argument("categories", nargs="*", metavar="CATEGORY")
    p.add_argument("--to", default="data", help="destination folder (default: data)")
    p.add_argument("--base-url", default=None)
    p.add_argument("--list", action="store_true", help="list the 345 category names")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_download)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="what a run directory holds (step, checkpoints, fingerprint)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_info)


def _add_stats(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="per-split statistics of sketch-rnn .npz files")
    p.add_argument("paths", nargs="+", metavar="DATA.npz")
    p.add_argument("--max-seq-len", type=int, default=250)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_stats)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sketch-rnn", description="Sketch-RNN: train, resume exactly, sample and draw.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_sample, _add_interpolate, _add_evaluate, _add_convert,
                _add_download, _add_info, _add_stats):
        add(sub)
    return parser


def run(argv: Sequence[str] | None, parser: argparse.ArgumentParser | None = None) -> int:
    """Parse and dispatch; user errors are one line on stderr and exit status 2."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
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
    # TensorFlow's C++ start-up notices (oneDNN, CPU features) are not for users of a CLI;
    # warnings and errors still show. An explicit TF_CPP_MIN_LOG_LEVEL wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return run(argv)


def print_json(obj: object) -> None:
    """One JSON object on one line (the `--json` contract)."""
    print(json.dumps(obj, sort_keys=True))


if __name__ == "__main__":
    raise SystemExit(main())
