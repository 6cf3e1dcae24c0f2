"""Do the legless τ 0.25 samples come from the prior's codes or from the decoder? (issue 25)

A conditional model's samples decode codes z drawn from the prior N(0, I); its
reconstructions decode the posterior means μ of real sketches. If the decoder lifts the pen
(starts the legs) from the test sheep's μ but not from prior draws, the prior's codes lie
where the encoder never put a sheep, and the lever is the latent space; if it hardly lifts
from either, it is the decoder. Both decode with the same sampler noise (the model card's,
seed 0), so only z differs. Also prints the codes' norms (a prior draw in 128 dimensions has
norm about 11.3) and the share among the test sheep themselves.

    python studies/sheep_steps/code_lifts.py checkpoints/sheep --taus 0.25,0.5 --n 300
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pen_states import FEW_LIFTS, card_draws, drawn


def lift_share(model, z: np.ndarray, noise: np.ndarray, tau: float) -> float:
    """The share of the decodes of z at tau that lift the pen more than FEW_LIFTS times."""
    from sketch_rnn.generation.decode_loop import run_sampler

    strokes, _ = run_sampler(model, z, noise, tau)  # (n, N_max, 5)
    return float(np.mean([drawn(row)[2] > FEW_LIFTS for row in strokes]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--taus", default="0.25,0.5")
    ap.add_argument("--n", type=int, default=300, help="codes of each kind (at most the split)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from sketch_rnn.core.errors import SketchRNNError
    from sketch_rnn.evaluation.report import load_split
    from sketch_rnn.evaluation.retrieval import posterior
    from sketch_rnn.training.runs import load_run

    run = load_run(args.run_dir)
    hps = run.model.hps
    if not hps.conditional:
        print(f"code_lifts: {args.run_dir} is decoder-only; it has no posterior", file=sys.stderr)
        return 2
    try:
        test, _ = load_split(run, args.run_dir, None, "test")
    except SketchRNNError as err:
        print(f"code_lifts: {err}", file=sys.stderr)
        return 2
    n = min(args.n, len(test))
    sketches = [test.sketch(i) for i in range(n)]  # normalised stroke-3, as `evaluate` reads
    mu, _ = posterior(run.model, sketches, scale_factor=1.0)  # (n, z_size)
    prior, noise = card_draws(hps, n, args.seed)  # (n, z_size), (n, N_max, 4)
    mu_norm = float(np.median(np.linalg.norm(mu, axis=1)))
    real = float(np.mean([int(s[:-1, 2].sum()) > FEW_LIFTS for s in sketches]))
    rows = {"prior z": prior, "test sheep's mu": mu}
    print(f"{n} codes each; sampler noise of the card (seed {args.seed}); norm of z: prior "
          f"median {np.median(np.linalg.norm(prior, axis=1)):.1f}, mu median {mu_norm:.1f}")
    print(f"the test sheep themselves: {real:.3f} lift the pen more than {FEW_LIFTS} times")
    taus = [float(t) for t in args.taus.split(",")]
    shares = {name: {t: lift_share(run.model, z, noise, t) for t in taus}
              for name, z in rows.items()}
    print(f"{'codes':<18}" + "".join(f"{'tau ' + format(t, 'g'):>10}" for t in taus))
    for name, by_tau in shares.items():
        print(f"{name:<18}" + "".join(f"{v:>10.3f}" for v in by_tau.values()))
    print(json.dumps({"run_dir": args.run_dir, "n": n, "seed": args.seed, "real": real,
                      "mu_norm_median": mu_norm,
                      "shares": {k: {format(t, "g"): v for t, v in s.items()}
                                 for k, s in shares.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
