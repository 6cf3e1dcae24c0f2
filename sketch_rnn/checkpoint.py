"""Checkpoint directories that are complete or absent, and resuming from them.

Layout of a run directory:

    RUN_DIR/
      checkpoints/ckpt-00000500/   model.weights.h5  (model + optimizer variables)
                                   callbacks.pkl     (the stateful callbacks, pickled)
                                   state.json        (step, seed, data position, hparams, ...)
                                   MANIFEST.json     (sha256 of each file above)
      latest                       name of the newest checkpoint (replaced atomically)
      best                         {"checkpoint": name, "valid_cost": c} of the lowest validation cost
      logs/train.csv, logs/tensorboard/

A checkpoint is written into a temporary directory, every file fsynced, then
renamed into place; only after that is `latest` replaced. A crash at any
moment therefore leaves either the new checkpoint complete or no trace of it.
On resume every candidate is verified against its manifest, newest first; one
that fails is skipped with a warning and the one before it is used.

This module's `info` path reads JSON only, so it does not import TensorFlow;
the model-building functions import Keras when called.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .data import file_sha256
from .errors import SketchRNNError
from .hparams import HParams
from .safepickle import restricted_loads

WEIGHTS = "model.weights.h5"
CALLBACKS = "callbacks.pkl"
STATE = "state.json"
MANIFEST = "MANIFEST.json"
FORMAT_VERSION = 1

# What a callbacks.pkl may contain: our callbacks and schedules and plain data.
CALLBACK_PICKLE_ALLOWED = frozenset({
    ("sketch_rnn.callbacks", "LearningRateSchedulerPerBatch"),
    ("sketch_rnn.callbacks", "KLWeightScheduler"),
    ("sketch_rnn.schedules", "LearningRateDecay"),
    ("sketch_rnn.schedules", "KLWeightAnnealing"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
})


# --------------------------------------------------------------------------- files
def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    return file_sha256(path).hex()


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` by `text` so that readers see the old or the new file, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _remove_tree(path: Path) -> None:
    """Rename first, then delete: a crash mid-delete leaves a hidden folder, not a broken checkpoint."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def checkpoint_name(step: int) -> str:
    return f"ckpt-{step:08d}"


def _step_of(name: str) -> int | None:
    if not name.startswith("ckpt-"):
        return None
    try:
        return int(name[5:])
    except ValueError:
        return None


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint directory and its state.json."""

    path: Path
    state: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def hps(self) -> HParams:
        return HParams.from_dict(self.state["hparams"])


def verify(path: Path) -> Checkpoint:
    """Check every file against the manifest; raise SketchRNNError saying what is wrong."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SketchRNNError(f"{path}: unreadable manifest ({e})") from None
    for required in (WEIGHTS, CALLBACKS, STATE):
        if required not in files:
            raise SketchRNNError(f"{path}: manifest does not list {required}")
    for name, digest in files.items():
        if Path(name).name != name:  # only files inside this checkpoint
            raise SketchRNNError(f"{path}: manifest names a file outside it ({name!r})")
        file = path / name
        if not (file.is_file() and _sha256(file) == digest):
            raise SketchRNNError(f"{path}: {name} is missing or does not match its sha256")
    try:
        state = json.loads((path / STATE).read_text(encoding="utf-8"))
        int(state["step"])
    except (ValueError, KeyError, TypeError) as e:
        raise SketchRNNError(f"{path}: unreadable state.json ({e})") from None
    return Checkpoint(path, state)


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Checkpoint directories of a run, newest step first (unverified)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(s, p) for p in root.iterdir() if p.is_dir() and (s := _step_of(p.name)) is not None]
    return [p for _, p in sorted(found, reverse=True)]


def complete_checkpoints(run_dir: Path, warn: bool = True) -> Iterator[Checkpoint]:
    """Verified checkpoints, newest first; each one that fails is reported and skipped."""
    for path in checkpoint_dirs(run_dir):
        try:
            yield verify(path)
        except SketchRNNError as e:
            if warn:
                print(f"warning: skipping checkpoint {e}", file=sys.stderr)


def newest_checkpoint(run_dir: Path, warn: bool = True) -> Checkpoint | None:
    return next(complete_checkpoints(run_dir, warn), None)


def require_checkpoint(run_dir: str | Path) -> Checkpoint:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SketchRNNError(f"{run_dir}: no such run directory")
    ckpt = newest_checkpoint(run_dir)
    if ckpt is None:
        raise SketchRNNError(f"{run_dir}: no complete checkpoint")
    return ckpt


def load_callbacks(ckpt: Checkpoint) -> dict[str, Any]:
    """The pickled callbacks, through the allow-list: nothing else in the file can run."""
    source = str(ckpt.path / CALLBACKS)
    obj = restricted_loads((ckpt.path / CALLBACKS).read_bytes(), CALLBACK_PICKLE_ALLOWED, source)
    if not isinstance(obj, dict):
        raise SketchRNNError(f"{source}: expected a dict of callbacks")
    return obj


# --------------------------------------------------------------------------- writing
class CheckpointWriter:
    """Writes complete checkpoint directories and keeps the newest K plus the best."""

    def __init__(self, run_dir: str | Path, keep: int) -> None:
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "checkpoints"
        self.keep = keep

    def write(self, step: int, model: Any, callbacks: dict[str, Any], state: dict[str, Any]) -> Path:
        """Write checkpoint `step` atomically, point `latest` at it, prune old ones."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / checkpoint_name(step)
        tmp = self.root / f".tmp-{final.name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        model.save_weights(str(tmp / WEIGHTS))
        (tmp / CALLBACKS).write_bytes(pickle.dumps(callbacks, protocol=4))
        (tmp / STATE).write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        files = {name: _sha256(tmp / name) for name in (WEIGHTS, CALLBACKS, STATE)}
        (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT_VERSION, "files": files}, indent=2),
                                    encoding="utf-8")
        for name in (*files, MANIFEST):
            _fsync_file(tmp / name)
        _fsync_dir(tmp)
        if final.exists():  # a same-step checkpoint that failed verification earlier
            _remove_tree(final)
        os.rename(tmp, final)
        _fsync_dir(self.root)
        atomic_write_text(self.run_dir / "latest", final.name + "\n")
        self._update_best(final, state)
        self._prune()
        return final

    def _update_best(self, final: Path, state: dict[str, Any]) -> None:
        cost = state.get("valid_cost")
        if cost is None:
            return
        best = self.best()
        if best is None or best[1] is None or cost < best[1]:
            atomic_write_text(self.run_dir / "best", json.dumps({"checkpoint": final.name,
                                                                "valid_cost": cost}) + "\n")

    def best(self) -> tuple[str, float | None] | None:
        """(name, valid cost) of the best checkpoint, if the `best` file names one that exists."""
        try:
            data = json.loads((self.run_dir / "best").read_text(encoding="utf-8"))
            name, cost = str(data["checkpoint"]), data.get("valid_cost")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (name, cost) if (self.root / name).is_dir() else None

    def _prune(self) -> None:
        best = self.best()
        keep_names = {p.name for p in checkpoint_dirs(self.run_dir)[: self.keep]}
        if best is not None:
            keep_names.add(best[0])
        for path in checkpoint_dirs(self.run_dir):
            if path.name not in keep_names:
                _remove_tree(path)
        for stale in self.root.glob(".t*-ckpt-*"):  # leftovers of killed writers
            if stale.name.startswith((".tmp-", ".trash-")) and not stale.name.endswith(f"-{os.getpid()}"):
                shutil.rmtree(stale, ignore_errors=True)


def quarantine_newer(run_dir: Path, step: int) -> None:
    """Move checkpoints newer than `step` (they failed verification) aside as
    `corrupt-ckpt-*`, so that the resumed run writes its own in their place
    while nothing is deleted."""
    for path in checkpoint_dirs(run_dir):
        s = _step_of(path.name)
        if s is not None and s > step:
            target = path.with_name(f"corrupt-{path.name}")
            n = 1
            while target.exists():  # an earlier one of the same step stays too
                target, n = path.with_name(f"corrupt-{path.name}.{n}"), n + 1
            os.rename(path, target)
            print(f"warning: moved unreadable checkpoint {path} to {target}", file=sys.stderr)


# --------------------------------------------------------------------------- fingerprint
def fingerprint(model: Any) -> str:
    """sha256 over the raw bytes of every model and optimizer variable.

    Variables are taken in the model's construction order (model.weights, then
    optimizer.variables), which is fixed for a given HParams; auto-numbered
    variable paths (dense_3 vs dense_7) depend on what else the process built,
    so they are not used for ordering. Integer variables are hashed as int64
    (JAX keeps the optimizer's step count in int32, TensorFlow in int64), so a
    checkpoint has one fingerprint whichever backend loads it.
    """
    import keras
    import numpy as np

    h = hashlib.sha256()
    variables = list(model.weights)
    if getattr(model, "optimizer", None) is not None:
        variables += list(model.optimizer.variables)
    for v in variables:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(v.value))
        if value.dtype.kind in "iu":
            value = value.astype("<i8")
        h.update(f"{value.dtype.str}{value.shape}".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def count_params(model: Any) -> int:
    import numpy as np

    return int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))


# --------------------------------------------------------------------------- info
def info(run_dir: str | Path) -> dict[str, Any]:
    """What `sketch-rnn info --json` prints (DESIGN.md §6)."""
    ckpt = require_checkpoint(run_dir)
    state = ckpt.state
    names = [c.name for c in complete_checkpoints(Path(run_dir), warn=False)]
    best = CheckpointWriter(run_dir, 0).best()
    return {
        "run_dir": str(run_dir),
        "step": ckpt.step,
        "checkpoint": ckpt.name,
        "checkpoints": sorted(names),
        "best": best[0] if best else None,
        "hparams": state["hparams"],
        "params": state.get("params"),
        "fingerprint": state.get("fingerprint"),
        "seed": state.get("seed"),
        "data": state.get("data", {}).get("paths"),
        "data_fingerprint": state.get("data", {}).get("fingerprint"),
        "valid_cost": state.get("valid_cost"),
        "valid": state.get("valid"),
    }


def info_command(args: Any) -> int:
    from .cli import print_json

    summary = info(args.run_dir)
    if args.json:
        print_json(summary)
        return 0
    print(f"run:         {summary['run_dir']}")
    print(f"step:        {summary['step']}  (checkpoint {summary['checkpoint']})")
    print(f"checkpoints: {', '.join(summary['checkpoints'])}")
    print(f"best:        {summary['best']}  (valid cost {summary['valid_cost']})")
    print(f"params:      {summary['params']:,}" if summary["params"] else "params: ?")
    print(f"data:        {', '.join(summary['data'] or [])}")
    print(f"fingerprint: {summary['fingerprint']}")
    hps = summary["hparams"]
    print("hparams:     " + ", ".join(f"{k}={hps[k]}" for k in sorted(hps)))
    return 0


# --------------------------------------------------------------------------- loading a model
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


def load_run(run_dir: str | Path) -> LoadedRun:
    """The newest complete checkpoint of `run_dir` as a ready model (for sampling, evaluation, notebooks)."""
    from .trainer import build_model, restore_rng_states

    ckpt = require_checkpoint(run_dir)
    model = build_model(ckpt.hps, int(ckpt.state["seed"]))
    try:
        model.load_weights(str(ckpt.path / WEIGHTS))
    except (OSError, ValueError) as e:
        raise SketchRNNError(f"{ckpt.path / WEIGHTS}: cannot load weights ({e})") from None
    restore_rng_states(model, ckpt.state.get("rng_states", []))
    return LoadedRun(model, ckpt.hps, ckpt)
