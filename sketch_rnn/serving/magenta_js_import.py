"""Import a magenta.js model JSON (`<category>.gen.json`, `<category>.vae.json`): the inverse
of `serving.export`.

The file is `[info, weightDims, weightStrings]`; each weight the base64 of little-endian
int16 q, worth 10 q / 32767 (`export.dequantise`, what the browser computes with, so the
import holds exactly the browser's weights). `info` gives `scale_factor` (data units per
model unit, Magenta's normalising factor) and `max_seq_len`; `mode` says the layout, read
from the public sources (`@magenta/sketch` 0.2.0 `src/sketch_rnn/model.ts` for "gen",
`tensorflow/magenta-demos` `sketch-rnn-js/lib/sketch_rnn.js` `load_model` for both):

- "gen" (or 2): 5 weights: output kernel (u, 123), output bias, decoder W_xh (5, 4u),
  W_hh (u, 4u), bias (4u). Decoder only, the state starts at zeros.
- "vae" (0 or 1): 17 weights: encoder fw W_xh, W_hh, bias, bw W_xh, W_hh, bias, mu w, b,
  sigma w, b, initial-state w (z, 2u), b, output kernel, bias, decoder W_xh (5 + z, 4u),
  W_hh, bias. The initial state is tanh(W z + b) laid out [c, h], as Magenta's.

Both runtimes order gates (i, j, f, o) and add the forget bias 1.0 at run time, as Magenta's
TF1 code does, so the mapping is `magenta_import`'s LSTM mapping. 20 mixture components,
fixed by both runtimes. Files hold no optimizer state: Adam starts fresh at step 0 (or at
info["step"], which our own export writes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import SketchRNNError
from ..core.files import read_json
from ..core.hparams import HParams
from .export import NUM_MIXTURE, decode_weight
from .magenta_files import PLAIN_PATH
from .magenta_import import magenta_gates, plus_forget_bias, state_columns

GEN_NAMES = ("output kernel", "output bias", "decoder W_xh", "decoder W_hh", "decoder bias")
VAE_NAMES = ("encoder fw W_xh", "encoder fw W_hh", "encoder fw bias", "encoder bw W_xh",
             "encoder bw W_hh", "encoder bw bias", "mu w", "mu b", "sigma w", "sigma b",
             "initial-state w", "initial-state b") + GEN_NAMES
DEFAULT_MAX_SEQ_LEN = 250


def read_model_json(path: Path) -> tuple[dict, dict[str, np.ndarray], bool]:
    """-> (info, {weight name: float32 array}, conditional); every field checked."""
    model_json = read_json(path)
    if not (isinstance(model_json, list) and len(model_json) == 3
            and isinstance(model_json[0], dict)):
        raise SketchRNNError(f"{path}: not a magenta.js model ([info, weightDims, weightStrings])")
    info, dims, strings = model_json
    mode = info.get("mode", "gen")
    if mode in ("gen", 2):
        names, conditional = GEN_NAMES, False
    elif mode in ("vae", 0, 1):
        names, conditional = VAE_NAMES, True
    else:
        raise SketchRNNError(f"{path}: info.mode={mode!r}: expected 'gen' (2) or 'vae' (0, 1)")
    if not (isinstance(dims, list) and isinstance(strings, list)
            and len(dims) == len(strings) == len(names)):
        raise SketchRNNError(f"{path}: mode {mode!r} has {len(names)} weights; the file lists "
                             f"{len(dims) if isinstance(dims, list) else '?'} dims and "
                             f"{len(strings) if isinstance(strings, list) else '?'} weights")
    weights = {}
    for name, d, s in zip(names, dims, strings):
        if not (isinstance(d, list) and all(isinstance(n, int) and n > 0 for n in d)
                and isinstance(s, str)):
            raise SketchRNNError(f"{path}: weight {name!r}: bad dims {d!r} or weight string")
        try:
            weights[name] = decode_weight(s, tuple(d))
        except SketchRNNError as e:
            raise SketchRNNError(f"{path}: weight {name!r}: {e}") from None
        except ValueError as e:  # bad base64
            raise SketchRNNError(f"{path}: weight {name!r}: not base64 int16 ({e})") from None
    return info, weights, conditional


def to_hparams(path: Path, info: dict, w: dict[str, np.ndarray], conditional: bool) -> HParams:
    """The sizes from the weights' shapes, checked against each other (one line naming one)."""
    u = w["decoder W_hh"].shape[0]
    k = 3 + 6 * NUM_MIXTURE
    z = w["initial-state w"].shape[0] if conditional else 128
    enc = w["encoder fw W_hh"].shape[0] if conditional else 256
    expected = {"output kernel": (u, k), "output bias": (k,), "decoder W_hh": (u, 4 * u),
                "decoder bias": (4 * u,), "decoder W_xh": (5 + (z if conditional else 0), 4 * u)}
    if conditional:
        for side in ("fw", "bw"):
            expected.update({f"encoder {side} W_xh": (5, 4 * enc),
                             f"encoder {side} W_hh": (enc, 4 * enc),
                             f"encoder {side} bias": (4 * enc,)})
        expected.update({"mu w": (2 * enc, z), "mu b": (z,), "sigma w": (2 * enc, z),
                         "sigma b": (z,), "initial-state w": (z, 2 * u),
                         "initial-state b": (2 * u,)})
    for name, shape in expected.items():
        if tuple(w[name].shape) != shape:
            raise SketchRNNError(f"{path}: weight {name!r} has shape {tuple(w[name].shape)}, "
                                 f"expected {shape} (u={u}, M={NUM_MIXTURE})")
    max_len = info.get("max_seq_len", DEFAULT_MAX_SEQ_LEN)
    if not (isinstance(max_len, int) and max_len > 0):
        raise SketchRNNError(f"{path}: info.max_seq_len={max_len!r}: expected a positive integer")
    return HParams(dec_model="lstm", enc_model="lstm", dec_rnn_size=u, enc_rnn_size=enc, z_size=z,
                   num_mixture=NUM_MIXTURE, conditional=conditional, max_seq_len=max_len,
                   **PLAIN_PATH)


def _lstm(cell: Any, w_xh: np.ndarray, w_hh: np.ndarray, bias: np.ndarray) -> None:
    c = cell.cell
    c.kernel.assign(magenta_gates(w_xh))
    c.recurrent_kernel.assign(magenta_gates(w_hh))
    c.bias.assign(plus_forget_bias(magenta_gates(bias)))


def load_into(model: Any, hps: HParams, w: dict[str, np.ndarray]) -> None:
    _lstm(model.decoder, w["decoder W_xh"], w["decoder W_hh"], w["decoder bias"])
    model.head.kernel.assign(w["output kernel"])
    model.head.bias.assign(w["output bias"])
    if hps.conditional:
        for side, cell in (("fw", model.encoder_fw), ("bw", model.encoder_bw)):
            _lstm(cell, w[f"encoder {side} W_xh"], w[f"encoder {side} W_hh"],
                  w[f"encoder {side} bias"])
        for dense, name in ((model.mu_dense, "mu"), (model.presig_dense, "sigma")):
            dense.kernel.assign(w[f"{name} w"])
            dense.bias.assign(w[f"{name} b"])
        cols = state_columns("lstm", hps.dec_rnn_size)  # [c, h] -> ours (h, c)
        model.initial_state_dense.kernel.assign(w["initial-state w"][:, cols])
        model.initial_state_dense.bias.assign(w["initial-state b"][cols])


def import_magenta_js(path: str | Path, run_dir: str | Path, data: list[str] | None = None,
                      scale_factor: float | None = None, force: bool = False,
                      seed: int = 0) -> dict[str, Any]:
    """Write RUN_DIR from a magenta.js model JSON; returns the summary `import` prints."""
    from ..model.build import build_model
    from .imported_run import check_destination, data_record, files_sha256, write_run

    path, run_dir = Path(path), Path(run_dir)
    check_destination(run_dir, force)
    info, weights, conditional = read_model_json(path)
    hps = to_hparams(path, info, weights, conditional)
    factor = info.get("scale_factor") if scale_factor is None else scale_factor
    if scale_factor is None and not (isinstance(factor, (int, float)) and factor > 0):
        raise SketchRNNError(f"{path}: info.scale_factor={factor!r}: expected a positive number "
                             "(or give --scale-factor)")
    record = data_record(data, hps, float(factor))
    step = info.get("step", 0)
    step = step if isinstance(step, int) and step >= 0 else 0
    model = build_model(hps, seed)
    load_into(model, hps, weights)
    note = "started fresh (a magenta.js model holds no optimizer state)"
    provenance = {"from": "magenta-js", "path": str(path.resolve()),
                  "sha256": files_sha256([path]), "mode": info.get("mode", "gen"),
                  "name": info.get("name"), "version": info.get("version"), "step": step,
                  "optimizer": note}
    ckpt = write_run(run_dir, model, hps, step, record, provenance, force, seed)
    return {"run_dir": str(run_dir), "checkpoint": ckpt.name, "step": step,
            "dec_model": hps.dec_model, "conditional": hps.conditional,
            "scale_factor": record["scale_factor"], "optimizer": note}
