"""The latent study's runs (issue 12): train named configs with our own CLI, evaluate each.

Trains named configs one after another with `sketch-rnn train`, evaluates each on the test
split with `sketch-rnn evaluate` (losses plus the latent metrics of
`sketch_rnn.evaluation.retrieval`), and writes a markdown table and one JSON line per row to
studies/latent/latent_study.md.

The model is a reduced `small` (encoder 64, decoder 128, z 32) so that a step costs about a
second on 2 CPU cores, and the KL weight anneals 10x faster than `small`'s (kl_decay_rate
0.995: w_KL reaches 78% of its target by step 300, 92% by step 500) so that the KL term
actually bites within a few hundred steps. Short runs RANK configs; they do not show where a
config ends up.

Restartable: training resumes when RUN_DIR exists (the CLI's own resume), evaluation results
are cached in RUN_DIR/eval_test.json; training wall time is summed over sessions from
RUN_DIR/logs/train.csv. Driven by `latent.py` (train, report, curve).
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import time
import sys
from pathlib import Path

import measures

HERE = Path(__file__).resolve().parent  # studies/latent/
ROOT = HERE.parents[1]  # the repository
STUDY = ROOT / "runs" / "study"
OUT = HERE / "latent_study.md"
DATA = "data/aaron_sheep.npz"
REFERENCE = "runs/study/first_shipped_sheep"  # README.md here: how to restore it
BASE = "enc_rnn_size=64,dec_rnn_size=128,z_size=32,kl_decay_rate=0.995,save_every=250"
# small's training path when the study ran (2026-12-01), pinned so that a rerun trains as it
# did: new runs have since taken bucketed batches, bf16 on CPUs that have it and a higher
# rate at a smaller batch (issue 23)
THEN = "batch_size=100,learning_rate=0.001,bucketed_batches=false,precision=float32"

# (name, extra hparams, what changed), in priority order; baseline = small's KL settings.
CONFIGS = [
    ("baseline", "", "reduced small: w_KL 0.5, KL tolerance 0.2"),
    ("kl_w0.1", "kl_weight=0.1", "w_KL 0.1"),
    ("kl_w0.25", "kl_weight=0.25", "w_KL 0.25"),
    ("input_drop0.7", "use_input_dropout=true,input_dropout_prob=0.7",
     "input dropout, keep 0.7 (on [S_{i-1}, z])"),
    ("kl_tol0.5", "kl_tolerance=0.5", "KL tolerance 0.5"),
    ("z64", "z_size=64", "z 64"),
    ("kl_tol0", "kl_tolerance=0.0", "KL tolerance 0 (no free nats; added after the others)"),
    # second session: a positive control, then remedies aimed at the decoder's shortcut
    ("ae_control", "kl_weight_start=0,kl_weight=0",
     "positive control: no KL term at all (a plain autoencoder with noise)"),
    ("stroke_drop0.5", "use_stroke_dropout=true,stroke_dropout_prob=0.5",
     "stroke dropout: half the decoder's S_{i-1} zeroed (z never)"),
    ("free_bits", "kl_floor_per_dim=true", "free bits: the 0.2 floor on each z dimension"),
    ("stroke_drop+free_bits",
     "use_stroke_dropout=true,stroke_dropout_prob=0.5,kl_floor_per_dim=true",
     "stroke dropout 0.5 and free bits together"),
    ("mu_init0.1", "mu_init_std=0.1", "mu's initial weights std 0.1, not 0.001 (z starts as signal)"),
    ("mu_init0.1+stroke_drop", "mu_init_std=0.1,use_stroke_dropout=true,stroke_dropout_prob=0.5",
     "mu init 0.1 and stroke dropout 0.5"),
]

# (name, source config, steps, what changed): a copy of the source run trained on further,
# to see whether a short run's verdict holds once w_KL has reached its target.
LONGER = [
    ("baseline_700", "baseline", 700, "baseline, resumed from its step-300 run to 700 steps"),
]

CONFIGS_BY_NAME = {name: {"extra": ("," + extra if extra else "")} for name, extra, _ in CONFIGS}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli(*args: str, log: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sketch_rnn", *args]
    if log is None:
        return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
    with open(log, "a") as f:
        return subprocess.run(cmd, cwd=ROOT, env=_env(), stdout=f, stderr=subprocess.STDOUT,
                              text=True)


def past(stop_at: str | None) -> bool:
    """Whether HH:MM UTC has passed today (None: never)."""
    if not stop_at:
        return False
    now = dt.datetime.now(dt.timezone.utc)
    hh, mm = (int(x) for x in stop_at.split(":"))
    return (now.hour, now.minute) >= (hh, mm)


def _read_json(path: Path, default):
    return json.loads(path.read_text()) if path.exists() else default


def train(steps: int, stop_at: str | None, only: list[str] | None) -> None:
    """Train each config to `steps` (resuming), one process at a time; stop launching at stop_at."""
    STUDY.mkdir(parents=True, exist_ok=True)
    for name, extra, _ in CONFIGS:
        if only and name not in only:
            continue
        if past(stop_at):
            print(f"{stop_at} UTC passed: not launching {name}", flush=True)
            break
        run_dir = STUDY / name
        hparams = BASE + ("," + extra if extra else "")
        _train_one(name, run_dir, hparams, steps)
    for name, source, n, _ in LONGER:
        if (only and name not in only) or not (STUDY / source / "checkpoints").exists():
            continue
        if past(stop_at):
            print(f"{stop_at} UTC passed: not launching {name}", flush=True)
            break
        if not (STUDY / name).exists():
            shutil.copytree(STUDY / source, STUDY / name,
                            ignore=shutil.ignore_patterns("eval_test.json"))
        _train_one(name, STUDY / name, None, n)


def _train_one(name: str, run_dir: Path, hparams: str | None, steps: int) -> None:
    """Train (or resume) run_dir to `steps` with the CLI, then evaluate it."""
    print(f"train {name} ({hparams or 'resumed'}) to {steps} steps", flush=True)
    args = ["--hparams", f"{THEN},{hparams}"] if hparams else []
    proc = _cli("train", "--data", DATA, "--run-dir", str(run_dir), "--preset", "small", *args,
                "--num-steps", str(steps), "--no-samples", "--no-progress",
                log=STUDY / f"{name}.log")
    print(f"  rc={proc.returncode} after {train_seconds(run_dir):.0f} s in all", flush=True)
    evaluate(run_dir)


def train_seconds(run_dir: Path, step: int | None = None) -> float | None:
    """Training wall time from logs/train.csv up to `step` (default: the last logged step).

    wall_s restarts at each resume, so the time is the sum of the earlier sessions' last
    wall_s plus this session's wall_s at `step` (start-up and compilation included).
    None when there is no log or `step` was not logged.
    """
    log = run_dir / "logs" / "train.csv"
    if not log.exists():
        return None
    with open(log) as f:
        rows = [(int(r["step"]), float(r["wall_s"])) for r in csv.DictReader(f)]
    ended, last = 0.0, 0.0
    for s, wall in rows:
        if wall < last:  # a resume: the previous session ended at `last`
            ended += last
        last = wall
        if s == step:
            return ended + wall
    return ended + last if step is None else None


def measure(run_dir: Path) -> dict | None:
    """`sketch-rnn evaluate --split test` on run_dir's newest checkpoint, plus its code gain."""
    t0 = time.perf_counter()
    proc = _cli("evaluate", "--run-dir", str(run_dir), "--split", "test")
    if proc.returncode != 0:
        print(f"  evaluate {run_dir} failed: {proc.stderr.strip()[-300:]}", flush=True)
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["eval_s"] = round(time.perf_counter() - t0, 1)
    gain = subprocess.run([sys.executable, str(HERE / "latent.py"), "code-gain", str(run_dir)], cwd=ROOT,
                          env=_env(), capture_output=True, text=True)
    if gain.returncode == 0:
        result.update(json.loads(gain.stdout.strip().splitlines()[-1]))
    return result


def evaluate(run_dir: Path) -> dict | None:
    """`sketch-rnn evaluate --split test` on run_dir, cached as RUN_DIR/eval_test.json."""
    cache = run_dir / "eval_test.json" if run_dir.is_relative_to(STUDY) else \
        STUDY / f"reference_{run_dir.name}.json"
    result = _read_json(cache, None)
    step = _last_step(run_dir)
    if result is not None and result.get("step") == step and "code_gain" in result:
        return result
    result = measure(run_dir)
    if result is None:
        return None
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result))
    print(f"  evaluated {run_dir.name}: {json.dumps(result, sort_keys=True)}", flush=True)
    return result


def _last_step(run_dir: Path) -> int | None:
    names = sorted(p.name for p in (run_dir / "checkpoints").glob("ckpt-*")) \
        if (run_dir / "checkpoints").exists() else []
    if not names:
        return None
    return int(names[-1].split("-")[1])


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model}, {os.cpu_count()} cores"


def _fmt(x, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def report() -> None:
    """Evaluate what is trained (cached) and write the table."""
    rows = []
    cpu = machine()
    for name, extra, what in CONFIGS:
        run_dir = STUDY / name
        if not (run_dir / "checkpoints").exists():
            continue
        r = evaluate(run_dir)
        if r is None:
            continue
        wall = train_seconds(run_dir)
        rows.append(dict(config=name, changed=what, hparams=BASE + ("," + extra if extra else ""),
                         steps=r["step"], wall_s=wall, machine=cpu, **_metrics(r)))
    for name, source, _, what in LONGER:
        run_dir = STUDY / name
        r = evaluate(run_dir) if (run_dir / "checkpoints").exists() else None
        if r is not None:
            extra = dict(CONFIGS_BY_NAME[source])
            rows.append(dict(config=name, changed=what, hparams=BASE + extra["extra"],
                             steps=r["step"], wall_s=train_seconds(run_dir), machine=cpu,
                             **_metrics(r)))
    ref = evaluate(ROOT / REFERENCE)
    if ref is not None:
        rows.append(dict(config="checkpoints/sheep (reference)",
                         changed="shipped `small` run (enc 128, dec 256, z 64), decay 0.9998",
                         hparams="see checkpoints/sheep/README.md", steps=ref["step"],
                         wall_s=588.0, machine="NVIDIA H100 80GB (JAX)", **_metrics(ref)))
    fresh = {r["config"] for r in rows}
    earlier = [r for r in _earlier_rows() if r["config"] not in fresh]
    OUT.write_text(_markdown(earlier + rows, cpu))
    print(f"wrote {OUT} ({len(rows)} rows)")


def curve(config: str, every: int, until: int, stop_at: str | None) -> None:
    """Train one config on in segments of `every` steps, evaluating after each, so that one
    long run shows WHEN the code starts to carry the sketch (CURVES/<config>.jsonl + .png)."""
    extra = CONFIGS_BY_NAME[config]["extra"]
    run_dir = STUDY / f"{config}_long"
    log = STUDY / f"{config}_long.jsonl"
    done = {json.loads(line)["step"] for line in log.read_text().splitlines()} \
        if log.exists() else set()
    for target in range(every, until + 1, every):
        if target in done:
            continue
        if past(stop_at):
            print(f"{stop_at} UTC passed: stopping at step {_last_step(run_dir)}", flush=True)
            break
        _train_one(f"{config}_long", run_dir, BASE + extra, target)
        result = evaluate(run_dir)
        if result is None:
            break
        result["train_s"] = train_seconds(run_dir)
        with open(log, "a") as f:
            f.write(json.dumps(result, sort_keys=True) + "\n")
    measures.plot_curve(log, f"{config}: {BASE + extra}",
                        HERE / f"latent_curve_{config.replace('+', '_')}.png")


def _earlier_rows() -> list[dict]:
    """The rows last written (the table's JSON block): runs of earlier sessions whose run
    directories are no longer on this disk keep their row."""
    if not OUT.exists() or "```json\n" not in OUT.read_text():
        return []
    block = OUT.read_text().split("```json\n", 1)[1].split("```", 1)[0]
    return [json.loads(line) for line in block.splitlines() if line.strip()]


def _metrics(r: dict) -> dict:
    keys = ("recon", "kl", "kl_nats", "active_units", "code_gain", "ret_at_1", "ret_at_5",
            "ret_chance_at_1", "count")
    return {k: r.get(k) for k in keys}


HEADER = """# Latent-use study (issue 12): short CPU runs, ranked

Generated by `studies/latent/latent.py report` (train, then `sketch-rnn evaluate --split test`).
Every config is a **reduced** `small` preset, `--hparams {base}` plus the change shown,
trained with `sketch-rnn train --preset small --no-samples` on `data/aaron_sheep.npz` (on
small's training path of the time, `{then}`, which `study.py` pins) and
evaluated on its test split ({count} sketches; chance ret@1 = 1/{count} = {chance:.4f},
chance ret@5 = 5/{count}).

Columns: test L_R (`recon`), KL as logged (per-dimension mean, before the tolerance floor:
`kl`), `kl_nats` (KL summed over z, nats per sketch), active units (Var over the split of the
posterior mean > 0.01), code gain (test L_R decoded from a shuffled sketch's mu minus from the
sketch's own mu, teacher-forced: what the code buys the decoder; 0 = collapse), ret@1 / ret@5 (a greedy reconstruction from mu retrieves its own test
sketch among all test sketches by chamfer distance on 64x64 centred, scale-normalised
rasters; see `sketch_rnn/evaluation/retrieval.py`). Wall time: training only, this machine, all sessions.

"""

# The reading of the table is written by hand (latent_study_reading.md) and placed after it.
READING = Path(__file__).with_name("latent_study_reading.md")
FOOTER = """
{reading}

```json
{json_lines}
```
"""


def _markdown(rows: list[dict], cpu: str) -> str:
    count = next((r["count"] for r in rows if r.get("count")), 0) or 1
    head = HEADER.format(base=BASE, then=THEN, count=count, chance=1 / count)
    cols = ["config", "what changed", "steps", "wall time", "machine", "test L_R", "KL (per dim)",
            "kl_nats", "active units", "code gain", "ret@1", "ret@5"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        wall = "–" if r["wall_s"] is None else f"{r['wall_s'] / 60:.1f} min"
        au = "–" if r["active_units"] is None else str(r["active_units"])
        lines.append("| " + " | ".join([
            r["config"], r["changed"], str(r["steps"]), wall, r["machine"], _fmt(r["recon"]),
            _fmt(r["kl"]), _fmt(r["kl_nats"], ".2f"), au, _fmt(r.get("code_gain"), ".4f"),
            _fmt(r["ret_at_1"]),
            _fmt(r["ret_at_5"])]) + " |")
    json_lines = "\n".join(json.dumps(r, sort_keys=True) for r in rows)
    return head + "\n".join(lines) + "\n" + FOOTER.format(
        reading=READING.read_text().rstrip(), json_lines=json_lines)
