"""`sketch_rnn.train(...)`: train (or resume) a run in the calling process.

The same run as `sketch-rnn train` with the same arguments, bit for bit: the command's
handler calls this function. Under the run directory's lock, `run_state.plan_run` decides
between a new run and a resume, and `Trainer.fit` trains to the step target, checkpointing
as it goes. SIGINT (Ctrl-C in a terminal, "interrupt kernel" in Jupyter, which sends the
same signal) and SIGTERM finish the step, save a checkpoint and stop: `train` then returns
normally with outcome "interrupted", the previous signal handlers back in place, and the
same call again resumes where it stopped.

    >>> import sketch_rnn
    >>> result = sketch_rnn.train("data/aaron_sheep.npz", "runs/sheep", preset="tiny",
    ...                           num_steps=200)       # doctest: +SKIP
    >>> result.outcome, result.step                      # doctest: +SKIP
    ('done', 200)
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..core.compile_cache import enable as enable_compile_cache
from ..core.errors import SketchRNNError

log = logging.getLogger(__name__)

SAMPLES_AT_SAVE = 16  # sketches drawn into RUN_DIR/samples at every checkpoint
PathLike = str | os.PathLike


@dataclass
class TrainResult:
    """Where a run stands after `train` returns.

    outcome: "done" (reached num_steps), "interrupted" (a signal: saved, call `train` again
    to resume), "early_stop" (a callback stopped training) or "nothing_to_do" (the run was
    already at num_steps). exit_code is the command's exit status (0; 130 after SIGINT, 143
    after SIGTERM). checkpoint: the newest complete checkpoint's directory; valid: its
    validation losses (cost, recon, stroke, pen, kl); fingerprint: the sha256 of this
    process's model and optimizer variables (the checkpoint's, on one device); stopped_by:
    the name of the callback that stopped the run early.
    """

    run_dir: Path
    step: int
    num_steps: int
    outcome: str
    exit_code: int
    checkpoint: Path | None
    valid: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""
    worker: str | None = None  # the tf.distribute task ("worker:0"), None on one device
    stopped_by: str | None = None

    def __str__(self) -> str:
        """The command's last line."""
        if self.outcome == "early_stop":
            return (f"stopped early at step {self.step} by {self.stopped_by}; the run is complete "
                    f"(checkpoints in {self.run_dir / 'checkpoints'})")
        if self.exit_code:
            return f"stopped at step {self.step}; run the same command again to resume"
        return (f"done: step {self.step} of {self.num_steps}; "
                f"checkpoints in {self.run_dir / 'checkpoints'}")


def _check_seed(seed: int | None) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2 ** 32):
        raise SketchRNNError(f"seed={seed!r}: an integer in [0, 2**32)")
    return seed


def _overrides(hparams: str | Mapping[str, Any] | None) -> str | None:
    """hparams as the CLI's "k=v,k=v" text (a dict's values as written by str)."""
    if hparams is None or isinstance(hparams, str):
        return hparams
    return ",".join(f"{k}={v}" for k, v in hparams.items())


def _paths(data: PathLike | Sequence[PathLike] | None) -> list[str] | None:
    if data is None:
        return None
    return [str(data)] if isinstance(data, (str, os.PathLike)) else [str(p) for p in data]


def draw_samples(trainer: Any, step: int) -> None:
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
        log.warning(f"could not draw {path}: {type(e).__name__}: {e}")


@contextlib.contextmanager
def _messages() -> Iterator[None]:
    """Our log lines ("resuming RUN from ckpt-N", warnings) on stdout while training, when
    no one shows them (a notebook, a script); the CLI's terminal has its own handler. There
    TensorFlow's Python warnings are left out too, as the CLI leaves them out: the one it
    gives during training says the train step was traced again, which the bucketed batches
    do on purpose under tf.distribute (one trace per batch length)."""
    ours, tf_log = logging.getLogger("sketch_rnn"), logging.getLogger("tensorflow")
    if ours.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    levels = ours.level, tf_log.level
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    tf_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        ours.removeHandler(handler)
        ours.setLevel(levels[0])
        tf_log.setLevel(levels[1])


def train(data: PathLike | Sequence[PathLike] | None = None, run_dir: PathLike = "runs/sheep",
          *, preset: str | None = None, hparams: str | Mapping[str, Any] | None = None,
          num_steps: int | None = None, seed: int | None = None,
          callbacks: Sequence[Any] = (), allow_callback_change: bool = False,
          allow_batching_change: bool = False, allow_precision_change: bool = False,
          progress: bool = True, samples: bool = True, distribute: str | None = None,
          cpu_devices: int | None = None) -> TrainResult:
    """Train a new run, or resume `run_dir` exactly, in this process; `sketch-rnn train`.

    data: one or more sketch-rnn .npz files (default: the bundled sheep); a resume reads
    the run's own. preset ("tiny", "small", "paper") and hparams ("k=v,k=v" or a dict)
    shape a new run; on a resume the saved hparams win and an architecture change is an
    error. num_steps is the total step target (also on resume); seed a new run's (0).
    callbacks: Keras callbacks run in the fit loop after the schedules and the saver; they
    see the validation losses as logs (`val_cost`, `val_recon`, `val_kl`, ...) at each
    checkpoint. allow_*_change: resume with other callbacks, batching or precision than the
    run's (recorded in its lineage). progress: the bar (tqdm; a widget in Jupyter where
    ipywidgets is installed). samples: a grid of prior samples into RUN_DIR/samples at each
    checkpoint. distribute: "mirrored" or "multi-worker" (tf.distribute); cpu_devices splits
    the CPU for mirrored.

    Returns a `TrainResult`; Ctrl-C (SIGINT) or SIGTERM end it with outcome "interrupted"
    after saving, not with an exception. Call again with the same arguments to resume.

    >>> import keras, sketch_rnn
    >>> class Watch(keras.callbacks.Callback):
    ...     def on_train_batch_end(self, batch, logs=None):
    ...         pass  # e.g. look at logs["cost"]
    >>> result = sketch_rnn.train("data/aaron_sheep.npz", "runs/sheep", preset="tiny",
    ...                           num_steps=400, callbacks=[Watch()])  # doctest: +SKIP
    >>> result.outcome, result.step  # after Ctrl-C at step 150      # doctest: +SKIP
    ('interrupted', 150)
    >>> sketch_rnn.train("data/aaron_sheep.npz", "runs/sheep", preset="tiny",
    ...                  num_steps=400, callbacks=[Watch()]).outcome  # doctest: +SKIP
    'done'
    """
    from ..training import cluster
    from ..training.lock import run_lock

    seed = _check_seed(seed)
    if distribute not in (None, "mirrored", "multi-worker"):
        raise SketchRNNError(f"distribute={distribute!r}: use 'mirrored' or 'multi-worker'")
    allowed = {name for name, on in (("bucketed_batches", allow_batching_change),
                                     ("precision", allow_precision_change),
                                     ("callbacks", allow_callback_change)) if on}
    enable_compile_cache()  # before anything is compiled: the next start loads the programs
    # the lock first (no TensorFlow yet), so that a second trainer is refused in a second;
    # under multi-worker only the chief writes and so only the chief locks
    chief = distribute != "multi-worker" or cluster.is_chief()
    with _messages(), run_lock(run_dir, enabled=chief):
        from ..training import distribute as dist_setup
        from ..training.checkpoint import fingerprint
        from ..training.run_state import plan_run
        from ..training.trainer import Trainer

        dist = dist_setup.setup(distribute, cpu_devices)  # before TF sets up devices
        config = plan_run(run_dir, _paths(data), preset, _overrides(hparams), num_steps, seed,
                          allow_changes=allowed)
        draw = samples and dist.kind == "none"  # sampling runs on one device
        trainer = Trainer(config, progress=progress, dist=dist,
                          after_save=draw_samples if draw else None, callbacks=callbacks)
        code = trainer.fit()
    return _result(trainer, code, fingerprint(trainer.model),
                   None if dist.kind == "none" else dist.task)


def _result(trainer: Any, code: int, fp: str, worker: str | None) -> TrainResult:
    from ..training.checkpoint import newest_checkpoint

    newest = newest_checkpoint(trainer.config.run_dir, warn=False)
    valid = (newest.state.get("valid") or {}) if newest is not None else {}
    stopped_by = None
    if trainer.outcome == "early_stop":  # stopped now, or by an earlier run of the command
        saved = trainer.config.saved
        stopped_by = trainer.epochs.stopped_by or (
            (saved.early_stop or {}).get("callback") if saved is not None else None)
    return TrainResult(trainer.config.run_dir, trainer.step, int(trainer.hps.num_steps),
                       trainer.outcome or "done", code, newest.path if newest else None,
                       dict(valid), fp, worker, stopped_by)
