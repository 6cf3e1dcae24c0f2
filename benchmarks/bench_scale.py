"""Loading QuickDraw at scale: load time and peak memory against the raw int16 size.

All 345 sketch-rnn QuickDraw files hold 345 x (70,000 train + 2,500 valid + 2,500 test)
~ 25.9M sketches. This benchmark writes K synthetic files of exactly that per-file shape
(real sketch-rnn .npz files: pickled object arrays of int16 (n, 3) stroke-3 arrays, lengths
drawn to match QuickDraw's simplified drawings: median 39, mean ~45 points) into a temporary
folder, then loads them with `sketch_rnn.data.load_data` in a fresh subprocess, three ways:

  memory        load_data(paths, 250)                      packed int16 arrays in RAM
  cache-build   load_data(paths, 250, cache_dir=...)       the same, then saved as .npy
  cache-mmap    the same call again                        memory-mapped .npy files

For each it reports wall time and the process's RSS (baseline after imports, after the
load, and the peak, VmHWM) against the raw int16 size of the kept points (6 bytes a
point). Files are read one at a time, so the peak = the packed arrays (known exactly; they
grow with the number of files) + an overhead (interpreter, allocator leftovers, one file's
transient while it is read), which should hardly grow. The files are loaded twice, K/2 and K
of them, to measure the overhead and its growth; the projection to all 345 files is

    peak_345 = packed_K / K * 345 + overhead_K + (345 - K) * growth_per_file

    python benchmarks/bench_scale.py [--files 16] [--train 70000] [--keep DIR]

Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ALL_CATEGORIES = 345
MAX_SEQ_LEN = 250


# --------------------------------------------------------------------------- synthetic files
def synthetic_split(n: int, rng: np.random.Generator) -> np.ndarray:
    """n int16 stroke-3 sketches as a 1-D object array (QuickDraw-like lengths and offsets)."""
    lengths = np.clip(np.rint(rng.lognormal(np.log(39.0), 0.5, n)), 2, 400).astype(np.int64)
    total = int(lengths.sum())
    points = np.empty((total, 3), np.int16)  # (P, 3)
    points[:, :2] = np.clip(rng.normal(0.0, 25.0, (total, 2)), -255, 255)
    points[:, 2] = rng.random(total) < 0.12  # ~ 5 strokes a sketch
    ends = np.cumsum(lengths) - 1
    points[ends, 2] = 1  # every sketch ends with a pen-up
    out = np.empty(n, dtype=object)
    out[:] = [np.array(s) for s in np.split(points, ends[:-1] + 1)]
    return out


def write_files(folder: Path, count: int, sizes: tuple[int, int, int]) -> list[str]:
    paths = []
    for k in range(count):
        rng = np.random.default_rng(k)
        path = folder / f"category{k:03d}.npz"
        np.savez(path, **{name: synthetic_split(n, rng)
                          for name, n in zip(("train", "valid", "test"), sizes)})
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------- measuring
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent's memory at
# fork, so a child of a big process would report the parent's peak.
CHILD = r"""
import json, sys, time
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
def rss():
    return status("VmRSS")
from sketch_rnn.data import load_data, train_batch
from sketch_rnn.core.hparams import HParams
args = json.loads(sys.argv[1])
base = rss()
t0 = time.perf_counter()
data = load_data(args["paths"], args["max_seq_len"], cache_dir=args["cache_dir"])
seconds = time.perf_counter() - t0
after = rss()
peak = status("VmHWM")
splits = [data.train, data.valid, data.test]
hps = HParams(batch_size=100, max_seq_len=args["max_seq_len"])
t1 = time.perf_counter()
for step in range(50):
    train_batch(data.train, hps, 0, step)
batch_ms = (time.perf_counter() - t1) / 50 * 1e3
print(json.dumps({
    "seconds": seconds, "rss_base": base, "rss_after": after, "rss_peak": peak,
    "raw_bytes": sum(s.points.shape[0] for s in splits) * 6,
    "packed_bytes": sum(s.nbytes() for s in splits),
    "sketches": sum(len(s) for s in splits), "points": sum(s.points.shape[0] for s in splits),
    "mapped": type(data.train.points).__name__ == "memmap", "batch_ms": batch_ms}))
"""


def measure(paths: list[str], cache_dir: str | None) -> dict:
    """Load in a fresh interpreter so that its peak RSS is this load's alone."""
    arg = json.dumps({"paths": paths, "max_seq_len": MAX_SEQ_LEN, "cache_dir": cache_dir})
    out = subprocess.run([sys.executable, "-c", CHILD, arg], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def project(small: dict, large: dict, k_small: int, k_large: int) -> dict:
    """Figures for K files and a projection of the peak to all 345 files.

    Peak RSS over the baseline = the packed arrays (exactly known, proportional to the files)
    + an overhead: allocator leftovers and one file's transient while it is read. Loading
    K/2 and K files measures the overhead twice; it is projected with the growth seen
    between the two (never less than none).
    """
    overhead = {k: m["rss_peak"] - m["rss_base"] - m["packed_bytes"]
                for k, m in ((k_small, small), (k_large, large))}
    growth = max(0.0, (overhead[k_large] - overhead[k_small]) / (k_large - k_small))
    raw_per_file = large["raw_bytes"] / k_large
    peak = large["rss_peak"] - large["rss_base"]
    peak_345 = (large["packed_bytes"] / k_large * ALL_CATEGORIES + overhead[k_large]
                + (ALL_CATEGORIES - k_large) * growth)
    after = large["rss_after"] - large["rss_base"]
    return {"seconds": round(large["seconds"], 2),
            "peak_over_raw": round(peak / large["raw_bytes"], 3),
            "after_over_raw": round(after / large["raw_bytes"], 3),
            "overhead_mb": round(overhead[k_large] / 2**20, 1),
            "overhead_growth_mb_per_file": round(growth / 2**20, 2),
            "projected_345_peak_over_raw": round(peak_345 / (ALL_CATEGORIES * raw_per_file), 3),
            "projected_345_peak_gb": round(peak_345 / 1e9, 2),
            "projected_345_seconds": round(large["seconds"] * ALL_CATEGORIES / k_large, 1),
            "batch_ms": round(large["batch_ms"], 3), "mapped": large["mapped"]}


def run_modes(paths: list[str], folder: Path) -> dict[str, dict]:
    return {"memory": measure(paths, None),
            "cache-build": measure(paths, str(folder / f"cache-{len(paths)}")),
            "cache-mmap": measure(paths, str(folder / f"cache-{len(paths)}"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16, help="synthetic category files (K)")
    parser.add_argument("--train", type=int, default=70000, help="train sketches per file")
    parser.add_argument("--eval", type=int, default=2500, help="valid and test sketches per file")
    parser.add_argument("--keep", default=None, help="write the files here and keep them")
    args = parser.parse_args()
    k_small = max(1, args.files // 2)
    if k_small >= args.files:
        parser.error("--files must be at least 2 (two file counts give the projection)")

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        paths = write_files(folder, args.files, (args.train, args.eval, args.eval))
        disk = sum(Path(p).stat().st_size for p in paths)
        print(f"wrote {args.files} files ({disk / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - t0:.1f} s; each {args.train}/{args.eval}/{args.eval} "
              f"sketches; all {ALL_CATEGORIES} would be {ALL_CATEGORIES / args.files:.1f}x this")
        small = run_modes(paths[:k_small], folder)
        large = run_modes(paths, folder)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)

    first = large["memory"]
    print(f"{args.files} files: {first['sketches']:,} sketches, {first['points']:,} points; "
          f"raw int16 {first['raw_bytes'] / 2**20:.1f} MiB, packed arrays "
          f"{first['packed_bytes'] / 2**20:.1f} MiB "
          f"({first['packed_bytes'] / first['raw_bytes']:.3f}x)")
    summary = {mode: project(small[mode], large[mode], k_small, args.files) for mode in large}
    notes = {"memory": "", "cache-build": "  (peaks like memory, then the arrays are mapped)",
             "cache-mmap": "  (file-backed pages: shared, and the kernel may drop them)"}
    for mode, s in summary.items():
        line = (f"{mode:12s} load {s['seconds']:6.2f} s  peak RSS {s['peak_over_raw']:.3f}x raw "
                f"(after the load {s['after_over_raw']:.3f}x)  batch {s['batch_ms']:.2f} ms")
        if mode == "memory":
            line += (f"\n             besides the packed arrays: {s['overhead_mb']:.0f} MiB, "
                     f"growing {s['overhead_growth_mb_per_file']:.2f} MiB a file; "
                     f"projected to {ALL_CATEGORIES} files: peak "
                     f"{s['projected_345_peak_over_raw']:.3f}x raw = "
                     f"{s['projected_345_peak_gb']:.1f} GB, "
                     f"load {s['projected_345_seconds']:.0f} s")
        print(line + notes[mode])
    mem, build, mmap = summary["memory"], summary["cache-build"], summary["cache-mmap"]
    print(json.dumps({
        "files": args.files, "sketches": first["sketches"],
        "raw_mb": round(first["raw_bytes"] / 2**20, 1),
        "packed_over_raw": round(first["packed_bytes"] / first["raw_bytes"], 4),
        "load_s": mem["seconds"], "peak_over_raw": mem["peak_over_raw"],
        "overhead_mb": mem["overhead_mb"],
        "overhead_growth_mb_per_file": mem["overhead_growth_mb_per_file"],
        "projected_345_peak_over_raw": mem["projected_345_peak_over_raw"],
        "projected_345_peak_gb": mem["projected_345_peak_gb"],
        "projected_345_load_s": mem["projected_345_seconds"],
        "cache_build_s": build["seconds"], "cache_build_peak_over_raw": build["peak_over_raw"],
        "mmap_load_s": mmap["seconds"], "mmap_peak_over_raw": mmap["peak_over_raw"],
        "batch_ms": mem["batch_ms"], "goal_peak_over_raw": 1.3}))

if __name__ == "__main__":
    main()
