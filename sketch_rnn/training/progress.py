"""What a person watching a training run sees: a progress bar, a CSV log, TensorBoard.

The bar's estimate counts training steps only: a checkpoint's stall (validation, writing,
the sample grid) is taken out of the time tqdm's smoothed rate sees (`exclude_from_rate`),
so the estimate no longer jumps to an hour after each save and drifts back.

The CSV log is rewritten on resume to end at the resumed step, so after a
crash and resume it reads like one uninterrupted run.
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path
from typing import Any

import keras
from tqdm.auto import tqdm

from .callbacks import KLWeightScheduler, LearningRateSchedulerPerBatch

CSV_FIELDS = ("step", "cost", "recon", "kl", "lr", "w_kl", "wall_s")
TB_EVERY = 10


class TrainingLogger(keras.callbacks.Callback):
    """Progress bar (step/total, cost, recon, kl, lr, w_KL, steps/s, ETA), CSV and TensorBoard."""

    def __init__(self, run_dir: Path, start: int, stop: int, lr: LearningRateSchedulerPerBatch,
                 kl: KLWeightScheduler, progress: bool = True) -> None:
        super().__init__()
        self.start, self.stop = start, stop
        self.lr, self.kl = lr, kl
        self.logs_dir = Path(run_dir) / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.logs_dir / "train.csv"
        self._truncate_csv(start)
        self._csv = open(self.csv_path, "a", newline="", encoding="utf-8")
        self._rows = csv.writer(self._csv)
        if self._csv.tell() == 0:
            self._rows.writerow(CSV_FIELDS)
        self._tb = _tensorboard_writer(self.logs_dir / "tensorboard")
        self._t0 = time.perf_counter()
        self.bar = tqdm(total=stop, initial=start, unit="step", dynamic_ncols=True,
                        disable=not progress, file=sys.stderr, desc="train", smoothing=0.1)
        self.last: dict[str, float] = {}

    def _truncate_csv(self, start: int) -> None:
        """Keep the header and the rows of steps <= start (later rows were never checkpointed)."""
        if not self.csv_path.exists():
            return
        with open(self.csv_path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        kept = [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= start]
        with open(self.csv_path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([list(CSV_FIELDS), *kept])

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        step = self.start + batch + 1
        row = {"step": step, "lr": self.lr.current, "w_kl": self.kl.current,
               "wall_s": round(time.perf_counter() - self._t0, 3)}
        for key in ("cost", "recon", "kl"):  # the model logs each step's own values
            if key in logs:
                row[key] = float(logs[key])
        self.last = row
        self._rows.writerow([row.get(k, "") for k in CSV_FIELDS])
        self._csv.flush()
        if self._tb is not None and step % TB_EVERY == 0:
            self._tb.scalars(step, {k: v for k, v in row.items() if k not in ("step", "wall_s")})
        self.bar.set_postfix_str(
            f"cost={row.get('cost', float('nan')):.3f} recon={row.get('recon', float('nan')):.3f} "
            f"kl={row.get('kl', float('nan')):.3f} lr={row['lr']:.2e} w_KL={row['w_kl']:.3f}",
            refresh=False)
        self.bar.update(1)

    def log_save(self, step: int, path: Path, valid: dict[str, float]) -> None:
        self._csv.flush()
        text = " ".join(f"{k}={v:.4f}" for k, v in valid.items())
        self.bar.write(f"step {step}: saved {path.name}; valid {text}")
        if self._tb is not None and valid:
            self._tb.scalars(step, {f"valid/{k}": v for k, v in valid.items()})

    def exclude_from_rate(self, seconds: float) -> None:
        """Leave `seconds` just spent outside training steps (a checkpoint) out of the bar's
        rate and estimate: its clock of the last refresh moves forward by them, so the next
        refresh's interval holds only steps. The elapsed time shown stays the wall time."""
        if self.bar.disable:
            return
        self.bar.last_print_t = min(self.bar.last_print_t + seconds, time.time())  # tqdm's clock

    def close(self) -> None:
        self.bar.close()
        self._csv.close()
        if self._tb is not None:
            self._tb.close()


class _TFSummaryWriter:
    def __init__(self, logdir: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._writer = tf.summary.create_file_writer(str(logdir))

    def scalars(self, step: int, values: dict[str, Any]) -> None:
        with self._writer.as_default(step=step):
            for k, v in values.items():
                self._tf.summary.scalar(k, float(v))

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()


def _tensorboard_writer(logdir: Path) -> _TFSummaryWriter | None:
    """TensorBoard event files when TensorFlow is importable (it is a dependency)."""
    try:
        return _TFSummaryWriter(logdir)
    except ImportError:
        return None
