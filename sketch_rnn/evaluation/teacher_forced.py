"""Teacher-forced code retrieval: how well each sketch's own code explains it, among all codes.

scores[j, i] = L_R (L_s + L_p, teacher-forced, over all N_max steps) of sketch j decoded
under sketch i's posterior mean mu; `retrieval.retrieval_at_k` ranks each row's own code
among the others (ties against). All n^2 pairs cost n^2 full-length decoder passes
(`teacher_forced_scores`), but only the ranks are reported, and most pairs can be ruled out
exactly on a prefix (`pruned_teacher_forced_scores`):

- L_s is masked after each sketch's end and the pen cross-entropy L_p of every step is >= 0,
  so the sum over the first T_j >= len_j steps (every unmasked L_s step and the first T_j
  pen steps), divided by N_max, is a lower bound of the full score of sketch j under any code;
- a competitor code i whose bound exceeds the own pair's full score (by a margin covering
  float rounding) cannot score at or below it, so it cannot count against sketch j.

Only the own pairs and the undecided competitors are decoded to N_max, by the same graph and
in calls of the same row count as `teacher_forced_scores`; the bounds run to each length
group's longest sketch only. The ranks, hence ret_tf@k, are those of the full matrix.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .retrieval import padded_chunks

TEACHER_FORCED_ROWS = 400  # sketch-code pairs per decoder call (memory ~ rows * N_max * 4u)
PREFIX_GROUPS = 8  # length groups of the bound pass: one graph shape (one trace) each
# A bound decides a pair only beyond this (relative to the own score's size, at least 1).
# The bound pass runs the full pass's graph on calls of the same row count, so its steps'
# terms are the full pass's (the kernels give each row the same numbers wherever it sits in
# a call); only the sums' order differs: 1.3e-7 at most over the shipped sheep's 10,000
# pairs. Another row count would move the bf16 sheep's scores by up to 6.6e-5; the margin
# covers that too. On the sheep a margin up to 1e-2 leaves the same single pair undecided.
MARGIN = 1e-3


def teacher_forced_scores(model: Any, sketches: Sequence[np.ndarray],
                          scale_factor: float = 1.0, rows: int = TEACHER_FORCED_ROWS,
                          mu: np.ndarray | None = None) -> np.ndarray:
    """L_R (L_s + L_p, teacher-forced) of sketch j decoded from sketch i's mu: (n, n) [j, i].

    Every pair, decoded to N_max: the brute-force reference of `pruned_teacher_forced_scores`.
    Each call of the graph decodes the n sketches under c codes at once (c * n rows; c at most
    max(1, rows // n), the fewest calls, the last padded by repeating its last code, so every
    call has one shape): fewer, larger matmuls per step and fewer graph steps per code.
    One plain graph (built once per model; the eager kernels, so the eager numbers to the
    matmuls' rounding, which may differ with the row count), not N_max eager framework
    calls. mu: the sketches' posterior means (n, z) if already known (`latent_report`
    passes the split's), else encoded here.
    """
    strokes, lengths, mu = _inputs(model, sketches, scale_factor, mu)
    recon = _graph(model, strokes.shape[1] - 1)
    n = len(sketches)
    chunks = list(padded_chunks(list(range(n)), _codes_per_call(n, rows)))
    per_call = len(chunks[0].items)  # c
    tiled_strokes = np.tile(strokes, (per_call, 1, 1))  # (c * n, N_max+1, 5): code-major
    tiled_lengths = np.tile(lengths, per_call)  # (c * n,)
    scores = np.zeros((n, n))
    for chunk in chunks:
        z = np.repeat(mu[chunk.items], n, axis=0)  # (c * n, z): code k for rows k*n..k*n+n-1
        out = np.asarray(recon(tiled_strokes, tiled_lengths, z)).reshape(per_call, n)  # (c, n)
        scores[:, chunk.items[:chunk.real]] = out[:chunk.real].T
    return scores


def pruned_teacher_forced_scores(model: Any, sketches: Sequence[np.ndarray],
                                 scale_factor: float = 1.0, rows: int = TEACHER_FORCED_ROWS,
                                 mu: np.ndarray | None = None, groups: int = PREFIX_GROUPS,
                                 margin: float = MARGIN) -> tuple[np.ndarray, float]:
    """(scores (n, n), the fraction of competitor pairs the bound decided).

    scores ranks like `teacher_forced_scores`: the own pairs, the undecided competitors (and
    the competitors decoded beside the own pairs to fill their call) hold their full scores
    (the same graph, in calls of the same row count c * n), and the competitors ruled out by
    their prefix bound hold +inf (they score above the own pair either way). `groups`: how
    many length groups the bound pass is cut into; `margin`: how far (relative, `MARGIN`) a
    bound must clear the own pair's score to decide a competitor.
    """
    strokes, lengths, mu = _inputs(model, sketches, scale_factor, mu)
    n = len(sketches)
    per_call = _codes_per_call(n, rows) * n  # teacher_forced_scores' row count: its numbers
    bound = _prefix_bounds(model, strokes, lengths, mu, groups, per_call)  # (n, n) [j, i]
    # the own pairs' call has room for per_call - n more rows: the competitors likeliest to
    # stay undecided (bound closest to the own pair's bound), so that often no call follows
    slack = bound - np.diag(bound)[:, None]  # (n, n)
    np.fill_diagonal(slack, np.inf)
    extra = np.argsort(slack, axis=None, kind="stable")[:min(per_call - n, n * (n - 1))]
    j, i = np.concatenate([np.arange(n), extra // n]), np.concatenate([np.arange(n), extra % n])
    scores, done = np.full((n, n), np.inf), np.zeros((n, n), dtype=bool)
    scores[j, i], done[j, i] = _pair_scores(model, strokes, lengths, mu, j, i, per_call), True
    own = np.diag(scores)  # (n,)
    undecided = ~(bound > own[:, None] + margin * np.maximum(1.0, np.abs(own))[:, None])
    np.fill_diagonal(undecided, False)
    j, i = np.nonzero(undecided & ~done)
    if len(j):
        scores[j, i] = _pair_scores(model, strokes, lengths, mu, j, i, per_call)
    return scores, 1.0 - int(undecided.sum()) / max(1, n * (n - 1))


def _codes_per_call(n: int, rows: int) -> int:
    """c, the codes of one call of `teacher_forced_scores` (c * n rows): the fewest calls of
    at most max(1, rows // n) codes, all of one size (`padded_chunks`)."""
    return len(next(padded_chunks(list(range(n)), max(1, int(rows) // n))).items)


def _inputs(model: Any, sketches: Sequence[np.ndarray], scale_factor: float,
            mu: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(strokes (n, N_max+1, 5), lengths (n,), mu (n, z) float32), mu encoded if not given."""
    from ..generation.compiled import encoder
    from ..generation.sampling import sketches_to_stroke5

    strokes, lengths = sketches_to_stroke5(model, sketches, scale_factor)
    if mu is None:
        mu = np.asarray(encoder(model)(strokes, lengths)[0])  # (n, z)
    return strokes, lengths, np.asarray(mu, dtype=np.float32)


def _pair_scores(model: Any, strokes: np.ndarray, lengths: np.ndarray, mu: np.ndarray,
                 j: np.ndarray, i: np.ndarray, per_call: int, steps: int | None = None
                 ) -> np.ndarray:
    """L_R of sketch j[k] under code i[k] for each pair k, over the first `steps` steps
    (None: all N_max, the full score), summed and divided by N_max: (len(j),) float64.
    Calls of exactly `per_call` rows (the last padded by repeating its last pair)."""
    n_max = strokes.shape[1] - 1
    steps = n_max if steps is None else int(steps)
    recon = _graph(model, steps)
    out = np.zeros(len(j))
    for start in range(0, len(j), per_call):
        idx = np.arange(start, min(start + per_call, len(j)))  # (m,)
        rows = np.concatenate([idx, np.full(per_call - len(idx), idx[-1])])  # (per_call,)
        got = recon(strokes[j[rows], :steps + 1], lengths[j[rows]], mu[i[rows]])  # (per_call,)
        out[idx] = np.asarray(got)[:len(idx)]
    return out * (steps / n_max)  # the graph divides by its own step count


def _prefix_bounds(model: Any, strokes: np.ndarray, lengths: np.ndarray, mu: np.ndarray,
                   groups: int, per_call: int) -> np.ndarray:
    """Lower bounds of every pair's full score: (n, n) [j, i], from the first T steps only,
    T the longest sketch of j's length group (sketches sorted by length, cut into `groups`
    groups of as equal a count as the whole calls allow)."""
    n = len(lengths)
    order = np.argsort(lengths, kind="stable")  # (n,) shortest first
    bounds = np.zeros((n, n))
    for members in _length_groups(order, groups, max(1, per_call // n)):
        steps = max(1, int(lengths[members].max()))  # covers every unmasked L_s step
        j = np.repeat(members, n)  # (m * n,)
        i = np.tile(np.arange(n), len(members))
        bounds[j, i] = _pair_scores(model, strokes, lengths, mu, j, i, per_call, steps)
    return bounds


def _length_groups(order: np.ndarray, groups: int, per_call_sketches: int) -> list[np.ndarray]:
    """`order` cut into at most `groups` consecutive groups, each a whole number of calls
    (per_call_sketches sketches under all n codes) where it can be, so calls pad little."""
    units = -(-len(order) // per_call_sketches)  # calls in all
    cuts = np.linspace(0, units, min(int(groups), units) + 1).round().astype(int)
    edges = np.minimum(cuts * per_call_sketches, len(order))
    return [order[a:b] for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _graph(model: Any, steps: int) -> Callable:
    """The compiled fn(strokes, lengths, z) -> each row's L_s + L_p (B,) over the T = `steps`
    steps of strokes (B, T+1, 5), divided by T: one plain graph per model and T, each traced
    for its own static shape (a few tenths of a second each; the bound pass has at most
    PREFIX_GROUPS lengths)."""
    from ..generation.compiled import compiled

    key = ("teacher_forced_recon",) + (() if steps == model.hps.max_seq_len else (steps,))
    return compiled(model, key, lambda: _recon_under(model), xla=False)


def _recon_under(model: Any) -> Callable:
    """fn(strokes, lengths, z) -> each sketch's teacher-forced L_s + L_p (n,) under code z."""
    from keras import ops

    from ..model.mixture import sketch_loss_terms

    def fn(strokes, lengths, z):
        raw = model.decode_sequence(strokes, z)  # (n, T, K)
        terms = sketch_loss_terms(ops.transpose(raw, (1, 0, 2)), strokes, lengths)
        return terms["stroke"] + terms["pen"]  # (n,)

    return fn
