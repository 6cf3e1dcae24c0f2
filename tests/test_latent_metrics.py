"""Latent-quality metrics (sketch_rnn.evaluation.retrieval) against independent references.

Retrieval is checked on the real bundled sheep test split with pairings whose answer is known
without the code under test: originals as their own reconstructions (every query must find
itself), sketches of another split (hits only by chance), jittered copies (same shapes, so most
must still be found). Distances, ranks, active units and the KL against brute-force or
closed-form NumPy.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import frameworks_imported_by, tiny_model
from scipy.stats import binom

from sketch_rnn import cli
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.data import load_npz
from sketch_rnn.evaluation import retrieval

ROOT = Path(__file__).resolve().parents[1]
SHEEP = str(ROOT / "data" / "aaron_sheep.npz")
FALSE_FAILURE = 1e-4  # allowed probability that a chance-level bound fails by bad luck


@pytest.fixture(scope="module")
def test_split() -> list[np.ndarray]:
    return load_npz(SHEEP)["test"]


@pytest.fixture(scope="module")
def originals(test_split) -> np.ndarray:
    return retrieval.rasterise(test_split)  # (n, 64, 64)


# --------------------------------------------------------------------------- retrieval, real data
def test_originals_retrieve_themselves(originals) -> None:
    dist = retrieval.chamfer_matrix(originals, originals)  # (n, n)
    assert np.all(np.diag(dist) == 0)
    assert retrieval.retrieval_at_k(dist) == {"ret_at_1": 1.0, "ret_at_5": 1.0}


def test_unrelated_reconstructions_score_near_chance(originals) -> None:
    """Reconstruction i replaced by a sketch of the valid split (other sheep, in a fixed
    random order), so it carries nothing about test sketch i: a hit is luck, about
    Binomial(n, k/n) hits (over 2000 random orders the hits@1 had mean 1.06, variance 1.02).
    The bound is that binomial's 1 - 1e-4 quantile. (Not a shuffle of the test originals
    themselves: a query identical to another reference can never rank first.)"""
    n = len(originals)
    valid = load_npz(SHEEP)["valid"]
    assert len(valid) >= n
    order = np.random.default_rng(12).permutation(len(valid))[:n]
    unrelated = retrieval.rasterise([valid[i] for i in order])  # (n, 64, 64)
    scores = retrieval.retrieval_at_k(retrieval.chamfer_matrix(unrelated, originals))
    for k in (1, 5):
        bound = binom.ppf(1 - FALSE_FAILURE, n, k / n) / n
        assert scores[f"ret_at_{k}"] <= bound, (k, scores, bound)


def test_jittered_copies_are_found(test_split, originals) -> None:
    """Same sketches redrawn 0.9-1.1x larger with +-2 units of noise on every offset (the
    data's mean |offset| is about 10): measured ret@1 0.94 and ret@5 0.98; bounds with margin."""
    rng = np.random.default_rng(5)
    jittered = []
    for s in test_split:
        s = s.astype(np.float64)  # (n_i, 3)
        s[:, :2] = s[:, :2] * rng.uniform(0.9, 1.1) + rng.integers(-2, 3, size=(len(s), 2))
        jittered.append(s)
    scores = retrieval.retrieval_at_k(
        retrieval.chamfer_matrix(retrieval.rasterise(jittered), originals))
    assert scores["ret_at_1"] >= 0.7 and scores["ret_at_5"] >= 0.85, scores


# --------------------------------------------------------------------------- rasters
def _square(x0: float, y0: float, side: float) -> np.ndarray:
    """A closed square starting at (x0, y0), as stroke-3 (first offset moves pen-up there)."""
    return np.array([[x0, y0, 1], [side, 0, 0], [0, side, 0], [-side, 0, 0], [0, -side, 1]],
                    dtype=np.float32)


def test_raster_ignores_position_and_size() -> None:
    small, big = retrieval.rasterise([_square(0, 0, 3), _square(-500, 40, 170)])
    assert small.any() and np.array_equal(small, big)


def test_raster_keeps_aspect_and_fills_the_box() -> None:
    """A 4:1 rectangle: its long side spans size - 1 - 2 * margin pixels (+ the line width),
    its short side a quarter of that."""
    rect = np.array([[0, 0, 0], [40, 0, 0], [0, 10, 0], [-40, 0, 0], [0, -10, 1]], np.float32)
    (r,) = retrieval.rasterise([rect], size=64, line_width=1, margin=2)
    rows, cols = np.flatnonzero(r.any(axis=1)), np.flatnonzero(r.any(axis=0))
    assert cols[-1] - cols[0] == 59  # 64 - 1 - 2 * 2
    assert abs((rows[-1] - rows[0]) - 59 / 4) <= 1


def test_pen_up_segments_are_not_drawn() -> None:
    """Two vertical strokes joined by a pen-up move: nothing drawn in the gap between them."""
    two = np.array([[0, 0, 0], [0, 10, 1], [10, -10, 0], [0, 10, 1]], np.float32)
    joined = two.copy()
    joined[1, 2] = 0  # same points, pen down across
    a, b = retrieval.rasterise([two, joined], line_width=1)
    assert not a[5:58, 10:54].any() and b[5:58, 10:54].any()


@pytest.mark.parametrize("sketch", [np.zeros((0, 3)), np.array([[3.0, 4.0, 1.0]]),
                                    np.zeros((5, 3)), np.array([[0, 0, 1], [5, 5, 1.0]])])
def test_empty_or_degenerate_sketches_give_blank_rasters(sketch) -> None:
    (r,) = retrieval.rasterise([sketch])
    assert r.shape == (64, 64) and not r.any()


def test_bad_sketch_is_a_one_line_error() -> None:
    with pytest.raises(SketchRNNError, match="sketch 1: expected a stroke-3"):
        retrieval.rasterise([_square(0, 0, 1), np.zeros((4, 2))])
    with pytest.raises(SketchRNNError, match="sketch 0: contains NaN"):
        retrieval.rasterise([np.array([[np.nan, 0, 1]])])


# --------------------------------------------------------------------------- distances and ranks
def _brute_chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Pixel by pixel: mean nearest distance from a's ink to b's, and back, halved."""
    pa, pb = np.argwhere(a), np.argwhere(b)
    a_to_b = np.mean([min(math.dist(p, q) for q in pb) for p in pa])
    b_to_a = np.mean([min(math.dist(q, p) for p in pa) for q in pb])
    return (a_to_b + b_to_a) / 2


def test_chamfer_matrix_equals_a_pixel_loop() -> None:
    rng = np.random.default_rng(0)
    queries = rng.random((3, 9, 9)) < 0.1  # (3, 9, 9)
    refs = rng.random((4, 9, 9)) < 0.2
    refs[2] = False  # an empty reference
    queries[0] = False
    queries[0, 4, 4] = True  # a single ink pixel
    dist = retrieval.chamfer_matrix(queries, refs)  # (3, 4)
    assert dist.shape == (3, 4) and dist.dtype == np.float64
    for i in range(3):
        for j in range(4):
            if j == 2:
                assert dist[i, j] == 2 * 9  # the documented distance of an empty raster
            else:
                assert dist[i, j] == pytest.approx(_brute_chamfer(queries[i], refs[j]), rel=1e-12)


def test_chamfer_size_mismatch_is_an_error() -> None:
    with pytest.raises(SketchRNNError, match="differ in size"):
        retrieval.chamfer_matrix(np.ones((1, 8, 8), bool), np.ones((1, 9, 9), bool))


def test_ranks_count_ties_against_the_query() -> None:
    dist = np.array([[0.0, 1.0, 2.0, 3.0],   # rank 0
                     [1.0, 2.0, 2.0, 5.0],   # a tie with reference 2 and a closer 0: rank 2
                     [9.0, 9.0, 1.0, 0.5],   # rank 1
                     [1.0, 1.0, 1.0, 1.0]])  # all tied: rank 3
    assert retrieval.retrieval_at_k(dist, ks=(1, 2, 3, 4)) == {
        "ret_at_1": 0.25, "ret_at_2": 0.5, "ret_at_3": 0.75, "ret_at_4": 1.0}
    with pytest.raises(SketchRNNError, match="dist: expected a square"):
        retrieval.retrieval_at_k(np.zeros((2, 3)))


# --------------------------------------------------------------------------- latent statistics
def test_active_units_counts_dimensions_by_variance() -> None:
    variances = np.array([0.0, 0.002, 0.009, 0.0101, 0.02, 1.0, 4.0])  # 4 above 0.01
    x = np.random.default_rng(1).standard_normal((500, len(variances)))
    x = (x - x.mean(axis=0)) / x.std(axis=0)  # exactly mean 0, variance 1 per column
    mu = x * np.sqrt(variances) + 3.0  # (500, 7): a shared offset changes no variance
    assert retrieval.active_units(mu) == 4
    assert retrieval.active_units(mu, threshold=0.001) == 6


def _tiny_model(**overrides):
    return tiny_model(40, 4, **overrides)


def _closed_form_kl(mu: np.ndarray, presig: np.ndarray) -> float:
    """KL(N(mu, sigma^2) || N(0, 1)) = -log sigma + (sigma^2 + mu^2 - 1) / 2 per dimension,
    summed over z, averaged over sketches; sigma = exp(presig / 2)."""
    sigma = np.exp(np.asarray(presig, np.float64) / 2)  # (n, z)
    mu = np.asarray(mu, np.float64)
    return float(np.mean(np.sum(-np.log(sigma) + (sigma ** 2 + mu ** 2 - 1) / 2, axis=1)))


def test_kl_nats_matches_closed_form_on_a_tiny_models_codes(test_split) -> None:
    """On a tiny model's encoder output, and the model's own per-dimension KL times z."""
    from keras import ops

    from sketch_rnn.generation.sampling import sketches_to_stroke5
    from sketch_rnn.model.mixture import kl_per_sketch

    model = _tiny_model()
    sketches = [s for s in test_split if len(s) <= 40][:12]
    strokes, lengths = sketches_to_stroke5(model, sketches, scale_factor=20.0)
    rng = np.random.default_rng(2)
    for layer in (model.mu_dense, model.presig_dense):  # untrained codes are ~1e-3: make them O(1)
        layer.kernel.assign(ops.convert_to_numpy(layer.kernel) * 300.0)
        layer.bias.assign(rng.normal(0.0, 0.7, layer.bias.shape).astype(np.float32))
    mu, presig = (ops.convert_to_numpy(t) for t in model.encode(strokes, lengths))  # (12, z)
    assert 0.1 < np.abs(mu).mean() < 10 and 0.1 < np.abs(presig).mean() < 10
    reference = _closed_form_kl(mu, presig)
    assert retrieval.kl_nats(mu, presig) == pytest.approx(reference, rel=1e-9)
    per_dim = float(np.mean(ops.convert_to_numpy(kl_per_sketch(mu, presig))))
    assert per_dim * model.hps.z_size == pytest.approx(reference, rel=1e-5)
    with pytest.raises(SketchRNNError, match="mu .* and presig"):
        retrieval.kl_nats(mu, presig[:, :3])


# --------------------------------------------------------------------------- the evaluate command
def test_evaluate_reports_latent_metrics(ten_step_run) -> None:
    run_dir = ten_step_run  # a tiny conditional run (N_max = 64), 10 steps; only read here
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["evaluate", "--run-dir", str(run_dir), "--split", "test"]) == 0
    report = json.loads(out.getvalue().strip().splitlines()[-1])
    n = report["count"]
    assert n > 5 and report["ret_chance_at_1"] == pytest.approx(1 / n)
    assert 0.0 <= report["ret_at_1"] <= report["ret_at_5"] <= 1.0
    assert report["ret_at_1"] == report["ret_raster_at_1_greedy"]
    for label in ("greedy", "tau_0.25", "tau_0.5", "tau_1"):  # the field's measure, 3 views
        assert 0.0 <= report[f"ret_code_at_1_{label}"] <= report[f"ret_code_at_10_{label}"] <= 1
        assert 0.0 <= report[f"ret_raster_at_5_{label}"] <= 1.0
        assert 0.0 <= report[f"precision_{label}"] <= 1.0 and 0 <= report[f"recall_{label}"] <= 1
    assert report["ret_tf_count"] == n and 0.0 <= report["ret_tf_at_1"] <= 1.0
    assert isinstance(report["active_units"], int) and 0 <= report["active_units"] <= 8
    assert math.isfinite(report["kl_nats"]) and report["kl_nats"] >= 0
    # the loss's KL is the per-dimension mean of the same quantity (z_size 8)
    assert report["kl_nats"] == pytest.approx(8 * report["kl"], rel=1e-4)

    # kl_nats and active units from the sampler's own encoder call, computed independently
    from keras import ops

    from sketch_rnn.data import load_data
    from sketch_rnn.generation.sampling import encode, sketches_to_stroke5
    from sketch_rnn.training.runs import load_run

    run = load_run(run_dir)
    split = load_data(run.data_paths, run.hps.max_seq_len, run.scale_factor).test
    sketches = [split.sketch(i) for i in range(len(split))]  # normalised units
    mu = encode(run.model, sketches).astype(np.float64)  # (n, 8)
    assert report["active_units"] == int(np.sum(np.var(mu, axis=0) > 0.01))
    strokes, lengths = sketches_to_stroke5(run.model, sketches)
    presig = ops.convert_to_numpy(run.model.encode(strokes, lengths)[1])  # (n, 8)
    assert report["kl_nats"] == pytest.approx(_closed_form_kl(mu, presig), rel=1e-5)


def test_the_metrics_module_imports_no_framework() -> None:
    """Pure NumPy/SciPy/Pillow: usable (and movable) without TensorFlow, Keras or JAX."""
    assert frameworks_imported_by("import sketch_rnn.evaluation.retrieval") == []
