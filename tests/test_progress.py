"""The progress bar's estimate: training steps only, not the stall of a checkpoint."""
from __future__ import annotations

import time
from types import SimpleNamespace

from sketch_rnn.training.progress import TrainingLogger

STEP_S, STALL_S = 0.12, 1.2  # a step just over tqdm's refresh interval; a checkpoint's stall


def _rate_after_a_stall(tmp_path, exclude: bool) -> tuple[float, float]:
    """(rate before, rate after) of a bar that saw steps of STEP_S, a stall, one more step."""
    schedule = SimpleNamespace(current=1e-3)
    logger = TrainingLogger(tmp_path, 0, 100, schedule, schedule, progress=True)
    try:
        for batch in range(6):
            time.sleep(STEP_S)
            logger.on_train_batch_end(batch, {"cost": 1.0})
        before = logger.bar.format_dict["rate"]
        time.sleep(STEP_S)  # the step whose end saves a checkpoint
        started = time.perf_counter()
        time.sleep(STALL_S)
        if exclude:
            logger.exclude_from_rate(time.perf_counter() - started)
        logger.on_train_batch_end(6, {"cost": 1.0})
        return before, logger.bar.format_dict["rate"]
    finally:
        logger.close()


def test_a_checkpoint_stall_leaves_the_rate_alone(tmp_path) -> None:
    before, after = _rate_after_a_stall(tmp_path / "steady", exclude=True)
    assert 1 / STEP_S / 2 < before < 1 / STEP_S * 1.2
    assert after > before * 0.7  # steps of STEP_S: the same rate, within the machine's noise
    # the control: the same stall left in drags tqdm's smoothed rate down by a third or more
    _, dragged = _rate_after_a_stall(tmp_path / "control", exclude=False)
    assert dragged < before * 0.7
