"""One live trainer per run directory: an advisory `flock` on RUN_DIR/.lock.

Two trainers on one run directory would interleave checkpoints, and each would take the
other's fresh checkpoints for leftovers. The trainer (the chief, under tf.distribute) holds
an exclusive `fcntl.flock` on `RUN_DIR/.lock` for its whole life. The kernel releases it
when the process ends in any way, SIGKILL and crashes included, so a lock is never stale:
an immediate restart gets it. The file also names the holder (PID, host, start time) for
the message a second trainer prints before it exits with status 2, having touched nothing.

File systems without working locks: where `flock` fails with ENOLCK, EOPNOTSUPP or ENOSYS
(some network mounts), training is refused with a one-line error rather than run unlocked;
setting SKETCH_RNN_NO_LOCK=1 runs without the lock, and then making sure that one trainer
at a time uses the run directory is the user's job. On NFS, Linux emulates flock with
POSIX locks, which do work across hosts.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from ..core.errors import SketchRNNError

LOCK_FILE = ".lock"
NO_LOCK_ENV = "SKETCH_RNN_NO_LOCK"
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


class RunLocked(SketchRNNError):
    """Another live trainer holds the run directory."""


def _holder(path: Path) -> str:
    """'PID 123 on host h since 2026-12-01 03:04:05 UTC' from the lock file, or 'unknown'."""
    try:
        who = json.loads(path.read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(who["started"])))
        return f"PID {int(who['pid'])} on host {who['host']} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet written its name"


@contextlib.contextmanager
def run_lock(run_dir: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold RUN_DIR/.lock for the block; a second holder gets `RunLocked` at once."""
    if not enabled or os.environ.get(NO_LOCK_ENV) == "1":
        yield
        return
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise SketchRNNError(f"{run_dir}: cannot create the run directory's lock "
                             f"({e.strerror or e})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(
                f"{run_dir} is in use by another trainer ({_holder(run_dir / LOCK_FILE)}); "
                "wait for it to finish or stop it, then run the same command again") from None
        except OSError as e:
            if e.errno in _UNSUPPORTED:
                raise SketchRNNError(
                    f"{run_dir}: this file system does not support locks ({e.strerror}); "
                    f"set {NO_LOCK_ENV}=1 to train without one (then make sure only one "
                    "trainer uses this run directory)") from None
            raise
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield
    finally:
        os.close(fd)  # releases the flock
