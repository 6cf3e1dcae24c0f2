"""The small glue the notebooks in `notebooks/` share: brief errors, parameters, the CLI, figures.

The notebooks train and draw with the public API (`sketch_rnn.train`, `sketch_rnn.load`);
what they need beyond it is here:

* `setup()`: in IPython, a `SketchRNNError` raised by a cell is shown as one line (no
  traceback) and still stops "Run all", so a notebook pointed at a missing run directory or
  dataset says so in one clear message; and the drawing module's images get a short
  plain-text form, so a saved notebook holds each SVG/PNG/GIF once, not also as a repr.
* `require_file` / `require_run`: those checks, naming the notebook parameter to change.
* `quiet_tensorflow`: import TensorFlow without its C++ start-up log lines in the notebook.
* `steps_from_env`: the `SKETCH_RNN_NOTEBOOK_STEPS` environment variable, which CI uses to
  shrink a notebook's training; without it a notebook runs its real default.
* `run_cli`: `sketch-rnn ...` in a subprocess, exactly what a user types, for the notebooks
  that show a command (training, loading and sampling in the kernel are `sketch_rnn.train` and
  `sketch_rnn.load`).
* `read_train_log`, `sketch_rows`: a run's per-step CSV log and a labelled grid of sketches
  as a PNG (a split's sketches in data units come from `sketch_rnn.data.read_split`, the
  commands' own reader).

Importing this module does not import TensorFlow; only `quiet_tensorflow` does, on purpose.
"""
from __future__ import annotations

import csv
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .cli.terminal import TF_NOISE
from .core.errors import SketchRNNError
from .generation.figures import sketch_rows  # noqa: F401  (the notebooks call nb.sketch_rows)

ENV_STEPS = "SKETCH_RNN_NOTEBOOK_STEPS"



# --------------------------------------------------------------------------- brief errors
def _brief_traceback(shell: Any, etype: type, value: BaseException, tb: Any,
                     tb_offset: int | None = None) -> list[str]:
    stb = [f"{etype.__name__}: {value}"]
    shell._showtraceback(etype, value, stb)  # the error output the front end shows
    return stb


def show_errors_briefly() -> bool:
    """Show a SketchRNNError raised by any later cell as one line instead of a traceback.

    The cell still ends in an error, so "Run all" stops there. Returns False (and changes
    nothing) outside IPython.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((SketchRNNError,), _brief_traceback)
    return True


def _short_repr(obj: Any, p: Any, cycle: bool) -> None:
    size = len(getattr(obj, "text", None) or getattr(obj, "data", b""))
    p.text(f"<{type(obj).__name__}: {size:,} {'characters' if hasattr(obj, 'text') else 'bytes'}>")


def setup() -> bool:
    """Brief errors (`show_errors_briefly`) and a short plain-text form for drawing images.

    Jupyter stores a displayed object's plain-text repr beside its image; for
    `SVGImage`/`PNGImage`/`GIFImage` that repr is the whole file again, so it is replaced by
    a one-line summary. Returns False outside IPython.
    """
    if not show_errors_briefly():
        return False
    from IPython import get_ipython

    from .generation.images import GIFImage, PNGImage, SVGImage

    plain = get_ipython().display_formatter.formatters["text/plain"]
    for cls in (SVGImage, PNGImage, GIFImage):
        plain.for_type(cls, _short_repr)
    return True


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras without their C++ log lines landing in the notebook.

    Jupyter shows everything written to the kernel's stderr, and TensorFlow's C++ logging
    (oneDNN, XLA and CPU-feature notices) writes there at import and first use. Unless the
    user set TF_CPP_MIN_LOG_LEVEL, it is set to 3 (errors still raise Python exceptions), and
    the lines printed during the import itself, before that setting applies, are discarded.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import keras  # noqa: F401  (imports TensorFlow, the default backend)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


# --------------------------------------------------------------------------- parameters
def steps_from_env(default: int) -> int:
    """`SKETCH_RNN_NOTEBOOK_STEPS` when set (CI's short run), else the notebook's real default."""
    text = os.environ.get(ENV_STEPS, "").strip()
    if not text:
        return int(default)
    try:
        steps = int(text)
    except ValueError:
        steps = 0
    if steps <= 0:
        raise SketchRNNError(f"{ENV_STEPS}={text!r}: must be a positive integer")
    return steps


def require_file(path: str | os.PathLike, name: str = "DATA") -> Path:
    """`path` if it is a file, else one SketchRNNError naming the parameter `name`."""
    p = Path(path)
    if not p.is_file():
        where = f" (from {Path.cwd()})" if not p.is_absolute() else ""
        raise SketchRNNError(f"{name} = {str(path)!r}: no such file{where}; "
                             f"set {name} in the parameters cell")
    return p


def require_run(path: str | os.PathLike, name: str = "RUN_DIR") -> Path:
    """`path` if it holds a complete checkpoint, else one SketchRNNError naming `name`."""
    from .training.checkpoint import require_checkpoint

    p = Path(path)
    try:
        require_checkpoint(p)
    except SketchRNNError as e:
        where = f" (from {Path.cwd()})" if not p.is_absolute() else ""
        raise SketchRNNError(f"{name} = {str(path)!r}{where}: {str(e).split(': ', 1)[-1]}; "
                             f"set {name} in the parameters cell to a run directory made by "
                             "`sketch-rnn train --run-dir DIR`") from None
    return p


# --------------------------------------------------------------------------- the CLI
def _cli_command(args: Sequence[Any]) -> list[str]:
    return [sys.executable, "-m", "sketch_rnn", *map(str, args)]


def _cli_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def _shown(args: Sequence[Any]) -> str:
    return "$ sketch-rnn " + " ".join(str(a) for a in args)


def _noise(line: str) -> bool:
    return bool(TF_NOISE.match(line))


class _Lines:
    """A subprocess's merged stdout/stderr, read by a thread, printed by the caller's thread."""

    def __init__(self, proc: subprocess.Popen, echo: bool) -> None:
        self.lines: list[str] = []
        self.echo = echo
        self.ended = False
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                self._queue.put(line.rstrip("\n"))
        except (OSError, ValueError) as e:
            self._queue.put(f"(reading the output failed: {e})")
        finally:
            self._queue.put(None)  # the end, whatever happened

    def pump(self, wait: float = 0.0) -> bool:
        """Print what arrived; False once the stream has ended (and from then on)."""
        if self.ended:
            return False
        try:
            line = self._queue.get(timeout=wait) if wait else self._queue.get_nowait()
        except queue.Empty:
            return True
        while True:
            if line is None:
                self.ended = True
                return False
            line = line.split("\r")[-1]  # a progress bar's last state only
            if line.strip() and not _noise(line):
                self.lines.append(line)
                if self.echo:
                    print(line, flush=True)
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return True

    def drain(self) -> None:
        while self.pump(wait=0.5):
            pass


def _start(args: Sequence[Any]) -> subprocess.Popen:
    return subprocess.Popen(_cli_command(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, encoding="utf-8", errors="replace", env=_cli_env(),
                            bufsize=1)


def _failure(args: Sequence[Any], code: int, lines: list[str]) -> SketchRNNError:
    last = lines[-1] if lines else "(no output)"
    return SketchRNNError(f"`sketch-rnn {args[0]}` failed with exit status {code}: {last}")


def run_cli(*args: Any, check: bool = True, echo: bool = True) -> tuple[int, list[str]]:
    """Run `sketch-rnn ARGS...` (as `python -m sketch_rnn`), printing its output as it comes.

    TensorFlow's C++ log lines are left out. Returns (exit status, output lines); with
    check=True a non-zero status is a SketchRNNError quoting the command's last line.
    """
    if echo:
        print(_shown(args), flush=True)
    proc = _start(args)
    out = _Lines(proc, echo)
    out.drain()
    code = proc.wait()
    if check and code != 0:
        raise _failure(args, code, out.lines)
    return code, out.lines


# --------------------------------------------------------------------------- logs and data
def read_train_log(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """RUN_DIR/logs/train.csv as columns (step, cost, recon, kl, lr, w_kl, wall_s), float64.

    Row `step` holds the learning rate and w_KL that step trained with.
    """
    path = Path(run_dir) / "logs" / "train.csv"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise SketchRNNError(f"{path}: cannot read ({e.strerror})") from None
    if not rows:
        raise SketchRNNError(f"{path}: no steps logged")
    return {k: np.array([float(r[k]) if r[k] else np.nan for r in rows]) for k in rows[0]}
