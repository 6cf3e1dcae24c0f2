"""Stroke formats, augmentation semantics and RDP (sketch_rnn.strokes)."""
from __future__ import annotations

import numpy as np
import pytest

from sketch_rnn.core import strokes as S

# Two strokes: an L (3 points) then a zig-zag (6 points); the last point ends the sketch.
SKETCH = np.array([
    [5, 0, 0], [0, 5, 0], [3, 3, 1],
    [-2, 1, 0], [1, 1, 0], [1, -1, 0], [1, 1, 0], [1, -1, 0], [2, 2, 1],
], dtype=np.int16)


def test_stroke5_layout_and_round_trip():
    s5 = S.stroke3_to_stroke5(SKETCH, max_len=12)
    assert s5.shape == (13, 5) and s5.dtype == np.float32
    np.testing.assert_array_equal(s5[0], [0, 0, 1, 0, 0])  # S_0
    np.testing.assert_array_equal(s5[1], [5, 0, 1, 0, 0])  # pen down: p1 = 1
    np.testing.assert_array_equal(s5[3], [3, 3, 0, 1, 0])  # pen lifted after it: p2 = 1
    np.testing.assert_array_equal(s5[10:], np.tile([0, 0, 0, 0, 1], (3, 1)))  # padding
    np.testing.assert_array_equal(s5[1:10, 2] + s5[1:10, 3], np.ones(9))
    back = S.stroke5_to_stroke3(s5)
    np.testing.assert_array_equal(back, SKETCH.astype(np.float32))


def test_packed_to_stroke5_matches_per_sketch():
    a, b = SKETCH, SKETCH[:4]
    points, offsets = S.pack([a, b])
    np.testing.assert_array_equal(offsets, [0, 9, 13])
    batch, lengths = S.packed_to_stroke5(points, np.diff(offsets), 10)
    assert batch.shape == (2, 11, 5)
    np.testing.assert_array_equal(lengths, [9, 4])
    np.testing.assert_array_equal(batch[0], S.stroke3_to_stroke5(a, 10))
    np.testing.assert_array_equal(batch[1], S.stroke3_to_stroke5(b, 10))
    with pytest.raises(ValueError):
        S.packed_to_stroke5(points, np.diff(offsets), 8)


def test_polylines_round_trip_and_absolute_coordinates():
    lines = S.stroke3_to_polylines(SKETCH)
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[0], [[5, 0], [5, 5], [8, 8]])
    np.testing.assert_array_equal(lines[1][0], [6, 9])
    np.testing.assert_array_equal(lines[1][-1], [12, 11])
    np.testing.assert_array_equal(S.polylines_to_stroke3(lines), SKETCH)
    # an unterminated last stroke is kept, and comes back terminated
    open_end = SKETCH[:5]
    back = S.polylines_to_stroke3(S.stroke3_to_polylines(open_end))
    np.testing.assert_array_equal(back[:, :2], open_end[:, :2])
    assert back[-1, 2] == 1


def test_scale_factor_and_normalise():
    rng = np.random.default_rng(3)
    sketches = [rng.integers(-20, 20, size=(n, 3)) for n in (5, 9, 14)]
    xy = np.concatenate([s[:, :2] for s in sketches]).ravel()
    assert S.scale_factor(sketches) == pytest.approx(np.std(xy), rel=1e-12)
    norm = S.normalise(SKETCH, 2.5)
    np.testing.assert_allclose(norm[:, :2], SKETCH[:, :2] / 2.5, rtol=1e-6)
    np.testing.assert_array_equal(norm[:, 2], SKETCH[:, 2])
    np.testing.assert_allclose(S.denormalise(norm, 2.5), SKETCH, rtol=1e-6)


def test_droppable_follows_magenta_count_rule():
    # stroke 1: 6 points (indices 0-5); stroke 2 starts at 6 and has 5 points (6-10)
    pen = np.array([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
    expected = np.zeros(11, dtype=bool)
    expected[[3, 4]] = True  # 4th and 5th point of stroke 1 (index 5 has pen 1)
    expected[9] = True  # only the 4th point of stroke 2 (index 10 has pen 1)
    np.testing.assert_array_equal(S.droppable(pen, np.array([0])), expected)
    # a sketch boundary restarts the count like a pen-up does
    np.testing.assert_array_equal(S.droppable(np.zeros(8), np.array([0, 4])),
                                  [0, 0, 0, 1, 0, 0, 0, 1])


def _reference_augment(stroke3: np.ndarray, prob: float, uniforms: np.ndarray) -> np.ndarray:
    """magenta's augment_strokes loop, fed the same per-point uniforms."""
    result, prev, count, last = [], [0, 0, 1], 0, None
    for i, row in enumerate(stroke3):
        cand = [float(row[0]), float(row[1]), float(row[2])]
        count = 0 if (cand[2] == 1 or prev[2] == 1) else count + 1
        if cand[2] == 0 and prev[2] == 0 and count > 2 and uniforms[i] < prob:
            last[0] += cand[0]
            last[1] += cand[1]
        else:
            last = cand
            prev = last
            result.append(last)
    return np.array(result, dtype=np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_augment_strokes_equals_reference_loop(seed):
    rng = np.random.default_rng(100 + seed)
    n = 60
    sketch = np.zeros((n, 3), np.float32)
    sketch[:, :2] = rng.integers(-9, 10, size=(n, 2))
    sketch[rng.choice(n, 6, replace=False), 2] = 1
    sketch[-1, 2] = 1
    prob = 0.5
    uniforms = np.random.default_rng(seed).random(n, dtype=np.float32)
    got = S.augment_strokes(sketch, prob, np.random.default_rng(seed))
    want = _reference_augment(sketch, prob, uniforms)
    assert len(got) < n  # something was dropped
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_augment_keeps_strokes_and_end_point():
    rng = np.random.default_rng(0)
    sketches = [SKETCH.astype(np.float32) * [k, -k, 1] for k in (1, 2, 3)] * 20
    points, offsets = S.pack(sketches)
    lengths = np.diff(offsets)
    out, new_lengths = S.augment_packed(points, lengths, 0.0, 0.9, rng)
    assert new_lengths.sum() < lengths.sum()
    new_off = np.concatenate(([0], np.cumsum(new_lengths)))
    for i, s in enumerate(sketches):
        a = out[new_off[i]:new_off[i + 1]]
        assert a[:, 2].sum() == s[:, 2].sum()  # same number of strokes
        np.testing.assert_allclose(a[:, :2].sum(0), s[:, :2].sum(0), atol=1e-4)  # same end
        assert a[-1, 2] == 1


def test_random_scale_is_per_axis_and_bounded():
    rng = np.random.default_rng(7)
    sketches = [SKETCH.astype(np.float32)] * 200
    points, offsets = S.pack(sketches)
    out, lengths = S.augment_packed(points, np.diff(offsets), 0.15, 0.0, rng)
    np.testing.assert_array_equal(lengths, np.diff(offsets))
    fx = out[offsets[:-1], 0] / 5.0  # first point is (5, 0): x factor
    fy = out[offsets[:-1] + 1, 1] / 5.0  # second point is (0, 5): y factor
    assert fx.min() >= 0.85 - 1e-6 and fx.max() <= 1.15 + 1e-6
    assert fy.min() >= 0.85 - 1e-6 and fy.max() <= 1.15 + 1e-6
    assert not np.allclose(fx, fy)  # independent draws
    np.testing.assert_array_equal(out[:, 2], points[:, 2])


def test_augment_to_stroke5_equals_two_steps():
    points, offsets = S.pack([SKETCH] * 7)
    one, l1 = S.augment_to_stroke5(points, np.diff(offsets), 12, 0.2, 0.3,
                                   np.random.default_rng(5))
    p, l = S.augment_packed(points, np.diff(offsets), 0.2, 0.3, np.random.default_rng(5))
    two, l2 = S.packed_to_stroke5(p, l, 12)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(one, two)


def test_rdp_known_shapes():
    line = np.stack([np.arange(10.0), 2 * np.arange(10.0)], axis=1)
    np.testing.assert_array_equal(S.rdp(line, 0.1), [[0, 0], [9, 18]])
    # a right angle: the corner stays
    corner = np.array([[0, 0], [1, 0.01], [2, 0], [2, 1], [2, 2]])
    np.testing.assert_array_equal(S.rdp(corner, 0.1), [[0, 0], [2, 0], [2, 2]])
    # epsilon larger than the deviation drops the corner
    np.testing.assert_array_equal(S.rdp(corner, 2.0), [[0, 0], [2, 2]])
    # closed loop (ends coincide): distances are measured to the start point
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], dtype=float)
    np.testing.assert_array_equal(S.rdp(square, 1.0), square)
    # a bump exactly at epsilon is not "farther than epsilon"
    bump = np.array([[0, 0], [1, 1], [2, 0]], dtype=float)
    np.testing.assert_array_equal(S.rdp(bump, 1.0), [[0, 0], [2, 0]])
    np.testing.assert_array_equal(S.rdp(bump, 0.99), bump)
    # two points and integer input pass through unchanged
    ints = np.array([[0, 0], [5, 5]], dtype=np.int64)
    assert S.rdp(ints, 1.0).dtype == np.int64


def test_rdp_noisy_circle_keeps_shape():
    t = np.linspace(0, 2 * np.pi, 400)
    rng = np.random.default_rng(1)
    circle = np.stack([100 * np.cos(t), 100 * np.sin(t)], axis=1) + rng.normal(0, 0.2, (400, 2))
    simple = S.rdp(circle, 2.0)
    assert 10 < len(simple) < 60
    np.testing.assert_array_equal(simple[0], circle[0])
    np.testing.assert_array_equal(simple[-1], circle[-1])
    # every dropped point lies within epsilon of the line through its replacing segment
    where = [int(np.flatnonzero((circle == p).all(axis=1))[0]) for p in simple]
    assert where == sorted(where)
    for i, j in zip(where[:-1], where[1:]):
        a, b = circle[i], circle[j]
        d = b - a
        rel = circle[i + 1:j] - a
        dist = np.abs(d[0] * rel[:, 1] - d[1] * rel[:, 0]) / np.hypot(*d)
        assert (dist <= 2.0).all()
