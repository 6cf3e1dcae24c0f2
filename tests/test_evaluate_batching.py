"""`sketch-rnn evaluate`'s batching changes no number: the shipped sheep's report on a subset,
cut the old way (small padded chunks, one code per teacher-forced call, nothing shared between
temperatures) and the new way (one call per split, several codes per call, the originals'
distance maps and real features computed once), gives the same dict, key for key, value for
value. The shipped model runs bf16 matmuls, whose rounding would show any row that is
computed differently; the sampled parts use the same seeds, so they must match exactly.

The teacher-forced scores themselves are checked against an independent eager loop (one
`decode_sequence` per code, no graph, no tiling) on a tiny float32 model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHEEP, tiny_model

from sketch_rnn.data import load_npz
from sketch_rnn.evaluation import recon_retrieval as rr
from sketch_rnn.evaluation import report
from sketch_rnn.evaluation import retrieval as rt
from sketch_rnn.evaluation import sample_quality as sq

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "sheep"
N = 16  # sketches of the subset: more than K = 3 neighbours and ret@10 need
OLD_BATCH = 6  # the old way's chunk: 6 + 6 + (4 real + 2 copies), two shapes


@pytest.fixture(scope="module")
def shipped():
    from sketch_rnn.training.runs import load_run

    run = load_run(str(SHIPPED))
    split, _ = report.load_split(run, SHIPPED, None, "test")
    return run.model, [split.sketch(i) for i in range(N)]


def _old_latent_report(model, sketches, temperatures, teacher_forced_n):
    """latent_report as it was computed before: chunks of OLD_BATCH everywhere, the
    originals' maps recomputed per temperature, one code per teacher-forced call with the
    codes encoded again."""
    mu, presig = rt.posterior(model, sketches, 1.0, OLD_BATCH)
    originals = rt.rasterise(sketches)
    out = {"active_units": rt.active_units(mu), "kl_nats": rt.kl_nats(mu, presig),
           "ret_chance_at_1": 1.0 / len(sketches), "ret_seed": rr.SEED,
           "ret_convention": rr.CONVENTION}
    for tau in temperatures:
        label = rr.tau_label(tau)
        recons = rt.decode_codes(model, mu, tau, rr.SEED, 1.0, OLD_BATCH)
        codes = rr.ret_code(rr.recode(model, recons, 1.0, OLD_BATCH), mu)
        raster = rt.retrieval_at_k(rt.chamfer_matrix(rt.rasterise(recons), originals), rr.KS)
        out.update({f"{k}_{label}": v for k, v in codes.items()})
        out.update({f"{k.replace('ret_', 'ret_raster_')}_{label}": v for k, v in raster.items()})
        if label == "greedy":
            out.update({f"ret_at_{k}": raster[f"ret_at_{k}"] for k in (1, 5)})
    tf = rt.retrieval_at_k(rr.teacher_forced_scores(model, sketches[:teacher_forced_n], 1.0,
                                                    rows=1), rr.KS)
    out.update({k.replace("ret_", "ret_tf_"): v for k, v in tf.items()})
    out["ret_tf_count"] = teacher_forced_n
    return out


def test_the_shipped_sheeps_report_does_not_depend_on_the_batching(shipped) -> None:
    model, sketches = shipped
    temperatures = ("greedy", 0.5)
    new = rr.latent_report(model, sketches, temperatures=temperatures, teacher_forced_n=8)
    old = _old_latent_report(model, sketches, temperatures, teacher_forced_n=8)
    assert new == old


def test_the_sample_report_reuses_the_real_features_unchanged(shipped, monkeypatch) -> None:
    model, sketches = shipped
    new = report.sample_report(model, sketches, temperatures=("greedy", 0.5))
    monkeypatch.setattr(report, "features", lambda real: None)  # recompute them per call
    assert report.sample_report(model, sketches, temperatures=("greedy", 0.5)) == new
    assert sq.sketch_precision_recall(sketches, sketches[::-1]) == sq.sketch_precision_recall(
        sketches, sketches[::-1], real_features=sq.features(sketches))


def test_teacher_forced_scores_equal_an_eager_loop_however_many_codes_per_call() -> None:
    from keras import ops

    from sketch_rnn.generation.sampling import sketches_to_stroke5
    from sketch_rnn.model.mixture import sketch_loss_terms

    model = tiny_model(64, 3)
    model.mu_dense.kernel.assign(ops.convert_to_numpy(model.mu_dense.kernel) * 300.0)
    sketches = [s for s in load_npz(SHEEP)["test"] if len(s) <= 64][:7]
    strokes, lengths = sketches_to_stroke5(model, sketches, 20.0)
    mu = ops.convert_to_numpy(model.encode(strokes, lengths)[0])  # (7, z), eager
    want = np.zeros((7, 7))
    for i in range(7):  # code i for every sketch j, one eager pass
        raw = model.decode_sequence(strokes, np.repeat(mu[i:i + 1], 7, axis=0))
        terms = sketch_loss_terms(ops.transpose(raw, (1, 0, 2)), strokes, lengths)
        want[:, i] = ops.convert_to_numpy(terms["stroke"] + terms["pen"])
    # codes per call: 1; 2 (4 calls, the last padded); 3 (3 + 3 + 1 padded); 4 (4 + 3); all 7
    for rows in (1, 14, 21, 30, 400):
        got = rr.teacher_forced_scores(model, sketches, 20.0, rows=rows)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"rows={rows}")
    np.testing.assert_allclose(rr.teacher_forced_scores(model, sketches, 20.0, mu=mu), want,
                               rtol=1e-5, atol=1e-5)


def test_padded_chunks_are_the_fewest_of_one_size() -> None:
    for n, most, want in [(300, 512, [300]), (600, 512, [300, 300]), (7, 3, [3, 3, 1]),
                          (513, 512, [257, 256]), (1, 512, [1])]:
        chunks = list(rt.padded_chunks(list(range(n)), most))
        assert [c.real for c in chunks] == want
        assert {len(c.items) for c in chunks} == {want[0]}
        assert sum((c.items[:c.real] for c in chunks), []) == list(range(n))

