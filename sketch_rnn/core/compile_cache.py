"""A persistent cache of the XLA programs a process compiles, so that a process that compiles
the same programs again loads them instead.

Each start of a run compiles its programs again (one per length bucket of the training
step, the sampler, the fused LSTM loops): about 12 s of a resumed `small` run's first
20 steps, paid again at every restart of a pre-emptible job. TensorFlow can keep compiled
programs on disk (TF_XLA_FLAGS --tf_xla_persistent_cache_directory) and load one instead of
compiling it when the same program comes back; this module sets that up, before TensorFlow
reads its flags (`enable`, the first line of `sketch-rnn train` and `evaluate`), around
what TensorFlow alone does not guarantee:

- keyed: entries live in a folder per environment (`environment_key`: TensorFlow, Keras and
  Python versions, the CPU's model and flags, XLA_FLAGS, the GPUs), and TensorFlow's own
  file names carry that key as their prefix; TensorFlow keys an entry by its program's
  fingerprint and refuses one whose program differs. An entry is taken into a process only
  if it reads whole and its recorded key is its file name (`entry_matches_name`): a renamed,
  truncated or foreign file is left out (compiled afresh), never loaded, never an error.
- two processes: TensorFlow writes an entry in place (a reader could see it half written),
  so each process gets its own folder (`work/<pid>-...`) holding hard links to the shared
  entries; what it compiles is written there and published (checked, then linked or renamed
  into the shared folder, atomic) at checkpoints and at exit. A process killed before it
  published leaves a folder that the next `enable` removes.
- bounded: after publishing, the least recently used entries go until the whole cache is
  under its bound (SKETCH_RNN_COMPILE_CACHE_MB, 1024 MB by default). A process that took an
  entry keeps its own link, so removing one never disturbs a running job.

Where: SKETCH_RNN_COMPILE_CACHE, else $XDG_CACHE_HOME/sketch-rnn/xla, else
~/.cache/sketch-rnn/xla; SKETCH_RNN_COMPILE_CACHE=off turns it off. A TF_XLA_FLAGS cache
directory of the caller's own is left alone. A program loaded from the cache is the one
that would have been compiled: training gives the same bits with and without it.
TensorFlow-free (it must run before TensorFlow starts).

Names (measured, benchmarks/bench_job.py): TensorFlow names each traced function with a
process-wide counter (`__inference_fn_1234`), and that name is part of each compiled
program's key, so a process finds its programs again only if it traces the same functions
from the same counter. A resume restores more than a new run builds (its counter is
further on); so the trainer moves the counter to a fixed value
(`model.backend.align_trace_names`) and then traces the training step once, for every
bucket's length, before the first step (`training.trainer.per_shape_train_function`).
Every process of a run then names, and finds, the training step's programs whichever
bucket it meets first: a resume loads them instead of compiling them; the trainer moves
the counter again at a process's first checkpoint, before validation's graph and the
sampler are traced. What no cache removes is the one trace of the step and TensorFlow's
graph optimisation of it (together about 1.5 s at `small`, before and at the first step),
and at each bucket's first step loading its programs and oneDNN's first kernels (a tenth
of a second or so).
"""
from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import sys
import uuid
from importlib import metadata
from pathlib import Path

from .machine import cpu_flags, cpu_model

log = logging.getLogger(__name__)

ROOT_ENV = "SKETCH_RNN_COMPILE_CACHE"
SIZE_ENV = "SKETCH_RNN_COMPILE_CACHE_MB"
OWNER_ENV = "SKETCH_RNN_COMPILE_CACHE_OWNER"  # the pid whose work folder TF_XLA_FLAGS names
DEFAULT_MB = 1024
DIR_FLAG = "--tf_xla_persistent_cache_directory"
PREFIX_FLAG = "--tf_xla_persistent_cache_prefix"
OFF = ("off", "0", "false", "no", "none")

HELP = (f"Compiled XLA programs are kept between runs in ${ROOT_ENV} (default "
        f"~/.cache/sketch-rnn/xla, at most ${SIZE_ENV} MB, {DEFAULT_MB} by default; "
        f"{ROOT_ENV}=off turns the cache off).")

_state: dict = {}  # this process's cache: root, store, work, the owner lock's file


def default_root() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sketch-rnn" / "xla"


def _version(*names: str) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "none"


def _gpus() -> list[str]:
    """The NVIDIA GPUs' models as the driver lists them (no TensorFlow needed)."""
    found = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            found += [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                      if line.startswith("Model:")]
        except OSError:
            continue
    return found


def environment_key() -> str:
    """16 hex digits naming what a compiled program depends on besides itself: the versions
    of TensorFlow, Keras and Python, the CPU (model and every flag: XLA compiles for the
    host's instruction set), XLA_FLAGS and the GPUs."""
    facts = {"tensorflow": _version("tensorflow", "tensorflow-cpu", "tf-nightly",
                                    "tensorflow-macos"),
             "keras": _version("keras"), "python": sys.version, "arch": platform.machine(),
             "cpu": cpu_model(), "flags": sorted(cpu_flags()),
             "xla_flags": os.environ.get("XLA_FLAGS", ""), "gpus": _gpus()}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- entries
def _varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i


def _fields(data: bytes) -> dict[int, list]:
    """field number -> values of a protobuf message (varints and length-delimited bytes);
    ValueError unless it parses to its very end."""
    out: dict[int, list] = {}
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise ValueError("truncated field")
            value, i = data[i:i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if i + size > len(data):
                raise ValueError("truncated field")
            value, i = data[i:i + size], i + size
        else:
            raise ValueError(f"wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def entry_matches_name(path: Path) -> bool:
    """Whether `path` holds a whole XlaSerializedCacheEntry (key, HLO, a non-empty
    executable) whose key is the one its file name says (TensorFlow's naming:
    PREFIX__SIGNATURE__CLUSTER__DEVICE.pb). TensorFlow would fail the step on a file that
    does not parse or whose key differs from the one it looks up; such files are left out."""
    try:
        entry = _fields(path.read_bytes())
        key = _fields(entry[1][0])
        if not entry.get(2) or not entry.get(3) or not entry[3][0]:
            return False
        prefix = key.get(4, [b""])[0].decode()
        name = "__".join([*([prefix] if prefix else []), str(key.get(1, [0])[0]),
                          str(key.get(2, [0])[0]), key.get(3, [b""])[0].decode()])
    except (OSError, ValueError, KeyError, IndexError, UnicodeDecodeError):
        return False
    return path.name == f"{name}.pb"


def _link_or_copy(src: Path, dst: Path) -> None:
    """dst as a hard link to src (atomic), else a copy renamed into place; an existing dst
    is kept (same name, same program)."""
    try:
        os.link(src, dst)
        return
    except FileExistsError:
        return
    except OSError:
        pass
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


# --------------------------------------------------------------------------- set-up
def _resolve_root(root: str | os.PathLike | None) -> Path | None:
    value = str(root) if root is not None else os.environ.get(ROOT_ENV, "")
    if value.strip().lower() in OFF and value.strip():
        return None
    return Path(value).expanduser() if value.strip() else default_root()


def _strip_flags(flags: str) -> str:
    return " ".join(f for f in flags.split() if not f.startswith((DIR_FLAG, PREFIX_FLAG)))


def enable(root: str | os.PathLike | None = None) -> Path | None:
    """Give this process's TensorFlow a persistent compilation cache; returns the folder it
    writes to (None: off, or a cache directory of the caller's own in TF_XLA_FLAGS). Call
    it before TensorFlow compiles anything; calling it again is harmless."""
    if _state.get("pid") == os.getpid():
        return _state["work"]
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if DIR_FLAG in flags and OWNER_ENV not in os.environ:
        return None  # the caller's own cache folder
    flags = _strip_flags(flags)  # a parent process's work folder is not ours to write
    os.environ.pop(OWNER_ENV, None)
    resolved = _resolve_root(root)
    if resolved is None:
        os.environ["TF_XLA_FLAGS"] = flags
        return None
    # TensorFlow reads TF_XLA_FLAGS at its first XLA compile, not at import: enabling after
    # `import tensorflow` (a notebook that imported keras first) still takes effect
    key = environment_key()
    store, work_root = resolved / key, resolved / "work"
    try:
        store.mkdir(parents=True, exist_ok=True)
        work_root.mkdir(parents=True, exist_ok=True)
        with _root_lock(resolved):
            _remove_dead_work(work_root)
        work = work_root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        work.mkdir()
        owner = open(work / ".owner", "w")
        fcntl.flock(owner, fcntl.LOCK_EX)  # held while this process lives
        _take_entries(store, work)
    except OSError as e:
        log.warning(f"no compile cache in {resolved}: {e}")
        os.environ["TF_XLA_FLAGS"] = flags
        return None
    os.environ["TF_XLA_FLAGS"] = f"{flags} {DIR_FLAG}={work} {PREFIX_FLAG}=k{key}".strip()
    os.environ[OWNER_ENV] = str(os.getpid())
    _state.update(pid=os.getpid(), root=resolved, store=store, work=work, owner=owner)
    atexit.register(close)
    return work


class _root_lock:
    """flock on ROOT/.lock: one process at a time removes work folders or entries."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"

    def __enter__(self) -> None:
        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def _remove_dead_work(work_root: Path) -> None:
    """Remove the work folders whose process is gone (its flock on .owner is free)."""
    for folder in work_root.iterdir():
        try:
            with open(folder / ".owner", "a") as owner:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # alive
        except OSError:
            pass  # no owner file: a folder half made or half removed
        shutil.rmtree(folder, ignore_errors=True)


def _take_entries(store: Path, work: Path) -> None:
    """Link every sound entry of the store into this process's folder, marking it used."""
    for entry in store.glob("*.pb"):
        if entry_matches_name(entry):
            _link_or_copy(entry, work / entry.name)
            try:
                os.utime(entry)  # least recently used goes first when pruning
            except OSError:
                pass


# --------------------------------------------------------------------------- publishing
def publish() -> int:
    """Move this process's new compiled programs into the shared cache, then bound its
    size; returns how many were added. Call where no compile is running (a checkpoint,
    exit): a file still being written would not parse and is left for later."""
    if _state.get("pid") != os.getpid():
        return 0
    store, work = _state["store"], _state["work"]
    added = 0
    try:
        for entry in work.glob("*.pb"):
            if entry.stat().st_nlink == 1 and entry_matches_name(entry):  # new, whole
                _link_or_copy(entry, store / entry.name)
                added += 1
        with _root_lock(_state["root"]):
            prune(_state["root"], max_bytes())
    except OSError as e:
        log.warning(f"compile cache {store}: {e}")
    return added


def max_bytes() -> int:
    try:
        return int(float(os.environ.get(SIZE_ENV, DEFAULT_MB)) * 2**20)
    except ValueError:
        return DEFAULT_MB * 2**20


def prune(root: Path, limit: int) -> list[Path]:
    """Remove the least recently used entries of every environment's folder under `root`
    until they take at most `limit` bytes; returns what was removed."""
    entries = []
    for entry in root.glob("*/*.pb"):
        if entry.parent.name == "work":
            continue
        try:
            st = entry.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, entry))
    total = sum(size for _, size, _ in entries)
    removed = []
    for _, size, entry in sorted(entries, key=lambda e: (e[0], str(e[2]))):
        if total <= limit:
            break
        try:
            entry.unlink()
        except OSError:
            continue
        total -= size
        removed.append(entry)
    return removed


def close() -> None:
    """Publish, then remove this process's work folder (at exit)."""
    if _state.get("pid") != os.getpid():
        return
    publish()
    shutil.rmtree(_state["work"], ignore_errors=True)
    _state["owner"].close()
    _state.clear()
