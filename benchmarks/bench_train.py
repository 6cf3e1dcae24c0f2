"""Seconds per training step of SketchRNN, with GF/s and fraction of the matmul peak from two
FLOP counts, so that neither a favourable count nor a lucky step can flatter the figure.

    python benchmarks/bench_train.py [--steps 8] [--configs paper,small,small@100]
    python benchmarks/bench_train.py --steps 2 --configs tiny@20 --peak-size 1024   # smoke
    python benchmarks/bench_train.py --configs small --real-batches paper   # + real sheep batches
    python benchmarks/bench_train.py --configs small --profile     # + time of each piece

The `paper` step at batch 100 is always measured twice, side by side: today's path
(precision float32, the encoder's gates recomputed: TODAY_TUNE) and the new path (bfloat16
where the CPU multiplies bf16 natively, `model.precision.default_precision`, else float32,
and the benchmark says why). The final JSON line's `paper_step_ratio` is today's median step
over the new one's (with `--real-batches`: on real sheep batches, of the steps'
distribution over the length buckets, `train_paths.run_real_child`). Without it both paths
time the same synthetic full-length batch, which shows precision and the encoder's stored
gates but not bucketing.

What is counted: `flop_counts.py` (both counts by formula from the hparams, matmuls only).

Utilisation = GF/s / peak, the peak a size^3 matmul through the same Keras backend at the
path's precision (float32, or bf16 for the bf16 path), measured before and after the timed
runs (best of both). Both the best and the median step
are reported, with GF/s from each; on a shared machine the median is the sober figure.
Each configuration runs in a fresh child process (its peak RSS is one training process).
`flop_counts.self_check` pins the counts (run on every start). Ends with one JSON line.
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flop_counts import count_flops, nominal_flops, self_check  # noqa: E402
from sketch_rnn.core.hparams import preset  # noqa: E402  (no TF import)
from sketch_rnn.core.machine import cpu_model  # noqa: E402
from train_paths import TODAY_TUNE, fast_path, knobs, real_batch_comparison, run_real_child  # noqa: E402,E501

def _synthetic_batch(batch: int, n_max: int, seed: int = 0) -> dict:
    """Full-length random sketches: both counts assume every sketch is N_max long."""
    rng = np.random.default_rng(seed)
    strokes = np.zeros((batch, n_max + 1, 5), np.float32)
    strokes[:, 0, 2] = 1.0
    strokes[:, 1:, :2] = rng.normal(0, 1, (batch, n_max, 2))
    lift = rng.random((batch, n_max)) < 0.1
    strokes[:, 1:, 2], strokes[:, 1:, 3] = ~lift, lift
    return {"strokes": strokes, "lengths": np.full((batch,), n_max, np.int32)}


def measure_matmul_peak(size: int = 4096, reps: int = 5, precision: str = "float32") -> float:
    """Best GF/s of a size^3 matmul through keras.ops at `precision` (model.precision)."""
    import keras
    from keras import ops

    a = keras.random.normal((size, size), seed=1)
    b = keras.random.normal((size, size), seed=2)
    if precision != "float32":  # operands cast once, outside the timing
        a, b = ops.cast(a, precision), ops.cast(b, precision)
    best = float("inf")
    for _ in range(reps + 1):
        t0 = time.perf_counter()
        np.asarray(ops.cast(ops.sum(ops.matmul(a, b)[:1]), "float32"))
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def _median_time(fn, reps: int) -> float:
    fn()  # trace
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _bound(fn, *args):
    """fn(*args) as a function of nothing (tf.function would make default arguments inputs)."""
    def call():
        return fn(*args)
    return call


def _fetch(f):
    """Run f and bring every output tensor to the host (the timing then includes it all)."""
    out = [t for t in tf_flatten(f()) if t is not None]
    assert out, "a timed piece computed nothing"
    return [np.asarray(t) for t in out]


def tf_flatten(x):
    import tensorflow as tf
    return tf.nest.flatten(x)


def profile_pieces(model, x: dict, reps: int) -> dict:
    """Median seconds of each piece of a training step, each forward and backward on its own:
    the encoder, the decoder's loop, the head and the loss, all gradients, the optimizer."""
    import tensorflow as tf

    from sketch_rnn.model.mixture import batch_cost, sketch_loss_terms
    from sketch_rnn.model.precision import dense
    hps = model.hps
    strokes, lengths = tf.constant(x["strokes"]), tf.constant(x["lengths"])
    n, batch, u = strokes.shape[1] - 1, strokes.shape[0], hps.dec_rnn_size
    rng = np.random.default_rng(0)
    z = tf.constant(rng.normal(size=(batch, hps.z_size)).astype(np.float32))
    hs_c = tf.constant(rng.normal(size=(n, batch, u)).astype(np.float32))
    weights = model.trainable_variables

    def grads_of(loss_fn, sources):
        with tf.GradientTape() as tape:
            tape.watch([t for t in sources if isinstance(t, tf.Tensor)])
            loss = loss_fn()
        return tape.gradient(loss, sources)

    def encoder():
        mu, presig = model._encode_tm(strokes, lengths, training=True)
        return tf.reduce_sum(mu) + tf.reduce_sum(presig)

    def decoder_loop():
        s_prev = tf.transpose(strokes[:, :-1], (1, 0, 2))  # (N, B, 5)
        mask = model._keep_bool((n, batch, u), hps.recurrent_dropout_prob)
        hs, _ = model.decoder.run(s_prev, z, model.initial_state(z, batch), mask,
                                  hps.recurrent_dropout_prob)
        return tf.reduce_sum(hs * hs_c)

    def head_loss():
        raw = dense(model.head, hs_c, hps.precision)  # (N, B, K)
        terms = sketch_loss_terms(raw, strokes, lengths)
        return ops_mean(terms["stroke"]) + ops_mean(terms["pen"])

    def full():
        out = model({"strokes": strokes, "lengths": lengths}, training=True)
        cost, _, _ = batch_cost(sketch_loss_terms(out["raw"], strokes, lengths, out.get("mu"),
                                                  out.get("presig")), model.kl_weight, hps)
        return cost

    ops_mean = tf.reduce_mean
    pieces = {}
    for name, fn, sources in (("encoder_fwd_bwd", encoder, weights),
                              ("decoder_loop_fwd_bwd", decoder_loop, weights),
                              ("head_loss_fwd_bwd", head_loss, [model.head.kernel,
                                                                model.head.bias, hs_c]),
                              ("forward_and_loss", full, None), ("all_gradients", full, weights)):
        if not hps.conditional and name == "encoder_fwd_bwd":
            continue
        f = tf.function(fn if sources is None else _bound(grads_of, fn, sources))
        pieces[name] = _median_time(_bound(_fetch, f), reps)
    grads = list(tf.function(_bound(grads_of, full, weights))())
    apply = tf.function(lambda: model.optimizer.apply(grads, weights))
    pieces["optimizer_apply"] = _median_time(lambda: (apply(), model.optimizer.iterations.numpy()),
                                             reps)
    return pieces


def run_child(preset_name: str, n_max: int, steps: int, overrides: str, tune: str = "",
              profile: bool = False, batch: int = 100) -> dict:
    """Time `steps` training steps after warm-up; report both counts, s/step and peak RSS."""
    tuned = knobs(tune)
    if "inter_op" in tuned:
        import tensorflow as tf
        tf.config.threading.set_inter_op_parallelism_threads(int(tuned["inter_op"]))
    import keras

    from sketch_rnn.model.vae import SketchRNN
    options = fast_path(tuned)
    compile_kw = {"jit_compile": tuned["jit"] == "1"} if "jit" in tuned else {}

    hps = preset(preset_name).replace(max_seq_len=n_max, batch_size=batch)
    hps = hps.with_overrides(overrides)
    keras.utils.set_random_seed(0)
    model = SketchRNN(hps, seed=0, options=options)
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
    # the same conditions that pick the model's paths (cells.LSTM.run, bidirectional_lstm)
    cudnn = hps.dec_model == "lstm" and not hps.use_recurrent_dropout and options.cudnn()
    executed = count_flops(hps, hps.batch_size, n_max, recompute=options.encoder_recompute,
                           cudnn=cudnn)
    pieces = profile_pieces(model, x, max(3, steps // 2)) if profile else {}
    return {"preset": preset_name, "n_max": n_max, "batch": hps.batch_size,
            "precision": hps.precision, "pieces": pieces,
            "best_s": min(times), "median_s": float(np.median(times)),
            "cpu_s": float(np.median(cpu)), "warmup_s": warmup, "cost": float(logs["cost"]),
            "dec_model": hps.dec_model, "enc_model": hps.enc_model, "cudnn_decoder": cudnn,
            "nominal_gf": nominal_flops(hps, hps.batch_size, n_max) / 1e9,
            "executed_gf": (executed["model"] + executed["recompute"]) / 1e9,
            "recompute_gf": executed["recompute"] / 1e9,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_config(args, name: str, n_max: int, hparams: str, tune: str, batch: int) -> dict:
    """One configuration in a fresh child process (its peak RSS is one training process)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", f"{name}@{n_max}",
           "--steps", str(args.steps), "--hparams", hparams, "--tune", tune,
           "--batch", str(batch)] + (["--profile"] if args.profile else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(1)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _plan(args, new_precision: str) -> list[tuple]:
    """(label, preset, N_max, hparams, tune, batch) of every child: the --configs at each
    --batch-sizes, then the `paper` step at B 100 on today's path and on the new one."""
    plan = []
    for cfg in filter(None, args.configs.split(",")):
        name, _, n = cfg.partition("@")
        n_max = int(n) if n else preset(name).max_seq_len
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            label = cfg + (f"#b{batch}" if batch != 100 else "")
            plan.append((label, name, n_max, args.hparams, args.tune, batch))
    if args.paper_compare:
        extra = f",{args.hparams}" if args.hparams else ""
        plan.append(("paper_today", "paper", 250, f"precision=float32{extra}",
                     ",".join(filter(None, [TODAY_TUNE, args.tune])), 100))
        plan.append(("paper_new", "paper", 250, f"precision={new_precision}{extra}",
                     args.tune, 100))
    return plan


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    p.add_argument("--configs", default="paper,small,small@100",
                   help="preset[@N_max] list; N_max defaults to the preset's ('' for none)")
    p.add_argument("--batch-sizes", default="100", help="B of every --configs entry, e.g. "
                   "100,200,400 (per-sketch cost of a larger batch)")
    p.add_argument("--no-paper-compare", dest="paper_compare", action="store_false",
                   help="skip the paper step of today's path against the new path")
    p.add_argument("--profile", action="store_true",
                   help="also time the pieces of each step (encoder, decoder loop, head and "
                        "loss, all gradients, optimizer)")
    p.add_argument("--hparams", default="", help="extra k=v overrides for every config")
    p.add_argument("--peak-size", type=int, default=4096,
                   help="matmul size of the peak measurement (smaller only for smoke runs)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tune", default="", help=argparse.SUPPRESS)
    p.add_argument("--real-batches", default="", metavar="PRESET",
                   help="also time PRESET on real sheep batches, full-length vs bucketed "
                   "(e.g. paper; reports PRESET_step_ratio)")
    p.add_argument("--real-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=100, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.real_child:
        name, flag = args.real_child.split("@")
        print(json.dumps(run_real_child(name, flag == "1", args.steps, args.hparams,
                                        args.tune)))
        return 0

    self_check()
    if args.child:
        name, n_max = args.child.split("@")
        print(json.dumps(run_child(name, int(n_max), args.steps, args.hparams, args.tune,
                                   args.profile, args.batch)))
        return 0

    from sketch_rnn.model.precision import default_precision, native_bf16
    new_precision, why = default_precision()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} CPUs; native bf16: "
          f"{native_bf16() or 'no (neither avx512_bf16 nor amx_bf16)'}")
    print(f"new path: precision {new_precision} ({why})" + (
        "; on this CPU the default stays float32 and the paper step can only gain from "
        "bucketing (--real-batches paper)" if new_precision == "float32" else ""))
    paper, ex = preset("paper"), count_flops(preset("paper"), 100, 250)
    gf = [nominal_flops(paper, 100, 250) / 1e9, (ex["model"] + ex["recompute"]) / 1e9]
    new_gates = "rebuilds" if fast_path({}).encoder_recompute else "stores"
    print(f"GF per step at paper (B 100, N_max 250, lstm): nominal {gf[0]:.1f}, executed "
          f"{gf[1]:.1f} on today's path (encoder recompute {ex['recompute'] / 1e9:.1f} of it; "
          f"the new path {new_gates} the gates)")
    import keras
    precisions = sorted({"float32", new_precision})
    peaks = {pr: measure_matmul_peak(args.peak_size, precision=pr) for pr in precisions}
    results = {label: _run_config(args, *rest) for label, *rest in _plan(args, new_precision)}
    # the peaks again: on a shared machine the best of both is the closer to the truth
    peaks = {pr: max(v, measure_matmul_peak(args.peak_size, precision=pr))
             for pr, v in peaks.items()}
    print(f"backend {keras.backend.backend()}, {args.peak_size}^3 matmul peak (best of 12): "
          + ", ".join(f"{pr} {v:.1f} GF/s" for pr, v in peaks.items())
          + f"; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{args.steps} timed steps per config; GF/s and % of peak from the best | median step")
    summary = {"backend": keras.backend.backend(), "peak_gflops_per_s": round(peaks["float32"], 1),
               "peak_bf16_gflops_per_s": round(peaks.get("bfloat16", 0.0), 1) or None,
               "peak_size": args.peak_size, "steps": args.steps, "cpu_count": os.cpu_count(),
               "cpu": cpu_model(), "native_bf16": native_bf16(),
               "new_precision": new_precision, "new_precision_why": why,
               "load_average": round(os.getloadavg()[0], 2)}
    for cfg, r in results.items():
        key = cfg.replace("@", "_n").replace("#", "_")
        peak = peaks[r["precision"]]
        print(f"{cfg:>12}: best {r['best_s']:.3f} s/step, median {r['median_s']:.3f} "
              f"(CPU {r['cpu_s']:.2f} s), B {r['batch']}, {r['precision']}, first step "
              f"{r['warmup_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB"
              + (", cuDNN" if r["cudnn_decoder"] else ""))
        for name in ("best_s", "median_s", "cpu_s", "nominal_gf", "executed_gf", "recompute_gf",
                     "peak_rss_mib"):
            summary[f"{key}_{name}"] = round(r[name], 4 if name != "peak_rss_mib" else None)
        summary[f"{key}_per_sketch_ms_median"] = round(1e3 * r["median_s"] / r["batch"], 2)
        for count in ("nominal", "executed"):
            rates = [r[f"{count}_gf"] / r[f"{stat}_s"] for stat in ("best", "median")]
            for stat, rate in zip(("best", "median"), rates):
                summary[f"{key}_{count}_gflops_per_s_{stat}"] = round(rate, 1)
                summary[f"{key}_{count}_fraction_of_peak_{stat}"] = round(rate / peak, 3)
            note = f" (encoder recompute {r['recompute_gf']:.4g} GF of it)" * (count == "executed")
            print(f"{'':14}{count:>8} {r[f'{count}_gf']:8.4g} GF: {rates[0]:.1f} | {rates[1]:.1f}"
                  f" GF/s = {100 * rates[0] / peak:.0f}% | {100 * rates[1] / peak:.0f}% of the "
                  f"{r['precision']} peak" + note)
        for piece, sec in r["pieces"].items():
            summary[f"{key}_piece_{piece}_s"] = round(sec, 4)
            print(f"{'':14}piece {piece:<22} {sec:8.3f} s ({100 * sec / r['median_s']:.0f}% of "
                  "the median step)")
    if args.paper_compare:
        today, new = results["paper_today"], results["paper_new"]
        summary["paper_step_ratio"] = round(today["median_s"] / new["median_s"], 3)
        summary["paper_step_ratio_best"] = round(today["best_s"] / new["best_s"], 3)
        print(f"paper step at B 100: today (float32) median {today['median_s']:.3f} s, new "
              f"({new['precision']}) median {new['median_s']:.3f} s: paper_step_ratio "
              f"{summary['paper_step_ratio']:.2f} (best {summary['paper_step_ratio_best']:.2f})")
    if args.real_batches and real_batch_comparison(args.real_batches, args.steps, args.hparams,
                                                   peaks["float32"], summary, new_precision,
                                                   args.tune):
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
