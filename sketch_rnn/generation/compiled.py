"""One compiled graph per (model, variant), kept on the model.

The sampler, the completion's teacher-forced prefix and the one-step reference all run as
compiled functions of a model (XLA on TensorFlow, jax.jit on JAX: `model.backend.compile_fn`);
the encoder (`encoder`) and evaluate's teacher-forced view as plain graphs, which keep the
eager numbers. Building one costs seconds, so each is built on first use and kept on the
model itself (`model.backend.compiled`, which validation uses too).
"""
from __future__ import annotations

from typing import Any, Callable

from ..model.backend import compiled

__all__ = ["compiled", "encoder"]  # compiled: the cache itself lives in model.backend


def encoder(model: Any) -> Callable:
    """model.encode as a graph: (strokes (B, N_max+1, 5), lengths (B,)) -> (mu, presig).

    `evaluate` encodes every sketch of a split five times (the split and each temperature's
    reconstructions); an eager pass makes one framework call per point and per direction,
    about five times the graph's time once it is built (about a second). A plain graph, not
    XLA: mu is then bit for bit the eager model.encode's (XLA's bf16 matmuls moved the shipped
    sheep's mu by up to 0.008, and with it every sampled reconstruction).
    """
    return compiled(model, ("encode",), lambda: model.encode, xla=False)
