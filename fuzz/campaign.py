"""The fuzz campaign: every target of `fuzz/target_*.py`, for a number of examples or minutes.

    python fuzz/campaign.py --minutes 5                  # every target, 5 minutes each
    python fuzz/campaign.py --target npz --minutes 60    # the targets whose name holds "npz"
    python fuzz/campaign.py --profile ci                 # short and deterministic (CI, tests)

Each target is run in rounds of `--examples` inputs, each round with its own seed (from
`--seed`), until its time is spent (`--minutes`) or after one round (no `--minutes`). A
round stops at its first failure, which Hypothesis shrinks to a small input and which is
printed with the seed that finds it again; the next round goes on with the next seed. The
`ci` profile is one derandomized round per target (the same inputs on every run). An
input running longer than HANG_SECONDS is stopped and reported as a failure.

Prints, per target, the inputs tried and the failures, then one JSON line:
{"profile", "seed", "minutes", "targets": {name: {"inputs", "rounds", "failures" (distinct),
"failed_rounds", "seconds"}}, "inputs", "failures"}. Exit status 1 when anything failed.
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, seed, settings  # noqa: E402

CI_EXAMPLES = 25      # inputs per target in the ci profile (a module's CI_EXAMPLES may lower it)
ROUND_EXAMPLES = 200  # inputs per round otherwise
HANG_SECONDS = 120    # one input running longer is a failure ("never a hang past a bound"):
                      # interrupted by an alarm, since Hypothesis' deadline only measures an
                      # input once it returns (generous: the first input may import TensorFlow)


class Hang(BaseException):
    """An input ran past HANG_SECONDS (a BaseException: no `except Exception` swallows it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"one input ran longer than {HANG_SECONDS} s")


@dataclass(frozen=True)
class Target:
    module: str   # "fuzz.target_npz"
    name: str     # the key in its TARGETS
    ci_examples: int
    slow: bool = False  # named in its module's SLOW: the tests mark it `slow`

    def with_settings(self, examples: int, derandomize: bool) -> Callable:
        """The target's @given function under the campaign's settings. Hypothesis takes one
        `settings` per function, so each call takes the function from a fresh import of its
        module (a target module only defines strategies and functions: reloading is cheap)."""
        fn = importlib.reload(importlib.import_module(self.module)).TARGETS[self.name]
        return settings(max_examples=examples, derandomize=derandomize, database=None,
                        deadline=None, print_blob=True, report_multiple_bugs=False,
                        suppress_health_check=list(HealthCheck))(fn)


def load_targets(name_filter: str | None = None) -> dict[str, Target]:
    """{"npz.load": Target} for every target of fuzz/target_*.py, filtered by substring."""
    found = {}
    for path in sorted((ROOT / "fuzz").glob("target_*.py")):
        module = importlib.import_module(f"fuzz.{path.stem}")
        ci, slow = getattr(module, "CI_EXAMPLES", {}), getattr(module, "SLOW", set())
        for name in module.TARGETS:
            full = f"{path.stem.removeprefix('target_')}.{name}"
            if name_filter is None or name_filter in full:
                found[full] = Target(module.__name__, name, ci.get(name, CI_EXAMPLES),
                                     name in slow)
    return found


@dataclass
class Tally:
    inputs: int = 0
    rounds: int = 0
    seconds: float = 0.0
    failures: dict[str, list[str]] = field(default_factory=dict)  # signature -> reports

    def add(self, failure: tuple[str, str] | None) -> None:
        if failure is not None:
            self.failures.setdefault(failure[0], []).append(failure[1])


def run_round(fn: Callable, tally: Tally, round_seed: int | None) -> tuple[str, str] | None:
    """One Hypothesis run of `fn`; None, or the failure's (signature, report) after
    shrinking: the signature (exception type, first line, where) tells repeats apart."""
    inner = fn.hypothesis.inner_test

    def counted(*args: Any, **kwargs: Any) -> Any:
        tally.inputs += 1
        signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
        try:
            return inner(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    fn.hypothesis.inner_test = counted
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        (fn if round_seed is None else seed(round_seed)(fn))()
        return None
    except (Exception, Hang) as e:  # the property violation (or any other exception), shrunk
        notes = "\n".join(getattr(e, "__notes__", []))
        where = traceback.extract_tb(e.__traceback__)[-1]
        first = re.sub(r"/tmp/\w+", "TMP", str(e).split("\n")[0])  # a temporary folder's name
        signature = (f"{type(e).__name__}: {first[:300]} "
                     f"(at {Path(where.filename).name}:{where.lineno})")
        return signature, f"{signature}, seed {round_seed}\n{notes}"
    finally:
        signal.signal(signal.SIGALRM, previous)
        fn.hypothesis.inner_test = inner
        tally.rounds += 1


def campaign(targets: dict[str, Target], profile: str, minutes: float | None,
             examples: int | None, base_seed: int, out=sys.stdout) -> dict[str, Any]:
    """Run each target (see the module's docstring); {name: figures}, printed as it goes."""
    results = {}
    for i, (name, target) in enumerate(targets.items()):
        tally, start = Tally(), time.monotonic()
        if profile == "ci":
            fn = target.with_settings(examples or target.ci_examples, True)
            tally.add(run_round(fn, tally, None))
        else:
            r = 0
            while True:
                fn = target.with_settings(examples or ROUND_EXAMPLES, False)
                tally.add(run_round(fn, tally, base_seed * 1_000_003 + i * 10_007 + r))
                r += 1
                if minutes is None or time.monotonic() - start > 60 * minutes:
                    break
        tally.seconds = time.monotonic() - start
        failed = sum(map(len, tally.failures.values()))
        print(f"{name}: {tally.inputs} inputs in {tally.rounds} rounds, {len(tally.failures)} "
              f"distinct failures in {failed} rounds, {tally.seconds:.1f} s", file=out, flush=True)
        for reports in tally.failures.values():  # the first (shrunk) report of each
            print(f"  [{len(reports)} rounds] " + reports[0].replace("\n", "\n  "),
                  file=out, flush=True)
        results[name] = {"inputs": tally.inputs, "rounds": tally.rounds,
                         "failures": len(tally.failures), "failed_rounds": failed,
                         "seconds": round(tally.seconds, 1)}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=("ci", "long"), default="long",
                   help="ci: one derandomized round per target, few inputs (the tests' profile)")
    p.add_argument("--minutes", type=float, default=None, help="time per target (rounds repeat)")
    p.add_argument("--examples", type=int, default=None, help="inputs per round")
    p.add_argument("--target", default=None, help="only the targets whose name holds this")
    p.add_argument("--seed", type=int, default=0, help="the rounds' seeds derive from it")
    p.add_argument("--list", action="store_true", help="list the targets and stop")
    args = p.parse_args(argv)
    targets = load_targets(args.target)
    if args.list or not targets:
        print("\n".join(targets) or f"no target matches {args.target!r}")
        return 0 if targets else 2
    results = campaign(targets, args.profile, args.minutes, args.examples, args.seed)
    total = sum(r["failures"] for r in results.values())
    print(json.dumps({"profile": args.profile, "seed": args.seed, "minutes": args.minutes,
                      "targets": results, "inputs": sum(r["inputs"] for r in results.values()),
                      "failures": total}))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
