"""Seconds per training step of SketchRNN, achieved GF/s and fraction of the matmul peak.

    python benchmarks/bench_train.py [--steps 8] [--configs paper,small,small@100]

GF/s uses the NOMINAL FLOP count of a step: every sketch at full length N_max, the
matmuls only (2*m*n*k each), the z part of the decoder input included at every step
(as if it were not hoisted out of the loop), backward = 2x forward. At the `paper`
preset (B 100, N_max 250, lstm decoder) this is 287.9 GF. The peak is a 4096^3 float32
matmul through the same Keras backend, measured before and after the timed runs (best
of both). Each configuration is timed in a fresh child process, so its peak RSS is that
of one training process. On a shared machine the best timed step is the figure (median
and CPU seconds are printed beside it). Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from sketch_rnn.hparams import HParams, preset  # noqa: E402  (no TF import)


def _cell_step_flops(kind: str, d_in: int, u: int, hps: HParams) -> int:
    """Forward matmul FLOPs of one cell step for one sketch."""
    flops = 2 * (d_in + u) * 4 * u  # [x, h] @ [W_xh; W_hh]
    if kind == "hyper":
        H, E = hps.hyper_num_units, hps.hyper_embedding_size
        flops += 2 * (d_in + u + H) * 4 * H  # hyper cell
        flops += 2 * H * 12 * E  # zw_x, zw_h, zb_h embeddings
        flops += 3 * 2 * 4 * E * u  # alpha_x, alpha_h, beta_h per gate
    return flops


def nominal_flops(hps: HParams, batch: int, n_max: int) -> float:
    """Nominal FLOPs of one training step (forward + backward = 3 x forward)."""
    K = 3 + 6 * hps.num_mixture
    u_d, z = hps.dec_rnn_size, hps.z_size
    per_step = 0
    per_sketch = 0
    d_dec = 5
    if hps.conditional:
        u_e = hps.enc_rnn_size
        per_step += 2 * _cell_step_flops(hps.enc_model, 5, u_e, hps)  # two directions
        per_sketch += 2 * 2 * (2 * u_e) * z  # mu, presig
        state = 2 * u_d + (2 * hps.hyper_num_units if hps.dec_model == "hyper" else 0)
        per_sketch += 2 * z * state  # h0, c0 = tanh(Dense(z))
        d_dec += z
    per_step += _cell_step_flops(hps.dec_model, d_dec, u_d, hps)
    per_step += 2 * u_d * K  # head
    forward = batch * (n_max * per_step + per_sketch)
    return 3.0 * forward


def _synthetic_batch(batch: int, n_max: int, seed: int = 0) -> dict:
    """Full-length random sketches: the nominal count assumes every sketch is N_max long."""
    rng = np.random.default_rng(seed)
    strokes = np.zeros((batch, n_max + 1, 5), np.float32)
    strokes[:, 0, 2] = 1.0
    strokes[:, 1:, :2] = rng.normal(0, 1, (batch, n_max, 2))
    lift = rng.random((batch, n_max)) < 0.1
    strokes[:, 1:, 2] = ~lift
    strokes[:, 1:, 3] = lift
    return {"strokes": strokes, "lengths": np.full((batch,), n_max, np.int32)}


def measure_matmul_peak(size: int = 4096, reps: int = 5) -> float:
    """Best GF/s of a size^3 float32 matmul through keras.ops."""
    import keras
    from keras import ops
    a = keras.random.normal((size, size), seed=1)
    b = keras.random.normal((size, size), seed=2)
    best = float("inf")
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        np.asarray(ops.sum(ops.matmul(a, b)[:1]))
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def run_child(preset_name: str, n_max: int, steps: int, overrides: str, tune: str = "") -> dict:
    """Time `steps` training steps after warm-up; report s/step and peak RSS."""
    knobs = dict(kv.split("=") for kv in tune.split(",") if kv)
    if "inter_op" in knobs:
        import tensorflow as tf
        tf.config.threading.set_inter_op_parallelism_threads(int(knobs["inter_op"]))
    import keras
    from sketch_rnn import cells
    from sketch_rnn.model import SketchRNN
    if "xla_loops" in knobs:
        cells.XLA_LOOPS = knobs["xla_loops"] == "1"
    compile_kw = {"jit_compile": knobs["jit"] == "1"} if "jit" in knobs else {}

    hps = preset(preset_name).replace(max_seq_len=n_max, batch_size=100)
    hps = hps.with_overrides(overrides)
    keras.utils.set_random_seed(0)
    model = SketchRNN(hps, seed=0)
    model.compile_for_training(**compile_kw)
    x = _synthetic_batch(hps.batch_size, n_max)
    t0 = time.perf_counter()
    model.train_on_batch(x)  # trace / compile
    warmup = time.perf_counter() - t0
    model.train_on_batch(x)
    times, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        logs = model.train_on_batch(x, return_dict=True)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    flops = nominal_flops(hps, hps.batch_size, n_max)
    best = min(times)
    return {"preset": preset_name, "n_max": n_max, "s_per_step": best,
            "median_s": float(np.median(times)), "cpu_s": float(np.median(cpu)),
            "gflop": flops / 1e9, "gflops_per_s": flops / best / 1e9, "warmup_s": warmup,
            "cost": float(logs["cost"]), "dec_model": hps.dec_model,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--configs", default="paper,small,small@100",
                   help="preset[@N_max] list; N_max defaults to the preset's")
    p.add_argument("--hparams", default="", help="extra k=v overrides for every config")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tune", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        name, n_max = args.child.split("@")
        print(json.dumps(run_child(name, int(n_max), args.steps, args.hparams, args.tune)))
        return 0

    assert abs(nominal_flops(preset("paper"), 100, 250) / 1e9 - 287.9) < 0.05
    print(f"nominal GF per step at paper (B 100, N_max 250, lstm): "
          f"{nominal_flops(preset('paper'), 100, 250) / 1e9:.1f}")
    import keras
    peak = measure_matmul_peak()
    results = {}
    for cfg in args.configs.split(","):
        name, _, n = cfg.partition("@")
        n_max = int(n) if n else preset(name).max_seq_len
        cmd = [sys.executable, os.path.abspath(__file__), "--child", f"{name}@{n_max}",
               "--steps", str(args.steps), "--hparams", args.hparams, "--tune", args.tune]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        results[cfg] = json.loads(out.stdout.strip().splitlines()[-1])
    # the peak again: on a shared machine the best of both is the closer to the truth
    peak = max(peak, measure_matmul_peak())
    print(f"backend {keras.backend.backend()}, fp32 4096^3 matmul peak (best of 12): "
          f"{peak:.1f} GF/s; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("s/step: best of the timed steps (median and CPU seconds beside it); "
          "GF/s and fraction of peak from the best")
    for cfg, r in results.items():
        r["fraction_of_peak"] = r["gflops_per_s"] / peak
        print(f"{cfg:>12}: {r['s_per_step']:.3f} s/step (median {r['median_s']:.3f}, "
              f"CPU {r['cpu_s']:.2f} s), {r['gflop']:.1f} GF nominal, "
              f"{r['gflops_per_s']:.1f} GF/s = {100 * r['fraction_of_peak']:.0f}% of peak, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB, first step {r['warmup_s']:.1f} s")
    summary = {"backend": keras.backend.backend(), "peak_gflops_per_s": round(peak, 1),
               "cpu_count": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2)}
    for cfg, r in results.items():
        key = cfg.replace("@", "_n")
        summary[f"{key}_s_per_step"] = round(r["s_per_step"], 4)
        summary[f"{key}_median_s_per_step"] = round(r["median_s"], 4)
        summary[f"{key}_gflops_per_s"] = round(r["gflops_per_s"], 1)
        summary[f"{key}_peak_rss_mib"] = round(r["peak_rss_mib"])
    if "paper" in results:
        summary["fraction_of_peak"] = round(results["paper"]["fraction_of_peak"], 3)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
