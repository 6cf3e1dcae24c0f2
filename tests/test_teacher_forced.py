"""The teacher-forced view's pruning (sketch_rnn.evaluation.teacher_forced) ranks exactly as
the brute force: every pair's full score through `teacher_forced_scores` (itself checked
against an eager loop in test_evaluate_batching.py) is the independent reference.

A tiny untrained float32 model, its codes scaled to O(1), with planted cases: two copies of
one sketch (their codes tie, and ties count against), codes pushed away from their sketches
(competitors beat them), sketches that fill N_max (no pen tail: their bound is their score)
beside shorter ones. Controls: a model whose decoder ignores z (every code scores alike, so
the bound decides nothing and every rank is a tie), and the bound itself never above the
full score.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import SHEEP, tiny_model

from sketch_rnn.data import load_npz
from sketch_rnn.evaluation import teacher_forced as tf
from sketch_rnn.evaluation.retrieval import posterior, retrieval_at_k

N_MAX = 64
SCALE = 20.0


@pytest.fixture(scope="module")
def model():
    from keras import ops

    m = tiny_model(N_MAX, 3)
    m.mu_dense.kernel.assign(ops.convert_to_numpy(m.mu_dense.kernel) * 300.0)
    return m


@pytest.fixture(scope="module")
def planted(model):
    """(sketches, codes): one sketch of N_max points, 3 long ones, 3 short ones, a copy of
    the first; codes 2 and 5 moved away from their sketches."""
    test = load_npz(SHEEP)["test"]
    sketches = ([s for s in test if len(s) == N_MAX][:1]
                + [s for s in test if 55 <= len(s) < N_MAX][:3]
                + [s for s in test if 30 <= len(s) < 50][:3])
    sketches.append(sketches[0].copy())
    mu = np.array(posterior(model, sketches, SCALE)[0])  # (8, z)
    mu[2] *= 4.0
    mu[5] *= -3.0
    return sketches, mu


def _ranks(scores: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Each row's count of other codes scoring at or below its own (ties against)."""
    return np.sum(scores <= own[:, None], axis=1) - 1


@pytest.mark.parametrize("rows", [8, 16, 400])  # one code per call; two; all pairs in one
def test_pruned_ranks_equal_the_brute_force(model, planted, rows) -> None:
    sketches, mu = planted
    full = tf.teacher_forced_scores(model, sketches, SCALE, rows=rows, mu=mu)  # (8, 8)
    own = np.diag(full)
    want = _ranks(full, own)
    assert full[0, 7] == full[0, 0] and want[0] >= 1  # the copy's code ties, against it
    assert np.any((full < own[:, None]).sum(axis=1) > 0)  # a competitor strictly better
    assert np.any(want == 0)
    got, decided = tf.pruned_teacher_forced_scores(model, sketches, SCALE, rows=rows, mu=mu,
                                                   groups=3)
    np.testing.assert_array_equal(_ranks(got, np.diag(got)), want)
    ks = tuple(range(1, 9))
    assert retrieval_at_k(got, ks) == retrieval_at_k(full, ks)
    computed = np.isfinite(got)
    np.testing.assert_array_equal(got[computed], full[computed])  # the same numbers
    skipped = ~computed  # held +inf: each must score above its own pair in the brute force
    assert np.all(full[skipped] > np.broadcast_to(own[:, None], full.shape)[skipped])
    if rows == 8:  # nothing decoded beside the own pairs: every skipped pair was decided
        assert decided > 0 and skipped.sum() == round(decided * 8 * 7)


def test_the_bound_is_never_above_the_full_score(model, planted) -> None:
    sketches, mu = planted
    strokes, lengths, mu32 = tf._inputs(model, sketches, SCALE, mu)
    full = tf.teacher_forced_scores(model, sketches, SCALE, rows=16, mu=mu)
    for groups in (1, 2, 4, 8):
        bound = tf._prefix_bounds(model, strokes, lengths, mu32, groups, 16)
        assert np.all(bound <= full + 1e-6 * np.maximum(1.0, np.abs(full))), groups
    long = lengths == N_MAX  # no pen tail: bound and score sum the same steps
    assert long.any()
    np.testing.assert_allclose(bound[long], full[long], rtol=1e-6)


def test_a_decoder_that_ignores_z_leaves_every_pair_to_the_full_path(planted) -> None:
    """Every code gives each sketch the same L_R: no bound clears the own score, all pairs
    are decoded in full, and every rank is a tie (7 of 7 against)."""
    from keras import ops

    m = tiny_model(N_MAX, 3)
    m.initial_state_dense.kernel.assign(np.zeros(m.initial_state_dense.kernel.shape, "float32"))
    variable = getattr(m.decoder, "cell", m.decoder).kernel  # (5 + z, 4u)
    kernel = ops.convert_to_numpy(variable)
    kernel[5:] = 0.0  # rows of z in the decoder input [S_{i-1} (5), z]
    variable.assign(kernel)
    sketches, mu = planted
    full = tf.teacher_forced_scores(m, sketches, SCALE, rows=8, mu=mu)
    got, decided = tf.pruned_teacher_forced_scores(m, sketches, SCALE, rows=8, mu=mu)
    assert decided == 0.0 and np.all(np.isfinite(got))
    np.testing.assert_array_equal(got, full)
    assert retrieval_at_k(got, (1, 7)) == retrieval_at_k(full, (1, 7))


def test_length_groups_cut_the_order_into_whole_calls() -> None:
    order = np.arange(100)[::-1]
    for groups, per_call in [(8, 4), (3, 4), (100, 1), (1, 7), (8, 30)]:
        parts = tf._length_groups(order, groups, per_call)
        np.testing.assert_array_equal(np.concatenate(parts), order)
        assert len(parts) <= groups
        assert all(len(p) % per_call == 0 for p in parts[:-1])
