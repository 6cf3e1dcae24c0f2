"""Import a checkpoint of Magenta's TensorFlow 1 `sketch_rnn` (the paper's own models).

A Magenta model directory holds `model_config.json` (its HParams as a JSON object) and a
`vector-N` checkpoint (`.index` + `.data-*`, and a `.meta` graph nobody needs here). The
checkpoint is read with TensorFlow's checkpoint reader, no TF1 graph is built. What differs
from our variables, and how each is mapped (facts read from Magenta's model.py and rnn.py,
checked by tests/test_magenta_import.py against Magenta's own outputs):

- gate order: Magenta splits every 4u-wide gate axis as (i, j, f, o), j the candidate; ours is
  (i, f, g, o) (keras.layers.LSTM). The middle two blocks swap, in kernels, biases and the
  layer-norm gains and shifts alike.
- forget bias: Magenta adds 1.0 to f at run time in all three cells. Our LSTM stores it in its
  bias (Keras' unit_forget_bias), so 1.0 is added to that block; our layer-norm and hyper
  cells add it at run time as Magenta does, so theirs are copied as they are.
- state layout: Magenta's LSTMCell state is [c, h], LayerNormLSTMCell's [h, c], the
  HyperLSTM's [h, hyper_h, c, hyper_c]; ours are (h, c) and (h, c, hyper_h, hyper_c). The
  initial-state layer tanh(W z + b) has its columns permuted accordingly.
- the HyperLSTM: its hyper cell is a LayerNormLSTMCell under `HyperLSTMCell/LayerNormLSTMCell`;
  each gate's embeddings live in scopes `hyper_{i,j,f,o}{x,h}` (zw with bias, alpha; for h
  also zb without bias and beta); ours hold the four gates side by side in one variable. Its
  sizes (256 units, embedding 32) are constructor defaults in Magenta, not hparams: they are
  read from the variables' shapes.
- Adam: TF1's slots `<var>/Adam` (m) and `<var>/Adam_1` (v) are Keras Adam's momentums and
  velocities under the same permutation (not the +1.0, a constant has no gradient); TF1's
  update with beta1_power = 0.9^(t+1) after t steps is Keras' with iterations = t.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.errors import SketchRNNError
from ..core.hparams import HParams
from .magenta_files import (ROOT, MagentaCheckpoint, checkpoint_files, find_checkpoint,
                            read_config, to_hparams)

CELL_SCOPES = {"lstm": "LSTMCell", "layer_norm": "LayerNormLSTMCell", "hyper": "HyperLSTMCell"}
_MAGENTA_GATES = "ifjo"  # Magenta's letters in OUR gate order (i, f, g=j, o)


# --------------------------------------------------------------------------- the mapping
def magenta_gates(x: np.ndarray) -> np.ndarray:
    """Magenta's (i, j, f, o) blocks of the last axis -> ours (i, f, g, o); its own inverse."""
    i, j, f, o = np.split(x, 4, axis=-1)
    return np.concatenate([i, f, j, o], axis=-1)


def plus_forget_bias(x: np.ndarray) -> np.ndarray:
    """Our LSTM stores Magenta's run-time forget bias 1.0 in its (i, f, g, o) bias."""
    x = x.copy()
    u = x.shape[-1] // 4
    x[..., u:2 * u] += 1.0
    return x


# a rule: (get(name) -> array) -> our array; `shift` is False for Adam's moments
Rule = Callable[[Callable[[str], np.ndarray], bool], np.ndarray]


def _copy(name: str, permute: Callable | None = None, shift: Callable | None = None) -> Rule:
    def rule(get, weights):
        x = get(name)
        x = permute(x) if permute else x
        return shift(x) if (shift and weights) else x
    return rule


def _per_gate(names: list[str], how: str) -> Rule:
    """Four per-gate Magenta variables (our gate order) side by side or stacked."""
    def rule(get, weights):
        parts = [get(n) for n in names]
        return np.concatenate(parts, axis=-1) if how == "concat" else np.stack(parts)
    return rule


def _lstm_rules(cell: Any, scope: str) -> list[tuple[Any, Rule]]:
    c = cell.cell
    return [(c.kernel, _copy(f"{scope}/W_xh", magenta_gates)),
            (c.recurrent_kernel, _copy(f"{scope}/W_hh", magenta_gates)),
            (c.bias, _copy(f"{scope}/bias", magenta_gates, plus_forget_bias))]


def _layer_norm_rules(cell: Any, scope: str, prefix: str = "") -> list[tuple[Any, Rule]]:
    v = lambda n: getattr(cell, prefix + n)  # noqa: E731
    return [(v("kernel"), _copy(f"{scope}/W_xh", magenta_gates)),
            (v("recurrent_kernel"), _copy(f"{scope}/W_hh", magenta_gates)),
            (v("ln_gamma"), _copy(f"{scope}/ln_all/ln_gamma", magenta_gates)),
            (v("ln_beta"), _copy(f"{scope}/ln_all/ln_beta", magenta_gates)),
            (v("ln_c_gamma"), _copy(f"{scope}/ln_c/ln_gamma")),
            (v("ln_c_beta"), _copy(f"{scope}/ln_c/ln_beta"))]


def _hyper_rules(cell: Any, scope: str) -> list[tuple[Any, Rule]]:
    def gates(part: str, sub: str, var: str) -> list[str]:
        return [f"{scope}/hyper_{g}{part}/{sub}/super_linear_{var}" for g in _MAGENTA_GATES]

    rules = [(cell.kernel, _copy(f"{scope}/W_xh", magenta_gates)),
             (cell.recurrent_kernel, _copy(f"{scope}/W_hh", magenta_gates)),
             (cell.bias, _copy(f"{scope}/bias", magenta_gates))]
    rules += _layer_norm_rules(cell, f"{scope}/LayerNormLSTMCell", "hyper_")
    rules += [(cell.zw_x_kernel, _per_gate(gates("x", "zw", "w"), "concat")),
              (cell.zw_x_bias, _per_gate(gates("x", "zw", "b"), "concat")),
              (cell.alpha_x, _per_gate(gates("x", "alpha", "w"), "stack")),
              (cell.zw_h_kernel, _per_gate(gates("h", "zw", "w"), "concat")),
              (cell.zw_h_bias, _per_gate(gates("h", "zw", "b"), "concat")),
              (cell.zb_h_kernel, _per_gate(gates("h", "zb", "w"), "concat")),
              (cell.alpha_h, _per_gate(gates("h", "alpha", "w"), "stack")),
              (cell.beta_h, _per_gate(gates("h", "beta", "w"), "stack")),
              (cell.ln_gamma, _copy(f"{scope}/ln_all/ln_gamma", magenta_gates)),
              (cell.ln_beta, _copy(f"{scope}/ln_all/ln_beta", magenta_gates)),
              (cell.ln_c_gamma, _copy(f"{scope}/ln_c/ln_gamma")),
              (cell.ln_c_beta, _copy(f"{scope}/ln_c/ln_beta"))]
    return rules


def _cell_rules(kind: str, cell: Any, scope: str) -> list[tuple[Any, Rule]]:
    return {"lstm": _lstm_rules, "layer_norm": _layer_norm_rules,
            "hyper": _hyper_rules}[kind](cell, f"{scope}/{CELL_SCOPES[kind]}")


def state_columns(kind: str, u: int, hyper: int = 0) -> np.ndarray:
    """For each column of our initial state (h, c[, hyper_h, hyper_c]), Magenta's column."""
    r = np.arange
    if kind == "lstm":  # Magenta [c, h]
        return np.concatenate([r(u, 2 * u), r(0, u)])
    if kind == "layer_norm":  # Magenta [h, c]
        return r(2 * u)
    H = hyper  # Magenta [h, hyper_h, c, hyper_c]
    return np.concatenate([r(0, u), r(u + H, 2 * u + H), r(u, u + H), r(2 * u + H, 2 * u + 2 * H)])


def weight_rules(model: Any, hps: HParams) -> list[tuple[Any, Rule]]:
    """(our variable, rule) for every trainable variable of `model`."""
    rules = _cell_rules(hps.dec_model, model.decoder, ROOT + "RNN")
    rules += [(model.head.kernel, _copy(ROOT + "RNN/output_w")),
              (model.head.bias, _copy(ROOT + "RNN/output_b"))]
    if hps.conditional:
        for side, cell in (("fw", model.encoder_fw), ("bw", model.encoder_bw)):
            rules += _cell_rules(hps.enc_model, cell, f"{ROOT}ENC_RNN/{side}")
        for dense, scope in ((model.mu_dense, "ENC_RNN_mu"), (model.presig_dense, "ENC_RNN_sigma")):
            rules += [(dense.kernel, _copy(f"{ROOT}{scope}/super_linear_w")),
                      (dense.bias, _copy(f"{ROOT}{scope}/super_linear_b"))]
        cols = state_columns(hps.dec_model, hps.dec_rnn_size, hps.hyper_num_units)
        rules += [(model.initial_state_dense.kernel,
                   _copy(ROOT + "linear/super_linear_w", lambda x: x[:, cols])),
                  (model.initial_state_dense.bias,
                   _copy(ROOT + "linear/super_linear_b", lambda x: x[cols]))]
    return rules


def _assign(variable: Any, value: np.ndarray, what: str) -> None:
    if tuple(value.shape) != tuple(variable.shape):
        raise SketchRNNError(f"{what}: shape {tuple(value.shape)} where the config implies "
                             f"{tuple(variable.shape)} ({variable.path})")
    variable.assign(value.astype(np.float32))


# --------------------------------------------------------------------------- the import
@dataclass
class MagentaModel:
    """What the import read: hparams, the checkpoint, its global_step, and the files."""

    hps: HParams
    checkpoint: MagentaCheckpoint
    global_step: int
    files: list[Path]
    config: dict[str, Any]


def resolve_model_dir(path: Path, name: str | None) -> Path:
    """PATH is the model directory, or (with --model NAME) a folder holding NAME."""
    model_dir = path / name if name else path
    if not model_dir.is_dir():
        raise SketchRNNError(f"{model_dir}: no such model directory")
    if not (model_dir / "model_config.json").is_file():
        hint = "; give --model NAME (e.g. aaron_sheep/lstm)" if not name else ""
        raise SketchRNNError(f"{model_dir}: no model_config.json in it{hint}")
    return model_dir


def open_magenta(model_dir: Path) -> MagentaModel:
    config = read_config(model_dir)
    prefix = find_checkpoint(model_dir)
    ckpt = MagentaCheckpoint(prefix)
    hyper = None
    if config.get("dec_model") == "hyper":
        w_hh = ckpt.shapes.get(ROOT + "RNN/HyperLSTMCell/LayerNormLSTMCell/W_hh")
        zw = ckpt.shapes.get(ROOT + "RNN/HyperLSTMCell/hyper_ix/zw/super_linear_w")
        if w_hh is None or zw is None:
            raise SketchRNNError(f"{prefix}: dec_model=hyper but no HyperLSTMCell variables")
        hyper = (int(w_hh[0]), int(zw[1]))
    hps = to_hparams(config, model_dir, hyper)
    if ROOT + "global_step" not in ckpt.shapes:
        raise SketchRNNError(f"{prefix}: no vector_rnn/global_step: not a sketch_rnn checkpoint")
    step = int(ckpt.get(ROOT + "global_step"))
    return MagentaModel(hps, ckpt, step, checkpoint_files(prefix), config)


def load_into(model: Any, source: MagentaModel) -> str:
    """Assign every variable (and Adam's moments when they map); -> "kept" or why not."""
    rules = weight_rules(model, source.hps)
    ckpt = source.checkpoint
    for variable, rule in rules:
        _assign(variable, rule(ckpt.get, True), variable.path)
    left = ckpt.unused()
    if left:
        raise SketchRNNError(f"{ckpt.prefix}: variable {left[0]} has no counterpart in our "
                             "model (an option this import does not know)")
    return _load_moments(model, source, rules)


def _load_moments(model: Any, source: MagentaModel, rules: list) -> str:
    ckpt, opt = source.checkpoint, model.optimizer
    names = {}
    for variable, rule in rules:  # which Magenta names each rule reads, without moments
        seen: list[str] = []
        rule(lambda n: (seen.append(n), ckpt.get(n))[1], True)
        names[id(variable)] = seen
    moments = []
    for variable, rule in rules:
        slots = {}
        for which in ("Adam", "Adam_1"):
            got = {n: ckpt.slot(n, which) for n in names[id(variable)]}
            if any(v is None for v in got.values()):
                return "started fresh (the checkpoint holds no Adam moments)"
            slots[which] = rule(got.__getitem__, False)
        moments.append((variable, slots))
    b1 = ckpt.shapes.get(ROOT + "beta1_power")
    expected = 0.9 ** (source.global_step + 1)
    if b1 is None or not np.isclose(float(ckpt.get(ROOT + "beta1_power")), expected, rtol=1e-4):
        return "started fresh (Adam's step count does not match global_step)"
    for variable, slots in moments:
        index = opt._get_variable_index(variable)
        _assign(opt._momentums[index], slots["Adam"], variable.path + " (Adam m)")
        _assign(opt._velocities[index], slots["Adam_1"], variable.path + " (Adam v)")
    return "kept (Magenta's Adam moments)"


def import_magenta(path: str | Path, run_dir: str | Path, model_name: str | None = None,
                   data: list[str] | None = None, scale_factor: float | None = None,
                   force: bool = False, seed: int = 0) -> dict[str, Any]:
    """Write RUN_DIR from a Magenta model directory; returns a summary (what `import` prints)."""
    from ..model.build import build_model
    from .imported_run import check_destination, data_record, files_sha256, write_run

    run_dir = Path(run_dir)
    check_destination(run_dir, force)
    if Path(path).is_file() and str(path).endswith(".zip"):  # Magenta's sketch_rnn.zip
        return _import_from_archive(Path(path), run_dir, model_name, data, scale_factor, force,
                                    seed)
    model_dir = resolve_model_dir(Path(path), model_name)
    source = open_magenta(model_dir)
    hps = source.hps
    record = data_record(data, hps, scale_factor)
    model = build_model(hps, seed)
    optimizer = load_into(model, source)
    provenance = {"from": "magenta", "path": str(model_dir.resolve()),
                  "checkpoint": source.files[0].with_suffix("").name,
                  "sha256": files_sha256(source.files), "global_step": source.global_step,
                  "optimizer": optimizer, "data_set": source.config.get("data_set")}
    ckpt = write_run(run_dir, model, hps, source.global_step, record, provenance, force, seed)
    return {"run_dir": str(run_dir), "checkpoint": ckpt.name, "step": source.global_step,
            "dec_model": hps.dec_model, "conditional": hps.conditional,
            "scale_factor": record["scale_factor"], "optimizer": optimizer}


def _import_from_archive(archive: Path, run_dir: Path, model_name: str | None,
                         data: list[str] | None, scale_factor: float | None, force: bool,
                         seed: int) -> dict[str, Any]:
    """PATH is the archive itself: its NAME folder is unpacked to a temporary directory."""
    import tempfile

    from .archive import extract_model

    if not model_name:
        raise SketchRNNError(f"{archive}: an archive of models; give --model NAME "
                             "(e.g. aaron_sheep/lstm)")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = extract_model(archive, model_name, Path(tmp) / "model", str(archive))
        return import_magenta(model_dir, run_dir, None, data, scale_factor, force, seed)

