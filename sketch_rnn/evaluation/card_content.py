"""What the model card says, as a list of blocks that `card_html` and `card_markdown` render.

The numbers, tables and captions are chosen once, here, so the HTML page (`index.html`) and
its Markdown twin (`card.md`, for a shipped checkpoint's README or a repository page) cannot
drift apart. A block is a tuple: ("h1" | "h2" | "h3" | "p" | "note", text),
("table", header, rows) or ("img", file name, caption). Text is plain; renderers escape it.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

TAU_LABELS = ("greedy", "tau_0.25", "tau_0.5", "tau_1")
KS = (1, 5, 10)
Block = tuple


def number(value: Any, digits: int = 3) -> str:
    """How every table cell shows a value: floats to `digits` places, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (no logs/train.csv)"
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def _img(pictures: Mapping[str, str], key: str, caption: str) -> list[Block]:
    return [("img", pictures[key], caption)] if key in pictures else []


def _training(state: Mapping[str, Any], timing: Mapping[str, Any],
              pictures: Mapping[str, str]) -> list[Block]:
    machine = state.get("machine")
    if isinstance(machine, Mapping):
        where = ", ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                          for k, v in machine.items())
    else:
        where = "unknown (no machine recorded in this run's checkpoint)"
    versions = state.get("versions") or {}
    sessions = (f" in {timing['segments']} sessions" if timing.get("segments", 0) > 1 else "")
    rows = [("steps trained", state.get("step")),
            ("wall time", duration(timing.get("seconds")) + sessions),
            ("machine", where),
            ("distribution", state.get("distribute") or "one device"),
            ("backend", f"{versions.get('backend', '?')}, Keras {versions.get('keras', '?')}")]
    out: list[Block] = [("table", ("training", ""), rows)]
    if "curves" in pictures:
        out += _img(pictures, "curves", "training cost, L_R and KL per step (dark: running mean)")
    else:
        out.append(("note", "No training curves: this run has no logs/train.csv."))
    return out


def _retrieval(ev: Mapping[str, Any]) -> list[Block]:
    rows = [[t.replace("tau_", "τ ")] + [ev.get(f"ret_code_at_{k}_{t}") for k in KS]
            + [ev.get(f"ret_raster_at_{k}_{t}") for k in KS]
            for t in TAU_LABELS if f"ret_code_at_1_{t}" in ev]
    n, tf = ev.get("count") or 0, ev.get("ret_tf_count", 0)
    out: list[Block] = [
        ("h3", "Reconstruction retrieval"),
        ("table", ["decode", *(f"code @{k}" for k in KS), *(f"raster @{k}" for k in KS)], rows),
        ("note", "code @k (the field's measure): each sketch's μ decoded (greedy, or sampled at "
                 "τ with a fixed seed), the reconstruction encoded again, and its source ranked "
                 f"among all {n} μ by L2 (ties count against it). raster @k: the same "
                 "reconstructions looked up among the originals by chamfer distance of centred, "
                 "scale-normalised rasters. Chance @1 = "
                 f"{number(ev.get('ret_chance_at_1'), 4)}. Temperature: "
                 f"{ev.get('ret_convention', '')}.")]
    if tf:
        out += [("table", ("teacher-forced code retrieval", *(f"@{k}" for k in KS)),
                 [[f"{tf} sketches", *(ev.get(f"ret_tf_at_{k}") for k in KS)]]),
                ("note", "No decode: each sketch's teacher-forced L_R under every one of the "
                         f"first {tf} sketches' μ; how often its own μ explains it best (what "
                         "the code holds before a free-running decode loses it).")]
    out.append(("table", ("latent", "value"),
                [("active units (Var μ > 0.01)", ev.get("active_units")),
                 ("KL in nats per sketch", ev.get("kl_nats"))]))
    return out


def _evaluate(ev: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = [
        ("p", f"On the {ev.get('split')} split, {ev.get('count')} sketches, step "
              f"{ev.get('step')}; evaluate took {ev.get('evaluate_wall_s', '?')} s."),
        ("table", ("loss (paper's Table 1)", "value"),
         [(k, ev.get(k)) for k in ("recon", "stroke", "pen", "kl", "cost")])]
    if any(f"ret_code_at_1_{t}" in ev for t in TAU_LABELS):
        out += _retrieval(ev)
    pr = [[t.replace("tau_", "τ "), ev.get(f"precision_{t}"), ev.get(f"recall_{t}"),
           ev.get(f"coverage_{t}")] for t in TAU_LABELS if f"precision_{t}" in ev]
    if pr:
        out += [("h3", "Sample quality"),
                ("table", ("prior samples", "precision", "recall", "coverage"), pr),
                ("note", f"{ev.get('count')} samples from the prior (seed {ev.get('pr_seed')}) "
                         "against the split: improved precision and recall (Kynkäänniemi et al. "
                         f"2019, k = {ev.get('pr_k')}) and coverage (Naeem et al. 2020) in a "
                         "blurred, centred, scale-normalised raster space. Test against train "
                         "sheep scores about 0.84 / 0.80 / 0.90.")]
    return out


def blocks(run_dir: str, state: Mapping[str, Any], data_paths: Sequence[str],
           evaluate: Mapping[str, Any], pictures: Mapping[str, str],
           timing: Mapping[str, Any]) -> list[Block]:
    """The whole card, top to bottom."""
    hps = state.get("hparams") or {}
    kind = "conditional (VAE)" if hps.get("conditional") else "decoder-only"
    out: list[Block] = [
        ("h1", f"Model card: {run_dir}"),
        ("p", f"A {kind} Sketch-RNN, decoder {hps.get('dec_model')} {hps.get('dec_rnn_size')}, "
              f"M = {hps.get('num_mixture')}, z = {hps.get('z_size')}; "
              f"{number(state.get('params'))} parameters; data {', '.join(data_paths)}; "
              f"fingerprint {state.get('fingerprint')}."),
        ("h2", "Training"), *_training(state, timing, pictures),
        ("h2", "Evaluation"), *_evaluate(evaluate),
        ("h2", "Samples"),
        *(b for t in ("0.25", "0.5", "1") for b in _img(pictures, f"samples {t}",
                                                        f"prior samples, τ {t}"))]
    if hps.get("conditional"):
        out += [("h2", "Reconstructions"),
                *_img(pictures, "reconstructions",
                      "test sketches (top) and their reconstructions from μ"),
                ("h2", "Interpolation"),
                *_img(pictures, "interpolation", "slerp between two test sketches' μ")]
    out += [("h2", "Completions"),
            *_img(pictures, "completions", "test sketches cut in half, endings at τ 0.25"),
            ("h2", "Hyperparameters"),
            ("table", ("hparam", "value"), [(k, str(hps[k])) for k in sorted(hps)])]
    return out
