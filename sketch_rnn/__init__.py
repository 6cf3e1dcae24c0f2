"""Sketch-RNN (Ha & Eck 2017) in Keras 3: train, resume exactly, sample and draw.

    >>> import sketch_rnn
    >>> result = sketch_rnn.train("data/aaron_sheep.npz", "runs/sheep", preset="tiny",
    ...                           num_steps=200)                      # doctest: +SKIP
    >>> model = sketch_rnn.load("runs/sheep")                         # doctest: +SKIP
    >>> model.sample(8, temperature=0.25).save("sheep.svg")          # doctest: +SKIP

`train`, `load` and the types they return (`TrainResult`, `Model`, `Sketches`,
`Completion`) live in `sketch_rnn.api` and are imported on first use, so `import
sketch_rnn` stays cheap: Keras and TensorFlow load only with a model, and `sketch-rnn
convert`, `download`, `stats` and `info` start without them. The package is layered
(ARCHITECTURE.md): core -> data, quickdraw -> model -> (evaluation.losses) -> training ->
generation -> evaluation -> serving -> api -> cli.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Completion", "Model", "Sketches", "TrainResult", "load", "train"]


def __getattr__(name: str) -> Any:
    """`sketch_rnn.train` and friends, imported from `sketch_rnn.api` when first asked for."""
    if name in __all__:
        from . import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sketch_rnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
