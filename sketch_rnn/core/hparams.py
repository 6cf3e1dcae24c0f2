"""Hyperparameters: one dataclass, the original's defaults, three presets.

The defaults are those of the Magenta sketch-rnn implementation (the paper's
setup). A run stores its HParams as JSON, so every field must be a plain JSON
type; overrides arrive as "k=v,k=v" strings from the CLI and are checked
against the field types so that a typo is an error, not a silent default.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .errors import SketchRNNError

CELL_TYPES = ("lstm", "layer_norm", "hyper")
PRECISIONS = ("float32", "bfloat16")  # model.precision says what each means


def _f(default: Any, why: str) -> Any:
    return field(default=default, metadata={"why": why})


@dataclass(frozen=True)
class HParams:
    """Every knob of model, data and training; `why` metadata says each one's reason."""

    # --- model size -------------------------------------------------------
    enc_rnn_size: int = _f(256, "units per direction of the bidirectional encoder LSTM")
    dec_rnn_size: int = _f(512, "units of the decoder cell, the model's main capacity")
    z_size: int = _f(128, "size of the latent vector z (paper: 128)")
    num_mixture: int = _f(20, "M, Gaussian components in the (dx, dy) mixture")
    enc_model: str = _f("lstm", "encoder cell: lstm | layer_norm | hyper")
    dec_model: str = _f("lstm", "decoder cell: lstm | layer_norm | hyper")
    hyper_num_units: int = _f(256, "units of the small LSTM inside a HyperLSTM")
    hyper_embedding_size: int = _f(32, "size of the HyperLSTM's weight-scaling embedding")
    conditional: bool = _f(True, "False: decoder-only model, no encoder, no z, no KL")
    # --- data -------------------------------------------------------------
    batch_size: int = _f(100, "sketches per training step")
    max_seq_len: int = _f(250, "N_max; longer sketches are dropped when loading")
    random_scale_factor: float = _f(0.15, "augmentation: x and y scaled by U[1-s, 1+s]")
    augment_stroke_prob: float = _f(0.10, "augmentation: chance to drop an interior point")
    bucketed_batches: bool = _f(True, "draw each training batch from one length bucket and pad "
                                "it to that bucket's length, not N_max (same sketches seen, "
                                "less padding); runs saved without it resume with False")
    # --- optimisation -----------------------------------------------------
    learning_rate: float = _f(1e-3, "Adam learning rate at step 0")
    decay_rate: float = _f(0.9999, "learning rate decays by this factor each step")
    min_learning_rate: float = _f(1e-5, "floor the learning rate decays towards")
    grad_clip: float = _f(1.0, "gradients are clipped to [-grad_clip, grad_clip]")
    kl_weight: float = _f(0.5, "final w_KL, the weight of the KL term")
    kl_weight_start: float = _f(0.01, "w_KL at step 0; annealed towards kl_weight")
    kl_decay_rate: float = _f(0.99995, "w_KL approaches kl_weight by this factor each step")
    kl_tolerance: float = _f(0.2, "KL below this is not penalised (L_KL = max(KL, tol))")
    mu_init_std: float = _f(0.001, "std of mu's initial weights; 0.001 (Magenta) starts z "
                            "as almost pure noise")
    kl_floor_per_dim: bool = _f(False, "apply kl_tolerance to each z dimension (free bits), "
                                "not to their mean")
    use_recurrent_dropout: bool = _f(True, "dropout on the LSTM candidate g (no memory loss)")
    recurrent_dropout_prob: float = _f(0.90, "keep probability of recurrent dropout")
    use_input_dropout: bool = _f(False, "dropout on the decoder's inputs")
    input_dropout_prob: float = _f(0.90, "keep probability of input dropout")
    use_output_dropout: bool = _f(False, "dropout on the decoder's outputs")
    output_dropout_prob: float = _f(0.90, "keep probability of output dropout")
    use_stroke_dropout: bool = _f(False, "zero whole decoder inputs S_{i-1} (never z), so "
                                  "the decoder must read the sketch from z")
    stroke_dropout_prob: float = _f(0.75, "keep probability of stroke dropout")
    scheduled_sampling_prob: float = _f(0.0, "chance that a decoder input S_{i-1} is "
                                        "replaced in training by the decoder's own greedy "
                                        "guess of it (scheduled sampling, one parallel pass)")
    precision: str = _f("float32", "float32 | bfloat16: the recurrent and projection matmuls' "
                        "operands (weights, optimizer, cell state, loss stay float32); a new "
                        "`train` run without it picks bfloat16 where the CPU has native bf16")
    # --- run length and checkpoints ---------------------------------------
    num_steps: int = _f(10000000, "total training steps (the target, also on resume)")
    save_every: int = _f(500, "steps between checkpoints (and validation runs)")
    keep_checkpoints: int = _f(5, "K, the newest checkpoints kept (plus the best)")

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------
    def validate(self) -> None:
        """Reject values no model could train with, naming the field."""
        for name, kind in _TYPES.items():  # NaN passes every comparison below
            if kind == "float" and not math.isfinite(getattr(self, name)):
                raise SketchRNNError(f"hparam {name}={getattr(self, name)!r}: must be finite")
        positive = ("enc_rnn_size", "dec_rnn_size", "z_size", "num_mixture", "batch_size",
                    "max_seq_len", "hyper_num_units", "hyper_embedding_size", "num_steps",
                    "save_every", "keep_checkpoints", "learning_rate", "grad_clip")
        for name in positive:
            if getattr(self, name) <= 0:
                raise SketchRNNError(f"hparam {name}={getattr(self, name)!r}: must be > 0")
        for name in ("enc_model", "dec_model"):
            if getattr(self, name) not in CELL_TYPES:
                raise SketchRNNError(
                    f"hparam {name}={getattr(self, name)!r}: must be one of {', '.join(CELL_TYPES)}")
        if self.precision not in PRECISIONS:
            raise SketchRNNError(f"hparam precision={self.precision!r}: must be one of "
                                 f"{', '.join(PRECISIONS)}")
        for name in ("recurrent_dropout_prob", "input_dropout_prob", "output_dropout_prob",
                     "stroke_dropout_prob", "decay_rate", "kl_decay_rate"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise SketchRNNError(f"hparam {name}={getattr(self, name)!r}: must be in (0, 1]")
        if not 0.0 <= self.scheduled_sampling_prob <= 1.0:
            raise SketchRNNError(f"hparam scheduled_sampling_prob={self.scheduled_sampling_prob!r}: "
                                 "must be in [0, 1]")
        for name in ("random_scale_factor", "augment_stroke_prob", "min_learning_rate",
                     "mu_init_std", "kl_weight", "kl_weight_start", "kl_tolerance"):
            if getattr(self, name) < 0:
                raise SketchRNNError(f"hparam {name}={getattr(self, name)!r}: must be >= 0")

    # ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "HParams":
        unknown = sorted(set(values) - set(field_names()))
        if unknown:
            raise SketchRNNError(f"unknown hparam(s): {', '.join(map(repr, unknown))}")
        return cls(**{k: _coerce(k, v) for k, v in values.items()})

    @classmethod
    def from_json(cls, text: str) -> "HParams":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise SketchRNNError(f"hparams JSON is not valid: {e}") from None
        if not isinstance(values, dict):
            raise SketchRNNError("hparams JSON must be an object")
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> "HParams":
        return self.from_dict({**self.to_dict(), **changes})

    def with_overrides(self, overrides: str | None) -> "HParams":
        """Apply a "k=v,k=v" string (CLI --hparams)."""
        return self.replace(**parse_overrides(overrides))


# hparams a run saved before them did not record, with the value that reproduces that run
LEGACY_DEFAULTS = {"bucketed_batches": False, "precision": "float32"}

ARCHITECTURE_FIELDS = ("enc_rnn_size", "dec_rnn_size", "z_size", "num_mixture", "enc_model",
                       "dec_model", "hyper_num_units", "hyper_embedding_size", "conditional")


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(HParams)]


def describe() -> dict[str, str]:
    """Field name -> one-line rationale (shown by `--hparams help`)."""
    return {f.name: f.metadata["why"] for f in dataclasses.fields(HParams)}


_TYPES = {f.name: f.type for f in dataclasses.fields(HParams)}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, value: Any) -> Any:
    """Convert `value` (a string from the CLI or a JSON value) to the field's type."""
    kind = _TYPES[name]
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(str(value).strip())
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if not isinstance(value, str):
            raise ValueError
        return value.strip()
    except (TypeError, ValueError):
        raise SketchRNNError(f"hparam {name}={value!r}: expected {kind}") from None


def parse_overrides(text: str | None) -> dict[str, Any]:
    """Parse "k=v,k=v" into typed values; unknown keys and bad values are errors."""
    result: dict[str, Any] = {}
    if not text or not text.strip():
        return result
    names = set(field_names())
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise SketchRNNError(f"hparam override {item!r}: expected key=value")
        key, value = (s.strip() for s in item.split("=", 1))
        if key not in names:
            raise SketchRNNError(f"unknown hparam {key!r} in --hparams")
        result[key] = _coerce(key, value)
    return result


PRESETS: dict[str, dict[str, Any]] = {
    # The paper / Magenta defaults.
    "paper": {},
    # The first run: 22 minutes on 2 cores of an Intel Xeon with AMX (5000 steps; both
    # schedules decay 5x faster than the paper's so that they settle within the run). Adam
    # starts at 3e-3, not the paper's 1e-3: with this decay 1e-3 is down to 8e-5 by step 5000.
    # B = 50, not 100: on 2 cores a step costs about its batch (B 50 half of B 100), and on
    # the bundled sheep the valid L_R per step hardly depends on B here, so B 50 reaches each
    # level about twice as soon (benchmarks/bench_time_to_quality.py: with the bucketed bf16
    # path 4.3-5.4x sooner than the path before issue 23). Runs saved before keep their own
    # rate and batch on resume.
    "small": dict(enc_rnn_size=128, dec_rnn_size=256, z_size=64, num_mixture=20, batch_size=50,
                  max_seq_len=250, save_every=250, num_steps=5000, decay_rate=0.9995,
                  kl_decay_rate=0.9995, learning_rate=3e-3),
    # For tests: a training step in milliseconds.
    "tiny": dict(enc_rnn_size=16, dec_rnn_size=32, z_size=8, num_mixture=3, batch_size=8,
                 max_seq_len=100, hyper_num_units=16, hyper_embedding_size=4, save_every=10,
                 num_steps=40, decay_rate=0.99, kl_decay_rate=0.99),
}


def preset(name: str) -> HParams:
    """The named preset; unknown names are an error listing the choices."""
    if name not in PRESETS:
        raise SketchRNNError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return HParams().replace(**PRESETS[name])
