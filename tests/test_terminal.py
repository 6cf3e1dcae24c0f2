"""What reaches the terminal: our messages, and TensorFlow's chatter only with --verbose.

The reference for "TensorFlow's chatter" is what a bare `import tensorflow` writes to stderr
in a fresh process, outside our code.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABSL_LINE = "I0000 00:00:1796171617.316531    9056 port.cc:153] oneDNN custom operations are on."


def _python(code: str) -> subprocess.CompletedProcess:
    """Runs code; stdout and stderr decoded as written (carriage returns kept)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT)
    done.stdout, done.stderr = done.stdout.decode(), done.stderr.decode()
    return done


def test_the_session_drops_absl_lines_and_passes_everything_else() -> None:
    """Lines written to fd 2 (as TensorFlow's C++ does) are filtered; ours, partial lines (a
    progress bar's carriage returns) and log records pass, on the right stream."""
    code = f"""
import logging, os, sys
from sketch_rnn.cli import terminal
with terminal.session(verbose={{v}}):
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, {ABSL_LINE!r}.encode() + b"\\n")
    os.write(2, b"\\rtrain:  50%")
    os.write(2, b"\\rtrain: 100%\\n")
    os.write(2, b"E0000 00:00:1.5  1 mkl_util.h:9] oneDNN supports DT_INT64 only on platforms with AVX-512")
    os.write(2, b"\\nnot noise\\n")
    logging.getLogger("sketch_rnn.training.trainer").info("resuming R from ckpt-00000002 (step 2)")
    logging.getLogger("sketch_rnn.training.checkpoint").warning("skipping checkpoint X")
    logging.getLogger("sketch_rnn.training.trainer").debug("only with --verbose")
print("after", file=sys.stderr)
"""
    quiet = _python(code.replace("{v}", "False"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "resuming R from ckpt-00000002 (step 2)\n"
    assert quiet.stderr == ("\rtrain:  50%\rtrain: 100%\nnot noise\n"
                            "warning: skipping checkpoint X\nafter\n")
    loud = _python(code.replace("{v}", "True"))
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout == "resuming R from ckpt-00000002 (step 2)\nonly with --verbose\n"
    assert ABSL_LINE in loud.stderr and "DT_INT64" in loud.stderr
    assert "absl::InitializeLog" in loud.stderr and "warning: skipping checkpoint X" in loud.stderr


@pytest.mark.slow  # three fresh TensorFlow processes
def test_a_command_shows_tensorflows_chatter_only_with_verbose(tmp_path) -> None:
    bare = _python("import tensorflow")  # the reference: what TensorFlow itself writes
    noise = [line for line in bare.stderr.splitlines() if line.strip()]
    cmd = [sys.executable, "-m", "sketch_rnn", "sample", "--run-dir", "checkpoints/sheep_decoder",
           "--n", "1", "--out", str(tmp_path / "s.svg")]
    quiet = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("wrote 1 sketches to ") and quiet.stderr == ""
    loud = subprocess.run(cmd[:3] + ["--verbose"] + cmd[3:], capture_output=True, text=True,
                          cwd=ROOT)
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout == quiet.stdout
    if noise:  # this TensorFlow build talks at import: --verbose shows it
        assert any("absl" in line or "] " in line for line in loud.stderr.splitlines())
