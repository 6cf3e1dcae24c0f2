"""Write an imported model as a normal run directory (shared by both imports).

Why a run directory and not a new format: every command (sample, serve, evaluate, export,
train) reads runs through `training.runs.load_run` / `training.trainer.plan_run`, so an
import that writes one checkpoint exactly as the trainer does makes all of them work
unchanged. The checkpoint's step is the imported step: the optimizer's iteration count, the
schedule callbacks' counts and therefore the learning rate, w_KL and the per-step random
draws all continue from it.

Nothing half-written is left: the whole run directory is filled beside RUN_DIR in a hidden
temporary directory and renamed into place; an existing RUN_DIR is replaced only with
`force`, and then only after the new one is complete (the old one is renamed aside first and
removed last).
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Sequence

from ..core.errors import SketchRNNError
from ..core.files import file_sha256, fsync_dir, temp_dir_for, write_error
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

        loaded = load_data(list(data), hps.max_seq_len)
        factor = loaded.scale_factor if scale_factor is None else float(scale_factor)
        return {"paths": list(data), "fingerprint": loaded.fingerprint, "scale_factor": factor,
                "categories": loaded.categories}
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

    `provenance` goes into state.json as "imported" and as the first entry of "lineage",
    which training carries into every later checkpoint.
    """
    import keras

    from ..model import backend
    from ..training import checkpoint as ckpt_io

    run_dir = Path(run_dir)
    check_destination(run_dir, force)
    lr_cb, kl_cb = set_counters(model, hps, step)
    run_id = lr_cb.run_id
    state = {
        "format": ckpt_io.FORMAT_VERSION, "step": int(step), "seed": int(seed), "run_id": run_id,
        "rng": "batches: numpy default_rng([seed, step]); model draws keyed by (seed, step)",
        "data": data, "hparams": hps.to_dict(), "params": ckpt_io.count_params(model),
        "fingerprint": ckpt_io.fingerprint(model), "learning_rate": lr_cb.current,
        "kl_weight": kl_cb.current, "valid": {}, "valid_cost": None,
        "versions": {"keras": keras.__version__, "backend": backend.name()},
        "distribute": {"kind": "none", "replicas": 1, "workers": 1},
        "imported": provenance, "lineage": [provenance],
    }
    parent = run_dir.parent if str(run_dir.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(parent, e) from None
    tmp = temp_dir_for(run_dir)
    try:
        callbacks = {"lr_scheduler": lr_cb, "kl_scheduler": kl_cb}
        path = ckpt_io.CheckpointWriter(tmp, hps.keep_checkpoints).write(step, model, callbacks,
                                                                         state)
        _check_loads(path, state["fingerprint"])
        for sub in ("checkpoints", str(Path("checkpoints") / path.name)):
            fsync_dir(tmp / sub)  # the checkpoint's files were fsynced by its writer
        publish_dir_tree(tmp, run_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(run_dir, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return run_dir / "checkpoints" / path.name


def publish_dir_tree(tmp: Path, final: Path) -> None:
    """Rename the filled `tmp` (sub-folders already fsynced) to `final`; an existing `final`
    (--force) is renamed aside first and removed only after the rename."""
    with open(tmp / "latest", "rb") as f:
        os.fsync(f.fileno())
    fsync_dir(tmp)
    old = None
    if final.exists():
        old = final.with_name(f".trash-{final.name}-{os.getpid()}")
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
