"""The model card's HTML: one page, inline style, pictures linked by relative file names.

Pure string building (`model_card` gathers the numbers and draws the pictures). Every value
that comes from a file is escaped.
"""
from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       padding: 0 1em; line-height: 1.4; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; font-size: 0.9em; }
figure { display: inline-block; margin: 0.4em 1em 0.4em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; text-align: center; }
"""
TAU_LABELS = ("greedy", "tau_0.25", "tau_0.5", "tau_1")
KS = (1, 5, 10)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th{' class=l' if i == 0 else ''}>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(
        f"<td class=l>{_e(c)}</td>" if i == 0 else f"<td>{_num(c)}</td>" for i, c in enumerate(r))
        + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(pictures: Mapping[str, str], key: str, caption: str) -> str:
    if key not in pictures:
        return ""
    name = _e(pictures[key])
    return f'<figure><img src="{name}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (no logs/train.csv)"
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def _training(state: Mapping[str, Any], timing: Mapping[str, Any], pictures: Mapping[str, str]
              ) -> str:
    machine = state.get("machine")
    if isinstance(machine, Mapping):
        where = ", ".join(f"{k}: {v}" for k, v in machine.items())
    else:
        where = "unknown (no machine recorded in this run's checkpoint)"
    versions = state.get("versions") or {}
    rows = [("steps trained", state.get("step")),
            ("wall time", _duration(timing.get("seconds"))
             + (f" in {timing['segments']} sessions" if timing.get("segments", 0) > 1 else "")),
            ("machine", where),
            ("distribution", state.get("distribute") or "one device"),
            ("backend", f"{versions.get('backend', '?')}, Keras {versions.get('keras', '?')}")]
    out = [_table(("training", ""), rows)]
    if "curves" in pictures:
        out.append(_img(pictures, "curves", "training cost, L_R and KL per step "
                                            "(dark: running mean)"))
    else:
        out.append("<p class=note>No training curves: this run has no logs/train.csv.</p>")
    return "\n".join(out)


def _evaluate(ev: Mapping[str, Any]) -> str:
    out = [f"<p>On the <b>{_e(ev.get('split'))}</b> split, {_e(ev.get('count'))} sketches, "
           f"step {_e(ev.get('step'))}; evaluate took {_e(ev.get('evaluate_wall_s', '?'))} s.</p>",
           _table(("loss (paper's Table 1)", "value"),
                  [(k, ev.get(k)) for k in ("recon", "stroke", "pen", "kl", "cost")])]
    if "ret_code_at_1_greedy" in ev or any(f"ret_code_at_1_{t}" in ev for t in TAU_LABELS):
        rows = []
        for t in TAU_LABELS:
            if f"ret_code_at_1_{t}" in ev:
                rows.append([t.replace("tau_", "τ ")]
                            + [ev.get(f"ret_code_at_{k}_{t}") for k in KS]
                            + [ev.get(f"ret_raster_at_{k}_{t}") for k in KS])
        out.append("<h3>Reconstruction retrieval</h3>")
        out.append(_table(["decode", *(f"code @{k}" for k in KS), *(f"raster @{k}" for k in KS)],
                          rows))
        n = ev.get("count") or 0
        tf = ev.get("ret_tf_count", 0)
        out.append(
            "<p class=note>code @k (the field's measure): each sketch's μ decoded (greedy, or "
            "sampled at τ with a fixed seed), the reconstruction encoded again, and its source "
            f"ranked among all {_e(n)} μ by L2 (ties count against it). raster @k: the same "
            "reconstructions looked up among the originals by chamfer distance of centred, "
            f"scale-normalised rasters. Chance @1 = {_num(ev.get('ret_chance_at_1'), 4)}. "
            f"Temperature: {_e(ev.get('ret_convention', ''))}.</p>")
        if tf:
            out.append(_table(("teacher-forced code retrieval", *(f"@{k}" for k in KS)),
                              [[f"{tf} sketches", *(ev.get(f"ret_tf_at_{k}") for k in KS)]]))
            out.append("<p class=note>No decode: each sketch's teacher-forced L_R under every "
                       f"one of the first {_e(tf)} sketches' μ; how often its own μ explains it "
                       "best (what the code holds before a free-running decode loses it).</p>")
        out.append(_table(("latent", "value"), [("active units (Var μ > 0.01)",
                                                 ev.get("active_units")),
                                                ("KL in nats per sketch", ev.get("kl_nats"))]))
    pr = [[t.replace("tau_", "τ "), ev.get(f"precision_{t}"), ev.get(f"recall_{t}"),
           ev.get(f"coverage_{t}")] for t in TAU_LABELS if f"precision_{t}" in ev]
    if pr:
        out.append("<h3>Sample quality</h3>")
        out.append(_table(("prior samples", "precision", "recall", "coverage"), pr))
        out.append(f"<p class=note>{_e(ev.get('count'))} samples from the prior (seed "
                   f"{_e(ev.get('pr_seed'))}) against the split: improved precision and recall "
                   f"(Kynkäänniemi et al. 2019, k = {_e(ev.get('pr_k'))}) and coverage (Naeem "
                   "et al. 2020) in a blurred, centred, scale-normalised raster space. Test "
                   "against train sheep scores about 0.84 / 0.80 / 0.90.</p>")
    return "\n".join(out)


def render(run_dir: str, state: Mapping[str, Any], data_paths: Sequence[str],
           evaluate: Mapping[str, Any], pictures: Mapping[str, str],
           timing: Mapping[str, Any]) -> str:
    """The whole page as one string."""
    hps = state.get("hparams") or {}
    kind = "conditional (VAE)" if hps.get("conditional") else "decoder-only"
    parts = [
        "<!doctype html><html><head><meta charset=utf-8>",
        f"<title>Model card: {_e(run_dir)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Model card: {_e(run_dir)}</h1>",
        f"<p>A {kind} Sketch-RNN, decoder {_e(hps.get('dec_model'))} "
        f"{_e(hps.get('dec_rnn_size'))}, M = {_e(hps.get('num_mixture'))}, "
        f"z = {_e(hps.get('z_size'))}; {_num(state.get('params'))} parameters; "
        f"data {_e(', '.join(data_paths))}; fingerprint <code>{_e(state.get('fingerprint'))}</code>.</p>",
        "<h2>Training</h2>", _training(state, timing, pictures),
        "<h2>Evaluation</h2>", _evaluate(evaluate),
        "<h2>Samples</h2>",
        *(_img(pictures, f"samples {t}", f"prior samples, τ {t}") for t in ("0.25", "0.5", "1")),
    ]
    if hps.get("conditional"):
        parts += ["<h2>Reconstructions</h2>",
                  _img(pictures, "reconstructions", "test sketches (top) and their "
                                                    "reconstructions from μ"),
                  "<h2>Interpolation</h2>",
                  _img(pictures, "interpolation", "slerp between two test sketches' μ")]
    parts += ["<h2>Completions</h2>",
              _img(pictures, "completions", "test sketches cut in half, endings at τ 0.25"),
              "<h2>Hyperparameters</h2>",
              _table(("hparam", "value"), [(k, str(hps[k])) for k in sorted(hps)]),
              "</body></html>"]
    return "\n".join(p for p in parts if p)
