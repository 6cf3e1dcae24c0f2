"""`data.read_split` / `data.read_sketches`: the one reader of sketches for the commands and
the notebooks, against NumPy's own unpickling of the bundled file (an independent reader)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.data import read_sketches, read_split

SHEEP = str(Path(__file__).resolve().parents[1] / "data" / "aaron_sheep.npz")


def _reference(split: str) -> list[np.ndarray]:
    with np.load(SHEEP, encoding="latin1", allow_pickle=True) as f:  # trusted bundled file
        return list(f[split])


def test_read_split_is_the_file_clipped_as_training_clips_it() -> None:
    raw = _reference("test")
    got = read_split(SHEEP, "test")
    assert len(got) == len(raw)
    for mine, theirs in zip(got, raw):
        want = np.asarray(theirs, np.float64)
        want[:, :2] = np.clip(want[:, :2], -1000, 1000)
        assert mine.dtype == np.float32 and np.array_equal(mine, want)
    short = read_split(SHEEP, "test", max_seq_len=100)
    assert len(short) == sum(0 < len(s) <= 100 for s in raw) < len(raw)


def test_read_sketches_picks_indices_and_names_what_is_wrong() -> None:
    raw = _reference("valid")
    fits = [i for i, s in enumerate(raw) if len(s) <= 100]
    long = next(i for i, s in enumerate(raw) if len(s) > 100)
    got = read_sketches(SHEEP, "valid", fits[:2][::-1], max_seq_len=100)
    assert [len(s) for s in got] == [len(raw[i]) for i in fits[:2][::-1]]
    with pytest.raises(SketchRNNError, match=rf"^--index {len(raw)}: .*aaron_sheep.npz \[valid\] "
                                             rf"holds {len(raw)} sketches$"):
        read_sketches(SHEEP, "valid", [len(raw)], 100, field="--index")
    with pytest.raises(SketchRNNError, match=rf"^index {long}: .* points; the model takes at most 100"):
        read_sketches(SHEEP, "valid", [long], 100)
    with pytest.raises(SketchRNNError, match="split='dev'"):
        read_split(SHEEP, "dev")
