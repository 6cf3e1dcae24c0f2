"""Models from elsewhere: magenta.js model JSON (`import --from magenta-js`), Magenta model
folders (`model_config.json`, the `checkpoint` file, the `vector-N` index and data), and the
int16 weight codes of `export` read back by the import."""
from __future__ import annotations

import base64
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fuzz.common import PropertyViolation, files_under, magenta_dirs, mutated, ours, write
from fuzz.target_quickdraw import check_refusal, run_cli

U, ENC, Z, K = 4, 3, 2, 123  # a tiny magenta.js model: decoder u, encoder, z, head outputs


def model_json(mode: str, seed: int = 0) -> list:
    """A well-formed magenta.js model of the layout `mode` ("gen" or "vae"), random codes."""
    rng = np.random.default_rng(seed)
    gen = [(U, K), (K,), (5 + (Z if mode == "vae" else 0), 4 * U), (U, 4 * U), (4 * U,)]
    dims = gen
    if mode == "vae":
        enc = [(5, 4 * ENC), (ENC, 4 * ENC), (4 * ENC,)]
        dims = enc + enc + [(2 * ENC, Z), (Z,), (2 * ENC, Z), (Z,), (Z, 2 * U), (2 * U,)] + gen
    codes = [rng.integers(-3000, 3001, size=d).astype("<i2") for d in dims]
    info = {"mode": mode, "name": "fuzz", "version": 6, "scale_factor": 37.5, "max_seq_len": 40}
    return [info, [list(d) for d in dims],
            [base64.b64encode(c.tobytes()).decode() for c in codes]]


@functools.cache
def js_seeds() -> tuple[bytes, ...]:
    return tuple(json.dumps(model_json(m, s)).encode() for m in ("gen", "vae") for s in (0, 1))


_ODD = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                 st.floats(allow_nan=True), st.text(max_size=4),
                 st.sampled_from(["gen", "vae", 0, 1, 2, 3, -1, 250, 0.5, "NaN"]),
                 st.lists(st.integers(-2, 300), max_size=3))


def _edit_json(seed: int, where: str, key: object, value: object) -> bytes:
    """A seed model with one field replaced by a hostile value."""
    info, dims, strings = model_json("vae" if seed % 2 else "gen", seed)
    at = key if isinstance(key, int) else len(str(key))
    if where == "info":
        info[str(key)] = value
    elif where == "dims":
        dims[at % len(dims)] = value
    elif where == "strings":
        strings[at % len(strings)] = value if not isinstance(value, str) else value + "=="
    else:
        return json.dumps(value).encode()
    return json.dumps([info, dims, strings]).encode()


MODEL_JSON = st.one_of(
    mutated(js_seeds()),
    st.builds(_edit_json, st.integers(0, 3), st.sampled_from(["info", "dims", "strings", "top"]),
              st.one_of(st.sampled_from(["mode", "max_seq_len", "scale_factor", "step"]),
                        st.integers(0, 20)), _ODD),
)


def _check_hparams(hps) -> None:
    if not (hps.max_seq_len > 0 and hps.dec_rnn_size > 0 and hps.z_size > 0):
        raise PropertyViolation(f"accepted {hps}")


@given(MODEL_JSON)
def magenta_js(data: bytes) -> None:
    """A magenta.js model JSON read and sized (what the import checks before any model)."""
    from sketch_rnn.serving.magenta_js_import import read_model_json, to_hparams

    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), "m.gen.json", data)
        read = ours(read_model_json, path)
        if read is None:
            return
        hps = ours(to_hparams, path, *read)
    if hps is not None:
        _check_hparams(hps)
        for name, w in read[1].items():
            if w.dtype != np.float32 or not np.isfinite(w).all() or np.abs(w).max() > 10.001:
                raise PropertyViolation(f"weight {name!r} decoded to {w!r}")


@given(MODEL_JSON)
def magenta_js_import(data: bytes) -> None:
    """`sketch-rnn import --from magenta-js`: a run directory, or one line and none."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = write(folder, "m.gen.json", data)
        before = files_under(folder)
        argv = ["import", str(source), "--from", "magenta-js", "-o", str(folder / "run")]
        code, err = run_cli(argv)
        if code != 0:
            check_refusal(code, err, argv)
            if files_under(folder) != before:
                raise PropertyViolation(f"{argv} failed but left {files_under(folder) - before}")


@given(st.lists(st.integers(-32767, 32767), min_size=1, max_size=64))
def int16_codes(codes: list[int]) -> None:
    """export's codes -> base64 -> the import's weights -> export's codes: the same int16."""
    from sketch_rnn.serving.export import decode_weight, encode_weight

    q = np.array(codes, dtype="<i2")
    text = base64.b64encode(q.tobytes()).decode()
    w = decode_weight(text, (len(q),))
    again = np.frombuffer(base64.b64decode(encode_weight(w)), dtype="<i2")
    if not np.array_equal(again, q):
        raise PropertyViolation(f"codes {q} came back as {again}")


# --------------------------------------------------------------------------- Magenta folders
_CONFIG_KEYS = ["dec_model", "enc_model", "dec_rnn_size", "enc_rnn_size", "z_size",
                "num_mixture", "max_seq_len", "conditional", "batch_size", "learning_rate",
                "kl_weight", "recurrent_dropout_prob", "data_set", "use_magic"]


@given(st.integers(0, 5), st.dictionaries(st.sampled_from(_CONFIG_KEYS), _ODD, max_size=3),
       st.booleans())
def magenta_config(which: int, edits: dict, drop: bool) -> None:
    """`model_config.json` with hostile values -> our HParams, or one line naming the file."""
    from sketch_rnn.serving.magenta_files import read_config, to_hparams

    source = magenta_dirs()[which % len(magenta_dirs())]
    config = json.loads((source / "model_config.json").read_text())
    config.update(edits)
    if drop and edits:
        config.pop(next(iter(edits)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write(folder, "model_config.json", json.dumps(config))
        read = ours(read_config, folder)
        hps = None if read is None else ours(to_hparams, read, folder, (16, 4))
    if hps is not None:
        _check_hparams(hps)


_FOLDER_FILES = ["model_config.json", "checkpoint", "vector-3.index",
                 "vector-3.data-00000-of-00001"]


@given(st.integers(0, 5), st.sampled_from(_FOLDER_FILES), st.data())
def magenta_folder(which: int, name: str, data: st.DataObject) -> None:
    """`sketch-rnn import --from magenta` on a fixture folder with one file mutated (or
    removed): a run directory, or one line and none."""
    source = magenta_dirs()[which % len(magenta_dirs())]
    original = (source / name).read_bytes()
    content = data.draw(st.one_of(mutated((original,), max_edits=3), st.just(None)), label=name)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = folder / "model"
        shutil.copytree(source, model)
        (model / "outputs.npz").unlink()
        if content is None:
            (model / name).unlink()
        else:
            (model / name).write_bytes(content)
        before = files_under(folder)
        argv = ["import", str(model), "--from", "magenta", "-o", str(folder / "run"),
                "--scale-factor", "10"]
        code, err = run_cli(argv)
        if code != 0:
            check_refusal(code, err, argv)
            if files_under(folder) != before:
                raise PropertyViolation(f"{argv} failed but left {files_under(folder) - before}")


TARGETS = {"magenta_js": magenta_js, "magenta_js_import": magenta_js_import,
           "int16_codes": int16_codes, "magenta_config": magenta_config,
           "magenta_folder": magenta_folder}
CI_EXAMPLES = {"magenta_js_import": 6, "magenta_folder": 8}
SLOW = {"magenta_js_import", "magenta_folder"}
