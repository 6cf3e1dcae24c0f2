"""How the share of prior samples that start their legs moves with the temperature (issue 25).

For each run and each tau, the card's first n prior samples (`pen_states.sample_rows`: the
same z and noise as `sketch-rnn report`) and the share of them that lift the pen more than
`pen_states.FEW_LIFTS` times: on the sheep grids read by eye, the samples with legs (a leg
is a stroke of its own). Prints a table and a JSON line; `--plot F.png` draws the shares
against tau, with issue 25's target (20 of 25 at tau 0.25) marked.

    python studies/sheep_steps/lift_sweep.py checkpoints/sheep checkpoints/sheep_decoder \\
        --taus 0.1,0.25,0.4,0.5,0.7,1 --n 200 --plot studies/sheep_steps/lift_sweep.png
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pen_states import FEW_LIFTS, sample_rows  # noqa: E402  (this folder's script)

TARGET = (0.25, 20 / 25)  # issue 25: at tau 0.25, at least 20 of 25 with a body and legs


def lift_shares(run_dir: str, taus: list[float], n: int, seed: int) -> dict[float, float]:
    """tau -> the share of the n samples that lift the pen more than FEW_LIFTS times."""
    from sketch_rnn.training.runs import load_run

    run = load_run(run_dir)
    return {tau: sum(r["lifts"] > FEW_LIFTS for r in sample_rows(run, tau, n, seed)) / n
            for tau in taus}


def plot(shares: dict[str, dict[float, float]], labels: dict[str, str], n: int,
         path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for run_dir, by_tau in shares.items():
        ax.plot(list(by_tau), list(by_tau.values()), "o-", label=labels[run_dir])
    ax.plot(*TARGET, "k*", markersize=12, label="issue 25's target (20 of 25 at τ 0.25)")
    ax.set_xlabel("τ (the paper's convention: σ² × τ, logits / τ)")
    ax.set_ylabel(f"share of {n} prior samples lifting the pen > {FEW_LIFTS} times")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+")
    ap.add_argument("--taus", default="0.1,0.25,0.4,0.5,0.7,1")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels", default="", help="comma-separated names for the plot's legend")
    ap.add_argument("--plot", default=None, help="write the curves to this PNG (none if omitted)")
    args = ap.parse_args(argv)
    taus = [float(t) for t in args.taus.split(",")]
    names = args.labels.split(",") if args.labels else args.run_dirs
    labels = dict(zip(args.run_dirs, names))
    shares = {d: lift_shares(d, taus, args.n, args.seed) for d in args.run_dirs}
    print(f"share of {args.n} prior samples (seed {args.seed}) lifting the pen more than "
          f"{FEW_LIFTS} times")
    print(f"{'run':<40}" + "".join(f"{'tau ' + format(t, 'g'):>10}" for t in taus))
    for d, by_tau in shares.items():
        print(f"{labels[d]:<40}" + "".join(f"{v:>10.3f}" for v in by_tau.values()))
    if args.plot:
        plot(shares, labels, args.n, args.plot)
        print(f"plot in {args.plot}")
    print(json.dumps({"n": args.n, "seed": args.seed, "few_lifts": FEW_LIFTS,
                      "shares": {d: {format(t, "g"): v for t, v in s.items()}
                                 for d, s in shares.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
