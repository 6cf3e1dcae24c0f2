"""The whole training job, as a user waits for it: today's path and the old one side by side.

Runs the README's main job (`sketch-rnn train --data data/aaron_sheep.npz --preset small`,
its checkpoint every 250 steps and the sample grid drawn at each) for --steps steps in a
fresh process, then resumes it in another fresh process for --resume-steps more, once per
path:
- old: validation by eager `model.loss_terms` calls (`evaluate_split(..., eager=True)`),
  no compile cache (SKETCH_RNN_COMPILE_CACHE=off);
- new: the compiled validation, and the compile cache (a fresh folder: the first run fills
  it, the resume reads it).
Each process is the CLI's own `train` command, with timers around the pieces of a
checkpoint (`Trainer.save`: validation, writing, the sample grid, publishing to the cache)
and a clock at each step's end. Per path and process: start-up to the first step's end
(Python, TensorFlow, data, model, the first step's compile), the training steps (step
intervals with the checkpoints' time taken out), validation, writing, samples, and the
overhead (wall time less the training steps) as a share of the wall time; for the resume,
the time its first 20 steps lose to compiles (their sum less 20 steady steps: the median
step of the resume) and start-up to full speed (to the end of the last of those steps
slower than twice the median). The checkpoint share at the main job's settings (the
preset's num_steps, a checkpoint every save_every) counts the first checkpoint as measured
(it compiles validation's graph and the sampler) and the others as the measured later ones
(their median): checkpoints / (num_steps x median step + checkpoints); the first process
must reach its second checkpoint (--steps >= 2 x save_every) to measure a later one. Then
`sketch-rnn evaluate --run-dir checkpoints/sheep --split test` in a fresh process per path
(the new path twice: compile cache empty, then filled), its JSON compared with the old
path's.

    python benchmarks/bench_job.py                     # 750 steps + 60 resumed, both paths
    python benchmarks/bench_job.py --no-evaluate       # the job only
    python benchmarks/bench_job.py --no-job            # evaluate only
    python benchmarks/bench_job.py --steps 20 --resume-steps 25 --preset tiny --no-evaluate
                                                       # smoke
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sketch_rnn.core import compile_cache  # noqa: E402
from sketch_rnn.core.hparams import preset  # noqa: E402
from sketch_rnn.core.machine import describe  # noqa: E402

DATA = str(ROOT / "data" / "aaron_sheep.npz")
FIRST = 20  # the resumed steps whose compiles are counted
EVALUATED = ROOT / "checkpoints" / "sheep"  # the shipped run `evaluate` is timed on


# --------------------------------------------------------------------------- one process
def child(path: str, run_dir: str, steps: int, preset_name: str, spawned: float,
          out: str) -> None:
    """One `sketch-rnn train` in this process, timed; the figures go to `out` as JSON."""
    import functools

    compile_cache.enable()  # as cmd_train does, but before this function's imports start TF

    from sketch_rnn.cli import model_commands
    from sketch_rnn.cli.main import main
    from sketch_rnn.evaluation.losses import evaluate_split
    from sketch_rnn.training import trainer
    from sketch_rnn.training.checkpoint import CheckpointWriter
    from sketch_rnn.training.progress import TrainingLogger

    record: dict = {"step_ends": [], "saves": {}}
    part: dict[str, float] = {}

    def timed(name, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                part[name] = part.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    validate = functools.partial(evaluate_split, eager=path == "old")
    trainer.evaluate_split = timed("validation", validate)
    CheckpointWriter.write = timed("writing", CheckpointWriter.write)
    try:  # where the train command's sample grid is drawn (the public API's run, or the CLI)
        from sketch_rnn.api import run as drawer
        drawing = "draw_samples"
    except ImportError:
        drawer, drawing = model_commands, "_draw_samples"
    setattr(drawer, drawing, timed("samples", getattr(drawer, drawing)))
    trainer.compile_cache.publish = timed("publish", compile_cache.publish)
    save = trainer.Trainer.save

    def timed_save(self, step):
        part.clear()
        t0 = time.perf_counter()
        result = save(self, step)
        record["saves"][step] = {"total": time.perf_counter() - t0, **part}
        return result

    trainer.Trainer.save = timed_save
    batch_end = TrainingLogger.on_train_batch_end

    def clocked(self, batch, logs=None):
        record["step_ends"].append((self.start + batch + 1, time.time()))
        return batch_end(self, batch, logs)

    TrainingLogger.on_train_batch_end = clocked
    code = main(["train", "--data", DATA, "--run-dir", run_dir, "--preset", preset_name,
                 "--num-steps", str(steps), "--no-progress"])
    record.update(code=code, spawned=spawned, ended=time.time())
    Path(out).write_text(json.dumps(record))


def child_evaluate(path: str, run_dir: str) -> None:
    """`sketch-rnn evaluate` on `run_dir` in this process (its JSON on stdout); the old path
    with the eager losses."""
    import functools

    compile_cache.enable()
    from sketch_rnn.cli.main import main
    from sketch_rnn.evaluation import report

    if path == "old":
        report.evaluate_split = functools.partial(report.evaluate_split, eager=True)
    main(["evaluate", "--run-dir", run_dir, "--split", "test"])


def run_evaluate(path: str, cache: str) -> tuple[float, dict]:
    """(seconds from spawn to exit, the JSON) of one evaluate process."""
    env = {**os.environ, compile_cache.ROOT_ENV: cache}
    env.pop("TF_XLA_FLAGS", None)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child-evaluate", path, "--run-dir",
                           str(EVALUATED)], env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"evaluate ({path}) failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def same_json(a: dict, b: dict, rel: float = 1e-5) -> bool:
    """The same keys, and every value equal (numbers to float32 rounding)."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) or isinstance(y, float):
            if not abs(x - y) <= rel * max(abs(x), abs(y)) + 1e-7:
                return False
        elif x != y:
            return False
    return True


def run_process(path: str, run_dir: Path, steps: int, preset_name: str, cache: str,
                tmp: Path) -> dict:
    out = tmp / f"{path}-{steps}.json"
    env = {**os.environ, compile_cache.ROOT_ENV: cache}
    env.pop("TF_XLA_FLAGS", None)
    spawned = time.time()
    done = subprocess.run([sys.executable, __file__, "--child", path, "--run-dir",
                           str(run_dir), "--steps", str(steps), "--preset", preset_name,
                           "--spawned", str(spawned), "--out", str(out)], env=env, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{path} path, {steps} steps failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- figures
def phases(rec: dict) -> dict:
    """Start-up, training steps, checkpoint parts and overhead of one process's record."""
    ends = rec["step_ends"]
    saves = {int(k): v for k, v in rec["saves"].items()}
    steps, last = [], ends[0][1]
    for step, t in ends[1:]:
        steps.append(t - last - saves.get(step, {}).get("total", 0.0))
        last = t
    first_step = ends[0][1] - rec["spawned"]
    wall = rec["ended"] - rec["spawned"]
    train = sum(steps)
    out = {"wall_s": wall, "startup_to_first_step_s": first_step, "train_steps_s": train,
           "steps_timed": len(steps), "median_step_s": statistics.median(steps),
           "best_step_s": min(steps), "checkpoints": len(saves)}
    for name in ("validation", "writing", "samples", "publish"):
        out[f"{name}_s"] = sum(s.get(name, 0.0) for s in saves.values())
    out["checkpoint_s"] = sum(s["total"] for s in saves.values())
    # the first checkpoint of a process compiles validation's graph and the sampler; the
    # later ones (steady) only run them: the main job has one first and many steady ones
    totals = [saves[step]["total"] for step in sorted(saves)]
    out["first_checkpoint_s"] = totals[0] if totals else 0.0
    out["steady_checkpoint_s"] = statistics.median(totals[1:]) if len(totals) > 1 else None
    for name in ("validation", "writing", "samples", "publish"):
        later = [saves[step].get(name, 0.0) for step in sorted(saves)[1:]]
        out[f"steady_{name}_s"] = statistics.median(later) if later else None
    out["overhead_s"] = wall - train
    out["overhead_share"] = out["overhead_s"] / wall
    out["checkpoint_share"] = out["checkpoint_s"] / wall
    out["step_durations"] = steps
    return out


def main_job_share(job: dict, hps) -> float:
    """The checkpoints' share of the main job's wall time (hps.num_steps steps, one
    checkpoint every hps.save_every): its first checkpoint as measured, the others as the
    measured later ones (their median; the first's if there is no later one), the steps at
    the measured median step."""
    count = max(1, -(-hps.num_steps // hps.save_every))
    steady = job["steady_checkpoint_s"]
    steady = job["first_checkpoint_s"] if steady is None else steady
    checkpoints = job["first_checkpoint_s"] + (count - 1) * steady
    return checkpoints / (hps.num_steps * job["median_step_s"] + checkpoints)


def resume_figures(rec: dict) -> dict:
    p = phases(rec)
    steps = p.pop("step_durations")
    median = p["median_step_s"]
    first = steps[:FIRST - 1]  # the first FIRST steps; the first one's end is start-up's
    slow = [i for i, s in enumerate(first) if s > 2 * median]
    full_speed = (rec["step_ends"][slow[-1] + 1][1] if slow else rec["step_ends"][0][1])
    p["compile_loss_first_steps_s"] = max(0.0, sum(first) - len(first) * median)
    p["first_steps"] = [round(s, 3) for s in first]
    p["startup_to_full_speed_s"] = full_speed - rec["spawned"]
    return p


def run_path(path: str, args: argparse.Namespace, tmp: Path) -> dict:
    cache = str(tmp / "cache") if path == "new" else "off"
    run_dir = tmp / f"run-{path}"
    fresh = run_process(path, run_dir, args.steps, args.preset, cache, tmp)
    resumed = run_process(path, run_dir, args.steps + args.resume_steps, args.preset, cache, tmp)
    job = phases(fresh)
    job.pop("step_durations")
    return {"job": job, "resume": resume_figures(resumed)}


def time_evaluate(paths: list[str], tmp: Path) -> dict:
    """`sketch-rnn evaluate --run-dir checkpoints/sheep --split test`, one process per path
    (the new one twice: its compile cache empty, then filled by the first); the JSON of
    each path is compared with the first's."""
    out: dict = {}
    reference = None
    print(f"\nevaluate {EVALUATED.relative_to(ROOT)} --split test:")
    for path in paths:
        cache = str(tmp / "evaluate-cache") if path == "new" else "off"
        for attempt in ("", "_warm") if path == "new" else ("",):
            seconds, result = run_evaluate(path, cache)
            reference = reference or result
            same = same_json(reference, result)
            out[f"{path}_evaluate{attempt}_s"] = round(seconds, 2)
            out[f"{path}_evaluate{attempt}_same_json"] = same
            print(f"  {path}{attempt.replace('_', ' ')}: {seconds:.1f} s (process start to "
                  f"exit); JSON {'the same' if same else 'DIFFERS'}")
    if "old_evaluate_s" in out and "new_evaluate_warm_s" in out:
        out["evaluate_speedup"] = round(out["old_evaluate_s"] / out["new_evaluate_warm_s"], 2)
        print(f"  old / new (cache filled): {out['evaluate_speedup']:.2f}x")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=750, help="steps of the first process")
    parser.add_argument("--resume-steps", type=int, default=60, help="steps of the resume")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--paths", default="old,new")
    parser.add_argument("--no-evaluate", action="store_true",
                        help="skip timing `sketch-rnn evaluate` on checkpoints/sheep")
    parser.add_argument("--no-job", action="store_true",
                        help="skip the training job (time `evaluate` only)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-evaluate", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_evaluate:
        child_evaluate(args.child_evaluate, args.run_dir)
        return 0
    if args.child:
        child(args.child, args.run_dir, args.steps, args.preset, args.spawned, args.out)
        return 0
    if args.resume_steps <= FIRST:
        parser.error(f"--resume-steps must exceed {FIRST} (the steady steps after them)")
    machine = describe()
    print(f"CPU: {machine['cpu']} ({machine['cores']} cores; {', '.join(machine['isa'])})")
    hps = preset(args.preset)
    print(f"job: --preset {args.preset}, {args.steps} steps (checkpoint every "
          f"{hps.save_every}), then a resume of {args.resume_steps} steps; fresh processes")
    tmp = Path(tempfile.mkdtemp(prefix="bench-job-"))
    results = {}
    try:
        for path in [] if args.no_job else args.paths.split(","):
            t0 = time.perf_counter()
            results[path] = run_path(path, args, tmp)
            job, res = results[path]["job"], results[path]["resume"]
            job["main_job_checkpoint_share"] = main_job_share(job, hps)
            print(f"\n{path} path ({time.perf_counter() - t0:.0f} s):")
            print(f"  start-up to first step {job['startup_to_first_step_s']:.2f} s; "
                  f"{job['steps_timed']} steps {job['train_steps_s']:.1f} s (median "
                  f"{job['median_step_s']:.4f} s, best {job['best_step_s']:.4f} s)")
            print(f"  {job['checkpoints']} checkpoints {job['checkpoint_s']:.2f} s: validation "
                  f"{job['validation_s']:.2f} s, writing {job['writing_s']:.2f} s, samples "
                  f"{job['samples_s']:.2f} s, publishing compiles {job['publish_s']:.2f} s")
            if job["steady_checkpoint_s"] is not None:
                print(f"  first checkpoint {job['first_checkpoint_s']:.2f} s; later ones "
                      f"(median) {job['steady_checkpoint_s']:.2f} s: validation "
                      f"{job['steady_validation_s']:.2f} s, writing {job['steady_writing_s']:.2f}"
                      f" s, samples {job['steady_samples_s']:.2f} s, publishing "
                      f"{job['steady_publish_s']:.2f} s")
            print(f"  overhead (all but steps) {job['overhead_s']:.1f} s = "
                  f"{100 * job['overhead_share']:.1f}% of {job['wall_s']:.1f} s; checkpoints "
                  f"{100 * job['checkpoint_share']:.1f}%; at the main job's settings "
                  f"({hps.num_steps} steps, save_every {hps.save_every}) "
                  f"{100 * job['main_job_checkpoint_share']:.2f}%")
            print(f"  resume: start-up to first step {res['startup_to_first_step_s']:.2f} s, "
                  f"to full speed {res['startup_to_full_speed_s']:.2f} s; its first {FIRST} "
                  f"steps lose {res['compile_loss_first_steps_s']:.2f} s to compiles")
            print(f"  the resume's steps 2-{FIRST} (s): {res.pop('first_steps')}")
        evaluate = {} if args.no_evaluate else time_evaluate(args.paths.split(","), tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {"bench": "job", "cpu": machine["cpu"], "cores": machine["cores"],
               "isa": machine["isa"], "preset": args.preset, "steps": args.steps,
               "resume_steps": args.resume_steps, "save_every": hps.save_every}
    for path, r in results.items():
        for part in ("job", "resume"):
            for key, value in r[part].items():
                summary[f"{path}_{part}_{key}"] = round(value, 4) if isinstance(
                    value, float) else value
    summary.update(evaluate)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
