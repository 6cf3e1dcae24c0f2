"""What reaches the terminal: our messages always, TensorFlow's chatter only with --verbose.

Domain code never prints: it reports through `logging` (loggers under `sketch_rnn`). Here the
CLI decides what the user sees. INFO records are lines on stdout, as the `print` calls they
replace were ("resuming RUN from ckpt-N"); WARNING and above go to stderr as "warning: ...".

TensorFlow's C++ logging (absl) writes its start-up notices (oneDNN, CPU features, and on some
CPUs an "oneDNN supports DT_INT64 only on platforms with AVX-512" error line) straight to file
descriptor 2, partly before TF_CPP_MIN_LOG_LEVEL applies. By default those lines are dropped
by a filter on fd 2 (every other byte passes through unchanged, the progress bar included),
TF_CPP_MIN_LOG_LEVEL defaults to 2 and third-party Python warnings and absl records are
hidden; `--verbose` leaves all of it alone.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import warnings
from typing import Iterator

# TensorFlow's C++ (absl) log lines, e.g. "I0000 00:00:17... port.cc:153] oneDNN custom ...".
# (cpu_feature_guard's notice runs on to a second line, "To enable the following ...".)
TF_NOISE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\]|WARNING: All log messages "
                      r"before absl::InitializeLog|To enable the following instructions: )")
_NOISE_BYTES = re.compile(TF_NOISE.pattern.encode())
# a partial line that is, or may still become, one of those: held back until its newline
_MAYBE_NOISE = re.compile(rb"^([IWEF][\d :.]*|W(A(R(N(I(N(G(:.*)?)?)?)?)?)?)?)$", re.S)


class _Lines(logging.Handler):
    """INFO to stdout, WARNING and above to stderr with their level; streams looked up per
    record, so redirections (and pytest's capture) apply."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.WARNING:
                stream, text = sys.stderr, f"{record.levelname.lower()}: {text}"
            else:
                stream = sys.stdout
            stream.write(text + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001  (logging's own contract: never raise from emit)
            self.handleError(record)


class _Fd2Filter:
    """Replaces fd 2 by a pipe; a thread copies it to the real stderr without absl's lines."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self.saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self.thread = threading.Thread(target=self._copy, args=(read,), daemon=True)
        self.thread.start()

    def _copy(self, read: int) -> None:
        held = b""
        while chunk := os.read(read, 65536):
            held = self._forward(held + chunk)
        if held and not _NOISE_BYTES.match(held):
            os.write(self.saved, held)
        os.close(read)

    def _forward(self, data: bytes) -> bytes:
        """Writes every complete line that is not noise; returns the partial line held back."""
        out = []
        while data:
            end = data.find(b"\n") + 1
            if end == 0:
                if _NOISE_BYTES.match(data) or _MAYBE_NOISE.match(data):
                    break
                out.append(data)
                data = b""
                break
            line, data = data[:end], data[end:]
            if not _NOISE_BYTES.match(line):
                out.append(line)
        if out:
            os.write(self.saved, b"".join(out))
        return data

    def close(self) -> None:
        sys.stderr.flush()
        os.dup2(self.saved, 2)  # closes the pipe's last write end: the thread sees EOF
        self.thread.join(timeout=5)
        os.close(self.saved)


@contextlib.contextmanager
def session(verbose: bool = False) -> Iterator[None]:
    """One command's terminal: our log records shown, TensorFlow's chatter unless verbose."""
    ours = logging.getLogger("sketch_rnn")
    handler = _Lines()
    before = (ours.level, ours.propagate)
    ours.addHandler(handler)
    ours.setLevel(logging.DEBUG if verbose else logging.INFO)
    ours.propagate = False  # absl's handler on the root logger would print them again
    quiet = [] if verbose else [logging.getLogger(n) for n in ("absl", "tensorflow", "jax")]
    levels = [q.level for q in quiet]
    fd2 = None
    with warnings.catch_warnings():
        if not verbose:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # an explicit setting wins
            warnings.filterwarnings("ignore")
            warnings.filterwarnings("default", module=r"sketch_rnn(\.|$)")
            for q in quiet:
                q.setLevel(logging.ERROR)
            with contextlib.suppress(OSError, ValueError):  # no fd 2: nothing to filter
                fd2 = _Fd2Filter()
        try:
            yield
        finally:
            if fd2 is not None:
                fd2.close()
            for q, level in zip(quiet, levels):
                q.setLevel(level)
            ours.removeHandler(handler)
            ours.setLevel(before[0])
            ours.propagate = before[1]
