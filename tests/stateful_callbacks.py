"""Callbacks for the tests of any callback resumed exactly (test_callbacks_resume): a
user-defined stateful one, a Ctrl-C at a chosen step, and `make`, the `--callback` target.

Written as a user would write them: nothing here knows how checkpoints store them.
"""
from __future__ import annotations

import os
import signal

import keras

PERIOD = 7  # batches per w_KL cycle: not a divisor of save_every, so a restart shows


class CyclicalKL(keras.callbacks.Callback):
    """A per-batch cyclical w_KL (Fu et al. 2019's schedule, linear ramp): its position in
    the cycle `t` lives only here, so a resume that forgets it trains another w_KL. It also
    keeps every epoch's validation cost it was shown."""

    def __init__(self, period: int = PERIOD) -> None:
        super().__init__()
        self.period = period
        self.t = 0
        self.seen: list = []  # (epoch, val_cost) at each on_epoch_end

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self.model.kl_weight.assign(0.1 + 0.9 * (self.t % self.period) / self.period)

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.t += 1

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seen.append([epoch, logs["val_cost"]])


class SigintAt(keras.callbacks.Callback):
    """Presses Ctrl-C (SIGINT to this process) after the step numbered `at`. Stateless by
    the state protocol (`state_dict` is empty), so the uninterrupted run may carry one too."""

    def __init__(self, at: int | None = None) -> None:
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None) -> None:
        if self.at is not None and int(self.model.optimizer.iterations.numpy()) == self.at:
            os.kill(os.getpid(), signal.SIGINT)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def make(stop_at: int | None = None) -> list[keras.callbacks.Callback]:
    """The callbacks of every evidence run: ours, Keras' EarlyStopping (stops at the third
    validation: min_delta so large that only the first counts as an improvement, patience
    2) with restore_best_weights, and ReduceLROnPlateau with patience and cooldown."""
    return [CyclicalKL(),
            keras.callbacks.EarlyStopping(monitor="val_cost", patience=2, min_delta=1e3,
                                          restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor="val_cost", patience=1, min_delta=1e3,
                                              cooldown=1, factor=0.5),
            SigintAt(stop_at)]
