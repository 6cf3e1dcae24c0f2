"""Checkpoint directories that are complete or absent, and resuming from them.

Layout of a run directory:

    RUN_DIR/
      checkpoints/ckpt-00000500/   model.weights.h5  (model + optimizer variables)
                                   callbacks.pkl     (every callback's state, plain data)
                                   state.json        (step, seed, data, hparams, fingerprint, ...)
                                   MANIFEST.json     (sha256 of each file above)
      latest                       name of the newest checkpoint (replaced atomically)
      best                         {"checkpoint": name, "valid_cost": c} of the lowest validation cost
      logs/train.csv, logs/tensorboard/
      .lock                        held (flock) by the one live trainer (`lock.py`)
      checkpoints/corrupt-ckpt-*   checkpoints that failed verification, moved aside

A checkpoint is written into a temporary directory, every file fsynced, then
renamed into place (`core.files.staged_dir`); only after that is `latest` replaced. A crash at any
moment therefore leaves either the new checkpoint complete or no trace of it.
On resume every candidate is verified against its manifest, newest first; one
that fails is skipped with a warning naming the file and the reason, moved aside as
`corrupt-ckpt-*` (nothing is deleted), and the one before it is used. A checkpoint that
verifies is never moved aside. When the storage refuses a save (full disk, read-only,
no permission), the partial temporary directory is removed and `latest` and every earlier
checkpoint stay as they were.

Complete means: the manifest lists every file and each matches its sha256, and state.json
parses with a step, the step the folder is named after (a folder renamed or linked under
another name is not that checkpoint). What the rest of state.json means (and writing it)
is `run_state`'s.
Reading checkpoints needs no TensorFlow (only the fingerprint imports Keras, when called).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import SketchRNNError
from ..core.files import atomic_write, file_sha256, remove_tree, staged_dir, write_error
from ..core.hparams import LEGACY_DEFAULTS, HParams
from .callback_state import SavedCallback, decode, encode

log = logging.getLogger(__name__)

WEIGHTS = "model.weights.h5"
CALLBACKS = "callbacks.pkl"
STATE = "state.json"
MANIFEST = "MANIFEST.json"
FORMAT_VERSION = 1

CORRUPT_PREFIX = "corrupt-"

# callbacks.pkl holds each callback's state as plain data (format 2, `callback_state`);
# checkpoints written before pickled our two schedule callbacks as objects (format 1). What
# such a file may name: our callbacks and schedules, under their module paths of today and
# of before the package was split into layers (sketch_rnn.callbacks, sketch_rnn.schedules),
# so that older checkpoints, the shipped ones included, still load.
CALLBACK_CLASSES = (("callbacks", "LearningRateSchedulerPerBatch"),
                    ("callbacks", "KLWeightScheduler"),
                    ("schedules", "LearningRateDecay"), ("schedules", "KLWeightAnnealing"))


def callback_pickle_allowed() -> dict[tuple[str, str], Any]:
    """(module, name) -> object for format 1 files (imports Keras: callbacks do)."""
    import copyreg

    from . import callbacks, schedules

    modules = {"callbacks": callbacks, "schedules": schedules}
    allowed: dict[tuple[str, str], Any] = {("copyreg", "_reconstructor"): copyreg._reconstructor,
                                           ("builtins", "object"): object}
    for module, name in CALLBACK_CLASSES:
        cls = getattr(modules[module], name)
        allowed[(cls.__module__, name)] = cls
        allowed[(f"sketch_rnn.{module}", name)] = cls
    return allowed


# --------------------------------------------------------------------------- names
def _sha256(path: Path) -> str:
    return file_sha256(path).hex()


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
        saved = self.state.get("hparams")
        if not isinstance(saved, dict):
            raise SketchRNNError(f"{self.path / STATE}: hparams missing or malformed")
        # a field the run did not record takes the value it was trained with
        return HParams.from_dict({**LEGACY_DEFAULTS, **saved})


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
        if not file.is_file():
            raise SketchRNNError(f"{path}: {name} is missing")
        if _sha256(file) != digest:
            raise SketchRNNError(f"{path}: {name} does not match its sha256 in {MANIFEST}")
    try:
        state = json.loads((path / STATE).read_text(encoding="utf-8"))
        step = int(state["step"])
    except (ValueError, KeyError, TypeError, OverflowError) as e:
        raise SketchRNNError(f"{path}: unreadable state.json ({e})") from None
    named = _step_of(path.name)
    if named is not None and named != step:  # a folder renamed or linked under another step
        raise SketchRNNError(f"{path}: state.json is of step {step}, not the folder's {named}")
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
                log.warning(f"skipping checkpoint {e}")


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


def load_callbacks(ckpt: Checkpoint) -> list[SavedCallback]:
    """Each saved callback's name, class and state, through the allow-list unpickler:
    plain data and NumPy arrays only (and our two schedule classes in format 1 files)."""
    return decode((ckpt.path / CALLBACKS).read_bytes(), str(ckpt.path / CALLBACKS),
                  callback_pickle_allowed())


# --------------------------------------------------------------------------- writing
class CheckpointWriter:
    """Writes complete checkpoint directories and keeps the newest K plus the best."""

    def __init__(self, run_dir: str | Path, keep: int) -> None:
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "checkpoints"
        self.keep = keep

    def write(self, step: int, model: Any, callbacks: dict[str, Any], state: dict[str, Any]) -> Path:
        """Write checkpoint `step` atomically, point `latest` at it, prune old ones.

        `callbacks` maps each callback's name to the callback, in the order they run (our
        schedules first); callbacks.pkl holds their states (`callback_state.encode`).

        If the storage refuses (full, read-only, no permission), the temporary directory
        is removed, nothing else changes, and a `StorageError` says so in one line.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(self.root, e) from None
        final = self.root / checkpoint_name(step)
        # replace: a same-step checkpoint that failed verification earlier
        with staged_dir(final, replace=True) as tmp:
            self._fill(tmp, model, callbacks, state)
        atomic_write(self.run_dir / "latest", final.name + "\n")
        self._update_best(final, state)
        self._prune()
        return final

    @staticmethod
    def _fill(tmp: Path, model: Any, callbacks: dict[str, Any], state: dict[str, Any]) -> None:
        """The four files of a checkpoint, the manifest last (it lists the others' sha256)."""
        model.save_weights(str(tmp / WEIGHTS))
        (tmp / CALLBACKS).write_bytes(encode(callbacks))
        (tmp / STATE).write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        files = {name: _sha256(tmp / name) for name in (WEIGHTS, CALLBACKS, STATE)}
        (tmp / MANIFEST).write_text(json.dumps({"format": FORMAT_VERSION, "files": files},
                                               indent=2), encoding="utf-8")

    def _update_best(self, final: Path, state: dict[str, Any]) -> None:
        cost = state.get("valid_cost")
        if cost is None:
            return
        best = self.best()
        if best is None or best[1] is None or cost < best[1]:
            atomic_write(self.run_dir / "best", json.dumps({"checkpoint": final.name,
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
                remove_tree(path)
        # leftovers of killed writers (the run directory lock says no other writer is alive)
        for stale in self.root.glob(".t*-ckpt-*"):
            if stale.name.startswith((".tmp-", ".trash-")) and f"-{os.getpid()}-" not in stale.name:
                shutil.rmtree(stale, ignore_errors=True)


# --------------------------------------------------------------------------- quarantine
def quarantine_newer(run_dir: Path, step: int) -> list[Path]:
    """Move checkpoints newer than `step` that FAIL verification aside as `corrupt-ckpt-*`.

    Called by the trainer holding the run's lock, after choosing `step` as the newest
    checkpoint that verifies; anything newer therefore failed, but each one is verified
    again here and left alone if it passes (it is never called unreadable). Returns the
    new paths; nothing is deleted.
    """
    moved = []
    for path in checkpoint_dirs(run_dir):
        s = _step_of(path.name)
        if s is None or s <= step:
            continue
        try:
            verify(path)
            continue
        except SketchRNNError as e:
            reason = str(e)
        target = path.with_name(CORRUPT_PREFIX + path.name)
        n = 1
        while target.exists():  # an earlier one of the same step stays too
            target, n = path.with_name(f"{CORRUPT_PREFIX}{path.name}.{n}"), n + 1
        os.rename(path, target)
        moved.append(target)
        log.warning(f"moved checkpoint {path.name} aside to {target.name}: {reason}")
    return moved


def quarantined(run_dir: str | Path) -> list[tuple[Path, int]]:
    """(path, size in bytes) of every `corrupt-ckpt-*` copy of the run, oldest name first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(CORRUPT_PREFIX))
    return [(p, sum(f.stat().st_size for f in p.rglob("*") if f.is_file())) for p in found]


def remove_quarantined(run_dir: str | Path) -> list[Path]:
    """Delete the run's `corrupt-ckpt-*` copies (`sketch-rnn info RUN --remove-corrupt`)."""
    removed = []
    for path, _ in quarantined(run_dir):
        remove_tree(path)
        removed.append(path)
    return removed


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
