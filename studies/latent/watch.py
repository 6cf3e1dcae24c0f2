"""Evaluate the checkpoints of `sketch-rnn train` runs while they train (the latent study).

`latent.py curve` trains one config in segments and evaluates between them; on 2 cores two
configs train faster side by side (one core each) than one after the other, so `latent.py
watch` leaves training to the CLI and only watches: each complete checkpoint whose step is a
multiple of --every is copied into a one-checkpoint run directory (a snapshot, so that the
trainer's pruning cannot pull it away mid-read) and measured there by `sketch-rnn evaluate
--split test` (losses, ret@1/5, active units, kl_nats) and by `measures.code_gain` (the code
gain, and the decoder's confidence at the real pen lifts). One JSON line per checkpoint goes
to studies/latent/latent_curve_<name>.jsonl and the curve is drawn beside it (.png); `table`
prints the named curves as one markdown table (pasted into latent_study_reading.md).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

import measures
from study import HERE, past, train_seconds
from study import measure as measure_newest


def _log(name: str) -> Path:
    return HERE / f"latent_curve_{name}.jsonl"


def _rows(name: str) -> list[dict]:
    log = _log(name)
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return sorted(rows, key=lambda r: r["step"])


def _done(name: str) -> set[int]:
    return {r["step"] for r in _rows(name)}


def _pending(run_dir: Path, name: str, every: int) -> list[Path]:
    """Complete checkpoints (MANIFEST written last) at multiples of `every`, not yet measured."""
    done = _done(name)
    found = []
    for path in sorted((run_dir / "checkpoints").glob("ckpt-*")):
        step = int(path.name.split("-")[1])
        if step % every == 0 and step not in done and (path / "MANIFEST.json").exists():
            found.append(path)
    return found


@contextlib.contextmanager
def snapshot(ckpt: Path) -> Iterator[Path]:
    """A one-checkpoint run directory holding a copy of `ckpt` (RUN/checkpoints/ckpt-N), so
    that the trainer's pruning cannot pull it away mid-read, and any step can be measured."""
    with tempfile.TemporaryDirectory(prefix="watch-") as tmp:
        snap = Path(tmp) / "run"
        shutil.copytree(ckpt, snap / "checkpoints" / ckpt.name)
        (snap / "latest").write_text(ckpt.name + "\n")
        yield snap


@contextlib.contextmanager
def run_dirs_of(paths: list[Path]) -> Iterator[list[Path]]:
    """Run directories as given; checkpoints (RUN/checkpoints/ckpt-N) as snapshots of them."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(snapshot(p)) if p.name.startswith("ckpt-") else p
               for p in paths]


def measure(ckpt: Path) -> dict | None:
    """evaluate + code gain of one checkpoint, in a snapshot run directory."""
    with snapshot(ckpt) as snap:
        return measure_newest(snap)


def watch(runs: list[tuple[Path, str]], every: int, until: str | None, poll_s: float) -> None:
    """Measure each run's new checkpoints as they appear, until `until` (HH:MM UTC)."""
    while True:
        for run_dir, name in runs:
            for ckpt in _pending(run_dir, name, every):
                result = measure(ckpt)
                if result is None:
                    continue
                result["train_s"] = train_seconds(run_dir, result["step"])
                result["hparams"] = json.loads((ckpt / "state.json").read_text())["hparams"]
                with open(_log(name), "a") as f:
                    f.write(json.dumps(result, sort_keys=True) + "\n")
                keys = ("step", "recon", "kl_nats", "active_units", "code_gain",
                        "lift_is_argmax", "ret_at_1", "ret_at_5")
                print(dt.datetime.now().strftime("%H:%M"), name,
                      json.dumps({k: result.get(k) for k in keys}), flush=True)
                measures.plot_curve(_log(name), name, _log(name).with_suffix(".png"))
        if past(until):
            return
        time.sleep(poll_s)


# What each watched run is (the table's first column says it once per run).
ABOUT = {
    "small_scratch_remedies": (
        "`small` from scratch, one core: `mu_init_std=0.1`, stroke dropout keep 0.5, free bits "
        "(`kl_floor_per_dim`, `kl_tolerance=0.5`), `decay_rate=0.9998`", "AMD EPYC, 1 of 2 cores"),
    "small_scratch_control": (
        "the same with `small`'s defaults (Magenta's mu init 0.001, no stroke dropout, the "
        "0.2 floor on the mean KL)", "AMD EPYC, 1 of 2 cores"),
    "sheep_finetune_remedies": (
        "the shipped `checkpoints/sheep` (step 13459, GPU) trained on, one core: stroke dropout "
        "keep 0.5, free bits 0.5, `decay_rate=0.9999`", "H100 to 13459, then AMD EPYC, 1 core"),
    "sheep_finetune_ss05": (
        "the shipped `checkpoints/sheep` trained on, one core: scheduled sampling 0.5 "
        "(`scheduled_sampling_prob=0.5`), `decay_rate=0.9999`", "H100 to 13459, then AMD EPYC, 1 core"),
    "sheep_finetune_plain": (
        "the shipped `checkpoints/sheep` trained on, one core, with only `decay_rate=0.9999`: "
        "the control of the three below",
        "H100 to 13459, then AMD EPYC, 1 core"),
    "sheep_finetune_free2": (
        "the shipped `checkpoints/sheep` trained on, one core: free bits 2 nats per dimension "
        "(`kl_floor_per_dim=true,kl_tolerance=2.0`, 128 nats free), `decay_rate=0.9999`",
        "H100 to 13459, then AMD EPYC, 1 core"),
    "sheep_finetune_nokl": (
        "the shipped `checkpoints/sheep` trained on, one core, as an autoencoder: no KL term "
        "(`kl_weight=0`), `decay_rate=0.9999`", "H100 to 13459, then AMD EPYC, 1 core"),
    "sheep_decoder": ("decoder-only `small` (LSTM, M 20), no latent", "AMD EPYC, 1 of 2 cores"),
}


def table(names: list[str]) -> str:
    """One markdown row per measured checkpoint of each named curve."""
    cols = ["run", "step", "train wall", "machine", "test L_R", "KL (per dim)", "kl_nats",
            "active units", "code gain", "lifts argmax", "ret@1", "ret@5"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name in names:
        what, where = ABOUT.get(name, (name, "?"))
        for i, r in enumerate(_rows(name)):
            wall = "–" if r.get("train_s") is None else f"{r['train_s'] / 60:.0f} min"
            cells = [f"{name}: {what}" if i == 0 else "″", str(r["step"]), wall, where,
                     f"{r['recon']:.3f}", f"{r['kl']:.3f}", f"{r['kl_nats']:.1f}",
                     str(r["active_units"]), f"{r.get('code_gain', float('nan')):.3f}",
                     "–" if "lift_is_argmax" not in r else f"{r['lift_is_argmax']:.2f}",
                     f"{r['ret_at_1']:.3f}", f"{r['ret_at_5']:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
