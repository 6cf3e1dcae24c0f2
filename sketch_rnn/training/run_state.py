"""A run's state, in one place: what state.json holds, planning a run, restoring it, its lineage.

* The schema: `build_state` makes the dict every checkpoint's state.json holds (the trainer's
  and an imported run's); `read_state` reads back what a resume needs, checked, each fault one
  line naming the file and the field.
* Planning (`plan_run`): a new run, an exact resume, or a refusal in one line (another
  architecture, seed or data; another training path unless asked for).
* Restoring (`check_data`, `restore`): the saved weights and optimizer into the trainer's
  freshly built model, checked against the saved fingerprint, and each saved callback state
  into the callback of that name and class this run was given.
* The lineage: one list of what happened to the run besides training, oldest first, each
  entry with a "kind": "imported" (where an imported run came from), "path_change" (an
  allowed change of a `PATH_FIELDS` field on resume) or "callback_change" (other callbacks
  than the run saved, allowed on resume). Runs written before it kept these in
  two keys ("lineage" without kinds, "path_changes"); `lineage` reads both.

Planning and reading need no TensorFlow; restoring and a new run's precision default
import Keras when called. What makes a checkpoint directory complete (manifest, sha256) is
`checkpoint`'s; what its state.json means is this module's.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Mapping, Sequence

from ..core.errors import SketchRNNError
from ..core.hparams import ARCHITECTURE_FIELDS, HParams, parse_overrides, preset
from ..core.machine import kernel_isa
from ..data import DEFAULT_DATA
from . import checkpoint as ckpt_io
from .callback_state import load_state

if TYPE_CHECKING:  # type hints only: distribute and callbacks import Keras
    from .callbacks import KLWeightScheduler, LearningRateSchedulerPerBatch
    from .distribute import Distribution

log = logging.getLogger(__name__)

DEFAULT_PRESET = "small"
# hparams that change when and what is saved, never the weights: free to change on resume
BOOKKEEPING_FIELDS = ("num_steps", "save_every", "keep_checkpoints")
# hparams of the training path (how batches are padded, the matmuls' precision): the same
# weights either way, but changing one on resume ends bitwise equality, so it is refused
# unless the CLI flag beside each name asks for it
PATH_FIELDS = {"bucketed_batches": "--allow-batching-change",
               "precision": "--allow-precision-change"}
RNG_NOTE = "batches: numpy default_rng([seed, step]); model draws keyed by (seed, step)"
ONE_DEVICE = {"kind": "none", "replicas": 1, "workers": 1}  # state.json's "distribute"


# --------------------------------------------------------------------------- lineage
def imported_entry(provenance: dict[str, Any]) -> dict[str, Any]:
    """The lineage entry of an import (its provenance, as state.json's "imported" holds)."""
    return {"kind": "imported", **provenance}


def path_change_entry(step: int, name: str, old: Any, new: Any) -> dict[str, Any]:
    """The lineage entry of an allowed change of training path at `step`."""
    return {"kind": "path_change", "step": step, "field": name, "from": old, "to": new}


def callback_change_entry(step: int, change: dict[str, list[str]]) -> dict[str, Any]:
    """The lineage entry of an allowed change of callbacks at `step` (names added, removed,
    replaced by another class)."""
    return {"kind": "callback_change", "step": step, **change}


def lineage(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's lineage, oldest first, from a state.json of today or of before.

    Before the one list, "lineage" held imports only (entries without "kind") and
    "path_changes" held {"step", "field", "from", "to"} entries: an import always came
    first, so the old entries keep their order as imports, then path changes.
    """
    entries = [e if "kind" in e else imported_entry(e) for e in state.get("lineage") or []]
    for e in state.get("path_changes") or []:
        entries.append(path_change_entry(e["step"], e["field"], e["from"], e["to"]))
    return entries


# --------------------------------------------------------------------------- the schema
def data_record(paths: Sequence[str], data: Any) -> dict[str, Any]:
    """state.json's "data" for the loaded `data.SketchData` read from `paths`."""
    return {"paths": list(paths), "fingerprint": data.fingerprint,
            "scale_factor": data.scale_factor, "categories": data.categories}


def build_state(*, step: int, seed: int, run_id: str, data: dict[str, Any], hps: HParams,
                model: Any, learning_rate: float, kl_weight: float, valid: dict[str, float],
                distribute: dict[str, Any], history: Sequence[dict[str, Any]] = (),
                machine: dict[str, Any] | None = None,
                imported: dict[str, Any] | None = None,
                early_stop: dict[str, Any] | None = None) -> dict[str, Any]:
    """The state.json of a checkpoint at `step` (keys ARCHITECTURE.md lists).

    `history` is the run's lineage. "lineage", "machine", "imported" and "early_stop"
    ({"step", "callback"}: a callback stopped the run here) appear only when there is
    something to say, so a plain run's state.json holds what it held before.
    """
    import keras

    from ..model import backend

    state = {
        "format": ckpt_io.FORMAT_VERSION, "step": int(step), "seed": int(seed), "run_id": run_id,
        "rng": RNG_NOTE, "data": data, "hparams": hps.to_dict(),
        "params": ckpt_io.count_params(model), "fingerprint": ckpt_io.fingerprint(model),
        "learning_rate": learning_rate, "kl_weight": kl_weight,
        "valid": valid, "valid_cost": valid.get("cost"),
        "versions": {"keras": keras.__version__, "backend": backend.name()},
        "distribute": distribute,
    }
    if history:
        state["lineage"] = list(history)
    for key, value in (("machine", machine), ("imported", imported), ("early_stop", early_stop)):
        if value is not None:
            state[key] = value
    return state


@dataclass(frozen=True)
class SavedState:
    """What a resume reads from a checkpoint's state.json (`read_state`)."""

    checkpoint: ckpt_io.Checkpoint
    seed: int
    run_id: str
    data_paths: list[str]
    data_fingerprint: str | None  # None: an import given --scale-factor only
    fingerprint: str | None
    distribute: dict[str, Any] | None  # None: saved before tf.distribute (one device)
    lineage: list[dict[str, Any]]
    early_stop: dict[str, Any] | None = None  # {"step", "callback"}: the run stopped early

    @property
    def step(self) -> int:
        return self.checkpoint.step


def read_state(ckpt: ckpt_io.Checkpoint) -> SavedState:
    """The checked fields of `ckpt`'s state.json; a missing or malformed one is one line."""
    state, where = ckpt.state, ckpt.path / ckpt_io.STATE

    def need(ok: bool, name: str) -> None:
        if not ok:
            raise SketchRNNError(f"{where}: {name} missing or malformed")

    need(isinstance(state.get("seed"), int), "seed")
    need(isinstance(state.get("run_id"), str), "run_id")
    data = state.get("data")
    need(isinstance(data, dict) and isinstance(data.get("paths"), list), "data.paths")
    need(isinstance(data.get("fingerprint"), (str, type(None))), "data.fingerprint")
    need(isinstance(state.get("hparams"), dict), "hparams")
    need(isinstance(state.get("fingerprint"), (str, type(None))), "fingerprint")
    need(isinstance(state.get("distribute"), (dict, type(None))), "distribute")
    early = state.get("early_stop")
    need(early is None or (isinstance(early, dict) and isinstance(early.get("step"), int)
                           and isinstance(early.get("callback"), str)), "early_stop")
    try:
        history = lineage(state)
    except (KeyError, TypeError, AttributeError):
        raise SketchRNNError(f"{where}: lineage missing or malformed") from None
    return SavedState(ckpt, state["seed"], state["run_id"], [str(p) for p in data["paths"]],
                      data["fingerprint"], state.get("fingerprint"), state.get("distribute"),
                      history, early)


# --------------------------------------------------------------------------- planning
@dataclass
class RunConfig:
    run_dir: Path
    data_paths: list[str]
    hps: HParams
    seed: int
    run_id: str
    saved: SavedState | None  # None: a new run; read once, here, for the whole resume
    # the run's lineage (see the module docstring), this resume's path changes included
    lineage: list = field(default_factory=list)
    # what this resume may change by name ("callbacks"; the PATH_FIELDS are checked here)
    allow_changes: frozenset = frozenset()

    @property
    def resume_from(self) -> ckpt_io.Checkpoint | None:
        """The checkpoint this run resumes from (None: a new run)."""
        return None if self.saved is None else self.saved.checkpoint


def plan_run(run_dir: str | Path, data: Sequence[str] | None, preset_name: str | None,
             overrides: str | None, num_steps: int | None, seed: int | None,
             allow_changes: Collection[str] = ()) -> RunConfig:
    """Decide between a new run and a resume, and check the arguments against the saved run.

    A new run without an explicit `precision` takes this CPU's and model size's
    (`default_precision`). A
    resume keeps the saved training path (`PATH_FIELDS`: runs saved before these fields
    load as bucketed_batches False, precision float32) and refuses another unless the field
    is in `allow_changes`; an allowed change is added to the run's lineage. "callbacks" in
    `allow_changes` lets the trainer resume with other callbacks than the run saved
    (`restore`).
    """
    run_dir = Path(run_dir)
    previous = ckpt_io.newest_checkpoint(run_dir) if run_dir.is_dir() else None
    if previous is None:
        return _new_run(run_dir, data, preset_name, overrides, num_steps, seed)
    saved = read_state(previous)
    _warn_other_cpu(run_dir, previous.state)
    hps = previous.hps
    changes = parse_overrides(overrides)
    if num_steps is not None:
        changes["num_steps"] = num_steps
    arch = [k for k in (*ARCHITECTURE_FIELDS, "max_seq_len")
            if k in changes and changes[k] != getattr(hps, k)]
    if arch:
        raise SketchRNNError(f"{run_dir}: cannot change {', '.join(arch)} of an existing run "
                             f"(the weights' shapes or the training sketches); use a new --run-dir")
    history = saved.lineage + _path_changes(run_dir, saved.step, hps, changes, allow_changes)
    if preset_name is not None and _differs_from_preset(hps, preset_name, changes):
        log.info(f"note: resuming {run_dir}: its saved hparams win over --preset {preset_name}")
    differing = sorted(k for k, v in changes.items()
                       if k not in BOOKKEEPING_FIELDS and v != getattr(hps, k))
    if differing:
        log.warning(f"changing {', '.join(differing)} on resume: the run will no longer match "
                    "an uninterrupted one bit for bit")
    if seed is not None and seed != saved.seed:
        raise SketchRNNError(f"{run_dir}: the run was started with --seed {saved.seed}, not {seed}")
    paths = list(data) if data else saved.data_paths
    if not paths:  # an imported run given only --scale-factor
        raise SketchRNNError(f"{run_dir}: the run records no training data; give --data DATA.npz")
    return RunConfig(run_dir, paths, hps.replace(**changes), saved.seed, saved.run_id,
                     saved, history, frozenset(allow_changes))


def _new_run(run_dir: Path, data: Sequence[str] | None, preset_name: str | None,
             overrides: str | None, num_steps: int | None, seed: int | None) -> RunConfig:
    hps = preset(preset_name or DEFAULT_PRESET).with_overrides(overrides)
    if num_steps is not None:
        hps = hps.replace(num_steps=num_steps)
    if "precision" not in parse_overrides(overrides):
        from ..model.precision import default_precision  # Keras

        precision, why = default_precision(dec_rnn_size=hps.dec_rnn_size)
        hps = hps.replace(precision=precision)
        log.info(f"precision {precision}: {why}")
    return RunConfig(run_dir, list(data or [DEFAULT_DATA]), hps, 0 if seed is None else seed,
                     uuid.uuid4().hex, None)


def _warn_other_cpu(run_dir: Path, state: dict[str, Any]) -> None:
    """Warn when this CPU's `kernel_isa` is not the one that saved the checkpoint.

    Why: exact resume is bit for bit on one host. oneDNN picks its matmul kernels from the
    CPU (AMX, AVX512_BF16, AVX2), and each sums in its own order, so on another CPU the run
    goes on with the same batches and schedules but not the same bits. Checkpoints saved
    before the machine record held "isa" say nothing, and neither does this.
    """
    machine = state.get("machine")
    saved = machine.get("isa") if isinstance(machine, dict) else None
    now = kernel_isa()
    if isinstance(saved, list) and saved != now:
        log.warning(f"resuming {run_dir} on a CPU with other vector units "
                    f"({' '.join(saved) or 'none'} -> {' '.join(now) or 'none'}): the same "
                    "batches and schedules, not necessarily the same bits as an uninterrupted run")


def _path_changes(run_dir: Path, step: int, hps: HParams, changes: dict[str, Any],
                  allowed: Collection[str]) -> list[dict[str, Any]]:
    """This resume's lineage entries: the `PATH_FIELDS` fields it changes, each allowed.

    Why refuse by default: batching and precision change no weight's shape, so a typo or
    another machine's default would otherwise silently end the exact resume.
    """
    entries = []
    for name, flag in PATH_FIELDS.items():
        old, new = getattr(hps, name), changes.get(name, getattr(hps, name))
        if new == old:
            continue
        if name not in allowed:
            raise SketchRNNError(f"{run_dir}: cannot change {name} of an existing run "
                                 f"({old} -> {new}) unless asked for with {flag}")
        entries.append(path_change_entry(step, name, old, new))
    return entries


def _differs_from_preset(hps: HParams, preset_name: str, changes: dict[str, Any]) -> bool:
    """Whether the saved hparams are other than the preset's, beyond num_steps and precision.

    Precision is left out: a new run takes it from the CPU, not from the preset, so every
    resume of a bf16 run would otherwise be told its saved hparams win over the preset.
    """
    same_target = {"precision": hps.precision, **changes, "num_steps": hps.num_steps}
    return preset(preset_name).replace(**same_target) != hps.replace(**same_target)


# --------------------------------------------------------------------------- restoring
def check_data(config: RunConfig, data: Any) -> None:
    """Refuse to resume on other data than the run's (an import without data takes any)."""
    saved = config.saved
    if saved is None:
        return
    if saved.data_fingerprint not in (None, data.fingerprint):
        raise SketchRNNError(
            f"{config.run_dir}: --data {' '.join(config.data_paths)} is not the data "
            f"this run was trained on ({' '.join(saved.data_paths)})")


def restore(config: RunConfig, model: Any, dist: Distribution,
            callbacks: Mapping[str, Any] | None = None
            ) -> tuple[LearningRateSchedulerPerBatch, KLWeightScheduler, dict[str, dict]]:
    """The run's schedule callbacks, with the saved variables loaded into `model` and the
    saved callback states into `callbacks` (name -> the caller's callback) on a resume.

    Returns (lr schedule, KL schedule, name -> the state loaded, to load again after the
    callbacks' own on_train_begin). On the chief, unreadable checkpoints past the resume
    point move aside first. A resume loads the weights and the optimizer, then the saved
    callback states (the schedules' must be this run's; the caller's must match by name and
    class unless "callbacks" is in config.allow_changes, then the change joins the lineage),
    and refuses a model whose fingerprint is not the saved one.
    """
    from . import distribute
    from .callback_state import match
    from .callbacks import KLWeightScheduler, LearningRateSchedulerPerBatch
    from .schedules import kl_weight_schedule, learning_rate_schedule

    prev, run_id, hps = config.resume_from, config.run_id, config.hps
    lr_schedule, kl_schedule = learning_rate_schedule(hps), kl_weight_schedule(hps)
    lr_cb = LearningRateSchedulerPerBatch(lr_schedule, run_id)
    kl_cb = KLWeightScheduler(kl_schedule, run_id)
    if dist.is_chief:
        ckpt_io.quarantine_newer(config.run_dir, prev.step if prev else -1)
    if prev is None:
        return lr_cb, kl_cb, {}
    saved = config.saved
    distribute.check_resume(saved.distribute, dist)
    model.load_weights(str(prev.path / ckpt_io.WEIGHTS))
    where = prev.path / ckpt_io.CALLBACKS
    entries = ckpt_io.load_callbacks(prev)
    given = {"lr_scheduler": lr_cb, "kl_scheduler": kl_cb, **(callbacks or {})}
    states, change = match(entries, given, "callbacks" in config.allow_changes, str(where))
    if change and not {"lr_scheduler", "kl_scheduler"}.isdisjoint(sum(change.values(), [])):
        raise SketchRNNError(f"{where}: the schedule callbacks are not this program's")
    if change:
        config.lineage.append(callback_change_entry(prev.step, change))
        log.warning(f"resuming {config.run_dir} with other callbacks ({change}): the changed "
                    "ones start fresh, and the run will no longer match an uninterrupted one")
    for name, state in states.items():
        load_state(given[name], state)
    for name, cb in (("lr_scheduler", lr_cb), ("kl_scheduler", kl_cb)):
        if cb.run_id != run_id:
            raise SketchRNNError(f"{where}: {name} belongs to another "
                                 f"run ({cb.run_id or '?'}, this run is {run_id})")
    if (states["lr_scheduler"].get("schedule") != asdict(lr_schedule)
            or states["kl_scheduler"].get("schedule") != asdict(kl_schedule)):
        log.warning("the schedules changed with the hparams; continuing from the saved counts "
                    "with the new schedules")
    if ckpt_io.fingerprint(model) != saved.fingerprint:
        raise SketchRNNError(f"{prev.path}: restored variables do not match the saved fingerprint")
    log.info(f"resuming {config.run_dir} from {prev.name} (step {prev.step})")
    return lr_cb, kl_cb, states
