"""What a run directory holds (`info`) and loading its newest checkpoint as a ready model.

`info` reads JSON only (no TensorFlow); `load_run` builds the model (Keras) when called.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import SketchRNNError, first_line
from ..core.hparams import HParams
from .checkpoint import (
    STATE,
    WEIGHTS,
    Checkpoint,
    CheckpointWriter,
    complete_checkpoints,
    fingerprint,
    quarantined,
    require_checkpoint,
)


def info(run_dir: str | Path) -> dict[str, Any]:
    """What `sketch-rnn info --json` prints (ARCHITECTURE.md, "CLI contract")."""
    ckpt = require_checkpoint(run_dir)
    state = ckpt.state
    data = state.get("data") if isinstance(state.get("data"), dict) else {}
    names = [c.name for c in complete_checkpoints(Path(run_dir), warn=False)]
    best = CheckpointWriter(run_dir, 0).best()
    return {
        "run_dir": str(run_dir),
        "step": ckpt.step,
        "checkpoint": ckpt.name,
        "checkpoints": sorted(names),
        "best": best[0] if best else None,
        "best_valid_cost": best[1] if best else None,
        "hparams": state.get("hparams"),
        "params": state.get("params"),
        "fingerprint": state.get("fingerprint"),
        "seed": state.get("seed"),
        "data": data.get("paths"),
        "data_fingerprint": data.get("fingerprint"),
        "valid_cost": state.get("valid_cost"),
        "valid": state.get("valid"),
        "quarantined": [{"name": p.name, "bytes": size} for p, size in quarantined(run_dir)],
    }


@dataclass
class LoadedRun:
    """A trained model with what generation and evaluation need to know about its run."""

    model: Any
    hps: HParams
    checkpoint: Checkpoint

    @property
    def step(self) -> int:
        return self.checkpoint.step

    @property
    def seed(self) -> int:
        return int(self.checkpoint.state["seed"])

    @property
    def scale_factor(self) -> float:
        return float(self.checkpoint.state["data"]["scale_factor"])

    @property
    def data_paths(self) -> list[str]:
        return list(self.checkpoint.state["data"]["paths"])

    @property
    def state(self) -> dict[str, Any]:
        return self.checkpoint.state


def _check_state(ckpt: Checkpoint) -> None:
    """What a loaded run reads from state.json beyond `verify`'s step (a seed, the data's
    paths and a positive scale factor), or one line naming the field: a state.json that
    matches its manifest can still have been edited by hand."""
    state = ckpt.state
    data = state.get("data") if isinstance(state.get("data"), dict) else None
    for name, ok in (("seed", isinstance(state.get("seed"), int)),
                     ("data", data is not None),
                     ("data.paths", data is not None and isinstance(data.get("paths"), list)),
                     ("data.scale_factor", data is not None
                      and _positive(data.get("scale_factor")))):
        if not ok:
            raise SketchRNNError(f"{ckpt.path / STATE}: {name} missing or malformed")


def _positive(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def load_run(run_dir: str | Path, precision: str | None = None) -> LoadedRun:
    """The newest complete checkpoint of `run_dir` as a ready model (sampling, evaluation),
    its variables checked against the fingerprint in its state.json. `precision` ("float32" | "bfloat16") builds it with other matmul operands than it was
    trained with: to compare it with a run of the other precision on equal terms."""
    from ..model.build import build_model  # Keras: only when a model is needed

    ckpt = require_checkpoint(run_dir)
    _check_state(ckpt)
    hps = ckpt.hps if precision is None else ckpt.hps.replace(precision=precision)
    model = build_model(hps, int(ckpt.state["seed"]))
    try:
        model.load_weights(str(ckpt.path / WEIGHTS))
    except Exception as e:  # a damaged .h5: h5py and Keras raise OSError, ValueError,
        # RuntimeError ("wrong B-tree signature"), KeyError, ...
        raise SketchRNNError(f"{ckpt.path / WEIGHTS}: cannot load weights "
                             f"({first_line(e)})") from None
    # the manifest says the files are as written, unless it was rewritten with them: the
    # fingerprint of what loaded must still be the one the trainer recorded
    recorded = ckpt.state.get("fingerprint")
    if recorded is not None and fingerprint(model) != recorded:
        raise SketchRNNError(f"{ckpt.path / WEIGHTS}: the weights loaded are not the ones "
                             "state.json's fingerprint records (changed after it was written)")
    return LoadedRun(model, hps, ckpt)
