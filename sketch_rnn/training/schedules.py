"""The learning-rate and KL-weight schedules of the original, as picklable objects.

They are plain frozen dataclasses (not lambdas or closures) so that the
callbacks holding them can be pickled with every checkpoint and compared on
resume (a saved schedule that differs from the run's hparams is replaced, with
a warning).
Both are computed in float64 from the integer step, so the value for a step
never depends on how many steps ran before it in this process.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.hparams import HParams


@dataclass(frozen=True)
class LearningRateDecay:
    """lr(step) = (lr0 - lr_min) * decay_rate^step + lr_min."""

    initial: float
    minimum: float
    decay_rate: float

    def __call__(self, step: int) -> float:
        return (self.initial - self.minimum) * self.decay_rate ** int(step) + self.minimum


@dataclass(frozen=True)
class KLWeightAnnealing:
    """w_KL(step) = kl_weight - (kl_weight - kl_weight_start) * kl_decay_rate^step."""

    final: float
    start: float
    decay_rate: float

    def __call__(self, step: int) -> float:
        return self.final - (self.final - self.start) * self.decay_rate ** int(step)


def learning_rate_schedule(hps: HParams) -> LearningRateDecay:
    return LearningRateDecay(hps.learning_rate, hps.min_learning_rate, hps.decay_rate)


def kl_weight_schedule(hps: HParams) -> KLWeightAnnealing:
    return KLWeightAnnealing(hps.kl_weight, hps.kl_weight_start, hps.kl_decay_rate)
