"""The public Python API: `train`, `load`, and what they return (`sketch_rnn.train` etc.).

`train` runs `sketch-rnn train` in the calling process (`run`); `load` gives a `Model` that
samples, encodes, reconstructs, interpolates, completes and evaluates (`model`); the sketches
it returns draw inline in a notebook and save as SVG, PNG, GIF or .npz (`sketches`). The CLI's
handlers call these functions: one path, not two. Importing this package imports no
TensorFlow; each call imports what it needs.
"""
from .model import Model, load
from .run import TrainResult, train
from .sketches import Completion, Sketches

__all__ = ["Completion", "Model", "Sketches", "TrainResult", "load", "train"]
