"""Precision, recall and coverage of samples (sketch_rnn.evaluation.sample_quality).

The estimator against a brute-force loop over balls; the feature space against controls on real
data whose answer is known without the code under test: train sheep against test sheep (the same
distribution: high on both), one sheep repeated (a collapsed generator: low recall and coverage),
random walks (scribbles: low precision and coverage), another QuickDraw category (below sheep).
Measured on the bundled sheep (300 test, 300 train; these bounds leave margin): train 0.84 /
0.80 / 0.90 (precision / recall / coverage), one sheep 1.0 / 0.0 / 0.01, random walks
0.17 / 0.84 / 0.06.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import SHEEP, frameworks_imported_by

from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.data import load_npz
from sketch_rnn.evaluation import sample_quality as sq

ROOT = Path(__file__).resolve().parents[1]
QUICKDRAW = ROOT / "data" / "quickdraw_simplified_344x25.ndjson"


@pytest.fixture(scope="module")
def sheep():
    data = load_npz(SHEEP)
    order = np.random.default_rng(0).permutation(len(data["train"]))[:300]
    return data["test"], [data["train"][i] for i in order]


def _brute(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float, float]:
    """Points in the plane, each ball by an explicit sort of its own set's distances."""
    def radius(points, i):
        return sorted(math.dist(points[i], p) for j, p in enumerate(points) if j != i)[k - 1]

    rr = [radius(real, i) for i in range(len(real))]
    fr = [radius(fake, i) for i in range(len(fake))]
    precision = np.mean([any(math.dist(f, r) <= rr[j] for j, r in enumerate(real)) for f in fake])
    recall = np.mean([any(math.dist(r, f) <= fr[j] for j, f in enumerate(fake)) for r in real])
    coverage = np.mean([any(math.dist(r, f) <= rr[j] for f in fake) for j, r in enumerate(real)])
    return precision, recall, coverage


def _dist(a, b):
    return np.linalg.norm(a[:, None] - b[None], axis=-1)


def test_estimator_equals_a_loop_over_balls() -> None:
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(30, 2)), rng.normal(0.7, 1.3, size=(25, 2))
    for k in (1, 3, 5):
        got = sq.precision_recall(_dist(real, real), _dist(fake, fake), _dist(fake, real), k)
        want = _brute(real, fake, k)
        assert (got["precision"], got["recall"], got["coverage"]) == pytest.approx(want)


def test_duplicates_are_neighbours_and_bad_k_is_an_error() -> None:
    d = _dist(np.array([[0.0], [0.0], [5.0]]), np.array([[0.0], [0.0], [5.0]]))
    assert sq.knn_radii(d, 1).tolist() == [0.0, 0.0, 5.0]
    with pytest.raises(SketchRNNError, match="k=3"):
        sq.knn_radii(d, 3)


def test_train_against_test_sheep_scores_high(sheep) -> None:
    test, train = sheep
    got = sq.sketch_precision_recall(test, train)
    assert got["precision"] >= 0.7 and got["recall"] >= 0.7 and got["coverage"] >= 0.8, got


def test_a_collapsed_generator_scores_low_recall(sheep) -> None:
    test, train = sheep
    got = sq.sketch_precision_recall(test, [train[0]] * 300)
    assert got["recall"] <= 0.02 and got["coverage"] <= 0.05, got


def _random_walk(rng, n: int = 60) -> np.ndarray:
    s = np.zeros((n, 3))
    s[:, :2] = rng.normal(0, 10, (n, 2))
    s[:, 2] = rng.random(n) < 0.1
    s[-1, 2] = 1
    return s


def test_random_walks_score_low_precision(sheep) -> None:
    test, _ = sheep
    rng = np.random.default_rng(2)
    got = sq.sketch_precision_recall(test, [_random_walk(rng) for _ in range(300)])
    assert got["precision"] <= 0.35 and got["coverage"] <= 0.15, got


def test_another_category_scores_below_sheep(sheep) -> None:
    """QuickDraw drawings of 344 other words (25 each, the bundled file), 300 of them, drawn
    as stroke-3: fewer of them look like some test sheep than train sheep do."""
    from sketch_rnn.quickdraw.convert import drawing_to_stroke3
    from sketch_rnn.quickdraw.readers import read_ndjson

    test, train = sheep
    drawings = [d for d in read_ndjson(str(QUICKDRAW)) if d.word != "sheep"]
    order = np.random.default_rng(3).permutation(len(drawings))[:300]
    others = [drawing_to_stroke3(drawings[i])[0] for i in order]
    others = [s for s in others if s is not None]
    assert len(others) > 250
    got = sq.sketch_precision_recall(test, others)
    base = sq.sketch_precision_recall(test, train)
    assert got["precision"] < base["precision"] - 0.2, (got, base)


def test_empty_samples_are_outside_every_ball(sheep) -> None:
    test, train = sheep
    fake = list(train[:50]) + [np.zeros((0, 3))] * 50
    got = sq.sketch_precision_recall(test, fake)
    alone = sq.sketch_precision_recall(test, train[:50])
    assert got["precision"] == pytest.approx(alone["precision"] / 2)
    assert got["recall"] == alone["recall"]


def test_the_module_imports_no_framework() -> None:
    assert frameworks_imported_by("import sketch_rnn.evaluation.sample_quality") == []
