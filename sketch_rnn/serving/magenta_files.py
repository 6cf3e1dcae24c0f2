"""What a Magenta `sketch_rnn` model directory holds, read and checked: `model_config.json`
(Magenta's HParams, mapped to ours by name; an unknown key, cell or size is refused in one
line) and the `vector-N` checkpoint (TensorFlow's checkpoint reader, no TF1 graph). Kept
apart from `magenta_import`, which maps the variables read here onto our model's.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import SketchRNNError, first_line
from ..core.files import read_json
from ..core.hparams import HParams

# Magenta's get_default_hparams(): what an older model_config.json may leave out
MAGENTA_DEFAULTS: dict[str, Any] = dict(
    num_steps=10000000, save_every=500, max_seq_len=250, dec_rnn_size=512, dec_model="lstm",
    enc_rnn_size=256, enc_model="lstm", z_size=128, kl_weight=0.5, kl_weight_start=0.01,
    kl_tolerance=0.2, batch_size=100, grad_clip=1.0, num_mixture=20, learning_rate=0.001,
    decay_rate=0.9999, kl_decay_rate=0.99995, min_learning_rate=0.00001,
    use_recurrent_dropout=True, recurrent_dropout_prob=0.90, use_input_dropout=False,
    input_dropout_prob=0.90, use_output_dropout=False, output_dropout_prob=0.90,
    random_scale_factor=0.15, augment_stroke_prob=0.10, conditional=True)
IGNORED_KEYS = ("data_set", "is_training")  # recorded, not hparams of ours
# how Magenta trained: every batch padded to N_max, float32 (our training-path hparams)
PLAIN_PATH: dict[str, Any] = {"bucketed_batches": False, "precision": "float32"}
DECODERS = ("lstm", "layer_norm", "hyper")
ENCODERS = ("lstm", "layer_norm")
ROOT = "vector_rnn/"
_BOOKKEEPING = re.compile(r"^vector_rnn(_\d+)?/(global_step|Variable(_\d+)?|beta[12]_power)$")


# --------------------------------------------------------------------------- the config
def read_config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "model_config.json"
    config = read_json(path)
    if not isinstance(config, dict):
        raise SketchRNNError(f"{path}: expected a JSON object of hparams (Magenta's "
                             "model_config.json), got a {type(config).__name__}")
    return config


def to_hparams(config: dict[str, Any], source: Path,
               hyper_sizes: tuple[int, int] | None) -> HParams:
    """Magenta's hparams -> ours, by name; unknown keys, cells or sizes refused by name."""
    name = source / "model_config.json"
    unknown = sorted(set(config) - set(MAGENTA_DEFAULTS) - set(IGNORED_KEYS))
    if unknown:
        raise SketchRNNError(f"{name}: unknown option {unknown[0]!r} (not in Magenta's "
                             "sketch_rnn hparams this import knows)")
    values = {**MAGENTA_DEFAULTS, **{k: v for k, v in config.items() if k not in IGNORED_KEYS}}
    if values["dec_model"] not in DECODERS:
        raise SketchRNNError(f"{name}: dec_model={values['dec_model']!r}: the import maps "
                             f"{', '.join(DECODERS)}")
    if values["conditional"] and values["enc_model"] not in ENCODERS:
        raise SketchRNNError(f"{name}: enc_model={values['enc_model']!r}: the import maps "
                             f"{', '.join(ENCODERS)} encoders")
    if not values["conditional"]:
        values["enc_model"] = "lstm"  # no encoder is built; ours must still name a cell
    if hyper_sizes is not None:
        values["hyper_num_units"], values["hyper_embedding_size"] = hyper_sizes
    values.update(PLAIN_PATH)
    try:
        return HParams.from_dict(values)
    except SketchRNNError as e:
        raise SketchRNNError(f"{name}: {e}") from None


# --------------------------------------------------------------------------- the files
def find_checkpoint(model_dir: Path) -> Path:
    """The checkpoint prefix (`.../vector-N`): the `checkpoint` file's, else the newest N."""
    listed = model_dir / "checkpoint"
    if listed.is_file():
        # a garbled pointer file (not UTF-8) names nothing: the newest N is taken instead
        text = listed.read_text("utf-8", errors="replace")
        match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', text, re.M)
        if match:
            prefix = model_dir / Path(match.group(1)).name
            if prefix.with_name(prefix.name + ".index").is_file():
                return prefix
    found = sorted(model_dir.glob("*.index"), key=_step_of_index)
    if not found:
        raise SketchRNNError(f"{model_dir}: no TensorFlow checkpoint (vector-N.index) in it")
    return found[-1].with_suffix("")


def _step_of_index(path: Path) -> int:
    tail = path.stem.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def checkpoint_files(prefix: Path) -> list[Path]:
    files = [prefix.with_name(prefix.name + ".index")]
    files += sorted(prefix.parent.glob(prefix.name + ".data-*"))
    if len(files) < 2:
        raise SketchRNNError(f"{prefix}: the checkpoint has no .data file")
    return files


class MagentaCheckpoint:
    """Reads tensors by name (TensorFlow's reader), remembering which ones were used."""

    def __init__(self, prefix: Path) -> None:
        import tensorflow as tf

        try:
            self.reader = tf.train.load_checkpoint(str(prefix))
            self.shapes = self.reader.get_variable_to_shape_map()
        except Exception as e:  # tf raises DataLossError, NotFoundError, ...
            raise SketchRNNError(f"{prefix}: not a readable TensorFlow checkpoint "
                                 f"({first_line(e)})") from None
        self.prefix = prefix
        self.used: set[str] = set()

    def get(self, name: str) -> np.ndarray:
        if name not in self.shapes:
            raise SketchRNNError(f"{self.prefix}: no variable {name} (the config names a cell "
                                 "or size this checkpoint was not trained with)")
        self.used.add(name)
        return self._read(name)

    def _read(self, key: str) -> np.ndarray:
        try:
            return np.asarray(self.reader.get_tensor(key))
        except Exception as e:  # a truncated or damaged .data file
            raise SketchRNNError(f"{self.prefix}: cannot read {key} ({first_line(e)})") from None

    def slot(self, name: str, which: str) -> np.ndarray | None:
        """Adam's slot `which` ("Adam" m, "Adam_1" v) of variable `name`, None if absent."""
        short = name[len(ROOT):]
        for key in (f"{name}/{which}", f"{ROOT}{ROOT}{short}/{which}", f"{ROOT}{short}/{which}"):
            if key in self.shapes:
                self.used.add(key)
                return self._read(key)
        return None

    def unused(self) -> list[str]:
        return sorted(k for k in self.shapes if k not in self.used and not _BOOKKEEPING.match(k)
                      and not k.endswith(("/Adam", "/Adam_1")))
