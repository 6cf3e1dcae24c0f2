"""Training on several devices and hosts with tf.distribute, keeping the one-device guarantees.

`--distribute mirrored` uses tf.distribute.MirroredStrategy over the local GPUs (or over N
logical CPU devices with `--cpu-devices N`, for testing); `--distribute multi-worker` uses
MultiWorkerMirroredStrategy with the cluster described by TF_CONFIG. What stays as on one
device, and where it is done:

* the global batch is `train_batch(seed, step)`, `hps.batch_size` sketches; Keras' fit hands
  replica r the r-th contiguous slice of it (B/R rows, in order);
* every random draw in the model (z noise, dropout masks) is drawn for the whole global
  batch on each replica, which keeps its own rows (`model.backend.replica_slot`), so each
  sketch sees the numbers one device would give it;
* tf.distribute sums the replicas' gradients, so each replica's loss is its batch mean / R
  (model.compute_loss), and gradient clipping happens after that sum, on the global batch's
  gradient (`model.optimizer.ClipAfterAllReduceAdam`), not on each replica's share;
* only the chief writes checkpoints (the same atomic directories); every worker runs the same
  callbacks, so their counters stay equal, and a stop (Ctrl-C, SIGTERM) on any worker stops all
  of them after the same step (`StopAgreement`), the chief saving it;
* a worker that dies makes the others fail within a health-check interval; they exit with a
  `SketchRNNError` saying so, and the same command on every worker resumes from the newest
  complete checkpoint.

Bitwise equality holds for a resume under the same strategy and replica count (state.json
stores both); the sum order of R partial gradients differs from one device's sum, so a run
on R replicas matches a one-device run to float tolerance, not bit for bit.

The trainer sees one seam: `Distribution.build_model`, `fitting` (around `model.fit`),
`log_dir` and `describe` (what state.json records), and reads `is_chief`; `run_state`
calls `check_resume` on a resume. The rest of this module serves those.

TensorFlow is imported lazily: `--cpu-devices` must be applied before TensorFlow sets up
its devices.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import keras

from ..core.errors import SketchRNNError
from ..core.hparams import HParams
from ..model import backend
from ..model.build import build_model
from ..model.optimizer import make_optimizer
from . import cluster

log = logging.getLogger(__name__)

KINDS = ("mirrored", "multi-worker")
HEALTH_CHECK_ENV = "SKETCH_RNN_HEALTH_CHECK_S"  # seconds between peer checks (default 30)


# --------------------------------------------------------------------------- set-up
@dataclass
class Distribution:
    """The strategy of this process and where it stands in the job."""

    kind: str  # "none" | "mirrored" | "multi-worker"
    strategy: Any  # a tf.distribute.Strategy (the default one for "none")
    replicas: int
    workers: int
    task: str  # "chief" / "worker-1" ...: names this process in messages and log folders
    is_chief: bool
    job: str = ""  # "/job:worker/replica:0/task:1": this process in TensorFlow's messages
    _sum: Any = field(default=None, repr=False)

    # ----------------------------------------------------------------- the trainer's seam
    # The trainer calls build_model, fitting, log_dir and describe (and reads is_chief);
    # everything else here serves those four.
    def build_model(self, hps: HParams, seed: int) -> keras.Model:
        """The run's model and optimizer, built under this strategy and ready for its fit."""
        self.check_batch(hps.batch_size)
        log.info(self.devices_line())
        with self.scope():
            model = build_model(hps, seed, self.make_optimizer(hps))
        self._prepare(model)
        return model

    @contextlib.contextmanager
    def fitting(self, stop: Any, facts: Callable[[], dict[str, Any]],
                where: Callable[[], str]) -> Iterator[list[keras.callbacks.Callback]]:
        """Around one `model.fit`: yields the callbacks to run before the checkpoint callback.

        With several workers: refuses to start unless all start from the same `facts()`
        (`_check_same_start`), yields the stop agreement, and turns a lost peer into one
        clear error saying how far training got (`where()`, `_failure_guard`).
        """
        with self._failure_guard(where):
            if self.workers > 1:
                self._check_same_start(facts())
            yield [StopAgreement(stop, self)] if self.workers > 1 else []

    def devices_line(self) -> str:
        """One line naming the devices this process trains on and the backend, e.g.
        "training on 1 GPU (NVIDIA H100 80GB HBM3) with the jax backend".

        Why: on a GPU machine the CPU-only TensorFlow wheel (x86-64's default install) or a
        missing CUDA library silently trains on the CPU; saying so at the start, with the way
        to the GPU, saves a user hours of a slow run (docs/install.md).
        """
        gpus = backend.accelerators()
        where = (f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({', '.join(sorted(set(gpus)))})"
                 if gpus else "the CPU")
        if self.replicas > 1:
            where += f", {self.replicas} replicas"
        hint = ("; this machine has an NVIDIA GPU: pip install -e '.[gpu]' and KERAS_BACKEND=jax "
                "train on it (docs/install.md)" if not gpus and shutil.which("nvidia-smi") else "")
        return f"training on {where} with the {backend.name()} backend{hint}"

    def log_dir(self, run_dir: Path) -> Path:
        """The chief logs into the run directory; other workers into workers/<task>/."""
        return Path(run_dir) if self.is_chief else Path(run_dir) / "workers" / self.task

    def describe(self) -> dict[str, Any]:
        """What state.json records (a resume compares it: `check_resume`)."""
        return {"kind": self.kind, "replicas": self.replicas, "workers": self.workers}

    # ----------------------------------------------------------------- its parts
    def scope(self) -> Any:
        return self.strategy.scope() if self.kind != "none" else contextlib.nullcontext()

    def make_optimizer(self, hps: HParams) -> keras.optimizers.Optimizer:
        """The project's optimizer; under a strategy it clips after the all-reduce."""
        return make_optimizer(hps, distributed=self.kind != "none")

    def _prepare(self, model: keras.Model) -> None:
        """Work around two gaps of Keras 3.15's fit under MultiWorkerMirroredStrategy.

        1. Before training, fit reduces the first batch across workers to build the model
           symbolically (`_maybe_symbolic_build`); that reduce fails on a dict of PerReplica
           values. build_model has already built every variable (optimizer included), so
           there is nothing to build and the step is skipped.
        2. fit averages each step's logs across workers with reduce(MEAN, axis=0), which
           fails on scalars; the step returns them as (1,) tensors instead, and the mean
           over that axis gives the same scalar.
        """
        if self.workers == 1:
            return
        if not (model.built and model.optimizer.built):
            raise RuntimeError("build the model and its optimizer before training")
        model._maybe_symbolic_build = lambda *args, **kwargs: None
        train_step = model.train_step

        def train_step_with_vector_logs(*args: Any, **kwargs: Any) -> dict[str, Any]:
            logs = train_step(*args, **kwargs)
            return {k: keras.ops.reshape(v, (1,)) for k, v in logs.items()}  # () -> (1,)

        model.train_step = train_step_with_vector_logs

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.replicas:
            raise SketchRNNError(f"batch_size={batch_size} does not split evenly over "
                                 f"{self.replicas} replicas; choose a multiple of {self.replicas}")

    def any_worker(self, flag: bool) -> bool:
        """True on every worker when it is True on any one (a collective: all must call it)."""
        if self.workers == 1:
            return flag
        return self._sum_over_replicas(1.0 if flag else 0.0) > 0

    def _check_same_start(self, facts: dict[str, Any]) -> None:
        """Refuse to train when the workers do not start from the same state.

        Each worker loads its run directory on its own; if they see different checkpoints
        (a --run-dir that is not shared) or different data, mirrored variables would
        silently diverge. A hash of `facts` is summed over the replicas and compared.
        """
        if self.workers == 1:
            return
        text = json.dumps(facts, sort_keys=True)
        digest = int(hashlib.sha256(text.encode()).hexdigest()[:10], 16)  # 40 bits: exact sums
        if self._sum_over_replicas(float(digest)) != digest * self.replicas:
            raise SketchRNNError(
                f"{self.task}: the workers do not start from the same state ({text}); every "
                "worker needs the same command, the same --data and a --run-dir they all see")

    def _sum_over_replicas(self, value: float) -> float:
        """All-reduce (sum) of a float64 over every replica of the job."""
        import tensorflow as tf

        if self._sum is None:  # traced once per distinct value (a stop flag has two)
            def add_up(x: float) -> Any:
                return tf.distribute.get_replica_context().all_reduce(
                    tf.distribute.ReduceOp.SUM, tf.constant(x, tf.float64))

            self._sum = tf.function(lambda x: self.strategy.run(add_up, args=(x,)))
        total = self._sum(value)
        return float(self.strategy.experimental_local_results(total)[0])

    @contextlib.contextmanager
    def _failure_guard(self, where: Callable[[], str]) -> Iterator[None]:
        """A lost peer aborts the collectives: turn that into one clear error.

        `where` says how far training got (called only after a failure).
        """
        if self.workers == 1:
            yield
            return
        import tensorflow as tf

        try:
            yield
        except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError,
                tf.errors.DeadlineExceededError, tf.errors.InternalError) as e:
            peers = set(re.findall(r"/job:\w+/replica:\d+/task:\d+", str(e.message)))
            peers.discard(self.job)
            who = f"worker {', '.join(sorted(peers))}" if peers else "another worker"
            raise SketchRNNError(
                f"multi-worker training stopped on {self.task} {where()}: {who} is gone or "
                f"unreachable ({type(e).__name__}). Restart every worker with the same command: "
                "they resume from the newest complete checkpoint") from None


def single_device() -> Distribution:
    """No tf.distribute: the plain one-device path (its bits are exactly those of before)."""
    return Distribution("none", None, 1, 1, "chief", True)


def setup(kind: str | None, cpu_devices: int | None = None) -> Distribution:
    """The Distribution for `--distribute KIND [--cpu-devices N]`; call before any TF work."""
    if kind is None:
        if cpu_devices:
            raise SketchRNNError("--cpu-devices needs --distribute mirrored")
        return single_device()
    if kind == "mirrored":
        return _mirrored(cpu_devices)
    if kind == "multi-worker":
        if cpu_devices:
            raise SketchRNNError("--cpu-devices applies to --distribute mirrored only "
                                 "(a multi-worker job has one replica per worker and GPU)")
        return _multi_worker()
    raise SketchRNNError(f"--distribute {kind}: choose one of {', '.join(KINDS)}")


def _mirrored(cpu_devices: int | None) -> Distribution:
    import tensorflow as tf

    devices = None
    if cpu_devices is not None:
        if cpu_devices < 1:
            raise SketchRNNError(f"--cpu-devices {cpu_devices}: must be >= 1")
        configure_cpu_devices(cpu_devices)
        devices = [f"/cpu:{i}" for i in range(cpu_devices)]
    elif not tf.config.list_physical_devices("GPU"):
        log.warning("--distribute mirrored found no GPU: one replica on the CPU "
                    "(--cpu-devices N splits the CPU, for testing)")
    strategy = tf.distribute.MirroredStrategy(devices)
    return Distribution("mirrored", strategy, strategy.num_replicas_in_sync, 1, "chief", True)


def configure_cpu_devices(n: int) -> None:
    """Split the CPU into n logical devices; TensorFlow allows this only before it starts."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != n:
            raise SketchRNNError(f"--cpu-devices {n}: TensorFlow's devices are already set up "
                                 "in this process; it must be the first thing configured") from None


def _multi_worker() -> Distribution:
    task_type, task_id, workers = cluster.read_tf_config()
    import tensorflow as tf
    from tensorflow.python.distribute import (
        collective_all_reduce_strategy as collective,
    )

    # A lost peer is noticed by TF's health check, which aborts the pending collectives.
    interval = float(os.environ.get(HEALTH_CHECK_ENV, "30"))
    collective.CollectiveAllReduceExtended._check_health_interval = interval
    collective.CollectiveAllReduceExtended._check_health_timeout = max(1.0, min(10.0, interval))
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    is_chief = cluster.is_chief()
    task = "chief" if is_chief else f"{task_type}-{task_id}"
    return Distribution("multi-worker", strategy, strategy.num_replicas_in_sync, workers, task,
                        is_chief, f"/job:{task_type}/replica:0/task:{task_id}")


# --------------------------------------------------------------------------- training loop
class StopAgreement(keras.callbacks.Callback):
    """After every step, all workers learn whether any of them was asked to stop.

    Put it before the checkpoint callback: a Ctrl-C or SIGTERM seen by one worker is copied
    into every worker's StopSignal, so all stop after the same step and the chief saves it.
    """

    def __init__(self, stop: Any, dist: Distribution) -> None:
        super().__init__()
        self.stop, self.dist = stop, dist

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.dist.any_worker(self.stop.received is not None) and self.stop.received is None:
            self.stop.received = signal.SIGTERM  # a peer's stop: exit as a SIGTERM would
            log.info(f"{self.dist.task}: another worker was asked to stop: finishing this step, "
                     "then stopping")


def check_resume(saved: dict[str, Any] | None, dist: Distribution) -> None:
    """Warn when a run resumes under another strategy or replica count."""
    before = saved or {"kind": "none", "replicas": 1, "workers": 1}
    now = dist.describe()
    if (before.get("kind"), before.get("replicas")) != (now["kind"], now["replicas"]):
        log.warning(f"this run was trained with {_say(before)} and resumes with {_say(now)}: "
                    "training continues, but bitwise equality with an uninterrupted run no "
                    "longer holds")


def _say(d: dict[str, Any]) -> str:
    if d.get("kind", "none") == "none":
        return "one device (no --distribute)"
    return f"--distribute {d['kind']} on {d['replicas']} replica(s)"
