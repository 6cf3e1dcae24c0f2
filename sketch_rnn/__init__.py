"""Sketch-RNN (Ha & Eck 2017) in Keras 3.

The package is layered (ARCHITECTURE.md): core -> data, quickdraw -> model ->
(evaluation.losses) -> training -> generation -> evaluation -> serving -> cli. Importing it
is cheap: Keras and TensorFlow are imported only by the model layer and whatever loads a
model, so `convert`, `download` and `stats` start fast.
"""
__version__ = "0.1.0"
