"""Handlers of the commands that load or train a model: train, sample, interpolate,
evaluate, report, info. Each imports its domain modules when called, so that `sketch-rnn convert`
and friends never import TensorFlow.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any


from ..core.compile_cache import enable as enable_compile_cache
from ..core.errors import SketchRNNError
from ..data import read_sketches
from .output import print_json

SAMPLES_AT_SAVE = 16  # sketches drawn into RUN_DIR/samples at every checkpoint


# --------------------------------------------------------------------------- train
def _draw_samples(trainer: Any, step: int) -> None:
    """A grid of SAMPLES_AT_SAVE sketches from the prior at each checkpoint, to watch the
    model learn. The sampler draws its noise from its own NumPy generator and changes no
    variable, so this leaves the training stream untouched; a failure only warns (the
    checkpoint is already safe)."""
    from ..generation.drawing import save_sketches
    from ..generation.sampling import sample

    path = trainer.config.run_dir / "samples" / f"step-{step:08d}.svg"
    try:
        sketches = sample(trainer.model, SAMPLES_AT_SAVE, temperature=0.25, seed=0,
                          scale_factor=trainer.data.scale_factor)
        path.parent.mkdir(exist_ok=True)
        save_sketches(str(path), sketches)
    except Exception as e:  # noqa: BLE001 - a drawing must never end a training run
        print(f"warning: could not draw {path}: {type(e).__name__}: {e}", file=sys.stderr)


def _allowed_changes(args: argparse.Namespace) -> set[str]:
    """What may change on resume, as asked for: the training-path fields
    (run_state.PATH_FIELDS) and "callbacks"."""
    return {name for name, on in (("bucketed_batches", args.allow_batching_change),
                                  ("precision", args.allow_precision_change),
                                  ("callbacks", args.allow_callback_change)) if on}


def cmd_train(args: argparse.Namespace) -> int:
    """`sketch-rnn train`: a new run or an exact resume, under the run directory's lock."""
    if args.hparams == "help":  # list the fields without importing TensorFlow
        from ..core.hparams import HParams, describe

        defaults = HParams().to_dict()
        for name, why in describe().items():
            print(f"{name:24s} {defaults[name]!s:12s} {why}")
        return 0
    enable_compile_cache()  # before TensorFlow starts: this run's compiled programs kept
    from ..training import cluster
    from ..training.lock import run_lock

    # the lock first (no TensorFlow yet), so that a second trainer is refused in a second;
    # under multi-worker only the chief writes and so only the chief locks
    chief = args.distribute != "multi-worker" or cluster.is_chief()
    with run_lock(args.run_dir, enabled=chief):
        from ..training import distribute
        from ..training.callbacks import from_spec
        from ..training.checkpoint import fingerprint
        from ..training.run_state import plan_run
        from ..training.trainer import Trainer

        dist = distribute.setup(args.distribute, args.cpu_devices)  # before TF sets up devices
        config = plan_run(args.run_dir, args.data, args.preset, args.hparams, args.num_steps,
                          args.seed, allow_changes=_allowed_changes(args))
        callbacks = [cb for spec in args.callback for cb in from_spec(spec)]
        draw = not args.no_samples and dist.kind == "none"  # sampling runs on one device
        trainer = Trainer(config, progress=not args.no_progress, dist=dist,
                          after_save=_draw_samples if draw else None, callbacks=callbacks)
        code = trainer.fit()
    if trainer.outcome == "early_stop":
        early = trainer.epochs.stopped_by or (config.saved.early_stop or {}).get("callback")
        print(f"stopped early at step {trainer.step} by {early}; the run is complete "
              f"(checkpoints in {config.run_dir / 'checkpoints'})")
    elif code:
        print(f"stopped at step {trainer.step}; run the same command again to resume",
              file=sys.stderr)
    else:
        print(f"done: step {trainer.step} of {trainer.hps.num_steps}; "
              f"checkpoints in {config.run_dir / 'checkpoints'}")
    if dist.kind != "none":  # each worker's own variables, to compare across workers
        print(f"{dist.task}: fingerprint {fingerprint(trainer.model)}")
    return code


# --------------------------------------------------------------------------- generation
def load_run(run_dir: str) -> Any:
    from ..training.runs import (
        load_run as load,  # Keras: only for the commands that need it
    )

    return load(run_dir)


def cmd_sample(args: argparse.Namespace) -> int:
    """`sketch-rnn sample`: prior samples, or reconstructions with --from/--index."""
    from ..generation.drawing import check_extension, save_sketches
    from ..generation.sampling import check_n, check_temperature, reconstruct, sample

    n = check_n(args.n)
    temperature = check_temperature(args.temperature)
    discrete = args.discrete_temperature
    if discrete is not None:
        discrete = check_temperature(discrete, "--discrete-temperature")
    check_extension(args.out)
    if args.index is not None and args.from_data is None:
        raise SketchRNNError("--index needs --from DATA.npz")
    run = load_run(args.run_dir)
    if args.from_data is not None:
        indices = args.index if args.index is not None else list(range(n))
        originals = read_sketches(args.from_data, args.split, indices, run.hps.max_seq_len,
                                  "--index")
        sketches = reconstruct(run.model, originals, temperature=temperature,
                               greedy=args.greedy, seed=args.seed, scale_factor=run.scale_factor,
                               discrete_temperature=discrete)
        drawn = [s for pair in zip(originals, sketches) for s in pair]  # original, reconstruction
        save_sketches(args.out, drawn, cols=2)
        what = f"{len(sketches)} reconstructions (left: original)"
    else:
        sketches = sample(run.model, n, temperature=temperature, greedy=args.greedy,
                          seed=args.seed, scale_factor=run.scale_factor,
                          discrete_temperature=discrete)
        save_sketches(args.out, sketches)
        what = f"{n} sketches"
    print(f"wrote {what} to {args.out}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    """`sketch-rnn interpolate`: decode `steps` codes between two sketches' (or prior) codes."""
    from ..generation.drawing import check_extension, save_sketches
    from ..generation.sampling import (
        check_temperature,
        decode,
        encode,
        interpolate,
        prior_z,
    )

    temperature = check_temperature(args.temperature)
    check_extension(args.out)
    if not isinstance(args.steps, int) or args.steps < 2:
        raise SketchRNNError(f"--steps {args.steps}: need at least 2")
    if (args.index is None) != (args.from_data is None):
        raise SketchRNNError("--from DATA.npz and --index I J go together")
    run = load_run(args.run_dir)
    if not run.hps.conditional:
        raise SketchRNNError(f"{args.run_dir}: a decoder-only model has no latent space")
    if args.from_data is not None:
        ends = read_sketches(args.from_data, args.split, args.index, run.hps.max_seq_len,
                             "--index")
        z0, z1 = encode(run.model, ends, scale_factor=run.scale_factor)
    else:
        z0, z1 = prior_z(2, int(run.hps.z_size), args.seed)
    zs = interpolate(z0, z1, args.steps, args.method)
    sketches = decode(run.model, zs, temperature=temperature, greedy=args.greedy,
                      seed=args.seed, scale_factor=run.scale_factor)
    save_sketches(args.out, sketches, cols=len(sketches))
    print(f"wrote {len(sketches)} interpolated sketches ({args.method}) to {args.out}")
    return 0


# --------------------------------------------------------------------------- evaluate, info
def _progress(message: str) -> None:
    """Progress of long evaluations: stderr, so that stdout stays the one JSON line."""
    print(message, file=sys.stderr, flush=True)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`sketch-rnn evaluate`: one JSON object (losses, retrieval, sample quality)."""
    enable_compile_cache()  # before TensorFlow starts
    from ..evaluation.report import evaluate_run

    if args.teacher_forced < 0:
        raise SketchRNNError(f"--teacher-forced {args.teacher_forced}: must be >= 0")
    print_json(evaluate_run(args.run_dir, args.data, args.split,
                            teacher_forced_n=args.teacher_forced, samples=not args.no_samples,
                            log=_progress))
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
