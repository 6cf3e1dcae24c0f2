"""`sketch-rnn evaluate --run-dir checkpoints/sheep --split test`: an older commit's code and
this tree's, side by side, each in a fresh process, and their JSON compared key by key.

The old side is the package of a git commit (default 0185631, before evaluate's losses were
compiled and its sampler, encoder and teacher-forced view batched), extracted with `git
archive` into a temporary folder beside links to this repository's data/ and checkpoints/
(same data, same checkpoint) and run from there, without a compile cache. The new side is this tree, with a fresh compile cache
folder: its first run fills it (`new`), a second run reads it (`new warm`, unless
--no-warm). Each process's wall time from spawn to exit is printed, with the median and best
of --repeats runs, beside its CPU seconds (user + system: less distorted by other work on
the machine), and the JSON of every run is compared with the old one's: the same keys,
and each value equal exactly, or for the losses (the only floats not counted from sampled
or ranked quantities) to float32 rounding (relative 1e-5). Ends with one JSON line.

    python benchmarks/bench_evaluate.py                  # old, new, new warm
    python benchmarks/bench_evaluate.py --no-warm        # old and new only (shorter)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sketch_rnn.core.machine import describe  # noqa: E402

COMMAND = ["evaluate", "--run-dir", "checkpoints/sheep", "--split", "test"]
LOSSES = ("cost", "kl", "pen", "recon", "stroke")  # floats a compiled graph may round apart


def extract(commit: str, into: Path) -> Path:
    """The `sketch_rnn` package of `commit`, written under `into`, beside links to this
    repository's data/ and checkpoints/; returns `into`, the old side's working directory
    (`python -m` puts the working directory first on sys.path, so the old side must not
    run from this repository's root)."""
    data = subprocess.run(["git", "archive", "--format=tar", commit, "sketch_rnn"], cwd=ROOT,
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    for folder in ("data", "checkpoints"):
        (into / folder).symlink_to(ROOT / folder, target_is_directory=True)
    return into


def run(package_root: Path, cache: str) -> tuple[float, float, dict]:
    """(seconds from spawn to exit, CPU seconds (user + system), the JSON) of one
    `sketch-rnn evaluate` process that imports sketch_rnn from `package_root`. The CPU
    seconds say more than the wall time on a machine shared with other work."""
    env = {**os.environ, "PYTHONPATH": str(package_root), "SKETCH_RNN_COMPILE_CACHE": cache}
    env.pop("TF_XLA_FLAGS", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sketch_rnn", *COMMAND], cwd=package_root,
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"evaluate ({package_root}) failed:\n{done.stderr[-3000:]}")
    imported = subprocess.run([sys.executable, "-c", "import sketch_rnn; print(sketch_rnn.__file__)"],
                              cwd=package_root, env=env, capture_output=True, text=True).stdout
    if not Path(imported.strip()).resolve().is_relative_to(package_root.resolve()):
        raise SystemExit(f"the run from {package_root} imported {imported.strip()}")
    return seconds, cpu, json.loads(done.stdout.strip().splitlines()[-1])


def differences(old: dict, new: dict) -> list[str]:
    """The keys whose values differ (losses: beyond relative 1e-5), and missing keys."""
    out = sorted(set(old) ^ set(new))
    for key in sorted(set(old) & set(new)):
        a, b = old[key], new[key]
        if key in LOSSES:
            if not abs(a - b) <= 1e-5 * max(abs(a), abs(b)) + 1e-7:
                out.append(key)
        elif a != b:
            out.append(key)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="0185631", help="the baseline commit (default 0185631)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (default 1)")
    parser.add_argument("--no-warm", action="store_true",
                        help="skip the new side's second run (compile cache filled)")
    args = parser.parse_args(argv)
    print(json.dumps(describe()))
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        sides = {"old": (extract(args.old, Path(tmp) / "old"), "off"),
                 "new": (ROOT, str(Path(tmp) / "cache"))}
        names = ["old", "new"] + ([] if args.no_warm else ["new_warm"])
        times: dict[str, list[float]] = {name: [] for name in names}
        cpus: dict[str, list[float]] = {name: [] for name in names}
        reference, diffs = None, {}
        for _ in range(args.repeats):
            for name in names:
                root, cache = sides[name.removesuffix("_warm")]
                seconds, cpu, result = run(root, cache)
                times[name].append(seconds)
                cpus[name].append(cpu)
                reference = reference or result
                diffs[name] = differences(reference, result)
                print(f"{name:>8}: {seconds:6.1f} s wall, {cpu:6.1f} s CPU  JSON "
                      f"{'the same' if not diffs[name] else 'DIFFERS: ' + ', '.join(diffs[name])}",
                      flush=True)
    summary: dict = {"benchmark": "evaluate", "old_commit": args.old, "repeats": args.repeats}
    for name, values in times.items():
        summary[f"{name}_median_s"] = round(statistics.median(values), 2)
        summary[f"{name}_best_s"] = round(min(values), 2)
        summary[f"{name}_cpu_median_s"] = round(statistics.median(cpus[name]), 2)
        summary[f"{name}_same_json"] = not diffs[name]
    for name in names[1:]:
        summary[f"speedup_{name}"] = round(summary["old_median_s"] / summary[f"{name}_median_s"], 2)
        summary[f"cpu_ratio_{name}"] = round(summary["old_cpu_median_s"]
                                             / summary[f"{name}_cpu_median_s"], 2)
    print(json.dumps(summary))
    return 0 if not any(diffs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
