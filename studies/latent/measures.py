"""What the latent study measures in process (TensorFlow): code gain, curves, pictures.

Kept apart from `study.py`, which only drives the CLI in subprocesses.
"""
from __future__ import annotations

import json
from pathlib import Path


def _run_and_test_split(run_dir: Path):
    """A run's newest model and its test split, loaded with the run's own scale factor (as
    `sketch-rnn evaluate` does): split.sketch(i) is then in normalised units."""
    from sketch_rnn.data import load_data
    from sketch_rnn.training.runs import load_run

    run = load_run(run_dir)
    data = load_data(run.data_paths, run.hps.max_seq_len, scale_factor=run.scale_factor)
    return run, data.split("test")


def code_gain(run_dir: Path) -> dict:
    """How much reconstruction the code buys, and how sure the decoder is of its pen lifts.

    code_gain: teacher-forced test L_R decoded from another sketch's mu (a shuffled pairing)
    minus L_R decoded from the sketch's own mu. 0 means the decoder gets nothing from z about
    its sketch (collapse); it is a finer scale than retrieval, which stays at chance until
    reconstructions keep their input's shape.

    p_lift_at_lifts / lift_is_argmax: at the test sketches' real pen lifts, decoded from their
    own mu and teacher-forced, the mean probability of "lift" and how often it is the most
    likely pen state. A greedy decode lifts the pen only where it is the most likely state, so
    a low lift_is_argmax is why greedy reconstructions draw one unbroken line.
    """
    import numpy as np
    from keras import ops

    from sketch_rnn.data import eval_batches
    from sketch_rnn.model.mixture import sketch_loss_terms

    run, split = _run_and_test_split(run_dir)
    rng = np.random.default_rng(0)
    totals = {"own": 0.0, "shuffled": 0.0}
    count = 0.0
    p_lift: list[np.ndarray] = []
    lift_max: list[np.ndarray] = []
    for strokes, lengths, weights in eval_batches(split, run.hps):
        mu = np.asarray(run.model.encode(strokes, lengths)[0])  # (B, z)
        real = np.flatnonzero(weights > 0)
        other = mu.copy()
        other[real] = mu[rng.permutation(real)]  # shuffle among the batch's real sketches
        for key, z in (("own", mu), ("shuffled", other)):
            raw = run.model.decode_sequence(strokes, z)  # (B, N_max, K)
            terms = sketch_loss_terms(ops.transpose(raw, (1, 0, 2)), strokes, lengths)
            recon = np.asarray(terms["stroke"]) + np.asarray(terms["pen"])  # (B,)
            totals[key] += float(np.sum(recon * weights))
            if key == "own":
                pen = pen_probs(raw)  # (B, N_max, 3)
                at = np.asarray(strokes)[:, 1:, 3] > 0.5  # (B, N_max): real lifts only
                at &= (weights > 0)[:, None]
                p_lift.append(pen[..., 1][at])
                lift_max.append(np.argmax(pen, axis=-1)[at] == 1)
        count += float(np.sum(weights))
    return {"recon_own_mu": totals["own"] / count,
            "code_gain": (totals["shuffled"] - totals["own"]) / count,
            "p_lift_at_lifts": float(np.mean(np.concatenate(p_lift))),
            "lift_is_argmax": float(np.mean(np.concatenate(lift_max)))}


def code_retrieval(run_dir: Path, n: int = 300) -> dict:
    """Does z pick out its sketch, before any decoding? For each of the first n test
    sketches, its teacher-forced L_R (stroke + pen NLL) under every sketch's mu; ret@k is how
    often its own mu is among the k that explain it best (chance k / n). The same sketch is
    compared under different codes, so its length and difficulty cancel out.

    High here and chance in `evaluate`'s greedy retrieval means the code tells the sketches
    apart and the decode loses it. The `moves_` keys use the stroke term L_s alone (the
    (dx, dy) moves, not the pen states), so a code that only knew when each sketch ends or
    lifts its pen would score low there.
    """
    import numpy as np
    from keras import ops

    from sketch_rnn.evaluation import retrieval
    from sketch_rnn.generation.sampling import sketches_to_stroke5
    from sketch_rnn.model.mixture import sketch_loss_terms

    run, split = _run_and_test_split(run_dir)
    strokes, lengths = sketches_to_stroke5(run.model, [split.sketch(i) for i in range(n)])
    mu = np.asarray(run.model.encode(strokes, lengths)[0])  # (n, z)
    stroke, pen = np.zeros((n, n)), np.zeros((n, n))  # [sketch j, code i]
    for i in range(n):
        raw = run.model.decode_sequence(strokes, np.repeat(mu[i:i + 1], n, axis=0))  # (n, N_max, K)
        terms = sketch_loss_terms(ops.transpose(raw, (1, 0, 2)), strokes, lengths)
        stroke[:, i], pen[:, i] = np.asarray(terms["stroke"]), np.asarray(terms["pen"])  # (n,)
    moves = retrieval.retrieval_at_k(stroke, (1, 5))
    return {"run": str(run_dir), "step": run.step, "n": n, "decode": "teacher-forced L_R",
            **retrieval.retrieval_at_k(stroke + pen, (1, 5)),
            **{f"moves_{k}": v for k, v in moves.items()}}


def pen_probs(raw):
    """Raw head outputs (B, N_max, K) -> the pen states' probabilities (B, N_max, 3) as NumPy."""
    import numpy as np
    from keras import ops

    from sketch_rnn.model.mixture import split_params

    return np.asarray(ops.softmax(split_params(raw).pen_logits, axis=-1))


def lift_figure(run_dir: Path, out: Path, n: int = 3) -> None:
    """For n test sketches: the decoder's teacher-forced p(lift) at every step (from the
    sketch's own mu) against the steps where the drawer really lifted the pen. A greedy
    decode lifts only where p(lift) is the largest of the three pen states (about > 0.5):
    the picture shows how rarely a real lift gets there."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from sketch_rnn.generation.sampling import sketches_to_stroke5

    run, split = _run_and_test_split(run_dir)
    strokes, lengths = sketches_to_stroke5(run.model, [split.sketch(i) for i in range(n)])
    mu = run.model.encode(strokes, lengths)[0]  # (n, z)
    pen = pen_probs(run.model.decode_sequence(strokes, mu))  # (n, N_max, 3)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.7 * n), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        length = int(lengths[i])
        steps = np.arange(length)
        for t in np.flatnonzero(strokes[i, 1:length + 1, 3] > 0.5):
            ax.axvline(t, color="tab:red", lw=0.8, alpha=0.6)
        ax.plot(steps, pen[i, :length, 1], color="black", lw=1.2)
        ax.axhline(0.5, color="grey", ls=":", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"test {i}\np(lift)")
    axes[0, 0].set_title(f"{run_dir} (step {run.step}): teacher-forced p(lift); red: the "
                         "drawer's real lifts; dotted: 0.5", fontsize=9)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}", flush=True)


def plot_curve(log: Path, title: str, out: Path) -> None:
    """ret@1, ret@5 and code gain against steps (one JSON line per evaluation), chance marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not log.exists():
        return
    rows = sorted((json.loads(line) for line in log.read_text().splitlines()),
                  key=lambda r: r["step"])
    steps = [r["step"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(steps, [r["ret_at_1"] for r in rows], "o-", label="ret@1")
    left.plot(steps, [r["ret_at_5"] for r in rows], "s-", label="ret@5")
    left.axhline(rows[0]["ret_chance_at_1"], color="grey", ls=":", label="chance@1")
    left.axhline(0.25, color="red", ls="--", lw=0.8, label="target ret@1")
    left.set_xlabel("step")
    left.legend(fontsize=8)
    right.plot(steps, [r["code_gain"] for r in rows], "o-", color="green")
    right.set_xlabel("step")
    right.set_ylabel("code gain (test L_R, shuffled - own mu)")
    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}", flush=True)


def figure(run_dirs: list[Path], out: Path, n: int = 10, labels: list | None = None) -> None:
    """Test sketches (top row) and each run's greedy reconstruction from mu (one row per
    run, in the given order): whether a reconstruction keeps its input's pose and parts is
    easier to see than to read off a number."""
    from sketch_rnn.generation.drawing import save_sketches
    from sketch_rnn.generation.sampling import reconstruct

    rows = []
    for run_dir in run_dirs:
        run, split = _run_and_test_split(run_dir)
        originals = [split.sketch(i) for i in range(n)]  # normalised units, as evaluate
        if not rows:
            rows.append(originals)
        rows.append(reconstruct(run.model, originals, greedy=True))
    save_sketches(str(out), [s for row in rows for s in row], cols=n)
    names = ", ".join(str(r) for r in (labels or run_dirs))
    print(f"wrote {out}: rows = test sketches, then {names}")


def _mean_step(sketches: list) -> float:
    """Mean length of a point's move (dx, dy), normalised units, over all points of all sketches."""
    import numpy as np

    moves = np.concatenate([np.asarray(s)[:, :2] for s in sketches if len(s)])  # (P, 2)
    return float(np.mean(np.linalg.norm(moves, axis=1)))


def decoding(run_dir: Path, temperatures: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)) -> list[dict]:
    """Why retrieval can stay at chance while the code is used: how the reconstructions end.

    For the greedy decode (what `evaluate` retrieves) and for sampled decodes at each
    temperature (seed 0), from the same mu of every test sketch: ret@1 / ret@5 by the same
    chamfer retrieval, the fraction of reconstructions that run to N_max (never choose
    end-of-sketch), the median number of pen lifts and the mean length of a move, beside the
    originals' own; the greedy row also has the greedy move's length when the decoder is fed
    the original's points (teacher-forced), to tell the estimator from the feedback.
    """
    import numpy as np

    from sketch_rnn.evaluation import retrieval
    from sketch_rnn.generation.sampling import decode

    run, split = _run_and_test_split(run_dir)
    n_max = run.hps.max_seq_len
    originals = [split.sketch(i) for i in range(len(split))]  # normalised: scale factor 1
    mu, _ = retrieval.posterior(run.model, originals, 1.0)  # (n, z)
    references = retrieval.rasterise(originals)
    rows = []
    for temperature in (None, *temperatures):
        if temperature is None:
            recons = retrieval.decode_codes(run.model, mu, "greedy")
            tf_moves = _teacher_forced_greedy_moves(run.model, originals, mu)
        else:
            recons = decode(run.model, mu, temperature=temperature, seed=0)
        dist = retrieval.chamfer_matrix(retrieval.rasterise(recons), references)  # (n, n)
        rows.append(dict(
            run=str(run_dir), step=run.step,
            decode="greedy" if temperature is None else f"tau {temperature}",
            **retrieval.retrieval_at_k(dist, (1, 5)),
            to_n_max=float(np.mean([len(r) >= n_max - 1 for r in recons])),
            pen_lifts=float(np.median([r[:, 2].sum() for r in recons])),
            original_pen_lifts=float(np.median([s[:, 2].sum() for s in originals])),
            step_length=_mean_step(recons), original_step_length=_mean_step(originals),
            **({} if temperature is not None else {"teacher_forced_step_length": tf_moves})))
    return rows


def _teacher_forced_greedy_moves(model, originals: list, mu) -> float:
    """Mean length of the greedy move (the most likely component's mean) at every real step
    when the decoder is fed the original's points, not its own: what the estimator gives
    before its own short moves are fed back."""
    import numpy as np

    from sketch_rnn.generation.sampling import sketches_to_stroke5
    from sketch_rnn.model.mixture import split_params

    strokes, lengths = sketches_to_stroke5(model, originals)  # (n, N_max+1, 5), (n,)
    moves = _greedy_moves(split_params(model.decode_sequence(strokes, mu)))  # (n, N_max, 2)
    real = np.arange(moves.shape[1])[None] < lengths[:, None]  # (n, N_max)
    return float(np.mean(np.linalg.norm(moves, axis=-1)[real]))


def _greedy_moves(p):
    """The greedy decode's (dx, dy): the most likely component's mean, (..., 2) NumPy."""
    import numpy as np

    from sketch_rnn.model.mixture import greedy_point

    return np.asarray(greedy_point(p))[..., :2]


def oracle_pen_decoding(run_dir: Path) -> list[dict]:
    """Would retrieval work if the decoder only made its pen decisions right?

    Every test sketch is decoded greedily for (dx, dy) (the most likely component's mean)
    while the pen state of each step is copied from the original (its lifts and its end):
    the pen decisions a greedy decode gets wrong are taken out. Done from the sketch's own mu
    and, as the control, from another sketch's mu (a fixed derangement): the copied pen
    pattern alone tells sketches apart a little, so only the gap between the two rows is
    what the code carries about the outline.
    """
    import numpy as np
    from keras import ops

    from sketch_rnn.evaluation import retrieval
    from sketch_rnn.generation.sampling import sketches_to_stroke5
    from sketch_rnn.model.mixture import split_params

    run, split = _run_and_test_split(run_dir)
    originals = [split.sketch(i) for i in range(len(split))]
    strokes, lengths = sketches_to_stroke5(run.model, originals)  # (n, N_max+1, 5), (n,)
    mu, _ = retrieval.posterior(run.model, originals, 1.0)  # (n, z)
    n = len(originals)
    derangement = (np.arange(n) + 1 + np.random.default_rng(0).integers(n - 1)) % n
    references = retrieval.rasterise(originals)
    rows = []
    for codes, which in ((mu, "own mu"), (mu[derangement], "another sketch's mu")):
        states = run.model.initial_state(ops.convert_to_tensor(codes), n)
        s_prev = strokes[:, 0]  # (n, 5): S_0
        xy = np.zeros((n, strokes.shape[1] - 1, 2), np.float32)  # (n, N_max, 2)
        for t in range(strokes.shape[1] - 1):
            raw, states = run.model.decode_step(s_prev, codes, states)  # (n, K)
            xy[:, t] = _greedy_moves(split_params(raw))  # (n, 2)
            s_prev = np.concatenate([xy[:, t], strokes[:, t + 1, 2:]], axis=-1)  # oracle pen
        recons = [np.concatenate([xy[i, :lengths[i]], originals[i][:, 2:]], axis=-1)
                  for i in range(n)]
        dist = retrieval.chamfer_matrix(retrieval.rasterise(recons), references)  # (n, n)
        rows.append(dict(run=str(run_dir), step=run.step,
                         decode=f"greedy xy, original pen, {which}",
                         **retrieval.retrieval_at_k(dist, (1, 5))))
    return rows
