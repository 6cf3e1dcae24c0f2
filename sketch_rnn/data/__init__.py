"""Data: sketch-rnn `.npz` files -> validated, packed splits -> per-step batches.

`npz` reads files safely, `dataset` packs and normalises the splits (and caches them),
`batches` makes the training batch of a step and the evaluation batches, `reading` gives
sketches of a file as a model takes them (every command's --from), `stats` reports.
Pure NumPy: nothing here imports TensorFlow or Keras.
"""
from .batches import (
    batch_from_indices,
    bucketed_train_batch,
    eval_batches,
    step_batch,
    train_batch,
)
from .dataset import (
                      DEFAULT_DATA,
                      OFFSET_LIMIT,
                      SketchData,
                      SketchSplit,
                      categories_of,
                      load_data,
)
from .npz import load_npz, load_npz_packed, validate_packed, validate_sketches
from .reading import read_sketches, read_split
from .stats import dataset_stats

__all__ = ["DEFAULT_DATA", "OFFSET_LIMIT", "SketchData", "SketchSplit", "batch_from_indices",
           "bucketed_train_batch", "categories_of", "dataset_stats", "eval_batches", "load_data",
           "load_npz", "load_npz_packed", "read_sketches", "read_split", "step_batch",
           "train_batch", "validate_packed", "validate_sketches"]
