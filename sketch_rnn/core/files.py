"""Files: the one atomic write, the one guarded read, the one streaming sha256.

Everything the package writes (checkpoints, `latest`/`best` pointers, the data cache,
converted and downloaded `.npz` files, drawings) goes through `atomic_file` or
`publish_dir` (a checkpoint and an imported run through `staged_dir`, which wraps it): the bytes are written under a hidden temporary name on the same file
system, flushed and fsynced, then renamed into place, and the parent directory is fsynced.
A reader (or a resumed run after a crash) therefore sees the old file or the new one,
never a part. On any failure the temporary file is removed and the destination is left
as it was.

Every read of a user-named file goes through `read_bytes`/`open_for_reading`, so an
unreadable file is one `SketchRNNError` line naming it.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from .errors import SketchRNNError

PathLike = str | os.PathLike

# errors that mean "the disk or the directory refuses more writes": reported as one line
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class StorageError(SketchRNNError):
    """Writing failed because of the storage (full, read-only, not permitted)."""


def fsync_dir(path: PathLike) -> None:
    """Make a rename inside `path` durable (the directory entry itself is fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hidden_temp(dest: Path, tag: str) -> Path:
    return dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.{tag}")


def write_error(path: PathLike, e: OSError) -> SketchRNNError:
    """The one-line error for a failed write; storage problems get their own type."""
    kind = StorageError if e.errno in STORAGE_ERRNOS else SketchRNNError
    return kind(f"{path}: cannot write ({e.strerror or e})")


@contextlib.contextmanager
def atomic_file(dest: PathLike, tag: str = "tmp") -> Iterator[BinaryIO]:
    """Yield a binary file that replaces `dest` atomically when the block ends cleanly."""
    dest = Path(dest)
    tmp = _hidden_temp(dest, tag)
    try:
        f = open(tmp, "xb")
    except OSError as e:
        raise write_error(dest, e) from None
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise write_error(dest, e) from None
        raise


def atomic_write(dest: PathLike, data: bytes | str) -> None:
    """Replace `dest` by `data` (text is written as UTF-8), atomically."""
    with atomic_file(dest) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def temp_dir_for(final: PathLike) -> Path:
    """A new, empty hidden directory beside `final`, to be filled and then `publish_dir`ed."""
    final = Path(final)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}-{secrets.token_hex(2)}")
    try:
        tmp.mkdir(parents=False)
    except OSError as e:
        raise write_error(final.parent, e) from None
    return tmp


def publish_dir(tmp: PathLike, final: PathLike, replace: bool = False) -> None:
    """fsync everything in `tmp` (files and folders, sub-folders too), rename it to `final`,
    fsync the parent.

    The directory appears complete or not at all. An existing `final` raises an OSError
    unless `replace`: then it is renamed aside first and removed only after the rename, so
    a crash leaves the old directory or the new one (and at most a hidden `.trash-*`).
    """
    tmp, final = Path(tmp), Path(final)
    _fsync_tree(tmp)
    old = None
    if replace and final.exists():
        old = _trash_name(final)
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir():
            _fsync_tree(child)
        else:
            with open(child, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(folder)


@contextlib.contextmanager
def staged_dir(final: PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a new hidden directory beside `final`; when the block ends cleanly it is
    published as `final` (`publish_dir`, `replace` as there).

    The one temp-dir / publish / clean-up block of the package's directory writes (a
    checkpoint, an imported run): if the block or the publish fails, the temporary
    directory is removed and `final` is as it was; an OSError becomes `write_error`'s one
    line naming `final`.
    """
    final = Path(final)
    tmp = temp_dir_for(final)
    try:
        yield tmp
        publish_dir(tmp, final, replace)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(final, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _trash_name(path: Path) -> Path:
    return path.with_name(f".trash-{path.name}-{os.getpid()}")


def remove_tree(path: PathLike) -> None:
    """Rename first, then delete: a crash mid-delete leaves a hidden folder, never a half one."""
    trash = _trash_name(Path(path))
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def read_error(path: PathLike, e: OSError) -> SketchRNNError:
    return SketchRNNError(f"{path}: cannot read ({e.strerror or e})")


def read_bytes(path: PathLike) -> bytes:
    """The whole file; an unreadable one is a one-line SketchRNNError naming it."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise read_error(path, e) from None


def read_json(path: PathLike) -> Any:
    """The file's JSON value; unreadable or not JSON is a one-line SketchRNNError naming it."""
    try:
        return json.loads(read_bytes(path))
    except ValueError as e:
        raise SketchRNNError(f"{path}: not JSON ({e})") from None


def open_for_reading(path: PathLike) -> BinaryIO:
    """open(path, 'rb') with the same one-line error."""
    try:
        return open(path, "rb")
    except OSError as e:
        raise read_error(path, e) from None


def file_sha256(path: PathLike) -> bytes:
    """The file's sha256 digest, read in blocks (data fingerprints, checkpoint manifests)."""
    h = hashlib.sha256()
    with open_for_reading(path) as f:
        try:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        except OSError as e:
            raise read_error(path, e) from None
    return h.digest()
