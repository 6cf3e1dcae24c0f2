"""The callbacks of the fit loop: our stateful schedules, the caller's callbacks, saving.

The per-batch learning-rate and KL-weight schedules are functions of a global
batch counter kept *in the callback*. Re-creating such a callback on resume
resets the counter to 0, so the learning rate jumps back to its start and
w_KL back to kl_weight_start: the bug this module exists to avoid. Instead
each callback's state is saved in every checkpoint (`callback_state`) and
loaded again on resume, and the schedules refuse to run when their counter
disagrees with the optimizer's iteration count, so a state from another run or
step is caught before it trains anything.

The caller's callbacks (`Trainer(callbacks=...)`, `--callback MODULE:ATTR` through
`from_spec`) run beside ours in `CheckpointEpochs`, which gives them one Keras epoch
per checkpoint interval with the validation losses as `val_*` logs.
"""
from __future__ import annotations

import importlib
import logging
import math
import os
import signal
import sys
from dataclasses import asdict
from typing import Any, Callable, Mapping

import keras
import numpy as np

from ..core.errors import SketchRNNError

log = logging.getLogger(__name__)


class StatefulCallback(keras.callbacks.Callback):
    """A callback with a global batch counter `count` that pickles without its model."""

    def __init__(self, run_id: str = "", count: int = 0) -> None:
        super().__init__()
        self.run_id = run_id
        self.count = int(count)

    def __getstate__(self) -> dict[str, Any]:
        # Keras keeps the model (and with it every tensor) on the callback; a
        # checkpoint must hold only our own counters and schedule.
        return {k: v for k, v in self.__dict__.items() if k not in ("_model", "params")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._model = None
        self.params = {}

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.check_in_step()

    def check_in_step(self) -> None:
        """Refuse to train when our counter is not the optimizer's iteration count."""
        iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if iterations != self.count:
            raise SketchRNNError(
                f"{type(self).__name__}: its count is {self.count} but the optimizer has run "
                f"{iterations} steps: the callback state belongs to another run or checkpoint")

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds (the `callback_state` protocol)."""
        return {"run_id": self.run_id, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        run_id, count = state.get("run_id"), state.get("count")
        if not isinstance(run_id, str) or not isinstance(count, int) or count < 0:
            raise SketchRNNError(f"{type(self).__name__}: malformed saved state")
        self.run_id, self.count = run_id, count


class _PerBatchSchedule(StatefulCallback):
    """Assigns schedule(count) to a variable (see `_target`) before every batch."""

    def __init__(self, schedule: Callable[[int], float], run_id: str = "", count: int = 0) -> None:
        super().__init__(run_id, count)
        self.schedule = schedule
        self.current = float(schedule(count))

    def _target(self) -> Any:
        raise NotImplementedError

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.current = self._value()
        self._target().assign(self.current)

    def _value(self) -> float:
        return float(self.schedule(self.count))

    def state_dict(self) -> dict[str, Any]:
        # the schedule is the run's hparams' (a resume compares it); current is for state.json
        current = getattr(self, "current", None)  # not in the pickles of the first releases
        current = self._value() if current is None else current
        return {**super().state_dict(), "current": current, "schedule": asdict(self.schedule)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        current = state.get("current", self.schedule(self.count))
        self.current = float(current) if isinstance(current, (int, float)) else self.current


class LearningRateSchedulerPerBatch(_PerBatchSchedule):
    """Sets the optimizer's learning rate to scale * schedule(count) before every batch.

    `scale` (1 unless told) follows what a callback does to the learning rate at an epoch
    end (`rescale`): ReduceLROnPlateau's reduction lasts, under the decay, instead of being
    overwritten at the next batch.
    """

    scale = 1.0  # the class default: checkpoints of before have none

    def _target(self) -> Any:
        return self.model.optimizer.learning_rate

    def _value(self) -> float:
        return self.scale * float(self.schedule(self.count))

    def rescale(self, factor: float) -> None:
        """From the next batch on (`current` stays the last batch's rate, as logged)."""
        self.scale *= factor

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "scale": self.scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        scale = state.get("scale", 1.0)
        if not isinstance(scale, float) or not scale > 0:
            raise SketchRNNError(f"{type(self).__name__}: malformed saved state")
        self.scale = scale


class KLWeightScheduler(_PerBatchSchedule):
    """Sets the model's w_KL variable (`model.kl_weight`) to schedule(count) before every batch."""

    def _target(self) -> Any:
        return self.model.kl_weight


class StopSignal:
    """Turns SIGINT / SIGTERM into a request to stop after the current step.

    The handler only records the signal; the checkpoint callback sees it at
    the end of the step, saves, and stops training. A second Ctrl-C while
    the save is running is ignored so that it cannot tear the checkpoint.
    """

    EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
            name = signal.Signals(signum).name
            log.info(f"\n{name} received: finishing this step, saving, then stopping")

    def __enter__(self) -> "StopSignal":
        for sig in self.EXIT_CODES:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def exit_code(self) -> int:
        return self.EXIT_CODES.get(self.received, 0) if self.received else 0


class CheckpointCallback(keras.callbacks.Callback):
    """Validates and writes a checkpoint every `save_every` steps, at the end, and on a stop signal.

    The article's "ModelCheckpointEnhanced" for Keras 3: `save(step)` (the
    trainer's) stores the pickled stateful callbacks beside model and optimizer,
    so that a resumed run continues every schedule exactly where it stopped.
    """

    def __init__(self, save: Callable[[int], None], save_every: int, num_steps: int,
                 stop: StopSignal | None = None) -> None:
        super().__init__()
        self._save = save
        self.save_every = save_every
        self.num_steps = num_steps
        self.stop = stop
        self.saved_step = -1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        stopping = self.stop is not None and self.stop.received is not None
        # a callback's stop between checkpoints (TerminateOnNaN) is saved as a signal's is
        if (step % self.save_every == 0 or step >= self.num_steps or stopping
                or self.model.stop_training):
            self.save(step)
        if stopping:
            self.model.stop_training = True

    def save(self, step: int) -> None:
        if step == self.saved_step:
            return
        self._save(step)
        self.saved_step = step


class CheckpointEpochs(keras.callbacks.Callback):
    """Runs `callbacks` (name -> callback, ours first) in the fit loop, one Keras epoch per
    checkpoint interval.

    Why not Keras' own epochs: the trainer's one `model.fit` runs from the resume step to
    num_steps, and a resume may start anywhere inside an interval (after a Ctrl-C), while
    Keras' epochs all have one length. Here epoch e covers global steps
    (e * save_every, (e + 1) * save_every]: `on_epoch_begin(e)` runs before the batch at
    step e * save_every, `on_epoch_end(e, logs)` when the trainer validates at the end of
    the interval (or at num_steps), with the last batch's logs and the validation losses as
    `val_*` (`epoch_end`). A save forced by a signal is not an epoch, and an epoch begun
    before a stop is not begun again on resume, so the callbacks see the epochs of an
    uninterrupted run. The batch index they are given is the step's place in its epoch.
    Fit's own single epoch is not passed on.

    A change of the learning rate in `on_epoch_end` (ReduceLROnPlateau's) rescales our
    learning-rate schedule from then on (`LearningRateSchedulerPerBatch.rescale`).

    `states` (name -> saved state) are loaded again after the callbacks' own
    `on_train_begin`: Keras' EarlyStopping and ReduceLROnPlateau reset theirs there.
    `stopped_by` names the first callback that set `model.stop_training`.
    """

    def __init__(self, callbacks: Mapping[str, keras.callbacks.Callback],
                 states: Mapping[str, dict[str, Any]], save_every: int) -> None:
        super().__init__()
        self.callbacks = dict(callbacks)
        self.pending = dict(states)
        self.save_every = save_every
        self.stopped_by: str | None = None
        self.batch_logs: dict[str, Any] = {}

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        for cb in self.callbacks.values():
            cb.set_model(model)

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        for cb in self.callbacks.values():
            cb.set_params(params)

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _each(self, hook: str, *args: Any) -> None:
        """Call `hook` on every callback, noting the first that asks training to stop."""
        for name, cb in self.callbacks.items():
            was = self.model.stop_training
            getattr(cb, hook)(*args)
            if self.model.stop_training and not was and self.stopped_by is None:
                self.stopped_by = name

    def on_train_begin(self, logs: dict | None = None) -> None:
        from .callback_state import load_state

        for cb in self.callbacks.values():
            _minimize_our_losses(cb)
        self._each("on_train_begin", logs)
        for name, state in self.pending.items():
            load_state(self.callbacks[name], state)
        self.pending = {}

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        step = self._step()  # steps done before this batch
        if step % self.save_every == 0:
            self._each("on_epoch_begin", step // self.save_every, None)
        self._each("on_train_batch_begin", step % self.save_every, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.batch_logs = logs or {}
        self._each("on_train_batch_end", (self._step() - 1) % self.save_every, logs)

    def epoch_end(self, step: int, valid: Mapping[str, float]) -> None:
        """The trainer validated at `step`, the end of epoch ceil(step / save_every) - 1."""
        logs = {k: float(np.mean(keras.ops.convert_to_numpy(v))) for k, v in self.batch_logs.items()}
        logs.update({f"val_{k}": float(v) for k, v in valid.items()})
        rate = self.model.optimizer.learning_rate
        before = float(keras.ops.convert_to_numpy(rate))
        self._each("on_epoch_end", math.ceil(step / self.save_every) - 1, logs)
        after = float(keras.ops.convert_to_numpy(rate))
        if after != before:  # ReduceLROnPlateau: our schedule goes on from there
            for cb in self.callbacks.values():
                if isinstance(cb, LearningRateSchedulerPerBatch):
                    cb.rescale(after / before)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._each("on_train_end", logs)


# the losses in our logs (train: cost, recon, kl; validation: val_ + evaluate_split's keys)
MINIMIZED = ("cost", "recon", "stroke", "pen", "kl")


def _minimize_our_losses(callback: keras.callbacks.Callback) -> None:
    """mode "auto" -> "min" for a Keras monitor callback watching one of our losses.

    Keras infers the direction of "loss" and of compiled metrics only, so
    EarlyStopping(monitor="val_cost") would refuse to guess; every loss we log goes down.
    """
    monitor = getattr(callback, "monitor", None)
    if (getattr(callback, "mode", None) == "auto" and isinstance(monitor, str)
            and monitor.removeprefix("val_") in MINIMIZED
            and getattr(callback, "monitor_op", None) is None):
        callback.mode = "min"


def from_spec(spec: str) -> list[keras.callbacks.Callback]:
    """The callbacks of `--callback MODULE:ATTR`: ATTR (dotted) of MODULE (importable from
    the installed packages or the current directory), called without arguments, returns a
    callback or a list of callbacks. Each fault is one line naming the spec."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SketchRNNError(f"--callback {spec}: expected MODULE:ATTRIBUTE, e.g. "
                             "mypackage.callbacks:make_callbacks")
    here = os.getcwd()  # a module beside the user, as `python -m` would find it
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise SketchRNNError(f"--callback {spec}: cannot import {module_name} ({e})") from None
    finally:
        if added:
            sys.path.remove(here)
    for part in attr.split("."):
        if not hasattr(target, part):
            raise SketchRNNError(f"--callback {spec}: {module_name} has no attribute {attr}")
        target = getattr(target, part)
    if not callable(target):
        raise SketchRNNError(f"--callback {spec}: {attr} is not callable")
    made = target()
    made = list(made) if isinstance(made, (list, tuple)) else [made]
    for cb in made:
        if not isinstance(cb, keras.callbacks.Callback):
            raise SketchRNNError(f"--callback {spec}: {attr}() returned {type(cb).__name__}, "
                                 "not a keras.callbacks.Callback (or a list of them)")
    return made
