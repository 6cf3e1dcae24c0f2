"""How much of a sketch its latent code keeps: retrieval of reconstructions among originals.

A conditional Sketch-RNN can reach a low reconstruction loss while its decoder ignores z
(posterior collapse): then every reconstruction is "a sheep", not "this sheep". Losses do not
show it; retrieval does. Each test sketch is encoded to its posterior mean mu, decoded
(greedily or at a temperature), and the reconstruction is compared with every original of the split: ret@k is the
fraction of reconstructions whose own original is among their k nearest (chance: k / n).

Raster distance: both sketches are drawn on a size x size grid after centring on their
bounding box and scaling uniformly so the larger side fills the grid (minus a margin), and
compared by the symmetric mean chamfer distance (mean distance from each ink pixel of one to
the nearest ink pixel of the other, both ways, halved). Centring and scaling make it blind to
where and how big a sketch was drawn, which a greedy decode does not reproduce exactly and
which says little about the code; the chamfer distance stays sensitive to shape and pose
(facing left vs right, legs, head position), which is what the code should carry. It is
also tolerant to small offsets of strokes, unlike pixel overlap (IoU) of thin lines.

Also: the number of active units (Burda et al. 2016) and the KL of q(z|S) to N(0, I) in nats.

Pure NumPy / SciPy / Pillow; the model is touched only by `posterior` and `decode_codes`,
which import the sampler lazily. `recon_retrieval` composes them into evaluate's report.
"""
from __future__ import annotations

from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import distance_transform_edt

from ..core.errors import SketchRNNError
from ..core.strokes import stroke3_to_polylines

RASTER_SIZE = 64
BATCH = 512  # most sketches per encoder or sampler call (`posterior`, `decode_codes`)
LINE_WIDTH = 2
MARGIN = 2  # pixels left free on each side of the scaled sketch


# --------------------------------------------------------------------------- rasters
def _check_sketch(s: Any, i: int) -> np.ndarray:
    a = np.asarray(s, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise SketchRNNError(f"sketch {i}: expected a stroke-3 array (n, 3), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise SketchRNNError(f"sketch {i}: contains NaN or infinite values")
    return a


def _draw(stroke3: np.ndarray, size: int, line_width: int, margin: int) -> np.ndarray:
    """One stroke-3 sketch -> (size, size) bool, centred and scaled to fit; zeros if nothing to draw."""
    raster = np.zeros((size, size), dtype=bool)
    if len(stroke3) == 0:
        return raster
    lines = stroke3_to_polylines(stroke3)  # absolute coordinates, split at pen-ups
    xy = np.concatenate(lines)  # (n, 2)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    extent = float(np.max(hi - lo))
    if extent <= 0 or not any(len(p) > 1 for p in lines):
        return raster  # a dot or nothing: no shape to compare
    scale = (size - 1 - 2 * margin) / extent
    centre = (size - 1) / 2.0
    image = Image.new("1", (size, size), 0)
    draw = ImageDraw.Draw(image)
    for p in lines:
        if len(p) < 2:
            continue
        q = (p - (lo + hi) / 2.0) * scale + centre  # (m, 2) pixel coordinates
        draw.line([tuple(v) for v in q.tolist()], fill=1, width=line_width)
    return np.array(image, dtype=bool)  # (size, size)


def rasterise(sketches: Sequence[np.ndarray], size: int = RASTER_SIZE,
              line_width: int = LINE_WIDTH, margin: int = MARGIN) -> np.ndarray:
    """Stroke-3 sketches (each (n, 3): dx, dy, pen lifted after the point) -> (B, size, size) bool.

    Each sketch is centred on its bounding box and scaled uniformly (aspect kept) so that its
    larger side spans size - 1 - 2 * margin pixels; only pen-down segments are drawn (Pillow
    ImageDraw lines of `line_width` pixels). Empty sketches, and sketches with no extent or
    no pen-down segment, give an all-zero raster (the distances treat it as far from all).
    """
    if not isinstance(size, (int, np.integer)) or size < 2 * margin + 2:
        raise SketchRNNError(f"size={size!r}: must be an integer >= {2 * margin + 2}")
    if not isinstance(line_width, (int, np.integer)) or line_width < 1:
        raise SketchRNNError(f"line_width={line_width!r}: must be a positive integer")
    if not isinstance(margin, (int, np.integer)) or margin < 0:
        raise SketchRNNError(f"margin={margin!r}: must be a non-negative integer")
    out = np.zeros((len(sketches), size, size), dtype=bool)  # (B, size, size)
    for i, s in enumerate(sketches):
        out[i] = _draw(_check_sketch(s, i), int(size), int(line_width), int(margin))
    return out


# --------------------------------------------------------------------------- distances
def _check_rasters(r: Any, what: str) -> np.ndarray:
    a = np.asarray(r)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[1] == 0:
        raise SketchRNNError(f"{what}: expected square rasters (B, size, size), got {a.shape}")
    return a.astype(bool)


def empty_distance(size: int) -> float:
    """What a pair involving an empty raster scores: 2 * size, beyond any real chamfer
    distance (at most the diagonal, sqrt(2) * (size - 1)), so an empty reconstruction never
    matches anything, not even another empty one."""
    return 2.0 * float(size)


def distance_maps(rasters: np.ndarray) -> np.ndarray:
    """(B, size, size) bool -> (B, size * size) float64: each pixel's Euclidean distance to
    the nearest ink pixel; an empty raster's map is empty_distance everywhere."""
    b, size = rasters.shape[0], rasters.shape[1]
    maps = np.full((b, size * size), empty_distance(size))  # (B, P)
    for i in range(b):
        if rasters[i].any():
            maps[i] = distance_transform_edt(~rasters[i]).ravel()  # (P,)
    return maps


def chamfer_matrix(queries: np.ndarray, references: np.ndarray,
                   reference_maps: np.ndarray | None = None) -> np.ndarray:
    """Symmetric mean chamfer distance between every query and every reference: (Q, R) float64.

    d(a, b) = (mean over a's ink of the distance to b's nearest ink
               + mean over b's ink of the distance to a's nearest ink) / 2, in pixels.
    Both directed terms for all pairs are one matrix product each (ink masks @ distance
    maps), so the cost is two (Q, P) x (P, R) products, P = size^2. A pair in which either
    raster is empty scores empty_distance(size). reference_maps: `distance_maps(references)`
    if already computed (evaluate compares each temperature's reconstructions with the
    same originals).
    """
    q, r = _check_rasters(queries, "queries"), _check_rasters(references, "references")
    if q.shape[1:] != r.shape[1:]:
        raise SketchRNNError(f"queries {q.shape[1:]} and references {r.shape[1:]} differ in size")
    size = q.shape[1]
    mq = q.reshape(len(q), -1).astype(np.float64)  # (Q, P)
    mr = r.reshape(len(r), -1).astype(np.float64)  # (R, P)
    nq, nr = mq.sum(axis=1), mr.sum(axis=1)  # (Q,), (R,)
    r_maps = distance_maps(r) if reference_maps is None else reference_maps  # (R, P)
    q_to_r = (mq @ r_maps.T) / np.maximum(nq, 1)[:, None]  # (Q, R)
    r_to_q = (mr @ distance_maps(q).T) / np.maximum(nr, 1)[:, None]  # (R, Q)
    dist = (q_to_r + r_to_q.T) / 2.0  # (Q, R)
    empty = (nq == 0)[:, None] | (nr == 0)[None, :]  # (Q, R)
    dist[empty] = empty_distance(size)
    return dist


# --------------------------------------------------------------------------- metrics
def retrieval_at_k(dist: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """ret@k for each k: {"ret_at_1": ..., ...}. dist (n, n): query i's own reference is i.

    Query i's rank is the number of other references j != i with dist[i, j] <= dist[i, i]:
    ties count against it, so identical (e.g. all-empty) reconstructions score 0, not luck.
    ret@k is the fraction of queries with rank < k. A code that carries nothing about its
    sketch scores chance: k / n in expectation (with ties, less).
    """
    d = np.asarray(dist, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] == 0:
        raise SketchRNNError(f"dist: expected a square (n, n) matrix, got {d.shape}")
    if np.isnan(d).any():
        raise SketchRNNError("dist: contains NaN")
    own = np.diag(d)  # (n,)
    rank = np.sum(d <= own[:, None], axis=1) - 1  # (n,): others at least as close
    out = {}
    for k in ks:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise SketchRNNError(f"k={k!r}: must be a positive integer")
        out[f"ret_at_{int(k)}"] = float(np.mean(rank < k))
    return out


def active_units(mu: np.ndarray, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies over the data: Var_x(mu(x)) > threshold.

    A dimension the decoder ignores is pushed by the KL term to mu = 0 for every sketch; one
    that carries information moves with the sketch (Burda et al. 2016, threshold 0.01).
    mu: (n, z_size) posterior means over a split.
    """
    m = np.asarray(mu, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 2:
        raise SketchRNNError(f"mu: expected (n, z_size) with n >= 2, got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise SketchRNNError("mu: contains NaN or infinite values")
    return int(np.sum(m.var(axis=0) > threshold))


def kl_nats(mu: np.ndarray, presig: np.ndarray) -> float:
    """KL(q(z|S) || N(0, I)) in nats per sketch, summed over z, averaged over sketches.

    q = N(mu, diag(exp(presig))) (presig = log sigma^2, as model.encode returns it). Unlike
    the training loss (a per-dimension mean with a tolerance floor) this is the information
    budget of the code: about log(n) nats are needed to single out one of n sketches.
    """
    m, p = np.asarray(mu, np.float64), np.asarray(presig, np.float64)
    if m.shape != p.shape or m.ndim != 2 or len(m) == 0:
        raise SketchRNNError(f"mu {m.shape} and presig {p.shape}: expected equal (n, z_size)")
    per_sketch = -0.5 * np.sum(1.0 + p - m * m - np.exp(p), axis=1)  # (n,)
    return float(np.mean(per_sketch))


# --------------------------------------------------------------------------- the report
def posterior(model: Any, sketches: Sequence[np.ndarray], scale_factor: float,
              batch: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    """(mu, presig), each (n, z_size) float32, of stroke-3 sketches in data units.

    The same encoder call as `generation.sampling.encode` (which returns mu only), in batches padded
    to one shape (see `decode_codes`); the backend's tensors are read with np.asarray, so
    this module never imports Keras.
    """
    from ..generation.compiled import encoder
    from ..generation.sampling import sketches_to_stroke5

    mus, presigs = [], []
    for chunk in padded_chunks(list(sketches), batch):
        strokes, lengths = sketches_to_stroke5(model, chunk.items, scale_factor)
        mu, presig = encoder(model)(strokes, lengths)  # (batch, z) each
        mus.append(np.asarray(mu, dtype=np.float32)[:chunk.real])
        presigs.append(np.asarray(presig, dtype=np.float32)[:chunk.real])
    return np.concatenate(mus), np.concatenate(presigs)  # (n, z) each


def decode_codes(model: Any, mu: np.ndarray, temperature: Any = "greedy", seed: int = 0,
                 scale_factor: float = 1.0, batch: int = BATCH) -> list[np.ndarray]:
    """Reconstructions of codes mu (n, z_size) in data units: temperature "greedy", or
    sampled at tau (the paper's convention, `generation.sampling`).

    The n codes are cut into the fewest batches of at most `batch` rows, all of one size
    (the last padded by repeating its last code), so the compiled sampler is built once and
    decodes few padding rows: a split of up to BATCH sketches is one call of n rows, the
    shape of `sample_report`'s n prior samples, so both share one compiled graph. Sketch i
    draws from its own stream `default_rng([seed, 3, i])`, so its noise does not depend on
    how the codes are cut into batches; its numbers can, at the matmuls' rounding, where the
    backend picks other kernels for another row count (the shipped sheep's bf16 decodes are
    the same bytes in calls of 6, 16, 256 or 300 rows, not in 600:
    tests/test_evaluate_batching.py pins the report of the sheep cut two ways).
    """
    from ..generation.decode_loop import run_sampler
    from ..generation.sampling import check_temperature, to_stroke3

    greedy = temperature == "greedy"
    tau = 1.0 if greedy else check_temperature(temperature)
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise SketchRNNError(f"batch={batch!r}: must be a positive integer")
    mu = np.asarray(mu, dtype=np.float32)
    n, steps = len(mu), int(model.hps.max_seq_len)
    out: list[np.ndarray] = []
    for chunk in padded_chunks(list(range(n)), int(batch)):
        idx = np.asarray(chunk.items)  # (size,)
        noise = np.stack([_own_noise(seed, int(i), steps) for i in idx])  # (size, N_max, 4)
        strokes, _ = run_sampler(model, mu[idx], noise, tau, greedy)
        out.extend(to_stroke3(strokes, scale_factor)[:chunk.real])
    return out


def _own_noise(seed: int, i: int, steps: int) -> np.ndarray:
    """(steps, 4) float32: sketch i's two uniforms and two normals per step."""
    rng = np.random.default_rng([int(seed), 3, i])
    return np.concatenate([rng.random((steps, 2)), rng.standard_normal((steps, 2))],
                          axis=-1).astype(np.float32)


class _Chunk(NamedTuple):
    items: list  # `size` items: the real ones, then copies of the last
    real: int  # how many are real


def padded_chunks(items: list, size: int) -> Iterator[_Chunk]:
    """Consecutive chunks of one size, the fewest of at most `size` items (ceil(n / size)
    chunks of ceil(n / chunks) items), the last one padded with copies of its last item."""
    size = -(-len(items) // -(-len(items) // min(size, len(items))))
    for start in range(0, len(items), size):
        chunk = items[start:start + size]
        yield _Chunk(chunk + [chunk[-1]] * (size - len(chunk)), len(chunk))
