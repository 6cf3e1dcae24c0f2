"""`sketch-rnn report`: a model card, one self-contained HTML page with its PNGs.

What a reader needs to judge a run at a glance, all from the run directory and its data:
training curves (logs/train.csv), the `evaluate` numbers, samples at three temperatures,
reconstructions beside their inputs and an interpolation (conditional models), completions of
cut test sketches, the hparams, and how long training took on which machine. Every picture
is drawn with a fixed seed, so the same run gives the same card. The page (`card_html`) and
its Markdown twin card.md (`card_markdown`, for a README) link the PNGs by relative names, so
the folder can be moved or published as it is.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.errors import SketchRNNError
from ..core.files import atomic_write
from . import card_html, card_markdown
from .report import evaluate_loaded, load_split

SAMPLE_TEMPERATURES = (0.25, 0.5, 1.0)
SEED = 0
N_SAMPLES = 25  # a 5 x 5 grid per temperature
N_RECON = 8  # test sketches reconstructed
N_COMPLETE = 4  # test sketches cut in half
N_ENDINGS = 5  # endings of each
INTERPOLATION_STEPS = 8


def read_log(run_dir: Path) -> dict[str, np.ndarray] | None:
    """logs/train.csv as float64 columns, or None when the run has no log."""
    path = run_dir / "logs" / "train.csv"
    if not path.exists():
        return None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error) as e:
        raise SketchRNNError(f"{path}: cannot read ({e})") from None
    if not rows:
        return None
    try:
        return {k: np.array([float(r[k]) if r[k] else np.nan for r in rows]) for k in rows[0]}
    except (TypeError, ValueError) as e:
        raise SketchRNNError(f"{path}: not a training log ({e})") from None


def training_time(log: dict[str, np.ndarray] | None) -> dict[str, Any]:
    """Wall time of training from the log's wall_s column (seconds since each process
    started): a resume restarts the clock, so the total is the sum of each segment's last
    value. {"seconds": float | None, "segments": int, "steps": int | None}."""
    if log is None or "wall_s" not in log or not len(log["wall_s"]):
        return {"seconds": None, "segments": 0, "steps": None}
    wall = log["wall_s"]
    ends = np.flatnonzero(np.diff(wall) < 0)  # the last row of each segment but the final one
    seconds = float(np.nansum(wall[ends]) + wall[-1])
    return {"seconds": seconds, "segments": len(ends) + 1, "steps": int(log["step"][-1])}


def curves_png(log: dict[str, np.ndarray], out: Path) -> None:
    """Training cost, L_R and KL per step (light: every step; dark: a running mean)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3))
    axes = fig.subplots(1, 3)
    window = max(1, len(log["step"]) // 100)
    for ax, key, title in zip(axes, ("cost", "recon", "kl"),
                              ("cost", "L_R (reconstruction)", "KL (per dimension)")):
        y = log[key]
        ax.plot(log["step"], y, color="#9ecae1", lw=0.5)
        smooth = np.convolve(y, np.ones(window) / window, mode="valid")
        ax.plot(log["step"][window - 1:], smooth, color="#08519c", lw=1.2)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90, metadata={"Software": None})


def _pictures(run: Any, sketches: list[np.ndarray], out: Path,
              log: Callable[[str], None]) -> dict[str, str]:
    """Draw the card's pictures into `out`; {what: file name}."""
    from ..generation.completion import complete
    from ..generation.drawing import save_sketches
    from ..generation.figures import sketch_rows
    from ..generation.sampling import decode, encode, interpolate, sample
    from .retrieval import decode_codes

    model, made = run.model, {}
    for tau in SAMPLE_TEMPERATURES:
        log(f"report: {N_SAMPLES} samples at tau {tau:g}")
        name = f"samples_tau_{tau:g}.png"
        save_sketches(str(out / name), sample(model, N_SAMPLES, temperature=tau, seed=SEED),
                      cols=5)
        made[f"samples {tau:g}"] = name
    if run.hps.conditional and len(sketches) >= 2:
        log("report: reconstructions and an interpolation")
        inputs = sketches[:N_RECON]
        mu = encode(model, inputs)
        rows = [inputs] + [decode_codes(model, mu, tau, SEED) for tau in ("greedy", 0.25, 0.5)]
        sketch_rows(rows, ["input", "greedy", "τ 0.25", "τ 0.5"]).save(
            str(out / "reconstructions.png"))
        made["reconstructions"] = "reconstructions.png"
        path = interpolate(mu[0], mu[1], INTERPOLATION_STEPS)
        between = decode(model, path, temperature=0.25, seed=SEED)
        sketch_rows([[inputs[0]] + between + [inputs[1]]], ["τ 0.25"],
                    [["test 0"] + [""] * INTERPOLATION_STEPS + ["test 1"]]).save(
            str(out / "interpolation.png"))
        made["interpolation"] = "interpolation.png"
    log("report: completions of cut test sketches")
    rows, labels = [], []
    for i, s in enumerate(sketches[:N_COMPLETE]):
        prefix = s[:max(1, len(s) // 2)]
        done = complete(model, prefix, n=N_ENDINGS, temperature=0.25, seed=SEED)
        rows.append([s, prefix] + done.sketches())
        labels.append(f"test {i}")
    titles = [["whole", "first half"] + [f"ending {j + 1}" for j in range(N_ENDINGS)]]
    sketch_rows(rows, labels, titles).save(str(out / "completions.png"))
    made["completions"] = "completions.png"
    return made


def write_card(run_dir: str | Path, out_dir: str | Path | None = None,
               data_paths: list[str] | None = None, split: str = "test",
               teacher_forced_n: int = 100, log: Callable[[str], None] | None = None) -> Path:
    """Write RUN_DIR's model card (index.html, card.md, its PNGs, evaluate.json) into out_dir
    (default RUN_DIR/report); returns the page's path. `log` gets a progress line before
    each long part (silent by default)."""
    from ..training.runs import load_run

    log = log or (lambda message: None)
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SketchRNNError(f"{out}: cannot create the report folder ({e.strerror})") from None
    run = load_run(run_dir)
    sketches, _ = load_split(run, run_dir, data_paths, split)
    log(f"report: evaluating on {len(sketches)} {split} sketches (the longest part)")
    started = time.perf_counter()
    numbers = evaluate_loaded(run, sketches, split, teacher_forced_n=teacher_forced_n, log=log)
    numbers["evaluate_wall_s"] = round(time.perf_counter() - started, 1)
    atomic_write(out / "evaluate.json", (json.dumps(numbers, indent=1) + "\n").encode())
    normalised = [sketches.sketch(i) for i in range(len(sketches))]
    pictures = _pictures(run, normalised, out, log)
    train_log = read_log(run_dir)
    if train_log is not None:
        curves_png(train_log, out / "curves.png")
        pictures["curves"] = "curves.png"
    shown = list(data_paths) if data_paths else run.data_paths  # as recorded, not resolved
    card = dict(run_dir=str(run_dir), state=run.state, data_paths=shown, evaluate=numbers,
                pictures=pictures, timing=training_time(train_log))
    atomic_write(out / "index.html", card_html.render(**card).encode("utf-8"))
    atomic_write(out / "card.md", card_markdown.render(**card).encode("utf-8"))
    log(f"report: wrote {out / 'index.html'}")
    return out / "index.html"
