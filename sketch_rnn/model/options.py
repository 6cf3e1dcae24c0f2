"""FastPath: the switches of the fast paths, given to the cells (never module globals).

They change speed and memory only, never the numbers a model computes (the tests compare
each setting with the plain one), so they are not hparams and are not saved with a run.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FastPath:
    """How the recurrent loops run.

    xla_loops: compile the fused LSTM loops with XLA on TensorFlow (element-wise ops of a
        step fused into a few kernels; the big weight-gradient matmuls stay on oneDNN).
    encoder_recompute: rebuild the encoder's gates in its backward pass instead of keeping
        them through the decoder's backward (two more matmuls, ~200 MB less at `paper`).
    use_cudnn: run a dropout-free decoder LSTM as `keras.layers.LSTM` (cuDNN on a
        TensorFlow GPU); None decides by backend and devices, True/False force it.
    """

    xla_loops: bool = True
    encoder_recompute: bool = True
    use_cudnn: bool | None = None

    def cudnn(self) -> bool:
        """Whether the decoder LSTM without dropout runs as keras.layers.LSTM."""
        if self.use_cudnn is not None:
            return self.use_cudnn
        import keras

        if keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))


DEFAULT = FastPath()
