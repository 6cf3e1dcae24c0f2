"""`sketch-rnn evaluate`: a run's losses, its code's retrieval and its samples' quality.

Loads a run, its data with the run's own scale factor, and reports over every sketch of the
split: L_R, L_s, L_p, KL and cost (`losses.evaluate_split`, the paper's Table 1); for
conditional models how much of each sketch its code keeps (`recon_retrieval.latent_report`:
the field's ret_code@k of sampled reconstructions re-encoded, the raster retrieval, the
teacher-forced code retrieval, active units, KL in nats) -- a low `recon` alone can hide a
code the decoder ignores; and for every model the precision, recall and coverage of as many
prior samples as the split holds, at each temperature (`sample_quality`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from ..core.errors import SketchRNNError
from ..data import load_data
from ..training.runs import load_run
from .losses import evaluate_split
from .recon_retrieval import SEED, TEACHER_FORCED_N, TEMPERATURES, latent_report, tau_label
from .sample_quality import K, features, sketch_precision_recall

Log = Callable[[str], None]


def _silent(message: str) -> None:
    """No progress lines unless the caller asks (the CLI writes them to stderr)."""


def sample_report(model: Any, real: Sequence[Any], temperatures: Sequence[Any] = TEMPERATURES,
                  seed: int = SEED, k: int = K, log: Log | None = None) -> dict[str, Any]:
    """precision_{label}, recall_{label}, coverage_{label}: len(real) prior samples (fixed
    seed) at each temperature against the real sketches (normalised units both)."""
    from ..generation.sampling import sample

    out: dict[str, Any] = {"pr_k": k, "pr_seed": int(seed)}
    real_features = features(real)  # the same for every temperature
    for tau in temperatures:
        label = tau_label(tau)
        (log or _silent)(f"evaluate: sampling {len(real)} sketches ({label}) for "
                         "precision/recall")
        greedy = tau == "greedy"
        fake = sample(model, len(real), temperature=1.0 if greedy else float(tau),
                      greedy=greedy, seed=seed)
        out.update({f"{key}_{label}": v
                    for key, v in sketch_precision_recall(real, fake, k, real_features).items()})
    return out


def resolve_data_paths(paths: Sequence[str], run_dir: str | Path) -> list[str]:
    """The run's recorded data paths as files that exist: as recorded (relative to the
    working directory), else relative to the run directory, else to the repository root
    (a shipped checkpoint records `data/aaron_sheep.npz`). One-line error if none exists."""
    roots = (Path.cwd(), Path(run_dir), Path(__file__).resolve().parents[2])
    out = []
    for p in paths:
        found = [root / p for root in roots if (root / p).is_file()] if not Path(p).is_absolute() \
            else [Path(p)] if Path(p).is_file() else []
        if not found:
            raise SketchRNNError(f"{p}: the run's data is not found (from {run_dir}/checkpoints; "
                                 "pass --data PATH)")
        out.append(str(found[0]))
    return out


def load_split(run: Any, run_dir: str | Path, data_paths: Sequence[str] | None, split: str
               ) -> tuple[Any, list[str]]:
    """(the split of the run's data, or of `data_paths`, with the run's scale factor; the
    paths read)."""
    paths = list(data_paths) if data_paths else resolve_data_paths(run.data_paths, run_dir)
    data = load_data(paths, run.hps.max_seq_len, scale_factor=run.scale_factor)
    return data.split(split), paths


def evaluate_loaded(run: Any, sketches: Any, split: str, teacher_forced_n: int = TEACHER_FORCED_N,
                    samples: bool = True, log: Log | None = None) -> dict[str, Any]:
    """The evaluate dict of a loaded run on a loaded split (`evaluate_run`)."""
    result = evaluate_split(run.model, sketches, run.hps)
    result.update(split=split, step=run.step, count=len(sketches))
    normalised = [sketches.sketch(i) for i in range(len(sketches))]
    if run.hps.conditional:
        result.update(latent_report(run.model, normalised, scale_factor=1.0,
                                    teacher_forced_n=teacher_forced_n, log=log))
    if samples and len(normalised) > K:
        result.update(sample_report(run.model, normalised, log=log))
    return result


def evaluate_run(run_dir: str, data_paths: list[str] | None = None, split: str = "test",
                 teacher_forced_n: int = TEACHER_FORCED_N, samples: bool = True,
                 log: Log | None = None) -> dict[str, Any]:
    """One JSON-ready dict: the losses over `split` of the run's newest checkpoint, the
    latent report (conditional models) and the sample report (samples=True). `log` gets
    a progress line before each long part (silent by default)."""
    run = load_run(run_dir)
    sketches, _ = load_split(run, run_dir, data_paths, split)
    return evaluate_loaded(run, sketches, split, teacher_forced_n, samples, log)
