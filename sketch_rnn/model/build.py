"""`build_model`: a SketchRNN with every variable (optimizer included) created, ready to load.

Loading weights into a model needs its variables to exist first; Keras creates a model's
on the first call and the optimizer's on `build`, so both happen here, once, on a batch of
one sketch of one point: no variable's shape depends on N_max, and the eager forward pass over
all N_max + 1 points took 2.5 s of every load at N_max = 250 (the result is thrown away).
"""
from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ..core.hparams import HParams
from .backend import DEFAULT, FastPath
from .optimizer import make_optimizer
from .vae import SketchRNN


def build_model(hps: HParams, seed: int, optimizer: keras.optimizers.Optimizer | None = None,
                options: FastPath = DEFAULT) -> Any:
    """A compiled SketchRNN whose variables (optimizer included) all exist, ready to load."""
    model = SketchRNN(hps, seed=seed, options=options)
    model.compile(optimizer=optimizer or make_optimizer(hps))
    model({"strokes": np.zeros((1, 2, 5), "float32"),  # (1, S_0 and one point, 5)
           "lengths": np.ones((1,), "int32")})
    model.optimizer.build(model.trainable_variables)
    return model
