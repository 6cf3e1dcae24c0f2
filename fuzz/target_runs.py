"""Corrupted run directories: random damage to each file of a checkpoint (the weights,
`callbacks.pkl`, `state.json`, `MANIFEST.json`), to `latest` and `best`, and to the run
directory's layout, then everything that reads a run.

The reference is the undamaged copy: a checkpoint is *intact* when its folder and its four
files are byte for byte the trained ones. The properties: the newest checkpoint that
verifies is at least the newest intact one, and one that is not intact never verifies with
other weights, callbacks or state than its own (the run never loads wrong weights
silently); quarantine moves aside only checkpoints that fail verification and never an
intact one; `info`, `load_run`, `sample`, `evaluate`, `export`, `serve` and a resumed
`train` give a result or one line of our error (exit 2), and a failed command leaves no
file behind. "resign" damage also rewrites the manifest to match (a tampered checkpoint,
not an accident): then what loads must still be what state.json's fingerprint says.

The run these start from: `SKETCH_RNN_FUZZ_RUN` (a trained run, never modified: each
input works on a copy), else a `tiny` run of 30 steps (three checkpoints) trained once per
process into a temporary folder.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzz.common import ROOT, PropertyViolation, apply_edits, files_under, ours
from fuzz.target_quickdraw import check_refusal, run_cli

FILES = ("model.weights.h5", "callbacks.pkl", "state.json", "MANIFEST.json")
CONTENT = FILES[:3]
SHEEP = str(ROOT / "data" / "aaron_sheep.npz")
HPARAMS = ("max_seq_len=64,save_every=10,batch_size=8,precision=float32,"
           "bucketed_batches=false,num_mixture=20")


@functools.cache
def base_run() -> Path:
    given_run = os.environ.get("SKETCH_RNN_FUZZ_RUN")
    if given_run:
        return Path(given_run)
    from sketch_rnn.training.trainer import Trainer, plan_run

    folder = Path(tempfile.mkdtemp(prefix="sketch-rnn-fuzz-run-"))
    atexit.register(shutil.rmtree, folder, True)
    run = folder / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        Trainer(plan_run(run, [SHEEP], "tiny", HPARAMS, 30, 0), progress=False).fit()
    return run


@functools.cache
def original() -> dict[str, dict[str, bytes]]:
    """{checkpoint name: {file: bytes}} of the undamaged run."""
    root = base_run() / "checkpoints"
    return {p.name: {f: (p / f).read_bytes() for f in FILES}
            for p in sorted(root.iterdir()) if p.is_dir() and p.name.startswith("ckpt-")}


def step_of(name: str) -> int:
    return int(name[5:])


# --------------------------------------------------------------------------- damage
_EDITS = st.lists(st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 30), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 1 << 30), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 30)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 30), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 30), st.binary(min_size=1, max_size=8))),
    min_size=1, max_size=3)
_FILE_DAMAGE = st.one_of(st.tuples(st.just("edit"), _EDITS),
                         st.sampled_from([("empty",), ("delete",), ("dir",), ("swap",),
                                          ("symlink",)]))
_HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                     st.text(max_size=4), st.lists(st.integers(), max_size=2),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
_STATE_KEYS = st.sampled_from(["step", "seed", "hparams", "data", "fingerprint", "run_id",
                               "valid_cost", "lineage", "params"])
DAMAGE = st.one_of(
    st.tuples(st.just("file"), st.integers(0, 9), st.sampled_from(FILES), _FILE_DAMAGE),
    st.tuples(st.just("resign"), st.integers(0, 9), st.sampled_from(CONTENT), _EDITS),
    st.tuples(st.just("state"), st.integers(0, 9), _STATE_KEYS, st.one_of(
        st.just("<delete>"), _HOSTILE)),
    st.tuples(st.just("run_file"), st.sampled_from(["latest", "best"]), _FILE_DAMAGE),
    st.tuples(st.just("layout"), st.integers(0, 9), st.sampled_from(
        ["rename_newer", "rename_junk", "as_file", "symlink_newer", "empty_newer",
         "no_checkpoints", "checkpoints_file", "nested"])),
)


def _manifest(folder: Path) -> None:
    """Re-sign: the manifest rewritten to match the files as they are now."""
    files = {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in CONTENT
             if (folder / f).is_file()}
    if (folder / "MANIFEST.json").is_dir():
        shutil.rmtree(folder / "MANIFEST.json")
    (folder / "MANIFEST.json").write_text(json.dumps({"format": 1, "files": files}))


def _damage_file(path: Path, how: tuple, other: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        data = path.read_bytes() if path.is_file() else b""
        path.unlink()
        if how[0] == "edit":
            path.write_bytes(apply_edits(data, how[1]))
    if how[0] == "empty":
        path.write_bytes(b"")
    elif how[0] == "dir":
        path.mkdir()
    elif how[0] == "swap" and other.is_file():
        shutil.copyfile(other, path)
    elif how[0] == "symlink":
        path.symlink_to(other)


def damage(run: Path, what: tuple) -> None:
    """Apply one damage to the run copy `run` (see DAMAGE)."""
    names = sorted(original())
    kind = what[0]
    if kind == "run_file":
        _damage_file(run / what[1], what[2], run / "checkpoints" / names[0] / "state.json")
        return
    name = names[what[1] % len(names)]
    folder = run / "checkpoints" / name
    if not folder.is_dir():
        return  # an earlier damage of the list removed it
    other = run / "checkpoints" / names[(what[1] + 1) % len(names)]
    if kind == "file":
        _damage_file(folder / what[2], what[3], other / what[2])
    elif kind == "resign" and (folder / what[2]).is_file():
        path = folder / what[2]
        path.write_bytes(apply_edits(path.read_bytes(), what[3]))
        _manifest(folder)
    elif kind == "state" and (folder / "state.json").is_file():
        with contextlib.suppress(ValueError):
            state = json.loads((folder / "state.json").read_text())
            if what[3] == "<delete>":
                state.pop(what[2], None)
            else:
                state[what[2]] = what[3]
            (folder / "state.json").write_text(json.dumps(state))
            _manifest(folder)
    elif kind == "layout":
        newer = run / "checkpoints" / f"ckpt-{step_of(names[-1]) + 10 * (1 + what[1]):08d}"
        how = what[2]
        if how.endswith("_newer") and (newer.exists() or newer.is_symlink()):
            return  # an earlier damage of the list made it
        if how == "rename_newer":
            os.rename(folder, newer)
        elif how == "rename_junk":
            os.rename(folder, folder.with_name(name + "x"))
        elif how == "as_file":
            shutil.rmtree(folder)
            folder.write_bytes(b"not a checkpoint")
        elif how == "symlink_newer":
            newer.symlink_to(folder)
        elif how == "empty_newer":
            newer.mkdir()
        elif how == "no_checkpoints":
            shutil.rmtree(run / "checkpoints")
        elif how == "checkpoints_file":
            shutil.rmtree(run / "checkpoints")
            (run / "checkpoints").write_bytes(b"")
        elif how == "nested":
            os.rename(folder, other / name) if other.is_dir() else None


DAMAGES = st.lists(DAMAGE, min_size=1, max_size=3)


def intact(run: Path) -> list[str]:
    """The names of the checkpoints that are byte for byte as trained, oldest first."""
    out = []
    for name, files in original().items():
        folder = run / "checkpoints" / name
        if folder.is_symlink() or not folder.is_dir():
            continue
        if all((folder / f).is_file() and not (folder / f).is_symlink()
               and (folder / f).read_bytes() == data for f, data in files.items()):
            out.append(name)
    return sorted(out)


def resigned(damages: list[tuple]) -> bool:
    return any(d[0] in ("resign", "state") for d in damages)


@contextlib.contextmanager
def damaged_copy(damages: list[tuple]):
    """A damaged copy of the base run in a temporary folder: (folder, run, intact names)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run = folder / "run"
        shutil.copytree(base_run(), run, symlinks=True)
        for what in damages:
            damage(run, what)
        yield folder, run, intact(run)


def check_choice(run: Path, chosen: Any, good: list[str], damages: list[tuple]) -> None:
    """The checkpoint a reader took, against the undamaged reference."""
    if chosen is None:
        if good:
            raise PropertyViolation(f"no checkpoint taken, but {good} are intact")
        return
    name = chosen.path.name
    if good and step_of(name) < step_of(good[-1]):
        raise PropertyViolation(f"took {name}, but {good[-1]} is intact and newer")
    if name in good:
        return
    if name not in original():
        raise PropertyViolation(f"took {name}, a checkpoint that was never written")
    if not resigned(damages) and any((chosen.path / f).read_bytes() != original()[name][f]
                                     for f in CONTENT):
        raise PropertyViolation(f"{name} verified with other contents than it was written with")


def _quiet(fn, *args, **kwargs):
    import logging

    logger = logging.getLogger("sketch_rnn")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        return fn(*args, **kwargs)
    finally:
        logger.setLevel(level)


@given(DAMAGES)
def verify(damages: list[tuple]) -> None:
    """newest_checkpoint, info, quarantine and `info --json` on a damaged run (no TensorFlow)."""
    from sketch_rnn.training.checkpoint import newest_checkpoint, quarantine_newer
    from sketch_rnn.training.runs import info

    with damaged_copy(damages) as (folder, run, good):
        chosen = _quiet(newest_checkpoint, run)
        check_choice(run, chosen, good, damages)
        summary = ours(_quiet, info, run)
        if summary is not None and summary["checkpoint"] != chosen.path.name:
            raise PropertyViolation("info and newest_checkpoint disagree")
        argv = ["info", str(run), "--json"]
        code, err = run_cli(argv)
        if code != 0:
            check_refusal(code, err, argv)
        if chosen is not None:
            moved = _quiet(quarantine_newer, run, chosen.step)
            lost = [n for n in good if not (run / "checkpoints" / n).is_dir()]
            if lost:
                raise PropertyViolation(f"quarantine moved intact checkpoints {lost} ({moved})")
        if good != intact(run):
            raise PropertyViolation(f"intact checkpoints changed: {good} -> {intact(run)}")


@given(DAMAGES)
def load(damages: list[tuple]) -> None:
    """load_run: the newest checkpoint that verifies, with exactly its recorded weights."""
    from sketch_rnn.training.checkpoint import fingerprint
    from sketch_rnn.training.runs import load_run

    with damaged_copy(damages) as (folder, run, good):
        loaded = ours(_quiet, load_run, run)
        if loaded is None:
            if good and not resigned(damages):
                raise PropertyViolation(f"load_run refused, but {good} are intact")
            return
        check_choice(run, loaded.checkpoint, good, damages)
        if fingerprint(loaded.model) != loaded.state.get("fingerprint"):
            raise PropertyViolation(f"{loaded.checkpoint.name}: loaded weights are not the "
                                    "ones its state.json records")


_BASELINE: dict[str, int] = {}


def baseline(name: str, argv_of) -> int:
    """The command's exit status on the undamaged run (once per command): the reference a
    damaged run is held to (export refuses a run of num_mixture != 20 either way)."""
    if name not in _BASELINE:
        with damaged_copy([]) as (folder, run, _):
            _BASELINE[name] = run_cli(argv_of(run, folder))[0]
    return _BASELINE[name]


def _command(argv_of, damages: list[tuple], outputs: tuple[str, ...]) -> None:
    """Run one command on a damaged copy: exit 0 with its outputs, or one line and none.
    With an intact checkpoint left (and no tampering), it must do what it does on the
    undamaged run: fall back to the newest checkpoint that verifies."""
    expected = baseline(" ".join(argv_of(Path("R"), Path("F"))), argv_of)
    with damaged_copy(damages) as (folder, run, good):
        before = files_under(folder)
        argv = argv_of(run, folder)
        code, err = run_cli(argv)
        new = {p for p in files_under(folder) - before if not p.startswith("run/")}
        if code != 0:
            check_refusal(code, err, argv)
            if good and not resigned(damages) and expected == 0:
                raise PropertyViolation(f"{argv}: refused ({err.strip()}), but {good} are intact")
            if new:
                raise PropertyViolation(f"{argv} failed but wrote {sorted(new)}")
        elif new != set(outputs):
            raise PropertyViolation(f"{argv} wrote {sorted(new)}, expected {outputs}")


@given(DAMAGES)
def sample(damages: list[tuple]) -> None:
    _command(lambda run, f: ["sample", "--run-dir", str(run), "--n", "2", "--out",
                             str(f / "s.npz")], damages, ("s.npz",))


@functools.cache
def few_sheep() -> Path:
    """The first 24 sketches of each split of the bundled sheep: `evaluate` over a whole
    split in a second, not the run's 2500 valid sketches."""
    from fuzz.common import npz_bytes
    from sketch_rnn.data.npz import load_npz

    folder = Path(tempfile.mkdtemp(prefix="sketch-rnn-fuzz-data-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "few_sheep.npz"
    path.write_bytes(npz_bytes(**{k: v[:24] for k, v in load_npz(SHEEP).items()}))
    return path


@given(DAMAGES)
def evaluate(damages: list[tuple]) -> None:
    _command(lambda run, f: ["evaluate", "--run-dir", str(run), "--data", str(few_sheep()),
                             "--split", "valid", "--teacher-forced", "2", "--no-samples"],
             damages, ())


@given(DAMAGES)
def export(damages: list[tuple]) -> None:
    _command(lambda run, f: ["export", "--run-dir", str(run), "--z-prior", "-o",
                             str(f / "m.json")], damages, ("m.json",))


@given(DAMAGES)
def serve(damages: list[tuple]) -> None:
    """`serve` up to the point where it would listen (uvicorn.run does nothing here)."""
    import uvicorn

    listen = uvicorn.run
    uvicorn.run = lambda *a, **k: None
    try:
        _command(lambda run, f: ["serve", "--run-dir", str(run), "--port", "0"], damages, ())
    finally:
        uvicorn.run = listen


@given(DAMAGES)
def resume(damages: list[tuple]) -> None:
    """`train` resumed on a damaged run: it resumes from the newest intact checkpoint (or
    one line), and every intact checkpoint is still there afterwards, byte for byte."""
    with damaged_copy(damages) as (folder, run, good):
        last = step_of(max(original()))
        argv = ["train", "--data", SHEEP, "--run-dir", str(run), "--preset", "tiny",
                "--num-steps", str(last + 2), "--no-progress", "--no-samples"]
        code, err = run_cli(argv)
        if code != 0:
            check_refusal(code, err, argv)
            if good and not resigned(damages):
                raise PropertyViolation(f"{argv}: refused ({err.strip()}), but {good} are intact")
        else:
            from sketch_rnn.training.checkpoint import newest_checkpoint

            newest = _quiet(newest_checkpoint, run)
            if newest is None or newest.step != last + 2:
                raise PropertyViolation(f"{argv}: exit 0 but the newest checkpoint is {newest}")
        still = intact(run)
        if [n for n in good if n not in still]:
            raise PropertyViolation(f"{argv}: intact checkpoints lost: {good} -> {still}")


TARGETS = {"verify": verify, "load": load, "sample": sample, "evaluate": evaluate,
           "export": export, "serve": serve, "resume": resume}
CI_EXAMPLES = {"load": 6, "sample": 3, "evaluate": 2, "export": 3, "serve": 2, "resume": 2}
SLOW = {"load", "sample", "evaluate", "export", "serve", "resume"}
