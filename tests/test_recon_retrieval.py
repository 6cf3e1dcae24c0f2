"""The field's reconstruction retrieval (sketch_rnn.evaluation.recon_retrieval) and its controls.

ret_code ranks the code of each sketch's reconstruction among all the split's codes. Controls
whose answer is known without the code under test: the originals encoded again (every query is
exactly its own code: 1.0), the codes of another split's sketches (unrelated: chance within a
binomial bound), a decoder that ignores z (every code explains every sketch equally: with ties
counted against, 0). Distances against a NumPy loop; decodes against the public sampler.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import SHEEP, tiny_model
from scipy.stats import binom

from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.data import load_npz
from sketch_rnn.evaluation import recon_retrieval as rr
from sketch_rnn.evaluation.retrieval import decode_codes, posterior, retrieval_at_k

N_MAX = 64
SCALE = 20.0  # data units per normalised unit, about the sheep's scale factor
FALSE_FAILURE = 1e-4


@pytest.fixture(scope="module")
def model():
    """A tiny untrained model whose codes are O(1): mu's kernel scaled up (untrained codes
    are ~1e-3, all near each other) -- the controls need codes, not a good model."""
    from keras import ops

    m = tiny_model(N_MAX, 3)
    m.mu_dense.kernel.assign(ops.convert_to_numpy(m.mu_dense.kernel) * 300.0)
    return m


@pytest.fixture(scope="module")
def splits():
    data = load_npz(SHEEP)
    short = {k: [s for s in v if len(s) <= N_MAX] for k, v in data.items()}
    return short["test"][:60], short["valid"][:60]


def test_code_distances_equal_a_loop() -> None:
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(4, 6)), rng.normal(size=(5, 6))
    q[2] = np.nan  # a reconstruction with nothing to encode
    d = rr.code_distances(q, r)
    for i in range(4):
        for j in range(5):
            want = math.inf if i == 2 else math.dist(q[i], r[j])
            assert d[i, j] == pytest.approx(want, rel=1e-9)
    with pytest.raises(SketchRNNError, match="codes: expected"):
        rr.code_distances(q, r[:, :3])


def test_an_unencodable_reconstruction_ranks_last() -> None:
    mu = np.eye(4)
    recoded = mu.copy()
    recoded[1] = np.nan
    assert rr.ret_code(recoded, mu, ks=(1, 3, 4)) == {
        "ret_code_at_1": 0.75, "ret_code_at_3": 0.75, "ret_code_at_4": 1.0}


def test_originals_retrieve_themselves(model, splits) -> None:
    """Encode the original instead of a reconstruction: each query is its own code."""
    test, _ = splits
    mu, _ = posterior(model, test, SCALE)
    assert len(np.unique(mu.round(6), axis=0)) == len(test)  # distinct codes
    assert rr.ret_code(rr.recode(model, test, SCALE), mu) == {
        "ret_code_at_1": 1.0, "ret_code_at_5": 1.0, "ret_code_at_10": 1.0}


def test_unrelated_codes_score_chance(model, splits) -> None:
    """Query i is the code of a valid sketch: it says nothing about test sketch i, so
    hits@k are Binomial(n, k/n); bound: that binomial's 1 - 1e-4 quantile."""
    test, valid = splits
    n = len(test)
    mu, _ = posterior(model, test, SCALE)
    scores = rr.ret_code(rr.recode(model, valid[:n], SCALE), mu)
    for k in (1, 5, 10):
        assert scores[f"ret_code_at_{k}"] <= binom.ppf(1 - FALSE_FAILURE, n, k / n) / n, scores


def test_decode_codes_greedy_is_the_samplers_greedy_decode(model, splits) -> None:
    from sketch_rnn.generation.sampling import decode

    mu, _ = posterior(model, splits[0][:5], SCALE)
    mine = decode_codes(model, mu, "greedy", scale_factor=SCALE, batch=2)
    reference = decode(model, mu, greedy=True, scale_factor=SCALE)
    assert len(mine) == 5 and all(np.array_equal(a, b) for a, b in zip(mine, reference))


def test_sampled_reconstructions_do_not_depend_on_the_batching(model, splits) -> None:
    mu, _ = posterior(model, splits[0][:7], SCALE)
    a = decode_codes(model, mu, 0.5, seed=4, scale_factor=SCALE, batch=7)
    b = decode_codes(model, mu, 0.5, seed=4, scale_factor=SCALE, batch=3)
    c = decode_codes(model, mu, 0.5, seed=5, scale_factor=SCALE, batch=7)
    assert all(np.allclose(x, y, atol=1e-4) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and np.allclose(x, y) for x, y in zip(a, c))


def test_temperature_labels() -> None:
    assert [rr.tau_label(t) for t in rr.TEMPERATURES] == [
        "greedy", "tau_0.25", "tau_0.5", "tau_1"]
    with pytest.raises(SketchRNNError, match="temperature"):
        rr.tau_label(0.0)


def test_a_decoder_that_ignores_z_scores_zero_teacher_forced(splits) -> None:
    """Zero the z -> initial state weights and the decoder's z inputs: every code gives
    every sketch the same L_R, and ties count against the query."""
    from keras import ops

    m = tiny_model(N_MAX, 3)
    sketches = splits[0][:6]
    scores = rr.teacher_forced_scores(m, sketches, SCALE)  # (6, 6)
    assert scores.shape == (6, 6) and np.all(np.isfinite(scores))
    m.initial_state_dense.kernel.assign(np.zeros(m.initial_state_dense.kernel.shape, "float32"))
    variable = getattr(m.decoder, "cell", m.decoder).kernel  # (5 + z, 4u)
    kernel = ops.convert_to_numpy(variable)
    assert kernel.shape[0] == 5 + m.hps.z_size
    kernel[5:] = 0.0  # rows of z in the decoder input [S_{i-1} (5), z]
    variable.assign(kernel)
    blind = rr.teacher_forced_scores(m, sketches, SCALE)
    assert np.allclose(blind, blind[:, :1], atol=1e-5)  # one value per sketch
    assert retrieval_at_k(np.round(blind, 4), (1,))["ret_at_1"] == 0.0


def test_latent_report_keys_and_bounds(model, splits) -> None:
    test, _ = splits
    logged: list[str] = []
    report = rr.latent_report(model, test[:12], scale_factor=SCALE, teacher_forced_n=5,
                              ks=(1, 5), log=logged.append)
    for label in ("greedy", "tau_0.25", "tau_0.5", "tau_1"):
        for view in ("code", "raster"):
            a, b = report[f"ret_{view}_at_1_{label}"], report[f"ret_{view}_at_5_{label}"]
            assert 0.0 <= a <= b <= 1.0
    assert report["ret_at_1"] == report["ret_raster_at_1_greedy"]
    assert report["ret_tf_count"] == 5 and 0 <= report["ret_tf_at_1"] <= 1
    assert report["ret_chance_at_1"] == pytest.approx(1 / 12)
    assert "sqrt(tau)" in report["ret_convention"] and len(logged) == 5
    with pytest.raises(SketchRNNError, match="decoder-only"):
        rr.latent_report(tiny_model(N_MAX, 3, conditional=False), test[:3])
