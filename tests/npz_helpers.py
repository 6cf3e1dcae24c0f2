"""Helpers for the data tests: write sketch .npz files, good and bad."""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import numpy.lib.format as npy_format

REPO = Path(__file__).resolve().parent.parent
SHEEP = REPO / "data" / "aaron_sheep.npz"


def object_array(sketches: list) -> np.ndarray:
    """A 1-D object array holding each sketch as one element (no broadcasting)."""
    arr = np.empty(len(sketches), dtype=object)
    for i, s in enumerate(sketches):
        arr[i] = s
    return arr


def simple_sketches(n: int, length: int = 6, seed: int = 0, big: int = 0) -> list[np.ndarray]:
    """n small int16 stroke-3 sketches; big > 0 makes every first dx equal to big."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = np.zeros((length + i % 3, 3), dtype=np.int16)
        s[:, :2] = rng.integers(-30, 31, size=(len(s), 2))
        s[2::3, 2] = 1
        s[-1, 2] = 1
        if big:
            s[0, 0] = big
        out.append(s)
    return out


def write_npz(path: Path, **splits: list) -> Path:
    np.savez(path, **{k: object_array(v) for k, v in splits.items()})
    return path


def write_good(path: Path, n: tuple[int, int, int] = (12, 5, 4), **kw) -> Path:
    return write_npz(path, train=simple_sketches(n[0], **kw), valid=simple_sketches(n[1], seed=1),
                     test=simple_sketches(n[2], seed=2))


class _RunsCommand:
    """Pickles as a call to os.system(command): what a malicious file would contain."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _npy_bytes_with_pickle(payload: bytes, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(
        buf, {"descr": "|O", "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def write_evil(path: Path, marker: Path, nested: bool = False) -> Path:
    """An .npz whose train pickle runs `touch marker` under a plain pickle.load."""
    evil = _RunsCommand(f"touch {marker}")
    if nested:  # a real object array with the evil object as one element
        buf = io.BytesIO()
        np.save(buf, object_array([simple_sketches(1)[0], evil]), allow_pickle=True)
        train = buf.getvalue()
    else:  # the whole member is the evil pickle
        train = _npy_bytes_with_pickle(pickle.dumps(evil, protocol=2), (1,))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("train.npy", train)
        for split in ("valid", "test"):
            buf = io.BytesIO()
            np.save(buf, object_array(simple_sketches(2)), allow_pickle=True)
            z.writestr(f"{split}.npy", buf.getvalue())
    return path
