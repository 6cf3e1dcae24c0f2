"""The fused LSTM kernel: several LSTMs ("lanes") in one time loop, backward written by hand.

Per step only the recurrent matmul and a few fused element-wise ops run inside the loop;
every weight gradient is summed in the loop or taken for all N * B rows in one matmul
afterwards. The encoder's two directions are two lanes of one loop; the decoder is one
lane whose z part of the input projection enters as a per-sketch bias (computed once per
sketch, not once per step). On TensorFlow both loops are XLA clusters
(`backend.FastPath.xla_loops`), the rest of the step is not (measured fastest: whole-step
XLA was 3x slower on 2 cores, no XLA about 2x slower). With `FastPath.fused` off the same
forward loop runs under the backend's autodiff instead of the hand-written backward (the
reference tests/test_backend.py compares with). The backend's own calls (the loop, the
custom gradient, the XLA clusters) are `backend`'s.

Pre-activations are kept "scaled" (`gate_scale`): the g columns are doubled so that one
sigmoid serves all four gates (tanh(x) = 2 sigmoid(2x) - 1).

At precision "bfloat16" (`precision.matmul`) every matmul of the kernel runs on bf16
operands: the forward's input and recurrent products, the backward's recurrent product
d_pre @ W^T, the gate rebuild, the recurrent kernel's gradient over all N * B rows and the
input gradient; only the input kernel's gradient, summed over the steps inside the backward
loop ((d, 4u), d = 5 stroke columns), stays float32: it is a sum of N small products, tiny
in cost, where a bf16 rounding per step would add up. The sums, c and the gates are float32.
XLA:CPU computes a bf16 dot in float32 (measured: no faster than float32), so at bf16 the
loops stay TensorFlow graphs whose matmuls run on oneDNN (native bf16) and only each step's
element-wise part is an XLA cluster (`_step_parts`); float32 keeps the whole-loop clusters.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from keras import ops

from .backend import Tensor, custom_vjp, name, scan, xla_cluster
from .precision import matmul, operand


def gate_scale(units: int) -> tuple[Tensor, Tensor]:
    """(m, k) per gate column: tanh(x) = 2*sigmoid(2x) - 1 lets one sigmoid serve all gates.

    The LSTM's pre-activations are kept "scaled" (g columns times m = 2), so that
    act = sigmoid(pre) * m - k gives (i, f, tanh(g), o) in two element-wise ops.
    """
    ones, zeros = np.ones(units, np.float32), np.zeros(units, np.float32)
    m = np.concatenate([ones, ones, 2 * ones, ones])
    k = np.concatenate([zeros, zeros, ones, zeros])
    return ops.convert_to_tensor(m), ops.convert_to_tensor(k)


def matmul_rows(x: Tensor, w: Tensor, precision: str = "float32") -> Tensor:
    """x (..., d) @ w (d, k) as one 2-D matmul (its weight gradient is then one matmul too)."""
    lead = ops.shape(x)[:-1]
    y = matmul(ops.reshape(x, (-1, x.shape[-1])), w, precision)
    return ops.reshape(y, (*lead, w.shape[-1]))


class LanesSpec(NamedTuple):
    """Static shape of an `lstm_lanes` call (each variant is traced/compiled once)."""

    n_lanes: int
    keep_prob: float | None  # recurrent-dropout keep probability; None: no dropout
    recompute: tuple  # per lane: recompute the gates in the backward (memory) or store them
    x_grad: bool  # whether the inputs x need a gradient (input dropout on [S, z])
    precision: str = "float32"  # of the matmuls (module docstring)


def _keep(mask_t, keep_prob):
    return ops.cast(mask_t, "float32") * (1.0 / keep_prob)


def _lane_forward_gates(pre_in, hw, c, keep_t, m, k):
    """The element-wise part of one step of one lane, from its input part pre_in and its
    recurrent part hw = h_{t-1} @ W: (h_t, c_t, sig_t), sig the gates' sigmoid (B, 4u)."""
    sig = ops.sigmoid(pre_in + hw)  # (B, 4u)
    i, f, g, o = ops.split(sig * m - k, 4, axis=-1)  # g: tanh of the unscaled g
    if keep_t is not None:
        g = g * keep_t
    c_new = f * c + i * g
    return o * ops.tanh(c_new), c_new, sig


def _lane_backward_gates(dh_carry, dh_out, dc, sig, c_prev, keep_t, m, k):
    """The element-wise part of the reverse of one step of one lane: (dc_{t-1}, d_pre_t);
    dh = dh_carry (from step t+1) + dh_out (from the output h_t); dh_{t-1} = d_pre @ W^T."""
    dh = dh_carry + dh_out
    i, f, g, o = ops.split(sig * m - k, 4, axis=-1)
    g_kept = g if keep_t is None else g * keep_t
    tc = ops.tanh(f * c_prev + i * g_kept)  # tanh(c_t), recomputed rather than stored
    dc = dc + dh * o * (1.0 - tc * tc)
    d_g = dc * i if keep_t is None else dc * i * keep_t
    d_act = ops.concatenate([dc * g_kept, dc * c_prev, d_g, dh * tc], axis=-1)
    d_pre = d_act * m * sig * (1.0 - sig)  # (B, 4u), w.r.t. the scaled pre-activation
    return dc * f, d_pre


class StepParts(NamedTuple):
    """The element-wise parts of a step (forward, backward): plain functions inside a loop
    that XLA compiles whole, or each an XLA cluster of its own (`_step_parts`)."""

    forward: Callable
    backward: Callable


def _step_parts(split_xla: bool) -> StepParts:
    """split_xla: the loops stay TensorFlow graphs (their bf16 matmuls then run on oneDNN,
    natively where the CPU has bf16; XLA:CPU would compute them in float32) and only the
    element-wise parts of each step are XLA-compiled (fused as in the whole-loop cluster)."""
    if not split_xla:
        return StepParts(_lane_forward_gates, _lane_backward_gates)
    return StepParts(xla_cluster(_lane_forward_gates), xla_cluster(_lane_backward_gates))


def _unpack(spec: LanesSpec, args):
    L = spec.n_lanes
    groups = [tuple(args[j * L:(j + 1) * L]) for j in range(6)]
    masks = tuple(args[6 * L:]) if spec.keep_prob is not None else (None,) * L
    return (*groups, masks)


def _lanes_forward(spec: LanesSpec, parts: StepParts):
    """The forward loop: every lane's step inside one time loop."""
    L = spec.n_lanes

    def forward(*args):
        xs, w_xs, bs, h0s, c0s, ws, masks = _unpack(spec, args)
        ws = [operand(w, spec.precision) for w in ws]  # cast once, not at every step
        scales = [gate_scale(h.shape[-1]) for h in h0s]
        stored = [lane for lane in range(L) if not spec.recompute[lane]]

        def step(carry, x_t):
            hs, cs, sigs = [], [], []
            for lane in range(L):
                keep_t = None if spec.keep_prob is None else _keep(x_t[L + lane],
                                                                   spec.keep_prob)
                pre_in = matmul(x_t[lane], w_xs[lane], spec.precision) + bs[lane]  # (B, 4u)
                hw = matmul(carry[lane], ws[lane], spec.precision)  # (B, 4u)
                h, c, sig = parts.forward(pre_in, hw, carry[L + lane], keep_t, *scales[lane])
                hs.append(h)
                cs.append(c)
                sigs.append(sig)
            # per step: h_t, the incoming c_{t-1} (for the backward), the stored gates
            return tuple(hs + cs), (tuple(hs) + tuple(carry[L:])
                                    + tuple(sigs[lane] for lane in stored))

        loop_xs = tuple(xs) + (tuple(masks) if spec.keep_prob is not None else ())
        y_shapes = ([h.shape for h in h0s] * 2
                    + [(*h0s[lane].shape[:-1], 4 * h0s[lane].shape[-1]) for lane in stored])
        final, ys = scan(step, tuple(h0s) + tuple(c0s), loop_xs, y_shapes)
        hs, c_prev = ys[:L], ys[L:2 * L]
        sigs = [None] * L
        for j, lane in enumerate(stored):
            sigs[lane] = ys[2 * L + j]
        # the inputs are not returned: an XLA cluster would copy them (masks: 13 MB a lane)
        return tuple(hs) + tuple(final), (tuple(hs), tuple(c_prev), tuple(sigs))

    return forward


def _lanes_backward_loop(spec: LanesSpec, parts: StepParts):
    """The reverse loop over all lanes: (d_pre per lane (N, B, 4u), dh0s, dc0s, d_bs, d_wxs).

    The bias and input-kernel gradients are summed inside the loop (fused, nearly free)
    rather than by two more passes over d_pre afterwards. A lane without stored gates
    rebuilds them step by step from h_{t-1} (one more recurrent-sized matmul a step).
    """
    L = spec.n_lanes

    def loop(sigs, c_prev, h_prevs, masks, xs, w_xs, bs, ws, d_hs, d_hn, d_cn):
        scales = [gate_scale(h.shape[-1]) for h in d_hn]
        w_ts = [operand(ops.transpose(w), spec.precision) for w in ws]  # (4u, u)
        ws = [operand(w, spec.precision) for w in ws]  # cast once, not at every step
        gates_in = [h_prevs[lane] if sigs[lane] is None else sigs[lane] for lane in range(L)]

        def step(carry, x):
            dhs, dcs, d_bs, d_wxs, d_pres = [], [], [], [], []
            for lane in range(L):
                keep_t = None if spec.keep_prob is None else _keep(x[4 * L + lane],
                                                                   spec.keep_prob)
                x_t, sig = x[3 * L + lane], x[L + lane]
                if sigs[lane] is None:  # x[L + lane] is h_{t-1}: rebuild the gates
                    sig = ops.sigmoid(matmul(x_t, w_xs[lane], spec.precision) + bs[lane]
                                      + matmul(sig, ws[lane], spec.precision))
                dc, d_pre = parts.backward(carry[lane], x[lane], carry[L + lane], sig,
                                           x[2 * L + lane], keep_t, *scales[lane])
                dh = matmul(d_pre, w_ts[lane], spec.precision)  # (B, u)
                dhs.append(dh)
                dcs.append(dc)
                d_b = d_pre if len(bs[lane].shape) == 2 else ops.sum(d_pre, axis=0)
                d_bs.append(carry[2 * L + lane] + d_b)
                d_wxs.append(carry[3 * L + lane] + ops.matmul(ops.transpose(x_t), d_pre))
                d_pres.append(d_pre)
            return tuple(dhs + dcs + d_bs + d_wxs), tuple(d_pres)

        loop_xs = (tuple(d_hs) + tuple(gates_in) + tuple(c_prev) + tuple(xs)
                   + (tuple(masks) if spec.keep_prob is not None else ()))
        y_shapes = [(*h.shape[:-1], 4 * h.shape[-1]) for h in d_hn]
        init = (tuple(d_hn) + tuple(d_cn) + tuple(ops.zeros_like(b) for b in bs)
                + tuple(ops.zeros_like(w) for w in w_xs))
        final, d_pres = scan(step, init, loop_xs, y_shapes, reverse=True)
        return (tuple(d_pres), final[:L], final[L:2 * L], final[2 * L:3 * L],
                final[3 * L:])

    return loop


def _lanes_backward(spec: LanesSpec, loop):
    """Backward by hand: the reverse loop, then each recurrent kernel's gradient for all
    N * B rows in one matmul."""
    L = spec.n_lanes

    def backward(residuals, *douts):
        args, (hs, c_prev, sigs) = residuals
        xs, w_xs, bs, h0s, c0s, ws, masks = _unpack(spec, args)
        fill = lambda d, like: ops.zeros_like(like) if d is None else d  # noqa: E731
        d_hs = [fill(d, h) for d, h in zip(douts[:L], hs)]
        d_hn = [fill(d, h) for d, h in zip(douts[L:2 * L], h0s)]
        d_cn = [fill(d, h) for d, h in zip(douts[2 * L:], h0s)]
        h_prevs = [ops.concatenate([h0[None], h[:-1]], axis=0) for h0, h in zip(h0s, hs)]
        d_pres, dh0s, dc0s, d_bs, d_wxs = loop(
            sigs, c_prev, tuple(h_prevs), masks if spec.keep_prob is not None else None,
            xs, w_xs, bs, ws, tuple(d_hs), tuple(d_hn), tuple(d_cn))
        d_xs, d_ws = [], []
        for lane in range(L):
            u = h0s[lane].shape[-1]
            d_pre = ops.reshape(d_pres[lane], (-1, 4 * u))  # (N * B, 4u)
            d_ws.append(matmul(ops.reshape(h_prevs[lane], (-1, u)), d_pre, spec.precision,
                               transpose_a=True))  # (u, 4u)
            d_xs.append(matmul_rows(d_pres[lane], ops.transpose(w_xs[lane]), spec.precision)
                        if spec.x_grad else None)
        grads = d_xs + list(d_wxs) + list(d_bs) + list(dh0s) + list(dc0s) + d_ws
        return tuple(grads) + ((None,) * L if spec.keep_prob is not None else ())

    return backward


_LANES_FNS: dict = {}


def _lanes_fn(spec: LanesSpec, xla: bool, fused: bool):
    """The loop for one spec (built once per spec, setting and backend): with its
    hand-written backward, or (`fused` False) the same forward under plain autodiff.

    `xla_cluster` wraps nothing off TensorFlow, so there the split question is moot. The
    unfused loop is never an XLA cluster: TensorFlow's autodiff cannot take the loop's
    TensorArrays across a cluster's boundary."""
    xla = xla and fused
    key = (spec, xla, fused, name())
    if key not in _LANES_FNS:
        split = xla and spec.precision != "float32"
        parts = _step_parts(split)
        forward, loop = _lanes_forward(spec, parts), _lanes_backward_loop(spec, parts)
        if xla and not split:
            forward, loop = xla_cluster(forward), xla_cluster(loop)
        if fused:
            _LANES_FNS[key] = custom_vjp(forward, _lanes_backward(spec, loop))
        else:
            _LANES_FNS[key] = lambda *args, forward=forward: forward(*args)[0]
    return _LANES_FNS[key]


def lstm_lanes(xs: list[Tensor], w_xs: list[Tensor], bs: list[Tensor], h0s: list[Tensor],
               c0s: list[Tensor], ws: list[Tensor], masks: list[Tensor] | None = None,
               keep_prob: float = 1.0, recompute: list[bool] | None = None,
               x_grad: bool = False, xla: bool = True, precision: str = "float32",
               fused: bool = True) -> tuple[tuple, tuple, tuple]:
    """L independent LSTMs ("lanes") in one time loop, with a hand-written backward.

    Per lane: inputs x (N, B, d), scaled input kernel w_x (d, 4u), scaled bias b (4u,) or
    (B, 4u) (the decoder's z part goes here, once per sketch), h0, c0 (B, u), scaled
    recurrent kernel w (u, 4u), and a boolean recurrent-dropout keep mask (N, B, u).
    `recompute[lane]`: rebuild that lane's gates for the backward from the stored h with
    one big matmul instead of storing them (4u floats a step), to save memory.
    `xla`: compile the two loops with XLA on TensorFlow (see the module docstring).
    `precision`: of the matmuls (`precision.matmul`; the module docstring says which).
    `fused`: the hand-written backward; False: autodiff through the same forward loop
    (`backend.FastPath.fused`).
    Returns (hs per lane (N, B, u), h_N per lane, c_N per lane).
    """
    L = len(xs)
    spec = LanesSpec(L, None if masks is None else float(keep_prob),
                     tuple(recompute) if recompute is not None else (False,) * L, bool(x_grad),
                     precision)
    args = [*xs, *w_xs, *bs, *h0s, *c0s, *ws, *(masks or [])]
    outs = _lanes_fn(spec, xla, fused)(*args)
    return tuple(outs[:L]), tuple(outs[L:2 * L]), tuple(outs[2 * L:])
