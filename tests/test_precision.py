"""hparam `precision`: bf16 matmuls agree with float32 within bf16's rounding, a bf16 run
resumes bit for bit, a resume with another precision is refused by name unless asked for,
the CPU detection reads /proc/cpuinfo's flags, and runs saved before the field are float32.

bf16 keeps 8 significant bits (7 stored): round-to-nearest puts each operand within
U = 2^-8 of its value (relative), and TensorFlow's CPU kernels round the product once more
on the way out. Which kernel multiplies depends on the machine (`ONEDNN_BF16`): oneDNN's
accumulates in float32; TensorFlow's own (Eigen), used where oneDNN's is not, also rounds
partial sums, so there the bounds below are looser (measured on one machine both ways, with
TF_ENABLE_ONEDNN_OPTS=0 for Eigen: worst error 0.31 U of sum |a||b| with oneDNN, 0.76 U with
Eigen).
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from sketch_rnn.core.errors import SketchRNNError
from sketch_rnn.core.hparams import HParams, preset
from sketch_rnn.model.precision import default_precision, matmul, native_bf16
from sketch_rnn.training import checkpoint as ckpt_io
from sketch_rnn.training import runs
from sketch_rnn.training.trainer import plan_run

from conftest import (ROOT, SHEEP, TINY_HPARAMS, fast_first, fingerprint, sigterm_after, train_cmd,
                      train_tiny, wait_for_step)

BF16 = TINY_HPARAMS.replace("precision=float32", "precision=bfloat16")
N, K = 20, 13
U = 2.0 ** -8  # bf16's unit roundoff (8 significant bits): |round(x) - x| <= U |x|


def _onednn_multiplies_bf16() -> bool:
    """Whether TensorFlow hands bf16 matmuls to oneDNN on this machine: its oneDNN ops are on
    (by default only where the CPU has AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX;
    TF_ENABLE_ONEDNN_OPTS overrides) and the CPU has AVX-512F, TensorFlow's own condition
    for oneDNN's bf16 kernels. On an AVX2-only CPU neither holds."""
    from tensorflow.python.framework.test_util import IsMklEnabled

    from sketch_rnn.core.machine import cpu_flags

    return bool(IsMklEnabled()) and "avx512f" in cpu_flags()


ONEDNN_BF16 = _onednn_multiplies_bf16()


def bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 -> nearest bfloat16 (ties to even), kept as float32: NumPy bit arithmetic."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


# --------------------------------------------------------------------------- the matmul
def test_bf16_round_reference_itself() -> None:
    x = np.array([1.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 1.0 + 2 ** -7, 1.0 + 2 ** -9, -3.0],
                 np.float32)  # spacing 2^-7 above 1; the 2^-8 cases are ties, to even
    assert bf16_round(x).tolist() == [1.0, 1.0, 1.0 + 2 ** -6, 1.0 + 2 ** -7, 1.0, -3.0]


@pytest.mark.parametrize("transpose_a", [False, True])
def test_bf16_matmul_is_the_product_of_rounded_operands(transpose_a) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(256, 100) if transpose_a else (100, 256)).astype(np.float32)
    b = rng.normal(size=(256, 1024) if transpose_a else (256, 1024)).astype(np.float32)
    ra, rb = bf16_round(a).astype(np.float64), bf16_round(b).astype(np.float64)
    if transpose_a:
        ra, a_abs = ra.T, np.abs(a.T)
    else:
        a_abs = np.abs(a)
    out = np.asarray(matmul(a, b, "bfloat16", transpose_a=transpose_a))
    assert out.dtype == np.float32
    ref, scale = ra @ rb, a_abs.astype(np.float64) @ np.abs(b)  # (100, 1024)
    if ONEDNN_BF16:  # one output rounding (<= 2^-9 relative) plus float32 accumulation
        assert np.all(np.abs(out - ref) <= U * np.abs(ref) + 2.0 ** -16 * scale)
    else:  # partial sums rounded to bf16 too: within bf16's precision of sum |a||b|
        assert np.all(np.abs(out - ref) <= U * scale)
    # and it is not a float32 product: the operands' rounding shows
    exact = (a.T if transpose_a else a).astype(np.float64) @ b
    assert np.max(np.abs(out - exact) / scale) > 2.0 ** -12
    same = np.asarray(matmul(a, b, "float32", transpose_a=transpose_a))
    assert np.max(np.abs(same - exact) / scale) < 2.0 ** -18


# --------------------------------------------------------------------------- a tiny model
def _loss_and_grads(hps: HParams, seed: int, jitter: float = 0.0):
    """(loss, gradients, names) of one training batch; `jitter`: every weight first
    multiplied by 1 + jitter * U(-1, 1), a float32 perturbation as large as bf16 rounding."""
    import tensorflow as tf

    from sketch_rnn.data import load_data, train_batch
    from sketch_rnn.model.vae import SketchRNN

    data = load_data([SHEEP], hps.max_seq_len)
    strokes, lengths = train_batch(data.train, hps, 0, 0)
    model = SketchRNN(hps, seed=seed)
    rng = np.random.default_rng(0)
    for v in model.trainable_variables if jitter else []:
        x = np.asarray(v)
        v.assign((x * (1 + jitter * rng.uniform(-1, 1, x.shape))).astype(np.float32))
    with tf.GradientTape() as tape:
        terms = model.loss_terms(strokes, lengths, training=True)
        loss = tf.reduce_mean(terms["stroke"]) + tf.reduce_mean(terms["pen"])
    grads = tape.gradient(loss, model.trainable_variables)
    return float(loss), [np.asarray(g) for g in grads], [v.path for v in model.trainable_variables]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    norm = np.linalg.norm(a)
    return float(np.linalg.norm(a - b) / norm) if norm else float(np.linalg.norm(b))


@pytest.mark.parametrize("cells", fast_first(["lstm", "layer_norm,hyper"]))
def test_bf16_forward_and_gradients_agree_with_float32(cells) -> None:
    """Independent reference: the float32 model with the same weights and batch. Each bf16
    matmul is within ~3U of the float32 one (two operands, one output); through the fused
    LSTM loops and the head the measured difference is 1-2 U of each gradient's norm, so
    4 U bounds it. Layer norm divides by the pre-activations' spread, which at init can
    amplify any relative change: there the bound is also twice what a float32 jitter of
    the weights by U does to each gradient (the model's own conditioning, measured).
    Where TensorFlow's own kernel multiplies bf16 (not `ONEDNN_BF16`), whose error per
    matmul is about twice oneDNN's (module docstring), the bound is twice as wide."""
    enc, _, dec = cells.partition(",")
    hps = preset("tiny").replace(max_seq_len=64, enc_model=enc, dec_model=dec or enc)
    loss32, g32, names = _loss_and_grads(hps, seed=3)
    loss16, g16, _ = _loss_and_grads(hps.replace(precision="bfloat16"), seed=3)
    assert abs(loss16 - loss32) <= U * abs(loss32)
    rel = {n: _rel(a, b) for n, a, b in zip(names, g32, g16)}
    floor = (4 if ONEDNN_BF16 else 8) * U
    bound = {n: floor for n in names}
    if enc != "lstm":
        _, g_jit, _ = _loss_and_grads(hps, seed=3, jitter=U)
        bound = {n: max(floor, 2 * _rel(a, b)) for n, a, b in zip(names, g32, g_jit)}
    assert all(rel[n] < bound[n] for n in names), {n: (rel[n], bound[n]) for n in names}
    assert max(rel.values()) > U / 64, "bf16 gave the float32 bits: not in bf16 at all"
    # control: the same comparison against another seed's model is far outside the bound
    _, g_other, _ = _loss_and_grads(hps, seed=4)
    assert min(_rel(a, b) for a, b in zip(g32, g_other) if np.any(a)) > 0.1


# --------------------------------------------------------------------------- exact resume
@pytest.fixture(scope="session")  # not module: the `kills` test runs on its own worker
def straight_bf16(tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("bf16") / "run"
    trainer = train_tiny(run_dir, N, hparams=BF16)
    assert trainer.hps.precision == "bfloat16"
    state = json.loads((ckpt_io.newest_checkpoint(run_dir).path / "state.json").read_text())
    assert state["hparams"]["precision"] == "bfloat16"  # recorded in the run
    return run_dir, fingerprint(run_dir)


@pytest.mark.slow  # the resume check (test_resume) in another precision: three tiny runs
def test_bf16_stop_at_k_and_resume_gives_same_fingerprint(straight_bf16, twenty_step_run,
                                                          tmp_path) -> None:
    run_dir = tmp_path / "run"
    train_tiny(run_dir, K, hparams=BF16)
    assert runs.info(run_dir)["step"] == K
    resumed = train_tiny(run_dir, N, hparams="")  # no --hparams: the saved precision wins
    assert resumed.hps.precision == "bfloat16"
    assert fingerprint(run_dir) == straight_bf16[1]
    # and a float32 run of the same seed ends elsewhere: the precision did change the math
    assert N == 20 and fingerprint(twenty_step_run) != straight_bf16[1]


@pytest.mark.slow
@pytest.mark.kills
def test_bf16_sigterm_then_sigkill_then_resume_is_exact(straight_bf16, tmp_path) -> None:
    """One bf16 run stopped both ways: SIGTERM (it saves where it is), resumed, SIGKILL after
    a checkpoint (it resumes from that one), resumed to the end: the straight run's bits."""
    run_dir = tmp_path / "run"
    stopped = sigterm_after(run_dir, 5, train_cmd(run_dir, N, hparams=BF16))
    assert 5 <= stopped < N
    since = time.time()
    proc = subprocess.Popen(train_cmd(run_dir, N, hparams=BF16), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_step(run_dir, max(11, stopped + 1), proc, since)  # ckpt-10, or the SIGTERM's own if later
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    assert stopped <= ckpt_io.newest_checkpoint(run_dir, False).step < N
    subprocess.run(train_cmd(run_dir, N, hparams=BF16), cwd=ROOT, check=True,
                   capture_output=True)
    assert fingerprint(run_dir) == straight_bf16[1]


# --------------------------------------------------------------------------- changing it
@pytest.mark.slow  # trains a tiny run (the fast loop's resume check is test_resume's stop mid-way)
def test_resume_with_another_precision_is_refused_by_name_unless_asked(ten_step_run,
                                                                       tmp_path, capsys) -> None:
    """A float32 run (10 steps) asked to go on in bfloat16: refused by name, then allowed."""
    from sketch_rnn import cli

    run_dir, at = tmp_path / "run", 10
    shutil.copytree(ten_step_run, run_dir)
    with pytest.raises(SketchRNNError, match="cannot change precision .*--allow-precision-change"):
        plan_run(run_dir, None, None, "precision=bfloat16", at + 2, None)
    # the command a user types (in this process: the exit code and stderr are cli.main's)
    argv = train_cmd(run_dir, at + 2, hparams="precision=bfloat16")[3:]  # after `-m sketch_rnn`
    assert cli.main(argv) == 2 and "cannot change precision" in capsys.readouterr().err
    assert runs.info(run_dir)["step"] == at  # nothing trained, nothing written
    assert cli.main(argv + ["--allow-precision-change"]) == 0
    state = json.loads((ckpt_io.newest_checkpoint(run_dir).path / "state.json").read_text())
    assert state["step"] == at + 2 and state["hparams"]["precision"] == "bfloat16"
    assert state["lineage"] == [{"kind": "path_change", "step": at, "field": "precision",
                                 "from": "float32", "to": "bfloat16"}]
    assert "path_changes" not in state  # the one lineage holds it (run_state)
    # a later plain resume keeps the record and the new precision
    config = plan_run(run_dir, None, None, None, at + 4, None)
    assert config.hps.precision == "bfloat16"
    assert config.lineage == state["lineage"]


# --------------------------------------------------------------------------- detection
CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx2 avx512f {extra} avx512vl
"""


@pytest.mark.parametrize("extra, flag", [("avx512_bf16", "avx512_bf16"),
                                         ("amx_tile amx_bf16 avx512_bf16", "amx_bf16"),
                                         ("avx512_vnni avx512bw", None),
                                         ("bf16", None)])
def test_native_bf16_reads_the_flags(extra, flag) -> None:
    text = CPUINFO.format(extra=extra)
    assert native_bf16(text) == flag
    precision, why = default_precision(text)
    assert precision == ("bfloat16" if flag else "float32")
    assert (flag in why) if flag else ("emulated" in why)
    assert native_bf16("") is None
    # the preset's decoder decides too: `tiny` (32 units) stays float32, `small` (256) not
    assert default_precision(text, dec_rnn_size=32)[0] == "float32"
    assert default_precision(text, dec_rnn_size=256)[0] == precision
    assert native_bf16("model name : avx512_bf16 in a name\n") is None  # flags lines only


def test_new_run_without_precision_takes_the_cpus_and_says_why(tmp_path, caplog) -> None:
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("flags")).split()
    native = "amx_bf16" in flags or "avx512_bf16" in flags
    with caplog.at_level("INFO", logger="sketch_rnn"):
        config = plan_run(tmp_path / "new", [SHEEP], "small", "max_seq_len=64", 5, None)
    assert config.hps.precision == ("bfloat16" if native else "float32")
    assert f"precision {config.hps.precision}: " in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="sketch_rnn"):  # too small to gain from bf16
        config = plan_run(tmp_path / "tiny", [SHEEP], "tiny", "max_seq_len=64", 5, None)
    assert config.hps.precision == "float32"
    assert "precision float32: " in caplog.text
    assert ("too small" in caplog.text) if native else ("emulated" in caplog.text)
    explicit = plan_run(tmp_path / "new2", [SHEEP], "tiny", "precision=float32", 5, None)
    assert explicit.hps.precision == "float32"
    assert HParams().precision == "float32"  # the model-level default stays exact
    with pytest.raises(SketchRNNError, match="hparam precision='float16'"):
        HParams(precision="float16")


# --------------------------------------------------------------------------- old runs
@pytest.mark.slow  # trains a tiny run (the fast loop's resume check is test_resume's stop mid-way)
def test_run_saved_without_the_field_resumes_as_float32_exactly(ten_step_run, twenty_step_run,
                                                                tmp_path) -> None:
    straight = twenty_step_run  # float32, N = 20 steps without a stop
    run_dir = tmp_path / "old"
    shutil.copytree(ten_step_run, run_dir)  # the first 10 of the same run
    ckpt = ckpt_io.newest_checkpoint(run_dir).path
    state = json.loads((ckpt / "state.json").read_text())
    del state["hparams"]["precision"]  # as every run saved before the field
    (ckpt / "state.json").write_text(json.dumps(state))
    manifest = json.loads((ckpt / ckpt_io.MANIFEST).read_text())
    manifest["files"]["state.json"] = ckpt_io._sha256(ckpt / "state.json")
    (ckpt / ckpt_io.MANIFEST).write_text(json.dumps(manifest))
    config = plan_run(run_dir, None, None, None, N, None)  # no --hparams at all
    assert config.hps.precision == "float32" and config.lineage == []
    train_tiny(run_dir, N, hparams="")
    assert fingerprint(run_dir) == fingerprint(straight)
