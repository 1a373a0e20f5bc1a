"""Seed 003's labels: pattern geometry, hand-worked motion and colour labels, the flip property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsslkit.plans import IGNORE_INDEX
from vsslkit.tasks.statistics_labels import (
    APPEARANCE_LABELS,
    LABELS,
    MOTION_LABELS,
    REFERENCE_COLOUR,
    clip_labels,
    decode_regression,
    difficulty,
    flip_labels,
    num_classes,
    pattern_masks,
    regression_targets,
)

S = 56


def flip_clip(frames: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A horizontal flip done right: pixels mirrored, and u mirrored AND negated."""
    flow = flow[:, :, :, ::-1].copy()
    flow[..., 0] *= -1
    return frames[:, :, :, ::-1].copy(), flow


def test_pattern_geometry():
    m = pattern_masks(112)
    assert [len(m[p]) for p in (1, 2, 3)] == [16, 4, 8]
    assert (m[1].sum(0) == 1).all() and (m[1].sum((1, 2)) == 28 * 28).all()  # P1 partitions in 28x28
    assert (m[2].sum(0) == 1).all() and m[2][0].sum() == 28 * 28 and m[2][0][42:70, 42:70].all()
    assert m[2][1][28:84, 28:84].sum() == 56 * 56 - 28 * 28 and m[2][3].sum() == 112 * 112 - 84 * 84
    assert (m[3].sum((1, 2)) == 56 * 57 // 2).all()  # the paper's 1596 px per triangle
    assert set(np.unique(m[3].sum(0))) == {1, 2}  # diagonal pixels in two triangles
    assert m[3][0][55, 0] and m[3][1][0, 55] and m[3][2][0, 56] and m[3][3][55, 111]  # W-NW, NW-N, N-NE, NE-E
    assert m[3][4][56, 0] and m[3][5][111, 55] and m[3][6][111, 56] and m[3][7][56, 111]  # W-SW, SW-S, S-SE, SE-E
    small = pattern_masks(S)
    assert small[1][5][14:28, 14:28].all() and small[2][0][21:35, 21:35].all() and small[2][0].sum() == 14 * 14
    for p, mapping in ((1, [4 * (k // 4) + 3 - k % 4 for k in range(16)]), (2, range(4)), (3, [3, 2, 1, 0, 7, 6, 5, 4])):
        np.testing.assert_array_equal(small[p][:, :, ::-1], small[p][list(mapping)])  # the flip maps blocks


def test_class_counts_and_order():
    assert len(MOTION_LABELS) == 14 and len(APPEARANCE_LABELS) == 13
    assert MOTION_LABELS[:4] == ("m1_pu", "m1_ou", "m1_pv", "m1_ov") and MOTION_LABELS[-2:] == ("m_Iu", "m_Iv")
    n = num_classes(8)
    assert sum(n[k] for k in MOTION_LABELS) == 118 and sum(n[k] for k in APPEARANCE_LABELS) == 112
    assert sum(num_classes(16)[k] for k in MOTION_LABELS) == 134


def corner_object(speed_at: int = 3) -> np.ndarray:
    """Flow of an object in the top-left corner ([0:6, 0:10] of a 56 px crop) moving up-left,
    u = v = -1 px/frame, twice as fast in flow `speed_at`: (1, 7, 56, 56, 2)."""
    flow = np.zeros((1, 7, S, S, 2), dtype=np.float32)
    flow[:, :, 0:6, 0:10] = -1.0
    flow[:, speed_at, 0:6, 0:10] = -2.0
    return flow


def test_hand_worked_object_moving_up_left():
    """Worked by hand on M_u = M_v = Σu (-8 on the object, 0 elsewhere), central differences:
    the bottom edge (rows 5-6, cols 0..9) has ∂/∂y = +4 on 19 px (θ = 270°, halfway between bins 5
    and 6), the right edge (cols 9-10, rows 0..5) ∂/∂x = +4 on 11 px (θ = 0°, bins 7 | 0), and the
    corner (5, 9) (+4, +4): θ = 315°, bins 6 | 7. Per pattern:
    - P1: all in block 0; bins 5: 38, 6: 38 + 2.83, 7: 22 + 2.83, 0: 22 -> bin 6 (down).
    - P2: all in the outer ring 3 (rows < 7), the same histogram -> bin 6.
    - P3: triangle NW-N (r <= c: 8 bottom-edge px + 11 right-edge px + the corner) beats W-NW
      (13 px); inside it bins 5: 16, 6: 16 + 2.83, 7: 22 + 2.83, 0: 22 -> bin 7.
    - global: flow 3 (twice the speed) has the largest boundary magnitude.
    """
    frames = np.zeros((1, 8, S, S, 3), dtype=np.uint8)
    got = {k: int(v[0]) for k, v in clip_labels(frames, corner_object()).items()}
    for c in "uv":
        assert (got[f"m1_p{c}"], got[f"m1_o{c}"]) == (0, 6)
        assert (got[f"m2_p{c}"], got[f"m2_o{c}"]) == (3, 6)
        assert (got[f"m3_p{c}"], got[f"m3_o{c}"]) == (1, 7)
        assert got[f"m_I{c}"] == 3
    flipped = {k: int(v[0]) for k, v in clip_labels(*flip_clip(frames, corner_object())).items()}
    # moving up-RIGHT in the top-right corner: P1 block 3; u: edge at 90° (bins 1|2) + corner at 45°
    # (bins 0|1) -> bin 1 = 7 - 6; v: bottom edge at 270° + corner at 225° (bins 4|5) -> 5 = 3 - 6 mod 8
    assert (flipped["m1_pu"], flipped["m1_ou"], flipped["m1_pv"], flipped["m1_ov"]) == (3, 1, 3, 5)
    assert (flipped["m3_pu"], flipped["m3_ou"], flipped["m3_ov"]) == (2, 0, 4)


def test_motionless_clip_gets_ignore_labels():
    frames = np.full((2, 8, S, S, 3), 200, dtype=np.uint8)
    flow = np.zeros((2, 7, S, S, 2), dtype=np.float32)
    flow[1] = corner_object()[0]
    flow[1, ..., 1] = 0  # clip 1: horizontal motion only
    got = clip_labels(frames, flow)
    for name in MOTION_LABELS:
        assert got[name][0] == IGNORE_INDEX
    assert got["m1_pu"][1] == 0 and got["m1_pv"][1] == IGNORE_INDEX and got["m_Iv"][1] == IGNORE_INDEX
    assert all(got[name][0] != IGNORE_INDEX for name in APPEARANCE_LABELS)


def test_colour_labels_on_constructed_frames():
    """Grey (100) everywhere except P1 block 0 ([0:14, 0:14]): constant red, whose left strip
    [0:14, 0:6] flickers red/green/blue/red. Red is 896 + 336 of the block's 1568 pixel-frames."""
    frames = np.full((1, 8, S, S, 3), 100, dtype=np.uint8)
    frames[0, :, 0:14, 0:14] = (250, 0, 0)
    palette = np.array([[250, 0, 0], [0, 250, 0], [0, 0, 250], [250, 0, 0]] * 2, dtype=np.uint8)
    frames[0, :, 0:14, 0:6] = palette[:, None, None, :]
    got = {k: int(v[0]) for k, v in clip_labels(frames, np.zeros((1, 7, S, S, 2), np.float32)).items()}
    assert got["a1_pl"] == 0 and got["a1_cl"] == 4  # the only diverse block; red = 4*[R>=128]
    assert got["a1_ps"] == 1 and got["a1_cs"] == 0  # constant blocks have IoU 1, the first wins; grey < 128: bin 0
    assert got["a2_pl"] == 3 and got["a2_cl"] == 0  # the strip lies in the outer ring (cols < 7), mostly grey
    assert got["a3_pl"] == 0  # the strip is mostly below the top-left diagonal: W-NW
    assert got["a_C"] == 0  # the frame is mostly grey
    frames[0, :, :, :] = (200, 30, 200)  # magenta everywhere: bin 4 + 1 = 5
    assert clip_labels(frames, np.zeros((1, 7, S, S, 2), np.float32))["a_C"][0] == 5
    assert REFERENCE_COLOUR[5] == 2  # the reference numbers magenta 4*[B<128] + 2*[R>=128] + [G>=128] = 2


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), objects=st.integers(0, 3), batch=st.integers(1, 3))
def test_flip_property(seed, objects, batch):
    """labels(flip(clip)) == mirror(labels(clip)) on random clips (random objects over smooth flow)."""
    rng = np.random.default_rng(seed)
    flow = rng.normal(0, 0.3, size=(batch, 7, S, S, 2)).astype(np.float32)
    for b in range(batch):
        for _ in range(objects):
            r, c, h, w = rng.integers(0, S - 4, 2).tolist() + rng.integers(3, 20, 2).tolist()
            flow[b, :, r : r + h, c : c + w] += rng.normal(0, 2, size=(7, 1, 1, 2))
    frames = rng.integers(0, 256, size=(batch, 8, S, S, 3), dtype=np.uint8)
    frames[:, :, : S // 2] = frames[:, :, : S // 2] // int(rng.integers(1, 4))  # uneven colour diversity between blocks
    labels = clip_labels(frames, flow)
    flipped = clip_labels(*flip_clip(frames, flow))
    expected = flip_labels(labels)
    for name in LABELS:
        np.testing.assert_array_equal(flipped[name], expected[name], err_msg=name)


def test_unnegated_flip_breaks_the_u_orientation():
    """The public code's flip (mirror without negating u) turns o_u by 180 degrees (4 bins)."""
    frames = np.zeros((1, 8, S, S, 3), dtype=np.uint8)
    flow = corner_object()
    buggy = flow[:, :, :, ::-1].copy()
    right = clip_labels(*flip_clip(frames, flow))["m1_ou"][0]
    wrong = clip_labels(frames, buggy)["m1_ou"][0]
    assert (wrong - right) % 8 == 4


def test_regression_targets_round_trip():
    rng = np.random.default_rng(0)
    n = num_classes(8)
    labels = {k: rng.integers(0, n[k], size=5) for k in LABELS}
    labels["m1_pu"][0] = IGNORE_INDEX
    for two_d, widths in ((False, (14, 13)), (True, (18, 17))):
        motion, app = regression_targets(labels, two_d=two_d)
        assert (motion.shape[1], app.shape[1]) == widths
        assert np.isnan(motion[0, 0]) and np.nanmin(motion) >= 1  # 1-based; ignored -> NaN
        back = decode_regression(np.nan_to_num(motion, nan=1), app + 0.3, two_d=two_d)
        for k in LABELS:
            np.testing.assert_array_equal(back[k][1:], labels[k][1:], err_msg=k)
    motion, _ = regression_targets({**labels, "m1_pu": np.array([6, 0, 15, 3, 12])}, two_d=True)
    np.testing.assert_array_equal(motion[:, :2], [[2, 3], [1, 1], [4, 4], [1, 4], [4, 1]])  # block 7 (1-based) = (2, 3)


def test_difficulty_prefers_one_dominant_block():
    one = corner_object()
    spread = np.zeros_like(one)
    for r in (0, 20, 40):
        for c in (0, 20, 40):
            spread[:, :, r : r + 6, c : c + 10] = -1.0
    f = difficulty(np.concatenate([one, spread, np.zeros_like(one)]))
    assert f[0] == pytest.approx(1.0) and 0 < f[1] < 0.5 and f[2] == 0.0


def test_flow_smoothing_lets_an_edge_beat_pixel_noise():
    """`flow_sigma`: blurring keeps the summed |∇| of an object's edge and shrinks that of pixel-scale
    noise, so the block holding a moving square wins m1_pu where the raw noise hides it; 0 is the
    paper's labels, bit for bit."""
    from vsslkit.tasks.statistics_labels import clip_labels, smooth_flow

    rng = np.random.default_rng(0)
    b, f, s = 16, 3, 32
    flow = rng.normal(0, 1.0, (b, f, s, s, 2)).astype(np.float32)
    flow[:, :, 9:14, 9:14, 0] += 1.0  # a 5 px square moving right, inside block 4*1 + 1 = 5
    frames = rng.integers(0, 256, (b, f + 1, s, s, 3), dtype=np.uint8)
    raw = clip_labels(frames, flow)
    assert all(np.array_equal(raw[k], v) for k, v in clip_labels(frames, flow, flow_sigma=0.0).items())
    smooth = clip_labels(frames, flow, flow_sigma=1.5)
    assert (raw["m1_pu"] == 5).mean() < 0.25 and (smooth["m1_pu"] == 5).all()
    assert np.array_equal(raw["a_C"], smooth["a_C"])  # appearance labels do not read the flow
    assert smooth_flow(flow, 1.5).shape == flow.shape
    with pytest.raises(ValueError, match="flow_sigma"):
        clip_labels(frames, flow, flow_sigma=-1.0)
