"""Pen states along the model card's 25 prior samples (issue 25's legs target): for each
sample, how many points it drew, whether it ended before N_max, and the model's own
probability of lifting the pen at each step (softmax of the pen logits at tau 1) beside the
probability the sampler used at tau (logits / tau). Then, teacher-forced on the test split
(the decoder fed the true points, z drawn as `evaluate` draws it), the model's p_lift at the
points where the person did lift the pen. Prints a row per sample, then a JSON line.

    python studies/sheep_steps/pen_states.py checkpoints/sheep [--tau 0.25] [--seed 0]
    python studies/sheep_steps/pen_states.py checkpoints/sheep --discrete-temperature 0.625 \
        --grid grid.png     # the same z and noise with magenta.js's split temperature

With --discrete-temperature S the same codes and draws are decoded with the offsets at tau
and the mixture and pen logits divided by S instead, as `sketch-rnn sample
--discrete-temperature S` does and magenta.js's getPDF(state, tau, S) (its default S is
0.5 + 0.5 tau, 0.625 at tau 0.25), and drawn to --grid: what the browser library would draw
from the same codes. Not the paper's convention, which `sample` keeps by default.

The samples are those of `sketch-rnn report` (`sample(model, 25, tau, seed)`): the same z
and the same noise, decoded again with the raw mixture parameters recorded.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from scipy.special import softmax

FEW_LIFTS = 2  # a sheep's legs are strokes of their own: a sample lifting this rarely has none


def drawn(row: np.ndarray) -> tuple[int, bool, int]:
    """One sampled sketch (N, 5): the points before its end token, whether it ended before
    N_max, and the pen lifts among those points."""
    end = row[:, 4] > 0.5  # (N,)
    n_pts = int(np.argmax(end)) if end.any() else len(row)
    return n_pts, bool(end.any()), int(row[:n_pts, 3].sum())


def teacher_forced_lifts(run, tau: float, split) -> dict:
    """The model's pen distribution at the test split's real lifts, teacher-forced.

    For each step whose target point is a lift: p_lift at tau 1, whether lifting is the
    most likely state there (only then does a low temperature keep it), and p_lift at tau
    (logits / tau): the chance the sampler lifts at exactly that step. Against it, the
    constant predictor's p_lift: the share of the split's real points that are lifts."""
    from keras import ops

    from sketch_rnn.data.batches import eval_batches
    from sketch_rnn.model.mixture import split_params

    hps = run.model.hps
    at_lifts, tau_lifts, argmax_lifts, lifts, points = [], [], 0, 0, 0
    for strokes, lengths, weights in eval_batches(split, hps):
        out = run.model({"strokes": strokes, "lengths": lengths}, training=False)
        logits = np.asarray(ops.convert_to_numpy(split_params(out["raw"]).pen_logits),
                            np.float64).transpose(1, 0, 2)  # (B, N_max, 3)
        target = strokes[:, 1:, 2:5]  # (B, N_max, 3): the point each step predicts
        real = (np.arange(target.shape[1])[None] < lengths[:, None]) & (weights[:, None] > 0)
        lift = real & (target[..., 1] > 0.5)  # (B, N_max)
        p1 = softmax(logits, axis=-1)[lift]  # (n_lifts, 3)
        pt = softmax(logits / tau, axis=-1)[lift]
        at_lifts += list(p1[:, 1])
        tau_lifts += list(pt[:, 1])
        argmax_lifts += int((p1.argmax(-1) == 1).sum())
        lifts += int(lift.sum())
        points += int(real.sum())
    return {"lifts": lifts, "points": points, "lift_share": lifts / points,
            "median_p_lift_at_lifts": float(np.median(at_lifts)),
            "mean_p_lift_at_lifts": float(np.mean(at_lifts)),
            "lift_most_likely_share": argmax_lifts / lifts,
            "mean_p_lift_at_lifts_tau": float(np.mean(tau_lifts))}


def card_draws(hps, n: int, seed: int) -> tuple[np.ndarray | None, np.ndarray]:
    """The model card's draws for its first n prior samples: z (None without an encoder)
    and the sampler's noise (n, N_max, 4)."""
    from sketch_rnn.generation.sampling import prior_z, step_noise

    z = prior_z(n, int(hps.z_size), seed) if hps.conditional else None
    return z, step_noise(n, int(hps.max_seq_len), seed)


def split_temperature_grid(run, n: int, seed: int, tau: float, discrete: float,
                           path: str) -> list[int]:
    """The same samples with the discrete states at `discrete` (the product's sampler: at
    discrete = tau it draws the model card's grid); writes the grid, returns each sample's
    pen lifts."""
    from sketch_rnn.generation.decode_loop import run_sampler
    from sketch_rnn.generation.drawing import save_sketches
    from sketch_rnn.generation.sampling import to_stroke3

    z, noise = card_draws(run.model.hps, n, seed)
    strokes, _ = run_sampler(run.model, z, noise, tau, discrete_temperature=discrete)
    save_sketches(path, to_stroke3(strokes, run.scale_factor), cols=5)
    return [drawn(row)[2] for row in strokes]


def sample_rows(run, tau: float, n: int, seed: int) -> list[dict]:
    """The card's first n prior samples at tau (same z, same noise), one row per sample:
    points, ended, lifts drawn, and along its path the lifts the model expected at tau 1 and
    at tau, its largest p_lift at tau 1 and p_end at the last step."""
    from sketch_rnn.generation.decode_loop import run_sampler
    from sketch_rnn.model.mixture import split_params

    z, noise = card_draws(run.model.hps, n, seed)
    strokes, raw = run_sampler(run.model, z, noise, tau, record=True)
    pen_logits = np.asarray(split_params(raw).pen_logits, np.float64)  # (n, N, 3)
    p1 = softmax(pen_logits, axis=-1)  # (n, N, 3) at tau 1
    pt = softmax(pen_logits / tau, axis=-1)  # what the sampler drew from
    rows = []
    for i in range(n):
        n_pts, ended, lifts = drawn(strokes[i])
        rows.append({"i": i, "points": n_pts, "ended": ended, "lifts": lifts,
                     "expected_lifts_tau1": float(p1[i, :n_pts, 1].sum()),
                     "expected_lifts_tau": float(pt[i, :n_pts, 1].sum()),
                     "max_p_lift_tau1": float(p1[i, :n_pts, 1].max(initial=0.0)),  # 0 points
                     "p_end_last": float(p1[i, min(n_pts, p1.shape[1] - 1), 2])})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--tau", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=25)
    ap.add_argument("--discrete-temperature", type=float, default=None)
    ap.add_argument("--grid", default="pen_states_grid.png")
    ap.add_argument("--data", nargs="+", default=None,
                    help="teacher-force on this file's test split (default: the run's data; "
                         "an imported magenta.js model has none)")
    args = ap.parse_args(argv)

    from sketch_rnn.core.errors import SketchRNNError
    from sketch_rnn.evaluation.report import load_split
    from sketch_rnn.training.runs import load_run

    run = load_run(args.run_dir)
    if args.discrete_temperature is not None:
        lifts = split_temperature_grid(run, args.n, args.seed, args.tau,
                                       args.discrete_temperature, args.grid)
        print(f"tau {args.tau:g} with the discrete states at {args.discrete_temperature:g}: "
              f"{sum(n <= FEW_LIFTS for n in lifts)} of {args.n} lifted the pen at most "
              f"{FEW_LIFTS} times; lifts per sample {lifts}; grid in {args.grid}")
        print(json.dumps({"run_dir": args.run_dir, "tau": args.tau, "seed": args.seed,
                          "discrete_temperature": args.discrete_temperature, "lifts": lifts}))
        return 0
    test = None  # read before sampling, so that a missing file fails at once
    if args.data or run.data_paths:
        try:
            test, _ = load_split(run, args.run_dir, args.data, "test")
        except SketchRNNError as err:
            print(f"pen_states: {err}", file=sys.stderr)
            return 2
    rows = sample_rows(run, args.tau, args.n, args.seed)
    print(f"{'i':>3} {'points':>6} {'ended':>5} {'lifts':>5} {'E[lifts] tau1':>13} "
          f"{'E[lifts] tau':>12} {'max p_lift tau1':>15} {'p_end at N_max-1':>16}")
    for row in rows:
        print(f"{row['i']:>3} {row['points']:>6} {row['ended']!s:>5} {row['lifts']:>5} "
              f"{row['expected_lifts_tau1']:>13.1f} {row['expected_lifts_tau']:>12.2f} "
              f"{row['max_p_lift_tau1']:>15.3f} {row['p_end_last']:>16.3f}")
    few = [r for r in rows if r["lifts"] <= FEW_LIFTS]
    summary = {"samples": args.n, "ended": sum(r["ended"] for r in rows),
               "few_lifts": len(few),
               "few_lifts_median_expected_tau1": float(np.median(
                   [r["expected_lifts_tau1"] for r in few])) if few else None,
               "few_lifts_max_p_lift_tau1": max((r["max_p_lift_tau1"] for r in few),
                                                default=None)}
    print(f"{summary['ended']} of {args.n} ended before N_max; {len(few)} lifted the pen at "
          f"most {FEW_LIFTS} times (along their paths the model at tau 1 expected a median "
          f"of {summary['few_lifts_median_expected_tau1'] or 0:.1f} lifts; its largest "
          f"p_lift there {summary['few_lifts_max_p_lift_tau1'] or 0:.3f})")
    tf = teacher_forced_lifts(run, args.tau, test) if test is not None else {}
    if tf:
        print(f"teacher-forced, test split: {tf['lifts']} lifts in {tf['points']} points "
              f"(constant predictor p_lift {tf['lift_share']:.3f}); at the lifts the model's "
              f"p_lift is {tf['mean_p_lift_at_lifts']:.3f} on average (median "
              f"{tf['median_p_lift_at_lifts']:.3f}), lifting is its most likely state at "
              f"{100 * tf['lift_most_likely_share']:.0f}% of them, and at tau {args.tau:g} it "
              f"lifts there with probability {tf['mean_p_lift_at_lifts_tau']:.3f} on average")
    print(json.dumps({"run_dir": args.run_dir, "tau": args.tau, "seed": args.seed,
                      "summary": summary, "teacher_forced": tf, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
