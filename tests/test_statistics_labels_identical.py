"""The fast `clip_labels` gives exactly the labels of the straightforward numpy version it replaced.

`clip_labels` now counts with OpenCV and sums over pixels in a pixel-major layout (see the
module). Argmax labels are sensitive to the last bit of a float sum when two blocks or bins tie
(quantised flow, uniform colours), so the reference below is the previous implementation verbatim
(commit c350133: np.bincount over int64 indices, the per-flow sums in the (B, F, S, S, 2) layout)
and every label, the motion boundaries and the curriculum score must be identical on random clips of every kind: smooth
noise, objects with real-valued, integer and half-integer motion (many pixels exactly on a bin
boundary), motionless clips, few-level colours (ties), several sizes, lengths, bin counts, and
batches of more than 256 frames (OpenCV's frame index is a uint8 image, counted in chunks).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vsslkit.plans import IGNORE_INDEX
from vsslkit.tasks.statistics_labels import LABELS, clip_labels, difficulty, motion_boundaries, pattern_masks

# ------------------ the reference: c350133 verbatim, but for the name of motion_boundaries and no lru_cache


def _twice_grad(f: np.ndarray, axis: int) -> np.ndarray:
    """2 x the central differences along `axis` (one-sided at the border, doubled to match): the 1/2
    is applied once to the final sums, which saves a pass over every flow."""
    out = np.empty_like(f)
    n = f.shape[axis]
    sl = lambda a, b: (slice(None),) * (axis % f.ndim) + (slice(a, b),)
    np.subtract(f[sl(2, n)], f[sl(0, n - 2)], out=out[sl(1, n - 1)])
    np.subtract(f[sl(1, 2)], f[sl(0, 1)], out=out[sl(0, 1)])
    np.subtract(f[sl(n - 1, n)], f[sl(n - 2, n - 1)], out=out[sl(n - 1, n)])
    out[sl(0, 1)] *= 2
    out[sl(n - 1, n)] *= 2
    return out


def reference_motion_boundaries(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M_u and M_v, `(B, S, S, 2 components [u, v], 2 derivatives [d/dx, d/dy])`, and the per-flow
    summed magnitudes `(B, F, 2)` (eq. 3's Σ_pixels |m^i|). The derivative is linear, so M is the
    gradient of the summed flow."""
    flow = np.asarray(flow, dtype=np.float32)
    dx, dy = _twice_grad(flow, 3), _twice_grad(flow, 2)  # columns (x, right), rows (y, down)
    np.multiply(dx, dx, out=dx)
    np.multiply(dy, dy, out=dy)
    dx += dy
    per_flow = np.sqrt(dx, out=dx).sum(axis=(2, 3)) * 0.5  # (B, F, 2)
    total = flow.sum(axis=1)  # (B, S, S, 2)
    return np.stack([_twice_grad(total, 2), _twice_grad(total, 1)], axis=-1) * 0.5, per_flow


def _orientation_bins(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """θ = atan2(-gy, gx) in [0, 360) degrees (CCW on screen) → (bin ⌊θ/45⌋, remainder r in [0, 1))."""
    theta = np.degrees(np.arctan2(-gy, gx)) % 360.0
    pos = theta / 45.0
    k = np.floor(pos).astype(np.int64) % 8
    return k, pos - np.floor(pos)


def _regions(size: int) -> tuple[np.ndarray, np.ndarray, dict[int, slice]]:
    """The coarsest partition that refines all three patterns (64 regions at any size): every pixel's
    region `(S*S,)`, the region -> block membership `(R, 28)` (float32; P3's diagonal regions belong
    to two triangles) and each pattern's columns. Histograms are counted once per region (one small
    `bincount`) and summed into blocks with one matrix product: this is what makes the labels fast."""
    masks = pattern_masks(size)
    stacked = np.concatenate([masks[1], masks[2], masks[3]]).reshape(28, -1)
    keys, region = np.unique(stacked.T, axis=0, return_inverse=True)
    return region.reshape(-1).astype(np.int64), keys.astype(np.float32), {1: slice(0, 16), 2: slice(16, 20), 3: slice(20, 28)}


def _motion(flow: np.ndarray, size: int, eps: float, soft: bool) -> dict[str, np.ndarray]:
    b = flow.shape[0]
    region, member, cols = _regions(size)
    r = len(member)
    total, per_flow = reference_motion_boundaries(flow)  # (B, S, S, 2 [u, v], 2 [dx, dy]) = M_u, M_v
    mag = np.sqrt((total ** 2).sum(-1)).reshape(b, -1, 2)  # (B, S*S, 2)
    bins, rem = _orientation_bins(total[..., 0], total[..., 1])
    bins, rem = bins.reshape(b, -1, 2), rem.reshape(b, -1, 2)
    moving = mag.mean(axis=1) >= eps  # (B, 2)
    # orientation histogram per (clip, component, bin, region), magnitude-weighted
    base = (np.arange(b)[:, None, None] * 2 + np.arange(2)[None, None, :]) * 8  # (B, 1, 2)
    reg = region[None, :, None]
    if soft:  # the reference: 1 - r to bin k, r to bin k + 1
        first, second, share = bins, (bins + 1) % 8, rem
    else:  # hard bins; a pixel exactly on a boundary gives half to each neighbour (see above)
        first, second, share = bins, (bins - 1) % 8, 0.5 * (rem == 0)
    size_out = b * 2 * 8 * r
    hist = np.bincount(((base + first) * r + reg).ravel(), (mag * (1 - share)).ravel(), minlength=size_out)
    hist += np.bincount(((base + second) * r + reg).ravel(), (mag * share).ravel(), minlength=size_out)
    hist = (hist.reshape(b * 2 * 8, r).astype(np.float32) @ member).reshape(b, 2, 8, 28)  # per block
    sums = hist.sum(2)  # (B, 2, 28): every pixel's magnitude went to some bin
    area = member.T @ np.bincount(region, minlength=r).astype(np.float32)  # (28,) pixels per block
    out: dict[str, np.ndarray] = {}
    rows = np.arange(b)
    for p, c in cols.items():
        block = sums[:, :, c] / area[c] if p == 2 else sums[:, :, c]  # P2: mean magnitude, the rings' areas differ
        chosen = block.argmax(-1)  # (B, 2)
        for k, comp in enumerate("uv"):
            orient = hist[rows, k, :, c.start + chosen[:, k]].argmax(1)
            out[f"m{p}_p{comp}"] = np.where(moving[:, k], chosen[:, k], IGNORE_INDEX)
            out[f"m{p}_o{comp}"] = np.where(moving[:, k], orient, IGNORE_INDEX)
    has_boundary = per_flow.max(axis=1) > 0  # (B, 2)
    for k, comp in enumerate("uv"):
        out[f"m_I{comp}"] = np.where(has_boundary[:, k], per_flow[:, :, k].argmax(1), IGNORE_INDEX)
    return out


def _appearance(frames: np.ndarray, size: int, hist_bins: int) -> dict[str, np.ndarray]:
    b, n = frames.shape[:2]
    region, member, cols = _regions(size)
    r = len(member)
    frames = np.ascontiguousarray(frames, dtype=np.uint8).reshape(b, n, size * size, 3)
    # colour bin per pixel; counts per (clip, colour, region) over all frames, then per block
    colour = ((frames[..., 0] >> 7) << 2) | ((frames[..., 1] >> 7) << 1) | (frames[..., 2] >> 7)  # (B, N, P)
    cidx = (np.arange(b)[:, None, None] * 8 + colour) * r + region
    colours = np.bincount(cidx.ravel(), minlength=b * 8 * r).reshape(b, 8, r).astype(np.float32)
    colour_counts = colours @ member  # (B, 8, 28)
    # per-frame channel histograms per (clip, frame, channel, bin, region), then per block
    shift = int(np.log2(256 // hist_bins))
    # int64 throughout: bincount converts anything else to it first, which costs more than the count
    idx = np.multiply(frames >> shift, r, dtype=np.int64)  # (B, N, P, 3)
    idx += (np.arange(3) * (hist_bins * r))[None, None, None, :] + region[:, None]
    idx += (np.arange(b * n) * (3 * hist_bins * r)).reshape(b, n, 1, 1)
    counts = np.bincount(idx.ravel(), minlength=b * n * 3 * hist_bins * r)
    hist = (counts.reshape(-1, r).astype(np.float32) @ member).reshape(b, n, 3, hist_bins, 28)
    iou = (hist.min(axis=1).sum(2) / np.maximum(hist.max(axis=1).sum(2), 1)).mean(1)  # (B, 28)
    out: dict[str, np.ndarray] = {}
    rows = np.arange(b)
    for p, c in cols.items():
        large, small = iou[:, c].argmin(1), iou[:, c].argmax(1)
        out[f"a{p}_pl"] = large
        out[f"a{p}_cl"] = colour_counts[rows, :, c.start + large].argmax(1)
        out[f"a{p}_ps"] = small
        out[f"a{p}_cs"] = colour_counts[rows, :, c.start + small].argmax(1)
    out["a_C"] = colours.sum(-1).argmax(1)
    return out


def reference_difficulty(flow: np.ndarray) -> np.ndarray:
    flow = np.asarray(flow, dtype=np.float32)
    b, size = flow.shape[0], flow.shape[2]
    total, _ = reference_motion_boundaries(flow)
    mag = np.sqrt((total ** 2).sum(-1))
    masks = pattern_masks(size)[1].reshape(16, -1).astype(np.float32)
    sums = mag.reshape(b, -1, 2).transpose(0, 2, 1) @ masks.T
    total = sums.sum(-1)
    share = np.where(total > 0, sums.max(-1) / np.maximum(total, 1e-12), 0.0)
    return share.max(-1)


def reference_labels(frames, flow, *, hist_bins=32, soft_orientation=False):
    size = frames.shape[2]
    out = {**_motion(flow, size, 1e-3, soft_orientation), **_appearance(frames, size, hist_bins)}
    return {name: out[name].astype(np.int64) for name in LABELS}


# ------------------------------------------------------------------ random clips of every kind

KINDS = ("smooth", "objects", "integer", "half", "still")


def random_clips(rng: np.random.Generator, kind: str, b: int, n: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    f = n - 1
    flow = rng.normal(0, 0.3, size=(b, f, s, s, 2)).astype(np.float32) if kind == "smooth" else \
        np.zeros((b, f, s, s, 2), np.float32)
    if kind != "still":
        for i in range(b):
            for _ in range(int(rng.integers(1, 4))):
                r, c = rng.integers(0, s - 2, 2)
                h, w = rng.integers(2, max(3, s // 2), 2)
                steps = f if rng.random() < 0.5 else 1  # constant motion: equal flows, tied global labels
                if kind == "integer":
                    v = rng.integers(-3, 4, size=(steps, 1, 1, 2)).astype(np.float32)
                elif kind == "half":
                    v = rng.integers(-6, 7, size=(steps, 1, 1, 2)).astype(np.float32) / 2
                else:
                    v = rng.normal(0, 2, size=(steps, 1, 1, 2)).astype(np.float32)
                flow[i, :, r : r + h, c : c + w] += v
    frames = rng.integers(0, 256, size=(b, n, s, s, 3), dtype=np.uint8)
    if rng.random() < 0.5:
        frames = frames // 64 * 64  # four levels per channel: tied colour counts
    frames[:, :, : s // 2] //= np.uint8(rng.integers(1, 4))
    if kind == "still":
        frames[:, : n // 2] = 128
    return frames, flow


def assert_identical(frames, flow, **kw):
    got, want = clip_labels(frames, flow, **kw), reference_labels(frames, flow, **kw)
    assert list(got) == list(LABELS)
    for name in LABELS:
        np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} {kw}")
    for new, ref in zip(motion_boundaries(flow), reference_motion_boundaries(flow)):
        np.testing.assert_array_equal(new, ref)
    np.testing.assert_array_equal(difficulty(flow), reference_difficulty(flow))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(KINDS), batch=st.integers(1, 6),
       clip_len=st.sampled_from([2, 5, 8, 16]), size=st.sampled_from([16, 32, 56]),
       hist_bins=st.sampled_from([8, 32, 256]), soft=st.booleans())
def test_labels_identical_to_the_reference(seed, kind, batch, clip_len, size, hist_bins, soft):
    frames, flow = random_clips(np.random.default_rng(seed), kind, batch, clip_len, size)
    assert_identical(frames, flow, hist_bins=hist_bins, soft_orientation=soft)


def test_identical_on_cropped_views_and_more_than_256_frames():
    """The bench and the data loader hand over cropped (non-contiguous) views; 40 clips of 8 frames
    are 320 frames, two OpenCV calls."""
    rng = np.random.default_rng(7)
    frames, flow = random_clips(rng, "half", 40, 8, 24)
    frames[:4] = rng.integers(0, 256, size=(4, 8, 24, 24, 3), dtype=np.uint8)  # distinct clips across the chunk edge
    big_frames = np.pad(frames, ((0, 0), (0, 0), (4, 4), (4, 4), (0, 0)))
    big_flow = np.pad(flow, ((0, 0), (0, 0), (4, 4), (4, 4), (0, 0)))
    assert_identical(big_frames[:, :, 4:28, 4:28], big_flow[:, :, 4:28, 4:28])
    assert_identical(frames, flow.astype(np.float64))  # converted to float32 first, as before
    assert (clip_labels(frames, flow)["m1_pu"] != IGNORE_INDEX).any()
