"""Sampling speed, with the gain of the compiled loop kept apart from the gain of batching.

Three ways to draw sketches from one randomly initialised model, in the same process:
  (a) stepwise: `reference.stepwise_decode`, one sketch at a time, one framework call per
      point and NumPy sampling in between (the original's `sample()` with `sess.run`);
  (b) loop, n=1: `decode_loop.run_sampler` on a batch of ONE, one compiled call per sketch;
  (c) loop, batched: `decode_loop.run_sampler` on n sketches (default 100) in one call.
b/a is what compiling the whole loop buys, c/b what batching buys; c/a, their product, is
what a single "speedup" would have mixed up.

Only executed work is counted: every sketch runs all N_max steps (stop_early=False), the
points each call actually returned are counted, and a rate is those points / N_max per
second (full-length sketches/s). Each variant gets one untimed first call (tracing and
compiling); then rounds interleave the variants, so a burst of load from other processes
on a shared machine hits them alike, and each reports its median and best round. The
gains are given from the medians and from the bests. Ends with one JSON line.

    python benchmarks/bench_sample.py [--preset paper] [--n 100] [--stepwise 3] [--single 10]
    python benchmarks/bench_sample.py --preset tiny --hparams max_seq_len=20 --n 8 \\
        --stepwise 1 --single 2 --repeats 1        # smoke
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = ("stepwise", "loop_n1", "loop_batched")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--hparams", default=None, help='overrides, "k=v,..."')
    ap.add_argument("--n", type=int, default=100, help="batch of the batched loop (c)")
    ap.add_argument("--stepwise", type=int, default=3, help="sketches per round for (a)")
    ap.add_argument("--single", type=int, default=10, help="sketches per round for (b)")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds")
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import keras

    from sketch_rnn.core.hparams import preset
    from sketch_rnn.generation import decode_loop, reference, sampling
    from sketch_rnn.model.vae import SketchRNN

    hps = preset(args.preset).with_overrides(args.hparams)
    steps, tau = hps.max_seq_len, args.temperature
    model = SketchRNN(hps, seed=args.seed)
    count = max(args.n, args.stepwise, args.single)
    z = sampling.prior_z(count, hps.z_size, args.seed) if hps.conditional else None
    noise = sampling.step_noise(count, steps, args.seed)  # (count, N_max, 4)
    zs = lambda i, j: None if z is None else z[i:j]  # noqa: E731
    print(f"backend {keras.backend.backend()}, preset {args.preset}: dec {hps.dec_model} "
          f"{hps.dec_rnn_size}, M={hps.num_mixture}, z={hps.z_size}, {steps} steps per "
          f"sketch, cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}", flush=True)

    # each returns the points it actually produced (sketches x steps run)
    def stepwise() -> int:
        return sum(len(reference.stepwise_decode(model, None if z is None else z[i], noise[i],
                                                 tau, stop_early=False))
                   for i in range(args.stepwise))

    def loop_n1() -> int:
        return sum(decode_loop.run_sampler(model, zs(i, i + 1), noise[i:i + 1], tau,
                                        stop_early=False)[0].shape[1]
                   for i in range(args.single))

    def loop_batched() -> int:
        strokes, _ = decode_loop.run_sampler(model, zs(0, args.n), noise[:args.n], tau,
                                          stop_early=False)
        return strokes.shape[0] * strokes.shape[1]

    runs = {"stepwise": (args.stepwise, stepwise), "loop_n1": (args.single, loop_n1),
            "loop_batched": (args.n, loop_batched)}

    def timed(name: str) -> float:
        """Full-length sketches per second of one round of `name` (executed points only)."""
        n, fn = runs[name]
        t0 = time.perf_counter()
        points = fn()
        dt = time.perf_counter() - t0
        assert points == n * steps, f"{name}: {points} points, expected {n} x {steps}"
        return points / steps / dt

    for name in VARIANTS:  # the first call traces and compiles
        t0 = time.perf_counter()
        runs[name][1]()
        print(f"{name:12s}: first call (compiles) {time.perf_counter() - t0:.1f} s", flush=True)
    rates = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name in VARIANTS:
            rates[name].append(timed(name))
    stat = {name: {"median": statistics.median(r), "best": max(r)} for name, r in rates.items()}
    for name in VARIANTS:
        n, s = runs[name][0], stat[name]
        print(f"{name:12s}: {n:4d} sketch(es) a round, {args.repeats} rounds: "
              f"median {s['median']:9.2f}, best {s['best']:9.2f} sketches/s "
              f"({1e3 / (s['median'] * steps):.3f} ms per point, median)", flush=True)

    a, b, c = (stat[name] for name in VARIANTS)
    gains = {}
    for key in ("median", "best"):
        gains[f"compiled_loop_gain_{key}"] = b[key] / a[key]  # (b) / (a)
        gains[f"batching_gain_{key}"] = c[key] / b[key]  # (c) / (b)
        gains[f"total_gain_{key}"] = c[key] / a[key]
    print(f"compiled-loop gain b/a: {gains['compiled_loop_gain_median']:.1f}x (median), "
          f"{gains['compiled_loop_gain_best']:.1f}x (best); batching gain c/b at n={args.n}: "
          f"{gains['batching_gain_median']:.1f}x (median), {gains['batching_gain_best']:.1f}x "
          f"(best); together c/a {gains['total_gain_median']:.1f}x (median)")
    report = {f"{name}_sketches_per_s_{key}": round(stat[name][key], 3)
              for name in VARIANTS for key in ("median", "best")}
    report.update({k: round(v, 2) for k, v in gains.items()})
    report.update({"n_batched": args.n, "n_stepwise": args.stepwise, "n_single": args.single,
                   "repeats": args.repeats, "steps_per_sketch": steps, "temperature": tau,
                   "preset": args.preset, "backend": keras.backend.backend(),
                   "cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2)})
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
