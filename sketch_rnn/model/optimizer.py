"""The one optimizer, and its clipping under tf.distribute.

The optimizer is built here only: Adam with Magenta's epsilon and value clipping. Under
tf.distribute Keras would clip each replica's partial gradient before summing them, which
changes what clipping means with R replicas, so there the sum comes first
(`ClipAfterAllReduceAdam`). Which rows of a global batch a replica holds (so that its
random draws match one device's) is `backend.replica_slot`.
"""
from __future__ import annotations

from typing import Any

import keras

from ..core.hparams import HParams

ADAM_EPSILON = 1e-8  # Magenta's (TF1 AdamOptimizer's default); Keras' default is 1e-7


class ClipAfterAllReduceAdam(keras.optimizers.Adam):
    """Adam whose `clipvalue` applies to the all-reduced gradient, as it does on one device."""

    def _clip_gradients(self, grads: list[Any]) -> list[Any]:
        return grads  # see _all_reduce_sum_gradients

    def _all_reduce_sum_gradients(self, grads_and_vars: Any) -> list[tuple[Any, Any]]:
        reduced = list(super()._all_reduce_sum_gradients(grads_and_vars))
        clipped = super()._clip_gradients([g for g, _ in reduced])
        return [(g, v) for g, (_, v) in zip(clipped, reduced)]


def make_optimizer(hps: HParams, distributed: bool = False) -> keras.optimizers.Optimizer:
    """Adam(learning_rate, clipvalue=grad_clip, epsilon=1e-8); the LR callback sets the rate."""
    cls = ClipAfterAllReduceAdam if distributed else keras.optimizers.Adam
    return cls(learning_rate=hps.learning_rate, clipvalue=hps.grad_clip, epsilon=ADAM_EPSILON)
