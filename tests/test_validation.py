"""Validation and `evaluate`'s losses through the compiled graph of `model.loss_terms`:
the same numbers as the eager calls (the reference), one trace per model reused across
checkpoints, and weights read at each call (never a stale copy). Its closed form (one batch
of every sketch) is test_cli_end_to_end's test_evaluate_is_independent_of_batching."""
from __future__ import annotations

import pytest
from conftest import fast_first

from sketch_rnn.data import load_data
from sketch_rnn.evaluation.losses import evaluate_split, loss_terms_fn
from sketch_rnn.training.runs import load_run

KEYS = ("recon", "stroke", "pen", "kl", "cost")


def _run_and_valid(run_dir):
    run = load_run(run_dir)
    return run, load_data(run.data_paths, run.hps.max_seq_len).valid


@pytest.mark.parametrize("which", fast_first(["ten_step_run", "ten_step_decoder_run"]))
def test_compiled_validation_equals_the_eager_reference(which, request) -> None:
    run, valid = _run_and_valid(request.getfixturevalue(which))
    eager = evaluate_split(run.model, valid, run.hps, eager=True)
    graph = evaluate_split(run.model, valid, run.hps)
    assert set(graph) == set(KEYS)  # the keys the trainer logs as val_* (callbacks read them)
    for key in KEYS:
        assert graph[key] == pytest.approx(eager[key], rel=1e-5, abs=1e-6), key


def test_the_graph_is_traced_once_and_follows_the_weights(ten_step_decoder_run) -> None:
    """Two checkpoints' validations: the second reuses the first's trace, and sees weights
    changed in between (as training changes them) exactly as the eager call does."""
    run, valid = _run_and_valid(ten_step_decoder_run)
    first = evaluate_split(run.model, valid, run.hps)
    graph = loss_terms_fn(run.model)
    assert graph is loss_terms_fn(run.model)  # kept on the model
    head = run.model.head.kernel
    head.assign(head.numpy() * 1.5)  # what a training step does to the weights
    second = evaluate_split(run.model, valid, run.hps)
    assert second["cost"] != pytest.approx(first["cost"], rel=1e-3)
    assert second["cost"] == pytest.approx(
        evaluate_split(run.model, valid, run.hps, eager=True)["cost"], rel=1e-5)
    assert graph.experimental_get_tracing_count() == 1

