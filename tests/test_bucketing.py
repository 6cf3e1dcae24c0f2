"""Length-bucketed training batches (hparam bucketed_batches): the sampler, the loss and the
resume paths.

References are independent of the code under test: inclusion frequencies against the
binomial law of the uniform draw (B/n per sketch and step), padded lengths against each
sketch's own length, L_s against the same model's full-length (N_max) batch, and resumes
against uninterrupted runs of the same path.
"""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from conftest import SHEEP, TINY_BUCKETED, fingerprint, train_tiny

from sketch_rnn.core.hparams import HParams, preset
from sketch_rnn.data import bucketed_train_batch, load_data, train_batch
from sketch_rnn.data.batches import NUM_BUCKETS

HPS = HParams(batch_size=50, max_seq_len=250, random_scale_factor=0.15, augment_stroke_prob=0.1)


@pytest.fixture(scope="module")
def sheep():
    return load_data([SHEEP], 250)


_TABLES: dict = {}


def _indices(split, strokes, lengths):
    """Which sketches a batch holds, found by matching rows against the split (no augment)."""
    if id(split) not in _TABLES:
        table: dict = {}
        for i in range(len(split)):
            table.setdefault(split.sketch(i).tobytes(), []).append(i)
        _TABLES[id(split)] = (split, table)
    table = _TABLES[id(split)][1]
    out = []
    for s, n in zip(strokes, lengths):
        pts = np.stack([s[1:n + 1, 0], s[1:n + 1, 1], s[1:n + 1, 3]], axis=1)
        out.append(table[pts.astype(np.float32).tobytes()][0])
    return out


def test_every_sketch_is_drawn_as_often_as_uniformly(sheep):
    """Each step includes sketch i with probability B/n (steps independent), so its count
    over many steps is Binomial(steps, B/n), as with the uniform draw; and no length range
    is favoured: each length decile's total stays within 5 standard errors of the uniform
    mean (the per-step totals vary more than binomially, a whole batch shares a bucket, so
    the standard error comes from their observed spread)."""
    hps = HPS.replace(random_scale_factor=0.0, augment_stroke_prob=0.0, batch_size=100)
    split = sheep.train
    n, b, steps = len(split), hps.batch_size, 2000
    lengths = split.lengths()
    deciles = np.array_split(np.argsort(lengths, kind="stable"), 10)
    counts = np.zeros(n)
    per_step = np.zeros((steps, len(deciles)))
    for step in range(steps):
        strokes, lens = bucketed_train_batch(split, hps, 3, step)
        hit = np.zeros(n)
        np.add.at(hit, _indices(split, strokes, lens), 1)
        counts += hit
        per_step[step] = [hit[g].sum() for g in deciles]
    p = b / n
    for j, group in enumerate(deciles):
        # duplicates of a sketch count at its first copy, which may sit in a neighbour decile
        se = np.sqrt(steps) * per_step[:, j].std() + 1
        assert abs(per_step[:, j].sum() - steps * p * len(group)) < 5 * se + 30
    unique = np.array([len(_TABLES[id(split)][1][split.sketch(i).tobytes()]) == 1
                       for i in range(n)])
    c = counts[unique]
    assert abs(c.mean() - steps * p) < 5 * np.sqrt(steps * p * (1 - p) / len(c))
    assert 0.9 < c.std() / np.sqrt(steps * p * (1 - p)) < 1.1
    assert counts.sum() == steps * b  # B distinct rows each step


def test_padded_length_bounds_each_sketch_and_shapes_are_few(sheep):
    shapes = set()
    for step in range(300):
        strokes, lengths = bucketed_train_batch(sheep.train, HPS, 0, step)
        t = strokes.shape[1] - 1  # padded length (S_0 excluded)
        assert strokes.shape == (HPS.batch_size, t + 1, 5)
        assert t <= HPS.max_seq_len
        # every sketch ends before the padding does: at least one end-of-sketch step
        assert t >= min(int(lengths.max()) + 1, HPS.max_seq_len)
        for s, n in zip(strokes, lengths):
            assert np.all(s[n + 1:, 4] == 1) and np.all(s[1:n + 1, 4] == 0)
        shapes.add(t)
    assert 2 <= len(shapes) <= NUM_BUCKETS


def test_bucketed_batch_is_a_pure_function_of_seed_and_step(sheep):
    a = bucketed_train_batch(sheep.train, HPS, 5, 17)
    b = bucketed_train_batch(sheep.train, HPS, 5, 17)
    c = bucketed_train_batch(sheep.train, HPS, 5, 18)
    d = bucketed_train_batch(sheep.train, HPS, 6, 17)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not (a[0].shape == c[0].shape and np.array_equal(a[0], c[0]))
    assert not (a[0].shape == d[0].shape and np.array_equal(a[0], d[0]))


def test_bucketed_loss_equals_the_full_length_one(sheep):
    """L_s of a bucketed batch = L_s of the same sketches padded to N_max, same model."""
    from sketch_rnn.data.batches import batch_from_indices
    from sketch_rnn.model.vae import SketchRNN

    hps = preset("tiny").replace(max_seq_len=250, random_scale_factor=0.0,
                                 augment_stroke_prob=0.0, batch_size=8)
    model = SketchRNN(hps, seed=1)
    strokes, lengths = next(x for x in (bucketed_train_batch(sheep.train, hps, 0, k)
                                        for k in range(100)) if x[0].shape[1] < 150)
    idx = _indices(sheep.train, strokes, lengths)
    full, full_len = batch_from_indices(sheep.train, np.array(idx), hps.max_seq_len)
    assert strokes.shape[1] < full.shape[1]
    np.testing.assert_array_equal(full[:, :strokes.shape[1]], strokes)
    short = model.loss_terms(strokes, lengths)
    ref = model.loss_terms(full, full_len)
    np.testing.assert_allclose(np.asarray(short["stroke"]), np.asarray(ref["stroke"]),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(short["kl"]), np.asarray(ref["kl"]), rtol=1e-5)
    # L_p: the steps up to T as in the full-length batch, then the step at T (an
    # end-of-sketch step for every sketch) counted N_max - T more times; from NumPy on the
    # full-length teacher-forced pen logits of a decoder-only model (no random z)
    t, n_max = strokes.shape[1] - 1, hps.max_seq_len
    assert np.all(lengths < t)
    model = SketchRNN(hps.replace(conditional=False), seed=1)
    short = model.loss_terms(strokes, lengths)
    logits = np.asarray(model.decode_sequence(full, None))[..., :3]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # (B, N_max, 3)
    ce = -(full[:, 1:, 2:] * logp).sum(-1)  # (B, N_max)
    expected = (ce[:, :t].sum(1) + (n_max - t) * ce[:, t - 1]) / n_max
    np.testing.assert_allclose(np.asarray(short["pen"]), expected, rtol=1e-5, atol=1e-6)


def test_full_length_path_is_unchanged(sheep):
    """bucketed_batches=False keeps today's batch of step k, bit for bit (N_max wide)."""
    hps = HPS.replace(bucketed_batches=False)
    from sketch_rnn.data import step_batch

    for step in (0, 9):
        for x, y in zip(step_batch(sheep.train, hps, 2, step), train_batch(sheep.train, hps, 2,
                                                                            step)):
            np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------ runs and resumes
SHORT_TRAIN = 24  # train sketches of `short_sheep`: min(NUM_BUCKETS, 24 // B = 8) = 3 buckets


@pytest.fixture(scope="module")
def short_sheep(tmp_path_factory):
    """Real sheep of at most 64 points (the tiny runs' N_max): the first SHORT_TRAIN of the
    train split and the first 24 of valid and test. At B = 8 the train split is 3 length
    buckets, so a bucketed run traces at most 3 shapes (each trace costs about a second
    and a half) where the whole sheep set would give it 8."""
    from npz_helpers import write_npz
    from sketch_rnn.data.npz import load_npz

    short = {k: [x for x in v if len(x) <= 64] for k, v in load_npz(SHEEP).items()}
    sizes = {"train": SHORT_TRAIN, "valid": 24, "test": 24}
    path = tmp_path_factory.mktemp("short_sheep") / "short_sheep.npz"
    return str(write_npz(path, **{k: short[k][:n] for k, n in sizes.items()}))


@pytest.fixture(scope="module")
def bucketed_twenty(tmp_path_factory, short_sheep):
    """A tiny run on the bucketed path (TINY_BUCKETED, seed 0, `short_sheep`), 20 steps."""
    run_dir = tmp_path_factory.mktemp("bucketed_twenty") / "run"
    train_tiny(run_dir, 20, seed=0, hparams=TINY_BUCKETED, data=short_sheep)
    return run_dir


@pytest.mark.slow  # the resume check (test_resume) on the bucketed path: three tiny runs
def test_bucketed_run_traces_its_step_once_and_resumes_exactly(bucketed_twenty, short_sheep,
                                                               tmp_path):
    buckets = SHORT_TRAIN // 8  # B = 8 (TINY_BUCKETED), fewer than NUM_BUCKETS
    straight = train_tiny(tmp_path / "a", 30, seed=0, hparams=TINY_BUCKETED, data=short_sheep)
    assert straight.hps.bucketed_batches
    assert buckets > 1 and straight.model.trace_count == 1  # not one trace per step or length
    shutil.copytree(bucketed_twenty, tmp_path / "b")  # the same run stopped at 20 (seed 0)
    resumed = train_tiny(tmp_path / "b", 30, hparams=TINY_BUCKETED, data=short_sheep)
    assert resumed.model.trace_count == 1
    assert fingerprint(tmp_path / "a") == fingerprint(tmp_path / "b")


@pytest.mark.slow  # three tiny runs
def test_full_length_path_resumes_exactly_and_differs_from_bucketed(
        ten_step_run, twenty_step_run, bucketed_twenty, short_sheep, tmp_path):
    # ten_step_run and twenty_step_run: TINY_HPARAMS (full-length batches), seed 0
    shutil.copytree(ten_step_run, tmp_path / "b")
    train_tiny(tmp_path / "b", 20)
    assert fingerprint(tmp_path / "b") == fingerprint(twenty_step_run)
    # the same 20 steps on the bucketed path (same data and seed, float32 both: only the
    # path differs) end elsewhere
    train_tiny(tmp_path / "c", 20, seed=0, data=short_sheep)
    assert fingerprint(bucketed_twenty) != fingerprint(tmp_path / "c")


def test_changing_the_path_on_resume_is_refused_by_name(ten_step_run, tmp_path):
    from sketch_rnn.core.errors import SketchRNNError
    from sketch_rnn.training.trainer import plan_run

    shutil.copytree(ten_step_run, tmp_path / "r")  # a full-length run (TINY_HPARAMS), step 10
    hp = TINY_BUCKETED + ",bucketed_batches=true"
    with pytest.raises(SketchRNNError, match="bucketed_batches"):
        plan_run(tmp_path / "r", [SHEEP], "tiny", hp, 20, None)
    allowed = plan_run(tmp_path / "r", [SHEEP], "tiny", hp, 20, None,
                       allow_changes={"bucketed_batches"})
    assert allowed.hps.bucketed_batches is True
    assert allowed.lineage == [{"kind": "path_change", "step": 10, "field": "bucketed_batches",
                                "from": False, "to": True}]


@pytest.mark.slow  # trains a tiny run (the fast loop's resume check is test_resume's stop mid-way)
def test_run_saved_before_the_key_resumes_on_the_old_path(tmp_path, ten_step_run):
    """A run saved before bucketed_batches and precision existed (its state.json hparams
    lack both keys, as the first shipped checkpoints' did) continues with full-length float32
    batches: 2 steps of it equal 2 steps of the same run told bucketed_batches=false
    explicitly (its key written into a copy)."""
    from sketch_rnn.training.trainer import Trainer, plan_run

    legacy, explicit = tmp_path / "legacy", tmp_path / "explicit"
    for dst in (legacy, explicit):
        shutil.copytree(ten_step_run, dst, symlinks=True)
    for run, edit in ((legacy, _drop_new_keys), (explicit, _full_length)):
        for p in run.rglob("state.json"):
            state = json.loads(p.read_text())
            edit(state["hparams"])
            p.write_text(json.dumps(state))
        _refresh_manifests(run)
    fps = []
    for run in (legacy, explicit):
        plan = plan_run(run, [SHEEP], None, None, None, None)
        assert plan.hps.bucketed_batches is False and plan.hps.precision == "float32"
        hps = plan.hps.replace(num_steps=plan.resume_from.step + 2, save_every=2)
        trainer = Trainer(dataclasses.replace(plan, hps=hps), progress=False)
        assert trainer.fit() == 0
        fps.append(fingerprint(run))
    assert fps[0] == fps[1]


def _drop_new_keys(hparams: dict) -> None:
    del hparams["bucketed_batches"], hparams["precision"]


def _full_length(hparams: dict) -> None:
    hparams.update(bucketed_batches=False, precision="float32")


def _refresh_manifests(run_dir):
    """Rewrite each checkpoint's manifest sha256 of the edited state.json (as if so saved)."""
    import hashlib

    for state in run_dir.rglob("state.json"):
        manifest = state.parent / "MANIFEST.json"
        data = json.loads(manifest.read_text())
        data["files"]["state.json"] = hashlib.sha256(state.read_bytes()).hexdigest()
        manifest.write_text(json.dumps(data, indent=2))


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_one_trace_for_every_length_gives_the_bits_of_a_trace_per_length(tmp_path, precision):
    """The bucketed training step traced once with the time dimension None (the trainer's,
    given the buckets' batch size) against the reference: a graph traced for each batch's own
    length (the same function without shapes). The same fresh model after the same six
    batches of several lengths must hold the same bits, variables and optimizer slots."""
    from sketch_rnn.data.batches import bucketed_train_batch
    from sketch_rnn.training.trainer import Trainer, per_shape_train_function, plan_run

    hparams = TINY_BUCKETED.replace("precision=float32", f"precision={precision}")
    runs = {}
    for name in ("any_length", "per_length"):
        trainer = Trainer(plan_run(tmp_path / name, [SHEEP], "tiny", hparams, 10, 0),
                          progress=False)
        model, hps = trainer.model, trainer.hps
        batches = [bucketed_train_batch(trainer.data.train, hps, 0, k) for k in range(6)]
        shapes = sorted({strokes.shape for strokes, _ in batches})
        model.make_train_function()  # the optimizer's variables, as fit builds them
        step = per_shape_train_function(model, hps.batch_size if name == "any_length" else None)
        for strokes, lengths in batches:
            step(iter([{"strokes": strokes, "lengths": lengths}]))
        values = [np.array(v) for v in model.trainable_variables + model.optimizer.variables]
        runs[name] = (values, model.trace_count, len(shapes))
    (any_values, any_traces, lengths), (per_values, per_traces, _) = runs.values()
    assert lengths >= 3  # the batches really have several lengths
    assert (any_traces, per_traces) == (1, lengths)
    assert len(any_values) == len(per_values)
    for a, b in zip(any_values, per_values):
        np.testing.assert_array_equal(a, b)
