"""The training loop around `model.fit`: one run's model, data and callbacks, trained to
hps.num_steps, saving checkpoints as it goes.

What the run is (new or resumed, its hparams, seed and lineage) is decided before, by
`run_state.plan_run`; restoring a resumed run's variables and callbacks and what each
checkpoint's state.json holds are `run_state`'s too; several devices are `distribute`'s
(the trainer calls its `build_model`, `fitting`, `log_dir` and `describe`).

Exactness rests on three facts (ARCHITECTURE.md, "Determinism"): batch `i` of the data
stream is `train_batch(seed, i)`, a pure function; every random draw inside a step is a
function of (seed, optimizer.iterations) (the model re-seeds its generator each step, so no
RNG state needs saving); and everything else that changes during training — model and
optimizer variables, every callback's state — is in the checkpoint. With
TensorFlow op determinism on CPU, training to N in one go and training to K, stopping,
resuming to N give the same bits.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np

from ..core import compile_cache
from ..core.errors import SketchRNNError
from ..core.files import StorageError
from ..core.hparams import HParams
from ..core.machine import describe as describe_machine
from ..data import SketchSplit, load_data, step_batch
from ..evaluation.losses import evaluate_split
from ..model import backend
from . import checkpoint as ckpt_io
from . import distribute, run_state
from .callback_state import check_given, name_callbacks
from .callbacks import CheckpointCallback, CheckpointEpochs, StopSignal
from .run_state import RunConfig, plan_run

__all__ = ["RunConfig", "TrainStream", "Trainer", "configure_determinism",
           "per_shape_train_function", "plan_run"]  # plan_run, then Trainer(config).fit()

log = logging.getLogger(__name__)
PREFETCH = 2  # bucketed batches made ahead of the step, by tf.data's thread
ANY_LENGTH = "any length"  # per_shape_train_function's key of the step traced for every T


# --------------------------------------------------------------------------- set-up
def configure_determinism(seed: int) -> None:
    """Seed every global RNG and ask TensorFlow for deterministic kernels."""
    keras.utils.set_random_seed(seed)
    if backend.is_tensorflow():
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
        the model gets a train function traced once, before the first step, for every
        bucket's length (`per_shape_train_function`).
        JAX's fit jit-compiles per input shape by itself.
        """
        if not self.hps.bucketed_batches or not backend.is_tensorflow():
            return self
        import tensorflow as tf

        b = self.hps.batch_size
        spec = {"strokes": tf.TensorSpec((b, None, 5), tf.float32),  # (B, T+1, 5)
                "lengths": tf.TensorSpec((b,), tf.int32)}
        items = tf.data.Dataset.from_generator(lambda: (self[i] for i in range(len(self))),
                                               output_signature=spec)
        model.train_function = per_shape_train_function(model, b if len(self.split) else None)
        items = items.apply(tf.data.experimental.assert_cardinality(len(self)))  # fit's steps
        # a fixed buffer, tf.data's autotuning off: a batch takes milliseconds to make, and
        # with autotuning on, deleting the iterator when fit ends sometimes waited for its
        # model thread (up to its 60 s optimisation period: 16-36 s seen after 750 steps)
        options = tf.data.Options()
        options.autotune.enabled = False
        return items.prefetch(PREFETCH).with_options(options)


def per_shape_train_function(model: keras.Model, batch_size: int | None = None
                             ) -> Callable[[Any], Any]:
    """A Keras (TensorFlow) train function for batches of several lengths (the buckets).

    Keras' own wraps its step in tf.function(reduce_retracing=True) and infers its input
    spec from the first items; here each batch is pulled eagerly and run by Keras' one-step
    function (`keras_one_step`), so the numbers are Keras' own.

    `batch_size`, the buckets' B: on one device the step is traced once, now, for strokes
    (B, T+1, 5) with the time dimension None (after
    `backend.align_trace_names`, so its programs get the same names, hence the same
    compile-cache keys, in every process of the run): one trace and one grappler pass serve
    every bucket, and XLA compiles the recurrent loops once per length at that length's
    first step (loading them from `core.compile_cache` where an earlier process stored
    them). The model's loops read T from the tensors (`ops.shape`), so a length's step
    computes exactly what a graph traced for that length alone computes (the same bits:
    `tests/test_bucketing.py`). Without `batch_size`, or under tf.distribute, a graph is traced
    per shape at its first batch. `model.trace_count` is TensorFlow's count of the traces
    made so far (tests check it).
    """
    functions: dict[Any, Any] = {}  # shape key (or "any length") -> its tf.function
    model.trace_count = 0
    strategy = model.distribute_strategy
    if batch_size and strategy.num_replicas_in_sync == 1 and backend.is_tensorflow():
        import tensorflow as tf

        backend.align_trace_names()
        step = functions[ANY_LENGTH] = keras_one_step(model)
        b = int(batch_size)
        step.get_concrete_function({"strokes": tf.TensorSpec((b, None, 5), tf.float32),
                                    "lengths": tf.TensorSpec((b,), tf.int32)})
        model.trace_count = step.experimental_get_tracing_count()

    def shape_key(data: Any) -> tuple:
        import tensorflow as tf

        return tuple(tuple(strategy.experimental_local_results(v)[0].shape)
                     for v in tf.nest.flatten(data))

    def train_function(iterator: Any) -> Any:
        data = next(iterator)  # StopIteration / OutOfRangeError end fit's epoch, as in Keras
        key = ANY_LENGTH if ANY_LENGTH in functions else shape_key(data)
        if key not in functions:
            functions[key] = keras_one_step(model)
        logs = functions[key](data)
        model.trace_count = sum(f.experimental_get_tracing_count() for f in functions.values())
        return logs

    return train_function


def keras_one_step(model: keras.Model) -> Any:
    """Keras' one training step on one batch as a tf.function of its own (what
    `model._make_function(model.train_step)` runs for each item of an eager iterable: the
    strategy's run of train_step, its outputs reduced over replicas), here so that it can
    be traced before its first call."""
    import tensorflow as tf
    from keras.src.backend.tensorflow.trainer import reduce_per_replica

    strategy = model.distribute_strategy

    @tf.autograph.experimental.do_not_convert
    def one_step_on_data(data: Any) -> Any:
        outputs = strategy.run(model.train_step, args=(data,))
        return reduce_per_replica(outputs, strategy, reduction="auto")

    return tf.function(one_step_on_data, reduce_retracing=True, jit_compile=model.jit_compile)


# --------------------------------------------------------------------------- the loop
class Trainer:
    """Holds one run's model, data and callbacks; `fit()` trains to hps.num_steps.

    After `fit()`, `outcome` says how it ended: "done" (reached num_steps), "early_stop" (a
    callback stopped training, now or in an earlier run; saved), "interrupted" (SIGINT or
    SIGTERM; saved) or "nothing_to_do" (already at num_steps).
    """

    def __init__(self, config: RunConfig, progress: bool = True,
                 dist: distribute.Distribution | None = None,
                 after_save: Callable[["Trainer", int], None] | None = None,
                 callbacks: Sequence[keras.callbacks.Callback] = ()) -> None:
        """`after_save(trainer, step)` runs after each checkpoint on the chief (the CLI draws
        sample sketches there, on one device only); it must not change any variable of the
        model. `callbacks` run in the fit loop after our schedules, one Keras epoch per
        checkpoint interval (`CheckpointEpochs`); these instances receive the saved state on
        a resume and are saved in every checkpoint."""
        self.config = config
        self.after_save = after_save
        self.hps = config.hps
        self.dist = dist or distribute.single_device()
        self.progress = progress and self.dist.is_chief
        check_given(callbacks)
        if callbacks and self.dist.workers > 1:
            raise SketchRNNError("callbacks: not supported with several workers (the chief "
                                 "alone validates, so the workers' callbacks would disagree)")
        named = name_callbacks(callbacks)
        self.outcome: str | None = None
        configure_determinism(config.seed)
        self.data = load_data(config.data_paths, self.hps.max_seq_len)
        run_state.check_data(config, self.data)
        self.model = self.dist.build_model(self.hps, config.seed)
        self.writer = ckpt_io.CheckpointWriter(config.run_dir, self.hps.keep_checkpoints)
        self.machine = _machine()  # the same for every checkpoint of this process
        self.lr_callback, self.kl_callback, states = run_state.restore(
            config, self.model, self.dist, named)
        self.callbacks = {"lr_scheduler": self.lr_callback, "kl_scheduler": self.kl_callback,
                          **named}  # name -> callback, in the order they run
        self.epochs = CheckpointEpochs(self.callbacks, states, self.hps.save_every)
        self.stop = StopSignal()
        self.logger = None  # a TrainingLogger while fit() runs
        self.names_aligned = False  # align_trace_names at this process's first save

    @property
    def step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    # ----------------------------------------------------------------- saving
    def save(self, step: int) -> Path | None:
        """Validate, let the callbacks see it when `step` ends a checkpoint interval (or the
        run), and write the checkpoint with every callback's state."""
        if not self.dist.is_chief:  # the chief alone writes checkpoints
            return None
        started = time.perf_counter()
        if not self.names_aligned:  # validation's graph and the sampler are traced next:
            backend.align_trace_names()  # their compiled programs named alike in every process
            self.names_aligned = True
        valid = evaluate_split(self.model, self.data.valid, self.hps) if len(self.data.valid) else {}
        if step % self.hps.save_every == 0 or step >= self.hps.num_steps:
            self.epochs.epoch_end(step, valid)  # not a save forced by a signal
        stopped = self.epochs.stopped_by
        state = run_state.build_state(
            step=step, seed=self.config.seed, run_id=self.config.run_id,
            data=run_state.data_record(self.config.data_paths, self.data), hps=self.hps,
            model=self.model, learning_rate=self.lr_callback.current,
            kl_weight=self.kl_callback.current, valid=valid, distribute=self.dist.describe(),
            history=self.config.lineage, machine=self.machine,
            early_stop={"step": step, "callback": stopped} if stopped else None)
        try:
            path = self.writer.write(step, self.model, self.callbacks, state)
        except StorageError as e:
            newest = ckpt_io.newest_checkpoint(self.config.run_dir, warn=False)
            raise StorageError(
                f"{e}; checkpoint of step {step} not saved, "
                f"{newest.name if newest else 'no checkpoint'} is intact: make room (or make "
                "the run directory writable) and run the same command again to resume") from None
        if self.logger is not None:
            self.logger.log_save(step, path, valid)
        if self.after_save is not None:
            self.after_save(self, step)
        compile_cache.publish()  # the programs compiled so far, for this run's next start
        if self.logger is not None:  # the progress bar's rate counts training steps only
            self.logger.exclude_from_rate(time.perf_counter() - started)
        return path

    # ----------------------------------------------------------------- training
    def _progress_note(self) -> str:
        newest = ckpt_io.newest_checkpoint(self.config.run_dir, warn=False)
        return (f"after step {self.step} (newest complete checkpoint: "
                f"{newest.name if newest else 'none'})")

    def _start_facts(self) -> dict[str, Any]:
        """What every worker must agree on before the first step (`Distribution.fitting`)."""
        return {"step": self.step, "seed": self.config.seed, "data": self.data.fingerprint[:16],
                "weights": ckpt_io.fingerprint(self.model)[:16]}

    def _saved_early_stop(self, start: int) -> str | None:
        """The callback that stopped the run at `start`, unless this resume let it go
        (removed or replaced with --allow-callback-change)."""
        early = self.config.saved.early_stop if self.config.saved else None
        if early is None or early["step"] != start:
            return None
        for entry in self.config.lineage:
            if (entry.get("kind") == "callback_change" and entry.get("step") == start
                    and early["callback"] in entry["removed"] + entry["replaced"]):
                return None
        return early["callback"]

    def fit(self) -> int:
        """Train to hps.num_steps; returns the process exit code (130/143 after a signal,
        0 otherwise: see `outcome`)."""
        start, stop = self.step, self.hps.num_steps
        early = self._saved_early_stop(start)
        if early is not None:
            log.info(f"{self.config.run_dir}: stopped early at step {start} by {early}; nothing "
                     f"to do (to train on, resume without {early} and --allow-callback-change)")
            self.outcome = "early_stop"
            return 0
        if start >= stop:
            log.info(f"{self.config.run_dir}: already at step {start} of {stop}; nothing to do")
            self.outcome = "nothing_to_do"
            return 0
        from .progress import TrainingLogger

        with self.stop, self.dist.fitting(self.stop, self._start_facts,
                                          self._progress_note) as agree:
            self.logger = TrainingLogger(self.dist.log_dir(self.config.run_dir), start, stop,
                                         self.lr_callback, self.kl_callback, progress=self.progress)
            saver = CheckpointCallback(self.save, self.hps.save_every, stop, self.stop)
            stream = TrainStream(self.data.train, self.hps, self.config.seed, start, stop)
            try:
                self.model.fit(stream.fit_input(self.model), epochs=1, verbose=0, shuffle=False,
                               callbacks=[self.epochs, *agree, saver, self.logger])
            finally:
                self.logger.close()
                self.logger = None
        if self.stop.received is not None:
            self.outcome = "interrupted"
        elif self.epochs.stopped_by is not None:
            self.outcome = "early_stop"
            log.info(f"stopped early at step {self.step} by {self.epochs.stopped_by}; saved")
        else:
            self.outcome = "done"
        return self.stop.exit_code


def _machine() -> dict[str, Any]:
    """The machine a checkpoint records: CPU, cores, OS, and the accelerators where there are."""
    machine = describe_machine()
    found = backend.accelerators()
    if found:
        machine["accelerators"] = found
    return machine
