"""Write an imported model as a normal run directory (shared by both imports).

Why a run directory and not a new format: every command (sample, serve, evaluate, export,
train) reads runs through `training.runs.load_run` / `training.run_state.plan_run`, so an
import that writes one checkpoint exactly as the trainer does makes all of them work
unchanged. The checkpoint's step is the imported step: the optimizer's iteration count, the
schedule callbacks' counts and therefore the learning rate, w_KL and the per-step random
draws all continue from it.

Nothing half-written is left: the whole run directory is filled beside RUN_DIR in a hidden
temporary directory and renamed into place (`core.files.staged_dir`, as a checkpoint is); an
existing RUN_DIR is replaced only with `force`, and then only after the new one is complete
(the old one is renamed aside first and removed last).
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Sequence

from ..core.errors import SketchRNNError
from ..core.files import file_sha256, staged_dir, write_error
from ..core.hparams import HParams


def files_sha256(paths: Sequence[Path]) -> dict[str, str]:
    """{file name: sha256 hex} of the source files an import read."""
    return {Path(p).name: file_sha256(p).hex() for p in paths}


def check_destination(run_dir: Path, force: bool) -> None:
    """Refuse an existing RUN_DIR without --force (before any slow work is done)."""
    if run_dir.exists() and not force:
        raise SketchRNNError(f"{run_dir}: already exists; use --force to replace it")
    if run_dir.exists() and not run_dir.is_dir():
        raise SketchRNNError(f"{run_dir}: exists and is not a directory")


def data_record(data: Sequence[str] | None, hps: HParams, scale_factor: float | None) -> dict:
    """state.json's "data": from --data (Magenta's scale factor of its train split), or
    --scale-factor alone (no paths, no fingerprint: `train` then needs --data)."""
    if data:
        from ..data import load_data
        from ..training.run_state import data_record as record

        loaded = load_data(list(data), hps.max_seq_len)
        factor = loaded.scale_factor if scale_factor is None else float(scale_factor)
        return {**record(data, loaded), "scale_factor": factor}
    if scale_factor is None:
        raise SketchRNNError("scale factor: not stored in the model; give --data DATA.npz "
                             "(the data it was trained on) or --scale-factor F")
    factor = float(scale_factor)
    if not (factor > 0 and factor < float("inf")):
        raise SketchRNNError(f"--scale-factor {scale_factor}: must be a positive number")
    return {"paths": [], "fingerprint": None, "scale_factor": factor, "categories": []}


def set_counters(model: Any, hps: HParams, step: int) -> tuple[Any, Any]:
    """optimizer.iterations = step and the schedule callbacks at step (their values set)."""
    import numpy as np

    from ..training.callbacks import KLWeightScheduler, LearningRateSchedulerPerBatch
    from ..training.schedules import kl_weight_schedule, learning_rate_schedule

    run_id = uuid.uuid4().hex
    lr_cb = LearningRateSchedulerPerBatch(learning_rate_schedule(hps), run_id, count=step)
    kl_cb = KLWeightScheduler(kl_weight_schedule(hps), run_id, count=step)
    model.optimizer.iterations.assign(np.asarray(step, model.optimizer.iterations.dtype))
    model.optimizer.learning_rate.assign(lr_cb.current)
    model.kl_weight.assign(kl_cb.current)
    return lr_cb, kl_cb


def write_run(run_dir: str | Path, model: Any, hps: HParams, step: int, data: dict,
              provenance: dict[str, Any], force: bool = False, seed: int = 0) -> Path:
    """Publish RUN_DIR holding one verified checkpoint of `model` at `step`.

    `provenance` goes into state.json as "imported" and as the first entry of the run's
    lineage (kind "imported"), which training carries into every later checkpoint.
    """
    from ..training import checkpoint as ckpt_io
    from ..training import run_state

    run_dir = Path(run_dir)
    check_destination(run_dir, force)
    lr_cb, kl_cb = set_counters(model, hps, step)
    state = run_state.build_state(
        step=step, seed=seed, run_id=lr_cb.run_id, data=data, hps=hps, model=model,
        learning_rate=lr_cb.current, kl_weight=kl_cb.current, valid={},
        distribute=run_state.ONE_DEVICE, history=[run_state.imported_entry(provenance)],
        imported=provenance)
    parent = run_dir.parent if str(run_dir.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(parent, e) from None
    with staged_dir(run_dir, replace=True) as tmp:  # replace: check_destination saw --force
        callbacks = {"lr_scheduler": lr_cb, "kl_scheduler": kl_cb}
        path = ckpt_io.CheckpointWriter(tmp, hps.keep_checkpoints).write(step, model, callbacks,
                                                                         state)
        _check_loads(path, state["fingerprint"])
    return run_dir / "checkpoints" / path.name


def _check_loads(path: Path, fingerprint: str) -> None:
    """The written checkpoint verifies and loads back to the same variables."""
    from ..model.build import build_model
    from ..training import checkpoint as ckpt_io

    ckpt = ckpt_io.verify(path)
    model = build_model(ckpt.hps, int(ckpt.state["seed"]))
    model.load_weights(str(path / ckpt_io.WEIGHTS))
    if ckpt_io.fingerprint(model) != fingerprint:
        raise SketchRNNError(f"{path}: the written checkpoint does not load back to the "
                             "imported variables")
