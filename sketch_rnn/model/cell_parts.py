"""What the three recurrent cells share: initialiser, layer norm, the normalised update, the
generic time loop and the cell protocol mixins (`cells` says what the protocol is).

Kept apart from `cells` so that each cell class reads on its own and the shared pieces have
one home; nothing here knows which cell uses it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import keras
from keras import ops

from .backend import Tensor, scan

FORGET_BIAS = 1.0
LN_EPSILON = 1e-3  # Magenta's layer-norm epsilon


class GatewiseOrthogonal(keras.initializers.Initializer):
    """Orthogonal init of each gate's (u, u) block of a recurrent kernel (u, gates*u).

    Magenta initialises W_hh gate by gate; one orthogonal (u, 4u) matrix would not make
    each gate's own map orthogonal.
    """

    def __init__(self, gates: int = 4, seed: int | keras.random.SeedGenerator | None = None):
        self.gates = gates
        self.seed = seed if not isinstance(seed, int) else keras.random.SeedGenerator(seed)

    def __call__(self, shape, dtype=None):
        rows, cols = shape
        block = cols // self.gates
        ortho = keras.initializers.Orthogonal(seed=self.seed)
        return ops.concatenate([ortho((rows, block), dtype=dtype) for _ in range(self.gates)],
                               axis=1)

    def get_config(self) -> dict:
        return {"gates": self.gates}


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, groups: int = 1) -> Tensor:
    """Normalise each of `groups` equal chunks of the last axis (Magenta's layer_norm_all)."""
    width = x.shape[-1]
    xg = ops.reshape(x, (-1, groups, width // groups))  # (B, groups, u)
    mean = ops.mean(xg, axis=-1, keepdims=True)
    centred = xg - mean
    var = ops.mean(ops.square(centred), axis=-1, keepdims=True)
    normed = ops.reshape(centred * ops.rsqrt(var + LN_EPSILON), (-1, width))
    return normed * gamma + beta


def split4(x: Tensor) -> list[Tensor]:
    return ops.split(x, 4, axis=-1)


def normalised_update(cell: keras.layers.Layer, pre: Tensor, c: Tensor,
                      keep_t: Tensor | None) -> tuple[Tensor, Tensor]:
    """The layer-norm LSTM's (and HyperLSTM's) update from gate pre-activations (B, 4u):
    layer norm per gate, recurrent dropout on g, layer norm on c before its tanh."""
    pre = layer_norm(pre, cell.ln_gamma, cell.ln_beta, groups=4)
    i, f, g, o = split4(pre)
    g = ops.tanh(g)
    if keep_t is not None:
        g = g * keep_t
    c = ops.sigmoid(f + FORGET_BIAS) * c + ops.sigmoid(i) * g
    h = ops.sigmoid(o) * ops.tanh(layer_norm(c, cell.ln_c_gamma, cell.ln_c_beta))
    return h, c


def scan_sequence(step: Callable, xp: Tensor, states: tuple, keep: Tensor | None = None
                  ) -> tuple[Tensor, tuple]:
    """Run `step` over time-major `xp` (N, B, P); autodiff gives the backward.

    Returns (hs (N, B, u), final states). `keep` is the recurrent-dropout multiplier per
    step (N, B, u) or None.
    """
    xs = (xp,) if keep is None else (xp, keep)

    def body(carry, x):
        h, new_states = step(x[0], carry, x[1] if keep is not None else None)
        return new_states, (h,)

    final, (hs,) = scan(body, tuple(states), xs, [states[0].shape])
    return hs, final


class SequenceCellMixin:
    """The protocol shared by all cells (see module docstring)."""

    units: int

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.units, self.units)

    @property
    def input_width(self) -> int:
        """Width P of one step's precomputed input projection."""
        return 4 * self.units

    def zero_state(self, batch_size: int) -> tuple:
        return tuple(ops.zeros((batch_size, n)) for n in self.state_sizes)

    def sequence(self, xp: Tensor, states: Sequence, keep: Tensor | None = None
                 ) -> tuple[Tensor, tuple]:
        """xp (N, B, P) -> (hs (N, B, u), final states); keep: dropout multiplier (N, B, u)."""
        return scan_sequence(self.step, xp, tuple(states), keep)

    def run(self, x_seq: Tensor, z: Tensor | None, states: Sequence, mask: Tensor | None = None,
            keep_prob: float = 1.0, x_grad: bool = False) -> tuple[Tensor, tuple]:
        """x_seq (N, B, d) [+ z (B, D-d) for every step] -> (hs (N, B, u), final states).

        mask (N, B, u) bool: recurrent dropout keeps g where True (scaled by 1/keep_prob).
        """
        keep = None if mask is None else ops.cast(mask, "float32") / keep_prob
        return self.sequence(self.input_projection(x_seq, z), states, keep)


class StandaloneCallMixin:
    """`call` for the cells that are plain Keras layers (usable alone, as in tests)."""

    def call(self, x):
        """x (B, T, D) -> hs (B, T, u), zero initial state, no dropout (standalone use)."""
        xp = self.input_projection(ops.transpose(x, (1, 0, 2)))
        hs, _ = self.sequence(xp, self.zero_state(ops.shape(x)[0]))
        return ops.transpose(hs, (1, 0, 2))
