"""Stateful training callbacks whose state travels with every checkpoint.

The per-batch learning-rate and KL-weight schedules are functions of a global
batch counter kept *in the callback*. Re-creating such a callback on resume
resets the counter to 0, so the learning rate jumps back to its start and
w_KL back to kl_weight_start: the bug this module exists to avoid. Instead
the callbacks are pickled into every checkpoint (without the model) and
loaded again on resume, and they refuse to run when their counter disagrees
with the optimizer's iteration count, so a pickle from another run or step is
caught before it trains anything.
"""
from __future__ import annotations

import logging
import signal
from typing import Any, Callable

import keras

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


class _PerBatchSchedule(StatefulCallback):
    """Assigns schedule(count) to a variable (see `_target`) before every batch."""

    def __init__(self, schedule: Callable[[int], float], run_id: str = "", count: int = 0) -> None:
        super().__init__(run_id, count)
        self.schedule = schedule
        self.current = float(schedule(count))

    def _target(self) -> Any:
        raise NotImplementedError

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.current = float(self.schedule(self.count))
        self._target().assign(self.current)


class LearningRateSchedulerPerBatch(_PerBatchSchedule):
    """Sets the optimizer's learning rate to schedule(count) before every batch."""

    def _target(self) -> Any:
        return self.model.optimizer.learning_rate


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
        if step % self.save_every == 0 or step >= self.num_steps or stopping:
            self.save(step)
        if stopping:
            self.model.stop_training = True

    def save(self, step: int) -> None:
        if step == self.saved_step:
            return
        self._save(step)
        self.saved_step = step
