"""Keep a benchmark's result: its JSON line, the command that printed it and the machine.

    python benchmarks/record.py NAME -- python benchmarks/bench_train.py --steps 10 ...
    python benchmarks/record.py NAME --from-curves CURVES.json --levels 0.8,0.7 --command "..."

The first form runs the command (its output passes through), takes the last line of its
stdout that parses as a JSON object (every `bench_*.py` ends with one) and writes
`benchmarks/results/NAME.json`:

    {"benchmark": "bench_train.py", "command": "...", "machine": {...}, "result": {...}}

`machine` is `sketch_rnn.core.machine.describe()` (CPU model, cores, OS, kernel flags) of the
machine that ran it. `docs/generate.py` builds docs/performance.md from these files only, so
every figure on that page names the file and the command it came from.

The second form keeps a `bench_time_to_quality.py` run whose `--curves` file is committed
(its validation points, written by the benchmark itself) but whose printed line was not: the
per-level times and ratios are recomputed from the points with the benchmark's own rule,
which is what it printed. Those files record only the CPU model; the rest of the machine
comes from `--machine-note` and `--reported-in` (the page that reported the run), and the
record says so.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
sys.path.insert(0, ROOT)

from sketch_rnn.core import machine  # noqa: E402  (no TensorFlow import)


def last_json_line(text: str) -> dict:
    """The last stdout line that is a JSON object: the benchmark's result."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise SystemExit("record.py: the command printed no JSON line")


def run_and_capture(argv: list[str]) -> dict:
    """Run a benchmark, echo its output, return its JSON line."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    lines = []
    for line in proc.stdout:  # type: ignore[union-attr]
        sys.stdout.write(line)
        lines.append(line)
    if proc.wait() != 0:
        raise SystemExit(f"record.py: the command exited with status {proc.returncode}")
    return last_json_line("".join(lines))


def from_curves(path: str, levels: list[float]) -> tuple[dict, dict]:
    """A time-to-quality result recomputed from its committed curves file, and its CPU."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from bench_time_to_quality import level_times  # the benchmark's own rule (no TF import)

    with open(path, encoding="utf-8") as f:
        curves = json.load(f)
    runs = curves["runs"]
    today = next(v for k, v in runs.items() if k.startswith("today"))
    new = next(v for k, v in runs.items() if k.startswith("new"))
    per_level, ratios = level_times(today["curve"], new["curve"], levels)
    result = {"new_hparams": curves["new_hparams"], "today_hparams": curves["today_hparams"],
              "levels": per_level,
              "time_to_quality_ratio": round(min(ratios), 3) if ratios else None,
              "steps": {k: v["curve"][-1]["step"] for k, v in runs.items()},
              "final_recon": {k: v["curve"][-1]["recon"] for k, v in runs.items()},
              "pen": {k: v["pen"] for k, v in runs.items()}}
    return result, {"cpu": curves["cpu"]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="the record's file name, without .json")
    p.add_argument("--from-curves", default=None, help="a bench_time_to_quality --curves file")
    p.add_argument("--levels", default="", help="with --from-curves: the run's --levels")
    p.add_argument("--command", default="", help="with --from-curves: the command that ran")
    p.add_argument("--machine-note", default="", help="with --from-curves: the machine, as "
                   "the page that reported the run describes it")
    p.add_argument("--reported-in", default="", help="with --from-curves: that page's path")
    args = p.parse_args(argv)
    if args.from_curves:
        result, where = from_curves(args.from_curves, [float(x) for x in args.levels.split(",")])
        record = {"benchmark": "bench_time_to_quality.py", "command": args.command,
                  "machine": {**where, "note": args.machine_note},
                  "source": os.path.relpath(os.path.abspath(args.from_curves), ROOT),
                  "reported_in": args.reported_in,
                  "result": result}
    elif command:
        script = next((os.path.basename(a) for a in command if a.endswith(".py")), command[0])
        record = {"benchmark": script, "command": shlex.join(command),
                  "machine": machine.describe(), "result": run_and_capture(command)}
    else:
        p.error("give a command after --, or --from-curves")
    os.makedirs(RESULTS, exist_ok=True)
    out = os.path.join(RESULTS, f"{args.name}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"recorded: {os.path.relpath(out, ROOT)} (python docs/generate.py remakes the pages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
