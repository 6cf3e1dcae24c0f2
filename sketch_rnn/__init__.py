"""Sketch-RNN (Ha & Eck 2017) in Keras 3.

Importing the package is cheap: TensorFlow/Keras are imported only by the
modules that need a model (model, trainer, sampling, checkpoint), so that
`convert`, `download` and `stats` start fast.
"""
__version__ = "0.1.0"
