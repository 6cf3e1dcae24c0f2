"""Handlers of the commands that load or train a model: train, sample, interpolate,
evaluate, report, info. Train, sample, interpolate and evaluate check the command's
arguments, call the Python API (`sketch_rnn.train`, `sketch_rnn.load`'s `Model`) and print;
nothing is imported that needs TensorFlow until a handler runs, so that `sketch-rnn convert`
and friends never import it.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..api import Model, Sketches
from ..core.errors import SketchRNNError
from ..data import read_sketches
from .output import print_json


# --------------------------------------------------------------------------- train
def _callbacks(specs: list[str]) -> list[Any]:
    """The callbacks `--callback MODULE:ATTR` names; Keras is imported only when there are
    some (the run directory's lock comes before TensorFlow otherwise)."""
    if not specs:
        return []
    from ..training.callbacks import from_spec

    return [cb for spec in specs for cb in from_spec(spec)]


def cmd_train(args: argparse.Namespace) -> int:
    """`sketch-rnn train`: `sketch_rnn.train` with the command's arguments, then its last line."""
    if args.hparams == "help":  # list the fields without importing TensorFlow
        from ..core.hparams import HParams, describe

        defaults = HParams().to_dict()
        for name, why in describe().items():
            print(f"{name:24s} {defaults[name]!s:12s} {why}")
        return 0
    from ..api import train

    result = train(args.data, args.run_dir, preset=args.preset, hparams=args.hparams,
                   num_steps=args.num_steps, seed=args.seed, callbacks=_callbacks(args.callback),
                   allow_callback_change=args.allow_callback_change,
                   allow_batching_change=args.allow_batching_change,
                   allow_precision_change=args.allow_precision_change,
                   progress=not args.no_progress, samples=not args.no_samples,
                   distribute=args.distribute, cpu_devices=args.cpu_devices)
    print(result, file=sys.stderr if result.exit_code else sys.stdout)
    if result.worker is not None:  # each worker's own variables, to compare across workers
        print(f"{result.worker}: fingerprint {result.fingerprint}")
    return result.exit_code


# --------------------------------------------------------------------------- generation
def load_run(run_dir: str) -> Any:
    from ..core.compile_cache import enable as enable_compile_cache

    enable_compile_cache()  # before TensorFlow starts: the next command reuses the programs
    from ..training.runs import (
        load_run as load,  # Keras: only for the commands that need it
    )

    return load(run_dir)


def load_model(run_dir: str) -> Model:
    """The run as the API's `Model` (`sketch_rnn.load`), through this module's `load_run`."""
    return Model(load_run(run_dir), run_dir)


def cmd_sample(args: argparse.Namespace) -> int:
    """`sketch-rnn sample`: prior samples, or reconstructions with --from/--index."""
    from ..generation.drawing import check_extension
    from ..generation.sampling import check_n, check_temperature

    n = check_n(args.n)
    temperature = check_temperature(args.temperature)
    discrete = args.discrete_temperature
    if discrete is not None:
        discrete = check_temperature(discrete, "--discrete-temperature")
    check_extension(args.out)
    if args.index is not None and args.from_data is None:
        raise SketchRNNError("--index needs --from DATA.npz")
    model = load_model(args.run_dir)
    if args.from_data is not None:
        indices = args.index if args.index is not None else list(range(n))
        originals = read_sketches(args.from_data, args.split, indices, model.hps.max_seq_len,
                                  "--index")
        sketches = model.reconstruct(originals, temperature=temperature, greedy=args.greedy,
                                     seed=args.seed, discrete_temperature=discrete)
        # original, reconstruction
        Sketches([s for pair in zip(originals, sketches) for s in pair], cols=2).save(args.out)
        what = f"{len(sketches)} reconstructions (left: original)"
    else:
        model.sample(n, temperature=temperature, greedy=args.greedy, seed=args.seed,
                     discrete_temperature=discrete).save(args.out)
        what = f"{n} sketches"
    print(f"wrote {what} to {args.out}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    """`sketch-rnn interpolate`: decode `steps` codes between two sketches' (or prior) codes."""
    from ..generation.drawing import check_extension
    from ..generation.sampling import check_temperature

    temperature = check_temperature(args.temperature)
    check_extension(args.out)
    if not isinstance(args.steps, int) or args.steps < 2:
        raise SketchRNNError(f"--steps {args.steps}: need at least 2")
    if (args.index is None) != (args.from_data is None):
        raise SketchRNNError("--from DATA.npz and --index I J go together")
    model = load_model(args.run_dir)
    if not model.conditional:
        raise SketchRNNError(f"{args.run_dir}: a decoder-only model has no latent space")
    ends = [None, None]
    if args.from_data is not None:
        ends = read_sketches(args.from_data, args.split, args.index, model.hps.max_seq_len,
                             "--index")
    sketches = model.interpolate(*ends, steps=args.steps, method=args.method,
                                 temperature=temperature, greedy=args.greedy, seed=args.seed)
    sketches.save(args.out)
    print(f"wrote {len(sketches)} interpolated sketches ({args.method}) to {args.out}")
    return 0


# --------------------------------------------------------------------------- evaluate, info
def _progress(message: str) -> None:
    """Progress of long evaluations: stderr, so that stdout stays the one JSON line."""
    print(message, file=sys.stderr, flush=True)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`sketch-rnn evaluate`: one JSON object (losses, retrieval, sample quality)."""
    if args.teacher_forced < 0:
        raise SketchRNNError(f"--teacher-forced {args.teacher_forced}: must be >= 0")
    print_json(load_model(args.run_dir).evaluate(
        args.data, split=args.split, teacher_forced=args.teacher_forced,
        samples=not args.no_samples, log=_progress))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`sketch-rnn report RUN_DIR [-o DIR]`: the model card (index.html and its PNGs)."""
    from ..evaluation.model_card import write_card

    if args.teacher_forced < 0:
        raise SketchRNNError(f"--teacher-forced {args.teacher_forced}: must be >= 0")
    page = write_card(args.run_dir, args.output, args.data, args.split,
                      teacher_forced_n=args.teacher_forced, log=_progress)
    print(f"wrote {page}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """`sketch-rnn info RUN_DIR [--json] [--remove-corrupt]` (reads JSON only: no TensorFlow)."""
    from ..training.checkpoint import remove_quarantined
    from ..training.runs import info as run_info

    if args.remove_corrupt:
        for path in remove_quarantined(args.run_dir):
            print(f"removed {path}")
    summary = run_info(args.run_dir)
    if args.json:
        print_json(summary)
        return 0
    print(f"run:         {summary['run_dir']}")
    print(f"step:        {summary['step']}  (checkpoint {summary['checkpoint']})")
    print(f"checkpoints: {', '.join(summary['checkpoints'])}")
    print(f"best:        {summary['best']}  (valid cost {summary['best_valid_cost']})")
    print(f"params:      {summary['params']:,}" if summary["params"] else "params: ?")
    print(f"data:        {', '.join(summary['data'] or [])}")
    print(f"fingerprint: {summary['fingerprint']}")
    for q in summary["quarantined"]:
        print(f"quarantined: {q['name']} ({q['bytes']:,} bytes; --remove-corrupt deletes it)")
    hps = summary["hparams"]
    print("hparams:     " + ", ".join(f"{k}={hps[k]}" for k in sorted(hps)))
    return 0
