"""Export a trained decoder to the browser: the model JSON of `@magenta/sketch` 0.2.0.

Why a separate format: magenta.js does not load Keras weights. It fetches one JSON file,
`[info, weightDims, weightStrings]`, and runs a basic LSTM on the CPU or WebGL through
TensorFlow.js. What that runtime does (read from its es5/ sources, version 0.2.0):

- `info` is read only for `scale_factor`; inputs are fed as (dx/s, dy/s, p1, p2, p3) with
  s = scale_factor / pixelFactor (pixelFactor 2.0 by default), outputs multiplied by s.
- five weights, in order: output kernel (u, 123), output bias (123), input kernel (5, 4u),
  recurrent kernel (u, 4u), LSTM bias (4u); each the base64 of little-endian int16 q,
  read back as 10 * q / 32767 (so |w| <= 10 and the rounding error is <= 5 / 32767).
- the cell is tfjs' basicLSTMCell: [x, h] @ [W_xh; W_hh] + b, gates (i, j, f, o) with j the
  candidate, and a forget bias of 1.0 added at run time; the state starts at zeros.
- 20 mixture components, fixed; the 123 outputs are pen logits (3), then pi, mu_x, mu_y,
  log sigma_x, log sigma_y, pre-tanh rho (20 each) -- the same layout as our head.

Our LSTM (a keras.layers.LSTM) orders its gates (i, f, g, o) and stores the forget bias
1.0 inside its bias, so the export permutes the gate blocks and subtracts 1.0 from the
forget block. A conditional model's decoder reads [S_{i-1}, z] at every step: with z fixed
its part of the input is a constant, folded into the bias (b + z @ W_z), and its initial
state tanh(W z + b) goes into `info["initial_state"]`, which the library ignores but a page
can start from (README, "Drawing in the browser"). Anything else (layer-norm or hyper
decoders, M != 20) has no counterpart in the library and is refused.
"""
from __future__ import annotations

import base64
from typing import Any

import numpy as np

from ..core.errors import SketchRNNError

MAGENTA_JS_PACKAGE = "@magenta/sketch"
MAGENTA_JS_VERSION = "0.2.0"
NUM_MIXTURE = 20  # magenta.js' SketchRNN.NMIXTURE
MAX_WEIGHT = 10.0  # value of the int16 32767
INT16_MAX = 32767
QUANTUM = MAX_WEIGHT / INT16_MAX  # one int16 step
MAX_QUANTISATION_ERROR = QUANTUM / 2  # round to nearest
FORGET_BIAS = 1.0  # added at run time by tfjs' basicLSTMCell (and stored in our bias)
WEIGHT_NAMES = ("output kernel", "output bias", "input kernel", "recurrent kernel",
                "LSTM bias")
# ours (i, f, g, o) -> magenta's (i, j=g, f, o): which of our gate blocks goes where
_TO_MAGENTA_GATES = (0, 2, 1, 3)
_FORGET = 2  # index of f among magenta's gate blocks
SUPPORTED = (f"{MAGENTA_JS_PACKAGE} {MAGENTA_JS_VERSION} runs only a basic LSTM decoder "
             f"(dec_model=lstm) with num_mixture={NUM_MIXTURE}")


# --------------------------------------------------------------------------- int16 encoding
def quantise(values: Any, name: str = "weight") -> np.ndarray:
    """float values -> the int16 codes magenta.js reads (nearest of 10 * q / 32767).

    A value beyond +-10 cannot be stored; it is refused rather than clipped, since a
    clipped weight would silently change the model.
    """
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise SketchRNNError(f"{name}: holds NaN or infinite values; nothing to export")
    largest = float(np.max(np.abs(v))) if v.size else 0.0
    if largest > MAX_WEIGHT:
        raise SketchRNNError(f"{name}: |value| {largest:.3g} > {MAX_WEIGHT:g}, beyond what "
                             f"{MAGENTA_JS_PACKAGE}'s int16 weights hold")
    return np.rint(v / QUANTUM).astype(np.int16)


def dequantise(codes: np.ndarray) -> np.ndarray:
    """int16 codes -> float32 exactly as magenta.js computes them (10 * q / 32767)."""
    return (MAX_WEIGHT * codes.astype(np.float64) / INT16_MAX).astype(np.float32)


def encode_weight(values: Any, name: str = "weight") -> str:
    """Row-major values -> base64 of little-endian int16 codes."""
    return base64.b64encode(quantise(values, name).astype("<i2").tobytes()).decode("ascii")


def decode_weight(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """base64 int16 -> float32 array of `shape` (what the browser will compute with)."""
    codes = np.frombuffer(base64.b64decode(text), dtype="<i2")
    if codes.size != int(np.prod(shape)):
        raise SketchRNNError(f"weight of shape {shape}: holds {codes.size} values")
    return dequantise(codes).reshape(shape)


# --------------------------------------------------------------------------- checks
def check_exportable(hps: Any) -> None:
    """Refuse what the browser runtime cannot run, in one line naming the field."""
    if hps.dec_model != "lstm":
        raise SketchRNNError(f"dec_model={hps.dec_model}: {SUPPORTED}")
    if int(hps.num_mixture) != NUM_MIXTURE:
        raise SketchRNNError(f"num_mixture={hps.num_mixture}: {SUPPORTED}")


# the two z refusals, shared with the CLI, which checks its options before loading a model
NO_Z = "z: this model is decoder-only (conditional=False); it takes no --z-from/--z-prior"
NEEDS_Z = ("z: a conditional model is exported with one fixed z; give --z-from DATA.npz "
           "--index I or --z-prior --seed S")


def _check_z(hps: Any, z: Any) -> np.ndarray | None:
    """z (z_size,) float32 for a conditional model, None for a decoder-only one."""
    if not hps.conditional:
        if z is not None:
            raise SketchRNNError(NO_Z)
        return None
    if z is None:
        raise SketchRNNError(NEEDS_Z)
    z = np.asarray(z, dtype=np.float32).reshape(-1)
    if z.shape != (int(hps.z_size),) or not np.all(np.isfinite(z)):
        raise SketchRNNError(f"z: expected {int(hps.z_size)} finite values, got {z.shape}")
    return z


# --------------------------------------------------------------------------- conversion
def _gate_blocks(x: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """Reorder the four gate blocks of the last axis (..., 4u)."""
    blocks = np.split(x, 4, axis=-1)
    return np.concatenate([blocks[k] for k in order], axis=-1)


def _to_numpy(variable: Any) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(variable), dtype=np.float64)


def magenta_js_weights(model: Any, z: np.ndarray | None = None) -> list[np.ndarray]:
    """The five float weights in magenta.js' order and layout (before quantisation).

    For a conditional model, z (z_size,) is folded into the LSTM bias.
    """
    cell = model.decoder.cell
    kernel = _to_numpy(cell.kernel)  # (5 [+ z], 4u)
    recurrent = _to_numpy(cell.recurrent_kernel)  # (u, 4u)
    bias = _to_numpy(cell.bias)  # (4u,), forget block holds +1.0
    if z is not None:
        bias = bias + np.asarray(z, np.float64) @ kernel[5:]  # (4u,)
    w_xh = _gate_blocks(kernel[:5], _TO_MAGENTA_GATES)  # (5, 4u)
    w_hh = _gate_blocks(recurrent, _TO_MAGENTA_GATES)  # (u, 4u)
    b = _gate_blocks(bias, _TO_MAGENTA_GATES).copy()  # (4u,)
    u = recurrent.shape[0]
    b[_FORGET * u:(_FORGET + 1) * u] -= FORGET_BIAS  # magenta adds it at run time
    head_kernel = _to_numpy(model.head.kernel)  # (u, 3 + 6M), same layout as magenta's
    head_bias = _to_numpy(model.head.bias)  # (3 + 6M,)
    return [head_kernel, head_bias, w_xh, w_hh, b]


def initial_state(model: Any, z: np.ndarray) -> dict[str, list[float]]:
    """{"h": [u floats], "c": [u floats]}: tanh(W z + b), the decoder's start for this z."""
    from keras import ops

    h, c = model.initial_state(ops.convert_to_tensor(z[None], "float32"), 1)
    return {"h": _to_numpy(h)[0].astype(np.float32).tolist(),
            "c": _to_numpy(c)[0].astype(np.float32).tolist()}


def export_magenta_js(run: Any, z: Any = None, name: str | None = None) -> list:
    """The model JSON structure `[info, weightDims, weightStrings]` for `@magenta/sketch`.

    run: a `training.runs.LoadedRun`; z: the fixed latent code (z_size,) of a conditional
    model, None for a decoder-only one. info also carries our own keys (ignored by the
    library): the initial state and z of a conditional export, the run's step, and the
    largest quantisation error.
    """
    hps = run.hps
    check_exportable(hps)
    z = _check_z(hps, z)
    weights = magenta_js_weights(run.model, z)
    strings = [encode_weight(w, name_) for w, name_ in zip(weights, WEIGHT_NAMES)]
    dims = [list(w.shape) for w in weights]
    decoded = [decode_weight(s, w.shape) for s, w in zip(strings, weights)]
    error = max(float(np.max(np.abs(d - w))) for d, w in zip(decoded, weights))
    info: dict[str, Any] = {
        "name": name or "sketch-rnn",
        "mode": "gen",  # a generator: decoder only, or a decoder with its z fixed
        "version": MAGENTA_JS_VERSION,
        "scale_factor": float(run.scale_factor),
        "max_seq_len": int(hps.max_seq_len),
        "num_mixture": NUM_MIXTURE,
        "source": "sketch-rnn (Keras)",
        "step": int(run.step),
        "max_quantisation_error": error,
    }
    if z is not None:
        info["z"] = z.tolist()
        info["initial_state"] = initial_state(run.model, z)
    return [info, dims, strings]


def decode_magenta_js(model_json: list) -> list[np.ndarray]:
    """The five weights as the browser will hold them (float32, magenta's layout)."""
    _, dims, strings = model_json
    return [decode_weight(s, tuple(d)) for s, d in zip(strings, dims)]


def to_keras_layout(weights: list[np.ndarray]) -> dict[str, np.ndarray]:
    """magenta.js weights -> ours: {"kernel" (5, 4u), "recurrent_kernel", "bias" (4u)
    with the forget bias stored, "head_kernel", "head_bias"} (the inverse permutation)."""
    head_kernel, head_bias, w_xh, w_hh, b = weights
    back = tuple(int(i) for i in np.argsort(_TO_MAGENTA_GATES))
    u = w_hh.shape[0]
    b = b.astype(np.float32).copy()
    b[_FORGET * u:(_FORGET + 1) * u] += np.float32(FORGET_BIAS)
    return {"kernel": _gate_blocks(w_xh, back), "recurrent_kernel": _gate_blocks(w_hh, back),
            "bias": _gate_blocks(b, back), "head_kernel": head_kernel, "head_bias": head_bias}
