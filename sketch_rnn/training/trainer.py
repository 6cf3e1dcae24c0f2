"""Training: new runs, exact resumes, and the training loop around `model.fit`.

Exactness rests on three facts (ARCHITECTURE.md, "Determinism"): batch `i` of the data
stream is `train_batch(seed, i)`, a pure function; every random draw inside a step is a
function of (seed, optimizer.iterations) (the model re-seeds its generator each step, so no
RNG state needs saving); and everything else that changes during training — model and
optimizer variables, the stateful schedule callbacks — is in the checkpoint. With
TensorFlow op determinism on CPU, training to N in one go and training to K, stopping,
resuming to N give the same bits.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

import keras
import numpy as np

from ..core.errors import SketchRNNError
from ..core.files import StorageError
from ..core.hparams import ARCHITECTURE_FIELDS, HParams, parse_overrides, preset
from ..core.machine import describe as describe_machine
from ..data import DEFAULT_DATA, SketchSplit, load_data, step_batch
from ..model.build import build_model
from ..model.precision import default_precision
from . import checkpoint as ckpt_io
from . import distribute
from .callbacks import (
    CheckpointCallback,
    KLWeightScheduler,
    LearningRateSchedulerPerBatch,
    StopSignal,
)
from .schedules import kl_weight_schedule, learning_rate_schedule
from ..evaluation.losses import evaluate_split

log = logging.getLogger(__name__)

DEFAULT_PRESET = "small"
# hparams that change when and what is saved, never the weights: free to change on resume
BOOKKEEPING_FIELDS = ("num_steps", "save_every", "keep_checkpoints")
# hparams of the training path (how batches are padded, the matmuls' precision): the same
# weights either way, but changing one on resume ends bitwise equality, so it is refused
# unless the CLI flag beside each name asks for it
PATH_FIELDS = {"bucketed_batches": "--allow-batching-change",
               "precision": "--allow-precision-change"}



# --------------------------------------------------------------------------- set-up
def configure_determinism(seed: int) -> None:
    """Seed every global RNG and ask TensorFlow for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


class TrainStream(keras.utils.PyDataset):
    """Item i is the batch of global step start + i: the data position is the step.

    With hps.bucketed_batches a batch is (B, T+1, 5) with T its length bucket's padded
    length (data.batches), so items differ in shape; `fit_input` says how fit reads them.
    """

    def __init__(self, split: SketchSplit, hps: HParams, seed: int, start: int, stop: int) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.split, self.hps, self.seed = split, hps, seed
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        strokes, lengths = step_batch(self.split, self.hps, self.seed, self.start + i)
        return {"strokes": strokes, "lengths": lengths}  # (B, T+1, 5), (B,); T = N_max unbucketed

    def fit_input(self, model: keras.Model) -> Any:
        """What `model.fit` reads, preparing `model` for it.

        Full-length batches: this PyDataset, as before. Bucketed batches on TensorFlow:
        Keras would infer the tf.data spec from the first two items (a fixed time length if
        they happen to agree, then fail on the next bucket), so the stream is wrapped in the
        same from_generator + prefetch pipeline with the time dimension declared None, and
        the model gets a train function traced once per batch shape
        (`per_shape_train_function`). JAX's fit jit-compiles per input shape by itself.
        """
        if not self.hps.bucketed_batches or keras.backend.backend() != "tensorflow":
            return self
        import tensorflow as tf

        b = self.hps.batch_size
        spec = {"strokes": tf.TensorSpec((b, None, 5), tf.float32),  # (B, T+1, 5)
                "lengths": tf.TensorSpec((b,), tf.int32)}
        items = tf.data.Dataset.from_generator(lambda: (self[i] for i in range(len(self))),
                                               output_signature=spec)
        model.train_function = per_shape_train_function(model)
        items = items.apply(tf.data.experimental.assert_cardinality(len(self)))  # fit's steps
        return items.prefetch(tf.data.AUTOTUNE)


def per_shape_train_function(model: keras.Model) -> Callable[[Any], Any]:
    """A Keras (TensorFlow) train function that traces one graph per input shape.

    Keras' own wraps its step in tf.function(reduce_retracing=True), which after a second
    shape retraces with the time dimension None; the recurrent loops (model.lanes, the
    XLA-compiled scans) need a static number of steps. Here each batch is pulled eagerly
    (concrete shapes) and run by Keras' one-step function made for that shape alone, so
    every bucket's step is today's graph at its length: one trace and one XLA compile per
    bucket (at most data.batches.NUM_BUCKETS), none per step. `model.trace_count` counts
    them (tests check it).
    """
    functions: dict[tuple, Any] = {}
    model.trace_count = 0
    strategy = model.distribute_strategy

    def shape_key(data: Any) -> tuple:
        import tensorflow as tf

        return tuple(tuple(strategy.experimental_local_results(v)[0].shape)
                     for v in tf.nest.flatten(data))

    def train_function(iterator: Any) -> Any:
        data = next(iterator)  # StopIteration / OutOfRangeError end fit's epoch, as in Keras
        key = shape_key(data)
        if key not in functions:
            functions[key] = model._make_function(model.train_step)
            model.trace_count += 1
        return functions[key]([data])  # Keras runs one step per item of an eager iterable

    return train_function


# --------------------------------------------------------------------------- the run
@dataclass
class RunConfig:
    run_dir: Path
    data_paths: list[str]
    hps: HParams
    seed: int
    run_id: str
    resume_from: ckpt_io.Checkpoint | None
    # {"step", "field", "from", "to"} per explicit --allow-*-change, kept in state.json
    path_changes: list = field(default_factory=list)


def plan_run(run_dir: str | Path, data: Sequence[str] | None, preset_name: str | None,
             overrides: str | None, num_steps: int | None, seed: int | None,
             allow_changes: Collection[str] = ()) -> RunConfig:
    """Decide between a new run and a resume, and check the arguments against the saved run.

    A new run without an explicit `precision` takes this CPU's (`default_precision`). A
    resume keeps the saved training path (`PATH_FIELDS`: runs saved before these fields
    load as bucketed_batches False, precision float32) and refuses another unless the field
    is in `allow_changes`; an allowed change is recorded in the run's state.json.
    """
    run_dir = Path(run_dir)
    previous = ckpt_io.newest_checkpoint(run_dir) if run_dir.is_dir() else None
    if previous is None:
        hps = preset(preset_name or DEFAULT_PRESET).with_overrides(overrides)
        if num_steps is not None:
            hps = hps.replace(num_steps=num_steps)
        if "precision" not in parse_overrides(overrides):
            precision, why = default_precision()
            hps = hps.replace(precision=precision)
            log.info(f"precision {precision}: {why}")
        return RunConfig(run_dir, list(data or [DEFAULT_DATA]), hps, 0 if seed is None else seed,
                         uuid.uuid4().hex, None)
    saved = previous.state
    hps = previous.hps
    changes = parse_overrides(overrides)
    if num_steps is not None:
        changes["num_steps"] = num_steps
    arch = [k for k in (*ARCHITECTURE_FIELDS, "max_seq_len")
            if k in changes and changes[k] != getattr(hps, k)]
    if arch:
        raise SketchRNNError(f"{run_dir}: cannot change {', '.join(arch)} of an existing run "
                             f"(the weights' shapes or the training sketches); use a new --run-dir")
    history = _path_changes(run_dir, previous, hps, changes, allow_changes)
    if preset_name is not None and _differs_from_preset(hps, preset_name, changes):
        log.info(f"note: resuming {run_dir}: its saved hparams win over --preset {preset_name}")
    differing = sorted(k for k, v in changes.items()
                       if k not in BOOKKEEPING_FIELDS and v != getattr(hps, k))
    if differing:
        log.warning(f"changing {', '.join(differing)} on resume: the run will no longer match "
                    "an uninterrupted one bit for bit")
    if seed is not None and seed != saved["seed"]:
        raise SketchRNNError(f"{run_dir}: the run was started with --seed {saved['seed']}, not {seed}")
    paths = list(data) if data else list(saved["data"]["paths"])
    if not paths:  # an imported run given only --scale-factor
        raise SketchRNNError(f"{run_dir}: the run records no training data; give --data DATA.npz")
    return RunConfig(run_dir, paths, hps.replace(**changes), int(saved["seed"]), saved["run_id"],
                     previous, history)


def _path_changes(run_dir: Path, previous: ckpt_io.Checkpoint, hps: HParams,
                  changes: dict[str, Any], allowed: Collection[str]) -> list[dict]:
    """The run's path-change history plus this resume's changes of a `PATH_FIELDS` field.

    Why refuse by default: batching and precision change no weight's shape, so a typo or
    another machine's default would otherwise silently end the exact resume.
    """
    history = list(previous.state.get("path_changes", []))
    for name, flag in PATH_FIELDS.items():
        old, new = getattr(hps, name), changes.get(name, getattr(hps, name))
        if new == old:
            continue
        if name not in allowed:
            raise SketchRNNError(f"{run_dir}: cannot change {name} of an existing run "
                                 f"({old} -> {new}) unless asked for with {flag}")
        history.append({"step": previous.step, "field": name, "from": old, "to": new})
    return history


def _differs_from_preset(hps: HParams, preset_name: str, changes: dict[str, Any]) -> bool:
    same_target = {**changes, "num_steps": hps.num_steps}
    return preset(preset_name).replace(**same_target) != hps.replace(**same_target)


class Trainer:
    """Holds one run's model, data and callbacks; `fit()` trains to hps.num_steps."""

    def __init__(self, config: RunConfig, progress: bool = True,
                 dist: distribute.Distribution | None = None,
                 after_save: Callable[["Trainer", int], None] | None = None) -> None:
        """`after_save(trainer, step)` runs after each checkpoint on the chief (the CLI draws
        sample sketches there); it must not change any variable of the model."""
        self.config = config
        self.after_save = after_save
        self.hps = config.hps
        self.dist = dist or distribute.single_device()
        self.progress = progress and self.dist.is_chief
        self.dist.check_batch(self.hps.batch_size)
        configure_determinism(config.seed)
        self.data = load_data(config.data_paths, self.hps.max_seq_len)
        self._check_data()
        with self.dist.scope():
            self.model = build_model(self.hps, config.seed, self.dist.make_optimizer(self.hps))
        self.dist.prepare(self.model)
        self.writer = ckpt_io.CheckpointWriter(config.run_dir, self.hps.keep_checkpoints)
        self.lr_callback, self.kl_callback = self._restore()
        self.stop = StopSignal()
        self.logger = None  # a TrainingLogger while fit() runs

    # ----------------------------------------------------------------- restore
    def _check_data(self) -> None:
        prev = self.config.resume_from
        if prev is not None and prev.state["data"]["fingerprint"] not in (None, self.data.fingerprint):
            raise SketchRNNError(
                f"{self.config.run_dir}: --data {' '.join(self.config.data_paths)} is not the data "
                f"this run was trained on ({' '.join(prev.state['data']['paths'])})")

    def _restore(self) -> tuple[LearningRateSchedulerPerBatch, KLWeightScheduler]:
        prev, run_id = self.config.resume_from, self.config.run_id
        lr_schedule, kl_schedule = learning_rate_schedule(self.hps), kl_weight_schedule(self.hps)
        if self.dist.is_chief:  # unreadable checkpoints past the resume point move aside
            ckpt_io.quarantine_newer(self.config.run_dir, prev.step if prev else -1)
        if prev is None:
            return (LearningRateSchedulerPerBatch(lr_schedule, run_id),
                    KLWeightScheduler(kl_schedule, run_id))
        distribute.check_resume(prev.state.get("distribute"), self.dist)
        self.model.load_weights(str(prev.path / ckpt_io.WEIGHTS))
        saved = ckpt_io.load_callbacks(prev)
        lr_cb, kl_cb = saved.get("lr_scheduler"), saved.get("kl_scheduler")
        for name, cb, cls in (("lr_scheduler", lr_cb, LearningRateSchedulerPerBatch),
                              ("kl_scheduler", kl_cb, KLWeightScheduler)):
            if not isinstance(cb, cls):
                raise SketchRNNError(f"{prev.path / ckpt_io.CALLBACKS}: no {name} callback")
            if cb.run_id != run_id:
                raise SketchRNNError(f"{prev.path / ckpt_io.CALLBACKS}: {name} belongs to another "
                                     f"run ({cb.run_id or '?'}, this run is {run_id})")
        if lr_cb.schedule != lr_schedule or kl_cb.schedule != kl_schedule:
            log.warning("the schedules changed with the hparams; continuing from the saved counts "
                        "with the new schedules")
            lr_cb.schedule, kl_cb.schedule = lr_schedule, kl_schedule
        fp = ckpt_io.fingerprint(self.model)
        if fp != prev.state.get("fingerprint"):
            raise SketchRNNError(f"{prev.path}: restored variables do not match the saved fingerprint")
        log.info(f"resuming {self.config.run_dir} from {prev.name} (step {prev.step})")
        return lr_cb, kl_cb

    # ----------------------------------------------------------------- saving
    @property
    def step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def state(self, step: int, valid: dict[str, float]) -> dict[str, Any]:
        return {
            "format": ckpt_io.FORMAT_VERSION,
            "step": step,
            "seed": self.config.seed,
            "run_id": self.config.run_id,
            "rng": "batches: numpy default_rng([seed, step]); model draws keyed by (seed, step)",
            "data": {"paths": self.config.data_paths, "fingerprint": self.data.fingerprint,
                     "scale_factor": self.data.scale_factor, "categories": self.data.categories},
            "hparams": self.hps.to_dict(),
            "params": ckpt_io.count_params(self.model),
            "fingerprint": ckpt_io.fingerprint(self.model),
            "learning_rate": self.lr_callback.current,
            "kl_weight": self.kl_callback.current,
            "valid": valid,
            "valid_cost": valid.get("cost"),
            "versions": {"keras": keras.__version__, "backend": keras.backend.backend()},
            "distribute": self.dist.describe(),
            "machine": describe_machine(),
            **({"path_changes": self.config.path_changes}
               if self.config.path_changes else {}),
            **({"lineage": prev.state["lineage"]} if (prev := self.config.resume_from)
               and prev.state.get("lineage") else {}),
        }

    def save(self, step: int) -> Path | None:
        if not self.dist.is_chief:  # the chief alone writes checkpoints
            return None
        valid = evaluate_split(self.model, self.data.valid, self.hps) if len(self.data.valid) else {}
        callbacks = {"lr_scheduler": self.lr_callback, "kl_scheduler": self.kl_callback}
        try:
            path = self.writer.write(step, self.model, callbacks, self.state(step, valid))
        except StorageError as e:
            newest = ckpt_io.newest_checkpoint(self.config.run_dir, warn=False)
            raise StorageError(
                f"{e}; checkpoint of step {step} not saved, "
                f"{newest.name if newest else 'no checkpoint'} is intact: make room (or make "
                "the run directory writable) and run the same command again to resume") from None
        if self.logger is not None:
            self.logger.log_save(step, path, valid)
        if self.after_save is not None and self.dist.kind == "none":
            self.after_save(self, step)
        return path

    # ----------------------------------------------------------------- training
    def _progress_note(self) -> str:
        newest = ckpt_io.newest_checkpoint(self.config.run_dir, warn=False)
        return (f"after step {self.step} (newest complete checkpoint: "
                f"{newest.name if newest else 'none'})")

    def fit(self) -> int:
        """Train to hps.num_steps; returns the process exit code (130/143 after a signal)."""
        start, stop = self.step, self.hps.num_steps
        if start >= stop:
            log.info(f"{self.config.run_dir}: already at step {start} of {stop}; nothing to do")
            return 0
        from .progress import TrainingLogger

        with self.stop, self.dist.failure_guard(self._progress_note):
            self.dist.check_same_start({"step": start, "seed": self.config.seed,
                                        "data": self.data.fingerprint[:16],
                                        "weights": ckpt_io.fingerprint(self.model)[:16]})
            self.logger = TrainingLogger(self.dist.log_dir(self.config.run_dir), start, stop,
                                         self.lr_callback, self.kl_callback, progress=self.progress)
            saver = CheckpointCallback(self.save, self.hps.save_every, stop, self.stop)
            agree = self.dist.stop_callbacks(self.stop)
            stream = TrainStream(self.data.train, self.hps, self.config.seed, start, stop)
            try:
                self.model.fit(stream.fit_input(self.model), epochs=1, verbose=0, shuffle=False,
                               callbacks=[self.lr_callback, self.kl_callback, *agree, saver,
                                          self.logger])
            finally:
                self.logger.close()
                self.logger = None
        return self.stop.exit_code
