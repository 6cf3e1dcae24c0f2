"""Every callback's state in every checkpoint, restored into the instances a resume is given.

The lesson of Eyal Zakkay's "Advanced Keras — Accurately Resuming a Training Process": a
callback whose variables change during training must travel with the checkpoint, or a
resumed run silently trains under other conditions (EarlyStopping counting its patience
from 0 again, ReduceLROnPlateau forgetting its best value and cooldown).

Design: a state protocol, not a pickle of the callback objects. A checkpoint's
callbacks.pkl (format 2) holds plain data only,

    {"format": 2, "callbacks": [{"name": str, "class": "module.QualName", "state": {...}}]}

with each state a dict of None, bool, int, float, str, bytes, NumPy arrays and scalars, and
lists, tuples and dicts of those. It is read by the allow-list unpickler with NumPy's array
globals and nothing else, so no class is ever unpickled from it: the class is a string
compared with the class of the instance this process was given, and the state is loaded
into that instance (a caller who keeps a reference reads the resumed state from it). A
pickle of the objects could not do this: Keras' ReduceLROnPlateau holds a lambda, every
callback holds its model, and the classes to allow would have to be named by the file.

A callback's state is, in this order of preference:
1. `state_dict()` / `load_state_dict(state)` when the callback defines them (PyTorch
   Lightning's names; our schedule callbacks do);
2. for Keras' own stateful callbacks, the attributes they change while training
   (`KERAS_STATE`), so that their configuration (patience, factor, ...) is the one given;
3. otherwise every plain-data attribute of the instance (callables, the model and
   anything that is not plain data are left out: define 1. for those).

Checkpoints written before (format 1) pickled our two schedule callbacks as objects; they
are read through `checkpoint.CALLBACK_CLASSES` and turned into the same (name, class,
state) entries.
"""
from __future__ import annotations

import copy
import logging
import pickle
from dataclasses import dataclass
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from ..core.errors import SketchRNNError
from ..core.safepickle import NUMPY_ARRAYS, restricted_loads

log = logging.getLogger(__name__)

FORMAT = 2
SCHEDULES = ("lr_scheduler", "kl_scheduler")  # our two, always first, always present
# what Keras' stateful callbacks change while training (their __init__ arguments stay the
# ones given on resume)
KERAS_STATE: dict[str, tuple[str, ...]] = {
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_weights", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "cooldown_counter", "best"),
    "TerminateOnNaN": (),
}
# attributes keras.callbacks.Callback itself sets: never a callback's own state
_BASE_ATTRIBUTES = frozenset({"_model", "model", "params", "validation_data",
                              "_chief_worker_only", "_supports_tf_logs"})
_PLAIN = (type(None), bool, int, float, str, bytes, np.ndarray, np.generic)


@dataclass(frozen=True)
class SavedCallback:
    """One entry of a checkpoint's callbacks.pkl."""

    name: str
    cls: str  # "module.QualName" of the instance that was saved
    state: dict[str, Any]


def class_name(callback: Any) -> str:
    return f"{type(callback).__module__}.{type(callback).__qualname__}"


def name_callbacks(callbacks: Sequence[Any]) -> dict[str, Any]:
    """Names for the caller's callbacks: a str `name` attribute, else the class name;
    repeats get "#2", "#3" in the order given (the order is part of the name)."""
    named: dict[str, Any] = {}
    for cb in callbacks:
        base = getattr(cb, "name", None)
        base = base if isinstance(base, str) and base else type(cb).__name__
        name, n = base, 1
        while name in named or name in SCHEDULES:
            n += 1
            name = f"{base}#{n}"
        named[name] = cb
    return named


def is_plain(value: Any) -> bool:
    """Plain data: what callbacks.pkl may hold (see the module docstring)."""
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return isinstance(value, _PLAIN) and not (isinstance(value, np.ndarray)
                                              and value.dtype.hasobject)


def _keras_fields(callback: Any) -> tuple[str, ...] | None:
    cls = type(callback)
    if cls.__module__.startswith("keras.") and cls.__name__ in KERAS_STATE:
        return KERAS_STATE[cls.__name__]
    return None


def state_of(callback: Any) -> dict[str, Any]:
    """The callback's state now, as plain data (a deep copy: training goes on changing it)."""
    if callable(getattr(callback, "state_dict", None)):
        state = callback.state_dict()
    elif (fields := _keras_fields(callback)) is not None:
        state = {k: getattr(callback, k) for k in fields if hasattr(callback, k)}
    else:
        state = {k: v for k, v in vars(callback).items()
                 if k not in _BASE_ATTRIBUTES and not callable(v) and is_plain(v)}
    if not isinstance(state, dict) or not is_plain(state):
        raise SketchRNNError(f"{class_name(callback)}.state_dict() must return a dict of plain "
                             "data (numbers, strings, NumPy arrays, lists and dicts of them)")
    return copy.deepcopy(state)


def load_state(callback: Any, state: Mapping[str, Any]) -> None:
    """Put a saved state into `callback` (a copy: the saved one can be applied again)."""
    state = copy.deepcopy(dict(state))
    if callable(getattr(callback, "load_state_dict", None)):
        callback.load_state_dict(state)
    else:
        for key, value in state.items():
            setattr(callback, key, value)


# --------------------------------------------------------------------------- the file
def encode(callbacks: Mapping[str, Any]) -> bytes:
    """callbacks.pkl of a checkpoint: name -> callback, in the order they run."""
    entries = [{"name": name, "class": class_name(cb), "state": state_of(cb)}
               for name, cb in callbacks.items()]
    return pickle.dumps({"format": FORMAT, "callbacks": entries}, protocol=4)


def decode(raw: bytes, source: str,
           legacy: Mapping[tuple[str, str], Any] | None = None) -> list[SavedCallback]:
    """The entries of a callbacks.pkl of today (data only) or of before (our objects,
    resolved by `legacy`: checkpoint.callback_pickle_allowed)."""
    obj = restricted_loads(raw, {**NUMPY_ARRAYS, **(legacy or {})}, source,
                           why="a checkpoint's callbacks.pkl holds plain data only")
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        entries = obj.get("callbacks")
        if not isinstance(entries, list) or not all(_is_entry(e) for e in entries):
            raise SketchRNNError(f"{source}: malformed callback entries")
        saved = [SavedCallback(e["name"], e["class"], e["state"]) for e in entries]
    elif isinstance(obj, dict) and all(isinstance(k, str) for k in obj):  # format 1
        saved = [SavedCallback(name, class_name(cb), cb.state_dict())
                 for name, cb in obj.items() if callable(getattr(cb, "state_dict", None))]
    else:
        raise SketchRNNError(f"{source}: expected a dict of callbacks")
    if [s.name for s in saved[:2]] != list(SCHEDULES):
        raise SketchRNNError(f"{source}: no {' and '.join(SCHEDULES)} callbacks")
    if len({s.name for s in saved}) != len(saved):
        raise SketchRNNError(f"{source}: a callback name appears twice")
    return saved


def _is_entry(e: Any) -> bool:
    return (isinstance(e, dict) and isinstance(e.get("name"), str)
            and isinstance(e.get("class"), str) and isinstance(e.get("state"), dict)
            and is_plain(e["state"]))


# --------------------------------------------------------------------------- matching
def match(saved: Sequence[SavedCallback], given: Mapping[str, Any], allowed: bool,
          where: str) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]] | None]:
    """Pair the saved states with the callbacks given, by name and class.

    Returns (name -> state to load, the change): the change lists the names "added",
    "removed" and "replaced" (same name, other class), None when there is none. A change
    is refused, naming each callback, unless `allowed`; then the added and replaced
    callbacks start fresh and the removed ones' states are dropped.
    """
    before = {s.name: s for s in saved}
    added = [n for n in given if n not in before]
    removed = [n for n in before if n not in given]
    replaced = [n for n in given if n in before and before[n].cls != class_name(given[n])]
    states = {n: before[n].state for n in given if n in before and n not in replaced}
    if not (added or removed or replaced):
        return states, None
    if not allowed:
        said = ([f"{n} ({class_name(given[n])}) was not saved" for n in added]
                + [f"{n} ({before[n].cls}) was saved but not given" for n in removed]
                + [f"{n} was saved as {before[n].cls}, given {class_name(given[n])}"
                   for n in replaced])
        raise SketchRNNError(f"{where}: other callbacks than the run saved: {'; '.join(said)}; "
                             "give the same callbacks, or allow the change with "
                             "--allow-callback-change (the changed ones start fresh)")
    return states, {"added": added, "removed": removed, "replaced": replaced}


def check_given(callbacks: Collection[Any]) -> None:
    """Refuse what is not a Keras callback before anything is built."""
    import keras

    for cb in callbacks:
        if not isinstance(cb, keras.callbacks.Callback):
            raise SketchRNNError(f"callbacks: {cb!r} is not a keras.callbacks.Callback")
