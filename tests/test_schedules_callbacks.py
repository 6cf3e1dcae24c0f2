"""Schedules against their formulas; callbacks pickle without the model and refuse foreign state."""
from __future__ import annotations

import pickle

import keras
import numpy as np
import pytest

from sketch_rnn.training import checkpoint as ckpt_io
from sketch_rnn.training.callbacks import KLWeightScheduler, LearningRateSchedulerPerBatch
from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.core.hparams import preset
from sketch_rnn.core.safepickle import restricted_loads
from sketch_rnn.training.schedules import (KLWeightAnnealing, LearningRateDecay, kl_weight_schedule,
                                  learning_rate_schedule)


def test_learning_rate_schedule_matches_formula() -> None:
    hps = preset("paper")
    lr = learning_rate_schedule(hps)
    steps = np.array([0, 1, 10, 1000, 50000])
    expected = (1e-3 - 1e-5) * 0.9999 ** steps + 1e-5
    np.testing.assert_allclose([lr(s) for s in steps], expected, rtol=1e-12)
    assert lr(0) == pytest.approx(1e-3)
    assert lr(10 ** 7) == pytest.approx(1e-5)


def test_kl_weight_schedule_matches_formula() -> None:
    hps = preset("paper")
    kl = kl_weight_schedule(hps)
    steps = np.array([0, 1, 100, 20000, 10 ** 6])
    expected = 0.5 - (0.5 - 0.01) * 0.99995 ** steps
    np.testing.assert_allclose([kl(s) for s in steps], expected, rtol=1e-12)
    assert kl(0) == pytest.approx(0.01)


class _Model:
    """Just what the callbacks touch: an optimizer with iterations and learning_rate, and kl_weight."""

    def __init__(self, iterations: int = 0) -> None:
        self.optimizer = keras.optimizers.Adam(1e-3)
        self.optimizer.build([keras.Variable(np.zeros(2, "float32"))])
        self.optimizer.iterations.assign(iterations)
        self.kl_weight = keras.Variable(0.0, trainable=False)


def test_callbacks_apply_schedule_and_count() -> None:
    model = _Model()
    lr = LearningRateSchedulerPerBatch(LearningRateDecay(1e-3, 1e-5, 0.9), "run")
    kl = KLWeightScheduler(KLWeightAnnealing(0.5, 0.01, 0.9), "run")
    for cb in (lr, kl):
        cb.set_model(model)
        cb.on_train_begin()
    for step in range(5):
        lr.on_train_batch_begin(step)
        kl.on_train_batch_begin(step)
        assert float(model.optimizer.learning_rate) == pytest.approx((1e-3 - 1e-5) * 0.9 ** step + 1e-5)
        assert float(model.kl_weight) == pytest.approx(0.5 - 0.49 * 0.9 ** step)
        lr.on_train_batch_end(step)
        kl.on_train_batch_end(step)
    assert lr.count == kl.count == 5


def test_callback_pickles_without_model_and_keeps_count() -> None:
    model = _Model(iterations=7)
    cb = LearningRateSchedulerPerBatch(LearningRateDecay(1e-3, 1e-5, 0.9), "run-a", count=7)
    cb.set_model(model)
    data = pickle.dumps({"lr_scheduler": cb})
    assert b"Adam" not in data and b"keras.src" not in data
    loaded = restricted_loads(data, ckpt_io.callback_pickle_allowed(), "callbacks.pkl")["lr_scheduler"]
    assert loaded.count == 7 and loaded.run_id == "run-a"
    assert loaded.schedule == cb.schedule
    loaded.set_model(model)
    loaded.on_train_begin()  # count equals the optimizer's iterations: accepted


def test_callback_refuses_count_that_disagrees_with_optimizer() -> None:
    model = _Model(iterations=12)
    fresh = LearningRateSchedulerPerBatch(LearningRateDecay(1e-3, 1e-5, 0.9), "run")  # count 0
    fresh.set_model(model)
    with pytest.raises(SketchRNNError, match="count is 0 but the optimizer has run 12"):
        fresh.on_train_begin()


def test_callback_pickle_with_foreign_global_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps({"lr_scheduler": Evil()})
    with pytest.raises(SketchRNNError, match="refused to unpickle (posix|os).system"):
        restricted_loads(data, ckpt_io.callback_pickle_allowed(), "callbacks.pkl")
    assert not marker.exists()


def test_old_checkpoint_callbacks_load_under_their_old_module_paths() -> None:
    """The first shipped checkpoints/sheep (step 13459, kept as tests/fixtures/legacy/
    callbacks.pkl) was pickled when the callbacks lived in sketch_rnn.callbacks and
    sketch_rnn.schedules; the allow-list maps those names, so such runs still resume."""
    from pathlib import Path

    path = Path(__file__).resolve().parent / "fixtures" / "legacy" / "callbacks.pkl"
    raw = path.read_bytes()
    assert b"sketch_rnn.callbacks" in raw  # the old spelling really is in the file
    saved = restricted_loads(raw, ckpt_io.callback_pickle_allowed(), str(path))
    assert isinstance(saved["lr_scheduler"], LearningRateSchedulerPerBatch)
    assert isinstance(saved["kl_scheduler"], KLWeightScheduler)
    assert saved["lr_scheduler"].count == saved["kl_scheduler"].count == 13459