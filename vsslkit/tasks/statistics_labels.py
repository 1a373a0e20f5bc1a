"""Spatio-temporal statistics labels (seed 003 §3.2-3.3): 14 motion and 13 appearance labels of a clip.

Pure and vectorised over a batch (numpy, and OpenCV's uint8 histograms for the counting):
`clip_labels(frames, flow)` with uint8 frames `(B, N, S, S, 3)` (RGB) and float flow
`(B, N-1, S, S, 2)` (u right, v down, in pixels of the S x S crop). Labels are
computed on the clip *as the network sees it*: the flow has been cropped with the frames' window and,
on a horizontal flip, mirrored AND negated in u (`vsslkit.data.transforms.crop_flip_flow`).

Conventions (SPECS §2.2; vsslkit labels are 0-based, the paper's minus one):
- Motion boundaries: per flow i, m_u^i = (∂u/∂x, ∂u/∂y) by central differences (`np.gradient`,
  one-sided at the border); M_u = Σ_i m_u^i, likewise M_v (signed sums: opposite motions cancel).
- Orientation: θ = atan2(-∂y, ∂x) mod 360°, i.e. 0° = right and counter-clockwise *on screen* (the
  paper's Fig. 2), 8 hard bins k = ⌊θ/45°⌋; each pixel of the chosen block adds its magnitude to its
  bin and the label is the argmax. A pixel exactly on a bin boundary (θ a multiple of 45°: every
  axis-aligned or diagonal edge of a uniformly moving object, frequent with quantised flow) gives
  half its magnitude to each neighbouring bin. The paper does not say; this choice makes the labels
  of a flipped clip exactly the mirrored labels (`flip_labels`), where "all to the upper bin" would
  map an edge at 270° (bin 6) to 90° (bin 2) instead of bin 7-6 = 1. `soft_orientation=True` is the reference code's HOG-style soft
  binning (weight 1-r to bin ⌊θ/45⌋, r to the next), for comparison only.
- Patterns at crop size S (geometry of the reference at 112 scaled by S/112; S a multiple of 8):
  P1 a 4x4 grid, index 4*row + col; P2 concentric square rings (0 = centre), ranked by *mean*
  magnitude because their areas differ; P3 8 triangles, by sector around the centre: 0 W-NW, 1 NW-N,
  2 N-NE, 3 NE-E, 4 W-SW, 5 SW-S, 6 S-SE, 7 SE-E (diagonal pixels belong to both of their triangles).
- Colour: 8 bins c = 4*[R>=128] + 2*[G>=128] + [B>=128]; the dominant colour of a block is the bin
  with the most pixels over all N frames (the paper's rule; the reference's exact-colour mode is
  arbitrary under sensor noise). Reference numbering, for comparisons: ref = 4*[B<128] + 2*[R>=128]
  + [G>=128], i.e. `REFERENCE_COLOUR[c]`.
- Colour diversity of a block: per channel, the temporal IoU of its N per-frame histograms
  (Σ_bins min_t / Σ_bins max_t, `hist_bins` bins), averaged over R, G, B; p_l = the block with the
  smallest IoU (largest diversity), p_s = the largest.
- A motionless clip (mean |M| below `eps` px/px) gets `IGNORE_INDEX` for that component's location
  and orientation labels; a clip with no motion boundary in any flow gets it for the global label.
  Argmax ties go to the first index.

Label order is the reference code's: per pattern P in 1..3 `[p_u, o_u, p_v, o_v]`, then `[I_u, I_v]`
(`MOTION_LABELS`), and per pattern `[p_l, c_l, p_s, c_s]`, then `[C]` (`APPEARANCE_LABELS`).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from vsslkit.plans import IGNORE_INDEX

MOTION_LABELS: tuple[str, ...] = (*(f"m{p}_{k}" for p in (1, 2, 3) for k in ("pu", "ou", "pv", "ov")), "m_Iu", "m_Iv")
APPEARANCE_LABELS: tuple[str, ...] = (*(f"a{p}_{k}" for p in (1, 2, 3) for k in ("pl", "cl", "ps", "cs")), "a_C")
LABELS: tuple[str, ...] = MOTION_LABELS + APPEARANCE_LABELS
BLOCKS = {1: 16, 2: 4, 3: 8}
REFERENCE_COLOUR = tuple(4 * (1 - (c & 1)) + 2 * ((c >> 2) & 1) + ((c >> 1) & 1) for c in range(8))
P3_FLIP = (3, 2, 1, 0, 7, 6, 5, 4)


def num_classes(clip_len: int) -> dict[str, int]:
    """Classes of each of the 27 labels for clips of `clip_len` frames (global motion: clip_len - 1)."""
    out = {}
    for name in LABELS:
        kind = name.split("_")[1]
        if name in ("m_Iu", "m_Iv"):
            out[name] = clip_len - 1
        elif kind in ("pu", "pv", "pl", "ps"):
            out[name] = BLOCKS[int(name[1])]
        else:  # orientations and colours
            out[name] = 8
    return out


@lru_cache(maxsize=8)
def pattern_masks(size: int) -> dict[int, np.ndarray]:
    """Boolean `(blocks, size, size)` masks of patterns 1-3 at crop size `size` (see the module doc)."""
    if size % 8:
        raise ValueError(f"the partition patterns need a crop size divisible by 8, got {size}")
    rows, cols = np.mgrid[0:size, 0:size]
    q, h = size // 4, size // 2
    p1 = np.stack([(rows // q == r) & (cols // q == c) for r in range(4) for c in range(4)])
    e = size // 8  # 14 px at 112: the ring boundaries are at e, 2e, 3e from the border
    inside = [(rows >= k * e) & (rows < size - k * e) & (cols >= k * e) & (cols < size - k * e) for k in (3, 2, 1)]
    p2 = np.stack([inside[0], inside[1] & ~inside[0], inside[2] & ~inside[1], ~inside[2]])
    top, left = rows < h, cols < h
    r_, c_ = rows % h, cols % h  # position inside the quadrant
    main, anti = r_ >= c_, r_ + c_ >= h - 1  # lower-left of the main diagonal; lower-right of the anti-diagonal
    on_main, on_anti = r_ == c_, r_ + c_ == h - 1
    p3 = np.stack([
        top & left & (main | on_main),  # 0 W-NW: the lower-left half of the top-left quadrant
        top & left & (~main | on_main),  # 1 NW-N
        top & ~left & (~anti | on_anti),  # 2 N-NE
        top & ~left & (anti | on_anti),  # 3 NE-E
        ~top & left & (~anti | on_anti),  # 4 W-SW
        ~top & left & (anti | on_anti),  # 5 SW-S
        ~top & ~left & (main | on_main),  # 6 S-SE
        ~top & ~left & (~main | on_main),  # 7 SE-E
    ])
    return {1: p1, 2: p2, 3: p3}


def flip_labels(labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What a horizontal flip does to the labels (hard bins): P1 col -> 3-col, P2 unchanged, P3
    0<->3, 1<->2, 4<->7, 5<->6; o_u k -> 7-k (θ -> -θ), o_v k -> 3-k mod 8 (θ -> 180°-θ)."""
    p1 = np.array([4 * (k // 4) + 3 - k % 4 for k in range(16)])
    maps = {1: p1, 2: np.arange(4), 3: np.array(P3_FLIP)}
    out = {}
    for name, value in labels.items():
        value = np.asarray(value)
        keep = value != IGNORE_INDEX
        safe = np.where(keep, value, 0)
        kind = name.split("_")[1] if "_" in name else ""
        if kind in ("pu", "pv", "pl", "ps"):
            new = maps[int(name[1])][safe]
        elif kind == "ou":
            new = 7 - safe
        elif kind == "ov":
            new = (3 - safe) % 8
        else:
            new = safe
        out[name] = np.where(keep, new, IGNORE_INDEX)
    return out


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


def _pixel_major(flow: np.ndarray) -> np.ndarray:
    """float32 `(B, F, ..., 2)` → `(..., B, F, 2)`, C-contiguous. In this layout a sum over pixels
    reduces the outer axes with a long contiguous inner loop (numpy crawls over a reduction whose
    innermost axis has 2 elements), in the same pixel order, so the float32 sums are bit for bit
    those of the `(B, F, S, S, 2)` layout. The copy moves (u, v) pairs as one complex64 each."""
    try:
        pairs = flow.view(np.complex64)[..., 0]
    except ValueError:  # the last axis is not contiguous
        pairs = np.ascontiguousarray(flow).view(np.complex64)[..., 0]
    order = (*range(2, pairs.ndim), 0, 1)
    return np.ascontiguousarray(pairs.transpose(order)).view(np.float32).reshape(*flow.shape[2:-1], *flow.shape[:2], 2)


def _boundaries(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-major motion boundaries: ∂M/∂x and ∂M/∂y `(S, S, B, 2 [u, v])` and the per-flow summed
    magnitudes `(B, F, 2)`. The derivative is linear, so M is the gradient of the summed flow."""
    flow = np.asarray(flow, dtype=np.float32)
    x = _pixel_major(flow)  # (S, S, B, F, 2)
    dx, dy = _twice_grad(x, 1), _twice_grad(x, 0)  # columns (x, right), rows (y, down)
    np.multiply(dx, dx, out=dx)
    np.multiply(dy, dy, out=dy)
    dx += dy
    per_flow = np.sqrt(dx, out=dx).sum(axis=(0, 1)) * 0.5  # (B, F, 2)
    total = _pixel_major(flow.sum(axis=1)[:, None])[:, :, :, 0]  # Σ_i flow_i, (S, S, B, 2)
    gx, gy = _twice_grad(total, 1), _twice_grad(total, 0)
    gx *= 0.5
    gy *= 0.5
    return gx, gy, per_flow


def motion_boundaries(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M_u and M_v, `(B, S, S, 2 components [u, v], 2 derivatives [d/dx, d/dy])`, and the per-flow
    summed magnitudes `(B, F, 2)` (eq. 3's Σ_pixels |m^i|)."""
    gx, gy, per_flow = _boundaries(flow)
    return np.ascontiguousarray(np.stack([gx, gy], axis=-1).transpose(2, 0, 1, 3, 4)), per_flow


def _orientation_bins(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """θ = atan2(-gy, gx) in [0, 360) degrees (CCW on screen) → bin ⌊θ/45⌋, θ/45 and ⌊θ/45⌋ (the
    remainder θ/45 - ⌊θ/45⌋ is 0 on a bin boundary)."""
    pos = np.arctan2(np.negative(gy), gx)
    np.degrees(pos, out=pos)  # in [-180, 180]
    # θ mod 360 as np.remainder computes it (fmod, here the identity, then + 360 where negative, and
    # -0 -> +0, which no bin or boundary test can tell apart), at a fraction of its cost
    np.add(pos, 360.0, out=pos, where=pos < 0)
    np.divide(pos, 45.0, out=pos)
    floor = np.floor(pos)
    return floor.astype(np.int64) & 7, pos, floor  # & 7: mod 8 (θ = 360 after rounding is bin 0)


@lru_cache(maxsize=8)
def _regions(size: int) -> tuple[np.ndarray, np.ndarray, dict[int, slice]]:
    """The coarsest partition that refines all three patterns (64 regions at any size): every pixel's
    region `(S*S,)`, the region -> block membership `(R, 28)` (float32; P3's diagonal regions belong
    to two triangles) and each pattern's columns. Histograms are counted once per region and summed
    into blocks with one matrix product: this is what makes the labels fast."""
    masks = pattern_masks(size)
    stacked = np.concatenate([masks[1], masks[2], masks[3]]).reshape(28, -1)
    keys, region = np.unique(stacked.T, axis=0, return_inverse=True)
    return region.reshape(-1).astype(np.int64), keys.astype(np.float32), {1: slice(0, 16), 2: slice(16, 20), 3: slice(20, 28)}


def _motion(flow: np.ndarray, size: int, eps: float, soft: bool) -> dict[str, np.ndarray]:
    b = flow.shape[0]
    region, member, cols = _regions(size)
    r = len(member)
    gx, gy, per_flow = _boundaries(flow)  # (S, S, B, 2 [u, v]) each
    mag = np.sqrt(gx * gx + gy * gy).reshape(-1, b, 2)  # (S*S, B, 2)
    bins, pos, floor = (a.reshape(-1, b, 2) for a in _orientation_bins(gx, gy))
    moving = mag.mean(axis=0) >= eps  # (B, 2)
    # orientation histogram per (clip, component, bin, region), magnitude-weighted; each cell's
    # float64 sum runs over its pixels in pixel order
    cell = (np.arange(b)[None, :, None] * 2 + np.arange(2)[None, None, :]) * (8 * r) + region[:, None, None]
    size_out = b * 2 * 8 * r
    if soft:  # the reference: 1 - r to bin k, r to bin k + 1
        rem = pos - floor
        hist = np.bincount((bins * r + cell).ravel(), (mag * (1 - rem)).ravel(), minlength=size_out)
        hist += np.bincount((((bins + 1) % 8) * r + cell).ravel(), (mag * rem).ravel(), minlength=size_out)
    else:  # hard bins; a pixel exactly on a boundary gives half to each neighbour (see above)
        share = 0.5 * (pos == floor)
        hist = np.bincount((bins * r + cell).ravel(), (mag * (1 - share)).ravel(), minlength=size_out)
        hist += np.bincount((((bins - 1) & 7) * r + cell).ravel(), (mag * share).ravel(), minlength=size_out)
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


_COLOUR_BITS = np.array([[4, 2, 1]], np.float32)  # cv2.transform: one weighted sum of R, G, B per pixel
_FRAMES_PER_CALL = 256  # the frame index is a uint8 image


@lru_cache(maxsize=4)
def _index_images(size: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 companions of up to 256 S x S frames stacked into one `(frames * S, S)` image, for
    `cv2.calcHist`: each pixel's region and each pixel's frame (so one call counts every frame).
    The first k * S rows serve k frames."""
    region = _regions(size)[0].reshape(size, size).astype(np.uint8)
    regions = np.ascontiguousarray(np.broadcast_to(region, (_FRAMES_PER_CALL, size, size)).reshape(-1, size))
    index = np.arange(_FRAMES_PER_CALL, dtype=np.uint8)[:, None, None]
    index = np.ascontiguousarray(np.broadcast_to(index, (_FRAMES_PER_CALL, size, size)).reshape(-1, size))
    regions.flags.writeable = index.flags.writeable = False
    return regions, index


def _appearance(frames: np.ndarray, size: int, hist_bins: int) -> dict[str, np.ndarray]:
    b, n = frames.shape[:2]
    _, member, cols = _regions(size)
    r = len(member)
    frames = np.ascontiguousarray(frames, dtype=np.uint8).reshape(b * n, size, size, 3)
    # per frame: pixels per (colour, region) and per (channel, bin, region), counted by OpenCV's
    # uint8 histogram (exact integer counts, 2-3x faster than np.bincount over int64 indices)
    colours = np.empty((b * n, 8, r), np.float32)
    counts = np.empty((b * n, 3, hist_bins, r), np.float32)
    for s in range(0, b * n, _FRAMES_PER_CALL):
        chunk = frames[s : s + _FRAMES_PER_CALL]
        k = len(chunk)
        image = chunk.reshape(k * size, size, 3)
        regions, index = (a[: k * size] for a in _index_images(size))
        colour = cv2.transform(image >> 7, _COLOUR_BITS)  # c = 4*[R>=128] + 2*[G>=128] + [B>=128]
        colours[s : s + k] = cv2.calcHist([index, colour, regions], [0, 1, 2], None, [k, 8, r], [0, k, 0, 8, 0, r])
        for c in range(3):
            counts[s : s + k, c] = cv2.calcHist([index, image, regions], [0, 1 + c, 4], None, [k, hist_bins, r],
                                                [0, k, 0, 256, 0, r])
    colours = colours.reshape(b, n, 8, r).sum(1)  # (B, 8, R) over all frames
    colour_counts = colours @ member  # (B, 8, 28)
    hist = (counts.reshape(-1, r) @ member).reshape(b, n, 3, hist_bins, 28)
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


def smooth_flow(flow: np.ndarray, sigma: float) -> np.ndarray:
    """Each flow field blurred by a Gaussian of `sigma` px (reflected border), float32.

    Why: a motion-boundary label sums |∇M| over a block. Blurring keeps the summed |∇| of a step (an
    object's edge: its height, however wide the ramp) but shrinks that of pixel-scale flow noise, so
    the object's block stands out more against sensor noise (docs/results/statistics.md)."""
    flow = np.asarray(flow, dtype=np.float32)
    b, f, s = flow.shape[0], flow.shape[1], flow.shape[2]
    fields = np.ascontiguousarray(flow).reshape(b * f, s, s, 2)
    out = np.empty_like(fields)
    for i in range(b * f):
        out[i] = cv2.GaussianBlur(fields[i], (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(flow.shape)


def clip_labels(frames: np.ndarray | None, flow: np.ndarray, *, eps: float = 1e-3, hist_bins: int = 32,
                soft_orientation: bool = False, motion: bool = True, appearance: bool = True,
                flow_sigma: float = 0.0) -> dict[str, np.ndarray]:
    """The 27 labels (int64 `(B,)` each, 0-based, `IGNORE_INDEX` where undefined) of a batch of clips.

    `frames` uint8 `(B, N, S, S, 3)` RGB, `flow` float `(B, N-1, S, S, 2)`; see the module docstring.
    `motion=False` / `appearance=False` skip a group (its labels are then absent); without appearance
    `frames` may be None (the motion labels read the flow only). `flow_sigma` > 0 blurs each flow
    first (`smooth_flow`; 0, the default, is the paper's labels).
    """
    flow = np.asarray(flow)
    if frames is None:
        if appearance:
            raise ValueError("the appearance labels need the frames (got frames=None)")
        if flow.ndim != 5:
            raise ValueError(f"flow must be (B, N-1, S, S, 2), got {flow.shape}")
        frames = np.empty((flow.shape[0], flow.shape[1] + 1, flow.shape[2], flow.shape[3], 3), np.uint8)  # shape only
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.shape[2] != frames.shape[3]:
        raise ValueError(f"frames must be (B, N, S, S, 3), got {frames.shape}")
    b, n, size = frames.shape[0], frames.shape[1], frames.shape[2]
    if flow.shape != (b, n - 1, size, size, 2):
        raise ValueError(f"flow must be (B, N-1, S, S, 2) = {(b, n - 1, size, size, 2)}, got {flow.shape}")
    if 256 % hist_bins or hist_bins & (hist_bins - 1):
        raise ValueError(f"hist_bins must be a power of 2 dividing 256, got {hist_bins}")
    out: dict[str, np.ndarray] = {}
    if flow_sigma < 0:
        raise ValueError(f"flow_sigma must be >= 0, got {flow_sigma}")
    if motion:
        out.update(_motion(smooth_flow(flow, flow_sigma) if flow_sigma > 0 else flow, size, eps, soft_orientation))
    if appearance:
        out.update(_appearance(frames, size, hist_bins))
    return {name: out[name].astype(np.int64) for name in LABELS if name in out}


def difficulty(flow: np.ndarray) -> np.ndarray:
    """Curriculum score f (eq. 6) per clip, `(B,)`: max over u, v of the share of the total motion
    boundary magnitude in the pattern-1 block with the most of it. Large f = one block dominates =
    easy. A motionless clip scores 0 (hardest: nothing to find)."""
    flow = np.asarray(flow, dtype=np.float32)
    b, size = flow.shape[0], flow.shape[2]
    total, _ = motion_boundaries(flow)
    mag = np.sqrt((total ** 2).sum(-1))  # (B, S, S, 2)
    masks = pattern_masks(size)[1].reshape(16, -1).astype(np.float32)
    sums = mag.reshape(b, -1, 2).transpose(0, 2, 1) @ masks.T  # (B, 2, 16)
    total = sums.sum(-1)
    share = np.where(total > 0, sums.max(-1) / np.maximum(total, 1e-12), 0.0)
    return share.max(-1)


# ------------------------------------------------------------------ regression targets (eqs. 8-9)

def regression_targets(labels: dict[str, np.ndarray], *, two_d: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Motion and appearance targets as float arrays with 1-based values (NaN where ignored).

    1D (eq. 8): the 14 / 13 labels as raw numbers. 2D: the P1 and P3 location labels become
    2-vectors, P1 (row, col) and P3 (quadrant 1-4 row-major, triangle 1-2), so 18 / 17 values.
    """
    def expand(names: tuple[str, ...]) -> np.ndarray:
        cols = []
        for name in names:
            v = np.asarray(labels[name]).astype(np.float64)
            v = np.where(v == IGNORE_INDEX, np.nan, v)
            kind = name.split("_")[1]
            if two_d and kind in ("pu", "pv", "pl", "ps") and name[1] in "13":
                a, c = (v // 4, v % 4) if name[1] == "1" else (v // 2, v % 2)
                cols += [a + 1, c + 1]
            else:
                cols.append(v + 1)
        return np.stack(cols, axis=1).astype(np.float32)

    return expand(MOTION_LABELS), expand(APPEARANCE_LABELS)


def regression_width(two_d: bool) -> tuple[int, int]:
    return (18, 17) if two_d else (14, 13)


def decode_regression(motion: np.ndarray, appearance: np.ndarray, *, two_d: bool = False,
                      clip_len: int = 8) -> dict[str, np.ndarray]:
    """Predicted 27 labels (0-based) from regression outputs, each rounded to the nearest class
    (and clamped into range): how the paper scores a regression head's pretext accuracy."""
    classes = num_classes(clip_len)
    out = {}
    for names, values in ((MOTION_LABELS, motion), (APPEARANCE_LABELS, appearance)):
        j = 0
        for name in names:
            kind = name.split("_")[1]
            if two_d and kind in ("pu", "pv", "pl", "ps") and name[1] in "13":
                width = 4 if name[1] == "1" else 2
                a = np.clip(np.rint(values[:, j]) - 1, 0, classes[name] // width - 1)
                c = np.clip(np.rint(values[:, j + 1]) - 1, 0, width - 1)
                out[name] = (a * width + c).astype(np.int64)
                j += 2
            else:
                out[name] = np.clip(np.rint(values[:, j]) - 1, 0, classes[name] - 1).astype(np.int64)
                j += 1
    return out
