"""The latent study (issue 12): what keeps Sketch-RNN's latent code in use. One CLI.

Every subcommand drives the product from outside (`sketch-rnn train` / `evaluate` in
subprocesses, or `sketch_rnn`'s public modules in process); nothing in `sketch_rnn/` or
`benchmarks/` imports this directory. Results land beside this file; the page that reads
them is latent_study.md (README.md here says what reproduces from the tree).

    PYTHONPATH=. python studies/latent/latent.py train --steps 300 --stop-at 04:15
    PYTHONPATH=. python studies/latent/latent.py report
    PYTHONPATH=. python studies/latent/latent.py curve "mu_init0.1+stroke_drop" --until 6000
    PYTHONPATH=. python studies/latent/latent.py watch runs/s12/A:scratch --until 12:30
    PYTHONPATH=. python studies/latent/latent.py table small_scratch_control
    PYTHONPATH=. python studies/latent/latent.py decoding runs/study/first_shipped_sheep
    PYTHONPATH=. python studies/latent/latent.py code-retrieval runs/study/first_shipped_sheep
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import measures
import study
import watch


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (and evaluate) each config in turn, then report")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--stop-at", default=None, help="HH:MM UTC: launch no new config after it")
    t.add_argument("--only", nargs="+", default=None, help="config names")
    sub.add_parser("report", help="evaluate what is trained and write latent_study.md")
    c = sub.add_parser("curve", help="train one config on in segments, evaluating each")
    c.add_argument("config")
    c.add_argument("--every", type=int, default=500)
    c.add_argument("--until", type=int, default=5000)
    c.add_argument("--stop-at", default=None, help="HH:MM UTC: start no new segment after it")
    g = sub.add_parser("code-gain", help="print one run's code gain as JSON")
    g.add_argument("run_dir", type=Path)
    w = sub.add_parser("watch", help="measure new checkpoints of runs training elsewhere")
    w.add_argument("runs", nargs="+", help="RUN_DIR:NAME (NAME names the curve's files)")
    w.add_argument("--every", type=int, default=1000, help="measure steps that are "
                   "multiples of this (checkpoints come every save_every steps)")
    w.add_argument("--until", default=None, help="HH:MM UTC: stop watching after it")
    w.add_argument("--poll", type=float, default=30.0, help="seconds between looks")
    tb = sub.add_parser("table", help="print the named curves as one markdown table")
    tb.add_argument("names", nargs="+")
    d = sub.add_parser("decoding", help="greedy vs sampled reconstructions: retrieval, "
                       "runs to N_max, pen lifts (JSON lines)")
    d.add_argument("run_dirs", nargs="+", type=Path, help="run directories (their newest "
                   "checkpoint) or checkpoints (RUN/checkpoints/ckpt-N)")
    d.add_argument("--temperatures", nargs="*", type=float, default=[0.1, 0.25, 0.5, 1.0],
                   help="sampled decodes besides the greedy one (none: greedy only)")
    f = sub.add_parser("figure", help="test sketches, then each run's greedy reconstructions")
    f.add_argument("run_dirs", nargs="+", type=Path, help="run directories or checkpoints")
    f.add_argument("--out", type=Path, default=study.HERE / "latent_reconstructions.png")
    o = sub.add_parser("oracle-pen", help="retrieval when the pen states are copied from the "
                       "originals, from own vs another sketch's mu (JSON lines)")
    o.add_argument("run_dirs", nargs="+", type=Path)
    cr = sub.add_parser("code-retrieval", help="ret@k of each test sketch's own mu by its "
                        "teacher-forced L_R under every mu: the code, without a decode (JSON)")
    cr.add_argument("run_dirs", nargs="+", type=Path, help="run directories or checkpoints")
    cr.add_argument("--n", type=int, default=300, help="the first n test sketches")
    lf = sub.add_parser("lifts", help="a run's teacher-forced p(lift) against the real lifts")
    lf.add_argument("run_dir", type=Path)
    lf.add_argument("--out", type=Path, required=True)
    return parser


def main() -> int:
    args = _parser().parse_args()
    rows_of = {"decoding": lambda d: measures.decoding(d, tuple(args.temperatures)),
               "oracle-pen": measures.oracle_pen_decoding,
               "code-retrieval": lambda d: [measures.code_retrieval(d, args.n)]}
    if args.cmd in rows_of:  # JSON lines, one run after another
        for run_dir in args.run_dirs:
            with watch.run_dirs_of([run_dir]) as (source,):
                for row in rows_of[args.cmd](source):
                    print(json.dumps({**row, "run": str(run_dir)}), flush=True)
    elif args.cmd == "code-gain":
        print(json.dumps(measures.code_gain(args.run_dir)))
    elif args.cmd == "lifts":
        measures.lift_figure(args.run_dir, args.out)
    elif args.cmd == "figure":
        with watch.run_dirs_of(args.run_dirs) as sources:
            measures.figure(sources, args.out, labels=args.run_dirs)
    elif args.cmd == "table":
        print(watch.table(args.names), end="")
    elif args.cmd == "watch":
        runs = [(Path(r.rsplit(":", 1)[0]).resolve(), r.rsplit(":", 1)[1]) for r in args.runs]
        watch.watch(runs, args.every, args.until, args.poll)
    elif args.cmd == "curve":
        study.curve(args.config, args.every, args.until, args.stop_at)
    else:  # train, then report; or report alone
        if args.cmd == "train":
            study.train(args.steps, args.stop_at, args.only)
        study.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
