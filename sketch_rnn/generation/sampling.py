"""Generation: the public sampling calls (sample, encode, decode, reconstruct, interpolate).

The original implementations decode one sketch at a time with one framework call per
point. Here B sketches are decoded together inside one compiled loop (`decode_loop`:
`keras.ops.while_loop` in a `tf.function`, or `jax.jit`): one framework call per batch, which
stops as soon as every sketch has drawn its end token, or after N_max steps.

Temperature tau (Ha & Eck 2017, section 3.3, eq. 8) -- this module follows the paper:
the mixture weights' logits and the pen logits are divided by tau, and each Gaussian's
covariance is multiplied by tau, i.e. sigma_x and sigma_y are multiplied by sqrt(tau)
(rho unchanged). Magenta's code differs: its sampler passes sqrt(tau) into
`sample_gaussian_2d`, which does `s1 *= temp * temp`, so sigma is multiplied by tau and the
covariance by tau^2 (while the logits are divided by tau, as here). We keep the paper's
formula, which the paper's figures and text describe: tau = 1 is the model's own
distribution and the variance scales linearly with tau. As tau -> 0 a sample approaches
the greedy decode (most likely component, its mean, most likely pen state).

magenta.js splits tau: `getPDF(state, t, s)` scales sigma by sqrt(t) and divides the logits
by s (0.5 + 0.5 t by default), our `discrete_temperature` (None: s = tau, the paper's). Why:
a lift the model spreads over a few steps at p_lift 0.2-0.5 loses to "pen down" at odds
raised to 1/tau, so at tau 0.25 many sheep never lift the pen to draw legs; at s 0.625 they do.

Randomness: every draw comes from NumPy `default_rng([seed, k])` streams made before the
loop (k = 0: z from the prior; k = 1: per-step uniforms and normals), so the same seed gives
the same sketches, on any backend, and nothing depends on hidden RNG state.

Units: sketches going in and out are stroke-3 in the data's original units; they are divided
by `scale_factor` before the model sees them and multiplied by it on the way out.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..core.errors import SketchRNNError
from ..core.strokes import packed_to_stroke5, stroke5_to_stroke3
from .compiled import encoder
from .decode_loop import run_sampler


# --------------------------------------------------------------------------- argument checks
def check_n(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
        raise SketchRNNError(f"n={n!r}: the number of sketches must be a positive integer")
    return int(n)


def check_temperature(temperature: float, name: str = "temperature") -> float:
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise SketchRNNError(f"{name}={temperature!r}: must be > 0")
    return t


def _check_discrete(discrete_temperature: float | None) -> float | None:
    return None if discrete_temperature is None else check_temperature(
        discrete_temperature, "discrete_temperature")


def _conditional(model: Any) -> bool:
    return bool(model.hps.conditional)


def _max_len(model: Any, max_len: int | None) -> int:
    n = int(model.hps.max_seq_len if max_len is None else max_len)
    if n <= 0:
        raise SketchRNNError(f"max_len={max_len!r}: must be > 0")
    return n


def _check_z(model: Any, z: Any, n: int | None = None) -> np.ndarray:
    """z as float32 (B, z_size); a single (z_size,) vector is repeated n times."""
    z = np.asarray(z, dtype=np.float32)
    size = int(model.hps.z_size)
    if z.ndim == 1:
        z = np.repeat(z[None], n or 1, axis=0)
    if z.ndim != 2 or z.shape[1] != size:
        raise SketchRNNError(f"z: expected shape (B, {size}) or ({size},), got {z.shape}")
    if n is not None and len(z) != n:
        raise SketchRNNError(f"z: holds {len(z)} codes but n={n}")
    if not np.all(np.isfinite(z)):
        raise SketchRNNError("z: contains NaN or infinite values")
    return z


# --------------------------------------------------------------------------- noise
def prior_z(n: int, z_size: int, seed: int) -> np.ndarray:
    """n codes from the prior N(0, I): (n, z_size) float32."""
    return np.random.default_rng([seed, 0]).standard_normal((n, z_size)).astype(np.float32)


def step_noise(n: int, steps: int, seed: int) -> np.ndarray:
    """(n, steps, 4) float32: two U[0, 1) (component, pen) and two N(0, 1) per step."""
    rng = np.random.default_rng([seed, 1])
    u = rng.random((n, steps, 2))
    eps = rng.standard_normal((n, steps, 2))
    return np.concatenate([u, eps], axis=-1).astype(np.float32)


def to_stroke3(strokes5: np.ndarray, scale_factor: float = 1.0) -> list[np.ndarray]:
    """Sampled stroke-5 rows (B, N, 5), no S_0 -> stroke-3 sketches in data units.

    Each is cut before its end token (`strokes.stroke5_to_stroke3`), scaled back to data
    units, and its last point's pen set to 1 (lifted), as in the data, where every sketch
    ends with a lifted pen; this changes no drawing, and a sample fed back to `encode` then
    looks like a training sketch. A sketch that never ended keeps all N points.
    """
    out = []
    for s in np.asarray(strokes5):
        s3 = stroke5_to_stroke3(s, has_start=False)  # (n, 3)
        s3[:, :2] *= np.float32(scale_factor)
        if len(s3):
            s3[-1, 2] = 1.0
        out.append(s3)
    return out


# --------------------------------------------------------------------------- public API
# Each public function checks its own arguments once, then calls `_decode`, which checks none.
def _decode(model: Any, z: np.ndarray | None, b: int, temperature: float, greedy: bool,
            seed: int, scale_factor: float, max_len: int | None,
            discrete: float | None = None) -> list[np.ndarray]:
    """b sketches from checked arguments (z: (b, z_size) float32, or None if decoder-only)."""
    steps = _max_len(model, max_len)
    noise = step_noise(b, steps, seed)  # (B, N_max, 4)
    strokes, _ = run_sampler(model, z, noise, temperature, greedy, discrete_temperature=discrete)
    return to_stroke3(strokes, scale_factor)


def _no_z(model: Any, z: Any) -> None:
    if z is not None:
        raise SketchRNNError("z: this model is decoder-only (hparam conditional=False)")


def decode(model: Any, z: np.ndarray | None, *, n: int | None = None, temperature: float = 1.0,
           greedy: bool = False, seed: int = 0, scale_factor: float = 1.0,
           max_len: int | None = None) -> list[np.ndarray]:
    """Decode latent codes z (B, z_size) -> B stroke-3 sketches in data units.

    For a decoder-only model pass z=None and the number of sketches n.
    """
    temperature = check_temperature(temperature)
    if _conditional(model):
        if z is None:
            raise SketchRNNError("z: a conditional model needs latent codes (use sample())")
        z = _check_z(model, z, n)
        b = len(z)
    else:
        _no_z(model, z)
        b = check_n(n if n is not None else 0)
    return _decode(model, z, b, temperature, greedy, seed, scale_factor, max_len)


def sample(model: Any, n: int, temperature: float = 1.0, greedy: bool = False, seed: int = 0,
           z: np.ndarray | None = None, scale_factor: float = 1.0,
           max_len: int | None = None,
           discrete_temperature: float | None = None) -> list[np.ndarray]:
    """n stroke-3 sketches (data units): z from the prior N(0, I), or the given z.

    z: (n, z_size), or (z_size,) for n sketches of one code. temperature tau > 0 follows
    the paper (logits / tau, sigma * sqrt(tau); see the module docstring); greedy=True
    ignores it and the seed. Same arguments, same sketches. Decoder-only models take no z.
    discrete_temperature: magenta.js's split temperature (module docstring); None: tau.
    """
    n = check_n(n)
    temperature = check_temperature(temperature)
    discrete = _check_discrete(discrete_temperature)
    if _conditional(model):
        z = prior_z(n, int(model.hps.z_size), seed) if z is None else _check_z(model, z, n)
    else:
        _no_z(model, z)
    return _decode(model, z, n, temperature, greedy, seed, scale_factor, max_len, discrete)


def sketches_to_stroke5(model: Any, sketches: Sequence[np.ndarray],
                        scale_factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Stroke-3 sketches in data units -> ((B, N_max+1, 5) with S_0 first, lengths (B,) int32)."""
    n_max = int(model.hps.max_seq_len)
    arrays = []
    for i, s in enumerate(sketches):
        s = np.asarray(s, dtype=np.float32)
        if s.ndim != 2 or s.shape[1] != 3:
            raise SketchRNNError(f"sketch {i}: expected a stroke-3 array (n, 3), got {s.shape}")
        if not 0 < len(s) <= n_max:
            raise SketchRNNError(f"sketch {i}: {len(s)} points; the model takes 1..{n_max}")
        s = s.copy()
        s[:, :2] /= np.float32(scale_factor)
        arrays.append(s)
    if not arrays:
        raise SketchRNNError("no sketches to encode")
    lengths = np.array([len(s) for s in arrays], dtype=np.int32)
    strokes, _ = packed_to_stroke5(np.concatenate(arrays), lengths, n_max)
    return strokes, lengths  # (B, N_max+1, 5), (B,)


def encode(model: Any, sketches: Sequence[np.ndarray], *, scale_factor: float = 1.0,
           sample_z: bool = False, seed: int = 0) -> np.ndarray:
    """Latent codes of stroke-3 sketches (data units): (B, z_size) float32.

    Returns the posterior mean mu (deterministic), or with sample_z=True a draw
    z = mu + exp(sigma_hat / 2) * eps as in training. The encoder reads the sketch
    without S_0, exactly as in training (model.encode drops it).
    """
    from keras import ops

    if not _conditional(model):
        raise SketchRNNError("encode: this model is decoder-only (hparam conditional=False)")
    strokes, lengths = sketches_to_stroke5(model, sketches, scale_factor)
    mu, presig = encoder(model)(strokes, lengths)
    mu, presig = ops.convert_to_numpy(mu), ops.convert_to_numpy(presig)  # (B, z_size) each
    if not sample_z:
        return mu.astype(np.float32)
    eps = np.random.default_rng([seed, 2]).standard_normal(mu.shape)
    return (mu + np.exp(presig / 2) * eps).astype(np.float32)


def reconstruct(model: Any, sketches: Sequence[np.ndarray], *, temperature: float = 1.0,
                greedy: bool = False, seed: int = 0, scale_factor: float = 1.0,
                sample_z: bool = False, max_len: int | None = None,
                discrete_temperature: float | None = None) -> list[np.ndarray]:
    """Encode sketches (data units) and decode their codes: one new sketch per input."""
    temperature = check_temperature(temperature)
    discrete = _check_discrete(discrete_temperature)
    z = encode(model, sketches, scale_factor=scale_factor, sample_z=sample_z, seed=seed)
    return _decode(model, z, len(z), temperature, greedy, seed, scale_factor, max_len,
                   discrete)


def interpolate(z0: np.ndarray, z1: np.ndarray, steps: int,
                method: str = "slerp") -> np.ndarray:
    """`steps` codes from z0 to z1 (both ends included): (steps, z_size) float32.

    slerp follows the great circle (codes from the Gaussian prior live near a sphere,
    so slerp keeps their norm typical); lerp is the straight line. z0, z1: (z_size,).
    """
    z0, z1 = np.asarray(z0, np.float64).ravel(), np.asarray(z1, np.float64).ravel()
    if z0.shape != z1.shape:
        raise SketchRNNError(f"interpolate: z0 {z0.shape} and z1 {z1.shape} differ in size")
    if not isinstance(steps, (int, np.integer)) or steps < 2:
        raise SketchRNNError(f"steps={steps!r}: need at least 2 (both ends)")
    if method not in ("slerp", "lerp"):
        raise SketchRNNError(f"method={method!r}: use 'slerp' or 'lerp'")
    t = np.linspace(0.0, 1.0, int(steps))[:, None]  # (steps, 1)
    norms = np.linalg.norm(z0) * np.linalg.norm(z1)
    cos = np.clip(np.dot(z0, z1) / norms, -1.0, 1.0) if norms > 0 else 1.0
    omega = math.acos(cos)
    if method == "lerp" or math.sin(omega) < 1e-6:  # (anti)parallel: slerp is undefined
        return ((1 - t) * z0 + t * z1).astype(np.float32)
    w0 = np.sin((1 - t) * omega) / math.sin(omega)
    w1 = np.sin(t * omega) / math.sin(omega)
    return (w0 * z0 + w1 * z1).astype(np.float32)
