"""Shared test helpers: the bundled data, tiny training runs, fingerprints, CLI processes.

`slow` marks tests that train tiny runs (the fast loop keeps one resume check, test_resume's
stop mid-way), start fresh TensorFlow processes (signals, kills, several workers, notebooks,
a browser), or repeat a check the fast loop makes once (another parameter: `fast_first`,
another precision, batch path or kind of run); `python -m pytest -m "not slow" tests` is
the fast inner loop, while the README's command runs everything.

The README's command runs the suite on pytest-xdist workers (`-n 2`). The scheduler below
keeps on one worker, one after another, the tests that share a module-scoped fixture (so a
tiny run a module trains once is trained once, not once per worker), and puts every test
marked `kills` (it signals a live trainer at chosen moments) into one group, so no two of
them ever compete for the cores with each other.
"""
from __future__ import annotations

import fcntl
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHEEP = str(ROOT / "data" / "aaron_sheep.npz")
GROUPS_ENV = "SKETCH_RNN_TEST_GROUPS"  # the file in which xdist workers leave the groups
# the `tiny` preset on sheep sketches of at most 64 points, a checkpoint every 10 steps, in
# float32 on every CPU (a new run would otherwise pick bfloat16 where the CPU has it), on
# length-bucketed batches as a new run of a user's is (test_bucketing's runs)
TINY_BUCKETED = "max_seq_len=64,save_every=10,batch_size=8,precision=float32"
# the same on full-length batches: one batch shape, so one trace of the training step per run
# instead of one per length bucket drawn (a 25-step tiny run: 2 s, not 10); what the tests of
# resume, locks and commands check does not depend on the batches' lengths, and the bucketed
# path's own resume, refusal and lineage checks live in test_bucketing
TINY_HPARAMS = TINY_BUCKETED + ",bucketed_batches=false"


XLA_CACHE_ENV = "SKETCH_RNN_TEST_XLA_CACHE"  # the session's cache folder, to remove at its end


def _share_xla_compiles() -> None:
    """One XLA compile per distinct program for the whole session, not one per process.

    The suite's tiny runs compile the same programs over and over: every `sketch-rnn train`
    subprocess of a resume, signal or lock test (the step per batch shape, the validation,
    the sampler), and both xdist workers. The product's persistent compilation cache
    (`sketch_rnn.core.compile_cache`, which `sketch-rnn train` and `evaluate` enable) keeps
    each compiled program on disk, keyed by the program itself, so the next process loads
    it instead of compiling: a 16-step tiny run took 27 s, then 14 s. Here in a fresh
    folder per session (SKETCH_RNN_COMPILE_CACHE, inherited by the workers and every
    subprocess, each of which enables it for itself), removed at the session's end; a
    cache folder of the caller's own (SKETCH_RNN_COMPILE_CACHE or TF_XLA_FLAGS) is left
    alone. A program loaded from the cache executes the same code as one compiled afresh
    (test_compile_cache compares fingerprints with the cache and without)."""
    from sketch_rnn.core import compile_cache

    if compile_cache.ROOT_ENV not in os.environ and XLA_CACHE_ENV not in os.environ:
        folder = tempfile.mkdtemp(prefix="sketch-rnn-test-xla-")
        os.environ[XLA_CACHE_ENV] = os.environ[compile_cache.ROOT_ENV] = folder
    compile_cache.enable()


def pytest_configure(config) -> None:
    """The markers `slow` and `kills` are registered in pytest.ini (--strict-markers)."""
    _share_xla_compiles()  # an xdist worker: the controller's folder, its own work folder
    if hasattr(config, "workerinput"):
        return  # an xdist worker inherits what the controller set up
    if config.getoption("numprocesses", None):
        folder = tempfile.mkdtemp(prefix="sketch-rnn-test-groups-")  # the xdist controller
        os.environ[GROUPS_ENV] = str(Path(folder) / "groups.json")  # inherited by workers


def pytest_unconfigure(config) -> None:
    if hasattr(config, "workerinput"):
        return
    if GROUPS_ENV in os.environ:
        shutil.rmtree(Path(os.environ.pop(GROUPS_ENV)).parent, ignore_errors=True)
    if XLA_CACHE_ENV in os.environ:
        from sketch_rnn.core import compile_cache

        compile_cache.close()
        shutil.rmtree(os.environ.pop(XLA_CACHE_ENV), ignore_errors=True)


def _groups(items) -> dict[str, str]:
    """nodeid -> group: tests joined by a module- or class-scoped fixture of ours form one
    group (union-find over the fixtures they use); the groups holding a `kills` test merge
    into one. Session fixtures join nothing: each worker asks for its own (the tiny runs of
    `_once_per_session` are then built by the first and read by both)."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    def join(a: str, b: str) -> None:
        parent[root(a)] = root(b)

    for item in items:
        root(item.nodeid)
        for name in item.fixturenames:
            defs = item._fixtureinfo.name2fixturedefs.get(name, ())
            if defs and defs[-1].scope in ("module", "class") and defs[-1].baseid:
                join(item.nodeid, f"fixture {defs[-1].baseid}::{name}")
        if item.get_closest_marker("kills"):
            join(item.nodeid, "kills")
    return {item.nodeid: root(item.nodeid) for item in items}


@pytest.hookimpl(trylast=True)  # the items as they will run (after -m / -k)
def pytest_runtest_teardown(item, nextitem) -> None:
    """Free the dead models of a module when it ends. Left to itself, Python's full collection
    comes every few minutes, at an allocation inside some later test's trace, and then took
    26-30 s on one core (measured with gc.callbacks: one generation-2 pass in a 5 s test, once
    per fast-loop run); collected here at each module's end, the same garbage costs 0.2-0.6 s
    a module. What survives a collection (TensorFlow's and Keras' 390 000 objects of module
    state, the session fixtures) is then frozen out of later passes: each of them scanned it
    all again, 0.15 s a module before any test garbage."""
    if nextitem is None or nextitem.module is not item.module:
        gc.collect()
        gc.freeze()


def pytest_collection_modifyitems(config, items) -> None:
    """On an xdist worker, write the groups for the controller's scheduler (below): only the
    workers collect, and pytest-xdist's own `loadgroup` marks do not group on pytest 9."""
    path = os.environ.get(GROUPS_ENV)
    if path and hasattr(config, "workerinput"):
        tmp = f"{path}.{config.workerinput['workerid']}"
        Path(tmp).write_text(json.dumps(_groups(items)))
        os.replace(tmp, path)  # every worker collects the same tests: the same map




@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """xdist's load-scope scheduling over our groups: each group is one unit of work, sent
    whole to one worker, where its tests run one after another."""
    from xdist.scheduler import LoadScopeScheduling

    class KillsFirst(OrderedDict):
        """The work queue, with the `kills` group (the longest unit) handed out first."""

        def __setitem__(self, scope: str, nodeids) -> None:
            super().__setitem__(scope, nodeids)
            if scope == "kills":
                self.move_to_end(scope, last=False)

    class FixtureGroups(LoadScopeScheduling):
        _map: dict[str, str] | None = None

        def __init__(self, config, log=None) -> None:
            super().__init__(config, log)
            self.workqueue = KillsFirst()

        def _split_scope(self, nodeid: str) -> str:
            if self._map is None:  # read once the workers have collected
                path = Path(os.environ.get(GROUPS_ENV, "-"))
                self._map = json.loads(path.read_text()) if path.is_file() else {}
            return self._map.get(nodeid, nodeid)

    return FixtureGroups(config, log)


def _once_per_session(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """`name`/run, built by `build(run_dir)` once for the whole test session: under xdist
    the first worker to ask builds it in the workers' common temporary folder (under a lock)
    and the others wait for it, instead of each training the same tiny run again (about 4 s
    of a worker each). Its users only read it or take a copy."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by this session's workers, not by other sessions
    folder = base / f"shared-{name}"
    folder.mkdir(exist_ok=True)
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "built").exists():
            shutil.rmtree(folder / "run", ignore_errors=True)  # a build that failed before
            build(folder / "run")
            (folder / "built").touch()
    return folder / "run"


@pytest.fixture(scope="session")
def ten_step_run(tmp_path_factory) -> Path:
    """A `tiny` run trained 10 steps (TINY_HPARAMS: one checkpoint, ckpt-00000010), trained
    once per test session: a test that breaks or resumes such a run takes a copy
    (`shutil.copytree`) instead of training the same 10 steps again."""
    return _once_per_session(tmp_path_factory, "ten_steps", lambda run: train_tiny(run, 10))


@pytest.fixture(scope="session")
def twenty_step_run(tmp_path_factory) -> Path:
    """A `tiny` run trained 20 steps without a stop (TINY_HPARAMS, seed 0; ckpt-10 and
    ckpt-20), once per test session: the uninterrupted reference of the 20-step checks and the
    start of the tests that break or resume a 20-step run (they take a copy)."""
    return _once_per_session(tmp_path_factory, "twenty_steps", lambda run: train_tiny(run, 20))


FEW = 24  # sketches per split of `few_sheep`: more than K = 3 neighbours and ret@10 need


@pytest.fixture(scope="session")
def few_sheep(tmp_path_factory) -> Path:
    """The first FEW sketches of each split of the bundled sheep, as an .npz: real data for
    the tests that run a whole `evaluate` (its every part) without sampling 300 sketches at
    four temperatures; the measures themselves are tested on their own."""
    from npz_helpers import write_npz
    from sketch_rnn.data.npz import load_npz

    path = tmp_path_factory.mktemp("few_sheep") / "few_sheep.npz"
    return write_npz(path, **{split: s[:FEW] for split, s in load_npz(SHEEP).items()})


@pytest.fixture(scope="session")
def ten_step_decoder_run(tmp_path_factory) -> Path:
    """The decoder-only twin of `ten_step_run` (TINY_HPARAMS + conditional=false, 10 steps),
    trained once per test session for the tests that read or copy such a run."""
    return _once_per_session(tmp_path_factory, "ten_steps_decoder", lambda run: train_tiny(
        run, 10, hparams=TINY_HPARAMS + ",conditional=false"))


FRAMEWORKS = ("tensorflow", "keras", "jax")


def frameworks_imported_by(code: str, cwd: Path = ROOT, also: tuple[str, ...] = ()) -> list[str]:
    """The frameworks (and the packages in `also`) that `code` leaves imported, by top-level
    name, run in a fresh Python: the checks that a light module or command starts without
    TensorFlow. The code's own failure (an assert, an exit code) fails the calling test."""
    names = sorted(set(FRAMEWORKS) | set(also))
    probe = (code + "\nimport json, sys\n"
             f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(names)!r})))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    result = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout.strip().splitlines()[-1])


def fast_first(values: list, unpack: bool = False) -> list:
    """A check's parameters as the fast loop runs them: the first value in `-m "not slow"`,
    the others only in the whole suite (marked `slow`). `unpack`: each value is a tuple of
    several argnames' values."""
    first, *rest = values
    return [first, *(pytest.param(*(v if unpack else (v,)), marks=pytest.mark.slow)
                     for v in rest)]


def tiny_model(max_seq_len: int, seed: int, **overrides):
    """An untrained `tiny`-preset SketchRNN (built, not compiled) for tests of generation."""
    from sketch_rnn.core.hparams import preset
    from sketch_rnn.model.vae import SketchRNN

    return SketchRNN(preset("tiny").replace(max_seq_len=max_seq_len, **overrides), seed=seed)


def train_tiny(run_dir: Path, num_steps: int, seed: int | None = None,
               hparams: str = TINY_HPARAMS, data: str = SHEEP):
    """Train (or resume) a `tiny` run in this process; returns the Trainer."""
    from sketch_rnn.training.trainer import Trainer, plan_run

    trainer = Trainer(plan_run(run_dir, [data], "tiny", hparams, num_steps, seed),
                      progress=False)
    assert trainer.fit() == 0
    return trainer


def fingerprint(run_dir: Path) -> str:
    """What `sketch-rnn info --json` reports: the sha256 of every trained variable."""
    from sketch_rnn.training.runs import info

    return info(run_dir)["fingerprint"]


def train_cmd(run_dir: Path, num_steps: int, *extra: str, hparams: str = TINY_HPARAMS,
              samples: bool = False) -> list[str]:
    """The `sketch-rnn train` command line of a tiny run, as a user would type it."""
    return [sys.executable, "-m", "sketch_rnn", "train", "--data", SHEEP, "--run-dir",
            str(run_dir), "--preset", "tiny", "--hparams", hparams, "--num-steps",
            str(num_steps), "--no-progress", *([] if samples else ["--no-samples"]), *extra]


def logged_step(run_dir: Path) -> int:
    """The last step in logs/train.csv (0 when nothing is logged yet)."""
    csv_path = run_dir / "logs" / "train.csv"
    if not csv_path.exists():
        return 0
    lines = csv_path.read_text().splitlines()
    last = lines[-1].split(",")[0] if len(lines) > 1 else ""
    return int(last) if last.isdigit() else 0


def wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, since: float,
                  timeout: float = 300) -> None:
    """Wait until this process (not an earlier, killed one) has logged `step` in train.csv."""
    csv_path = run_dir / "logs" / "train.csv"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if csv_path.exists() and csv_path.stat().st_mtime > since and \
                logged_step(run_dir) >= step:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("training did not progress")


def sigterm_after(run_dir: Path, step: int, cmd: list[str]) -> int:
    """Start `cmd` (a train command), SIGTERM it once it has logged `step`, check that it
    saved and exited 143, and return the step it stopped at."""
    since = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    wait_for_step(run_dir, step, proc, since)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    from sketch_rnn.training import runs

    return runs.info(run_dir)["step"]
