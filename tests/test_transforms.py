"""Clip-consistent transforms: same crop/flip for every frame, exact geometry, residual frames."""

import numpy as np
import torch

from vsslkit.data import transforms as T


def test_full_crop_without_flip_is_identity_and_flip_mirrors():
    frames = torch.randint(0, 255, (3, 4, 16, 16, 3), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    same = T.random_crop_flip(frames, 16, g, scale=(1.0, 1.0), flip=False)
    assert torch.equal(same, frames)
    big = torch.randint(0, 255, (40, 2, 8, 8, 3), dtype=torch.uint8)
    out = T.random_crop_flip(big, 8, g, scale=(1.0, 1.0))
    mirrored = [torch.equal(c, big[i].flip(2)) for i, c in enumerate(out)]
    kept = [torch.equal(c, big[i]) for i, c in enumerate(out)]
    assert all(a != b for a, b in zip(mirrored, kept)) and 5 < sum(mirrored) < 35


def test_crop_is_the_same_for_every_frame_and_deterministic():
    base = torch.randint(0, 255, (1, 1, 32, 32, 3), dtype=torch.uint8)
    frames = base.expand(2, 5, 32, 32, 3).clone()  # every frame identical
    out = T.random_crop_flip(frames, 24, torch.Generator().manual_seed(3))
    assert out.shape == (2, 5, 24, 24, 3)
    assert all(torch.equal(out[i, 0], out[i, t]) for i in range(2) for t in range(5))
    again = T.random_crop_flip(frames, 24, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)


def test_crop_at_native_scale_picks_a_window_of_the_frame():
    """scale such that side == size: the output is an exact sub-window of the input."""
    frames = torch.arange(32 * 32 * 3, dtype=torch.int64).reshape(1, 1, 32, 32, 3) % 251
    frames = frames.to(torch.uint8)
    out = T.random_crop_flip(frames, 16, torch.Generator().manual_seed(1), scale=(0.25, 0.25), flip=False)[0, 0]
    windows = [(y, x) for y in range(17) for x in range(17) if torch.equal(frames[0, 0, y:y + 16, x:x + 16], out)]
    assert len(windows) == 1


def test_center_crop_and_residuals():
    frames = torch.zeros(1, 3, 10, 20, 3, dtype=torch.uint8)
    frames[:, :, :, 5:15] = 7
    assert T.center_crop(frames, 10).unique().tolist() == [7]
    x = T.to_float_clips(torch.stack([frames[0], frames[0] + 1]))
    assert x.shape == (2, 3, 3, 10, 20)
    r = T.residual_frames(x)
    assert r.shape == (2, 3, 2, 10, 20) and torch.allclose(r, torch.zeros_like(r))
    assert np.isclose(float(T.to_float_clips(torch.full((1, 1, 1, 1, 3), 255, dtype=torch.uint8))[0, 0]),
                      (1 - T.MEAN[0]) / T.STD[0])


def test_the_loops_float_crop_is_the_uint8_crop_normalised_bit_for_bit():
    """`prepare_batch` skips the uint8 round trip (`random_crop_flip_float`): same draws, same values,
    same memory layout as `to_float_clips(random_crop_flip(...))`, so training runs are unchanged."""
    for seed, (shape, size) in enumerate([((4, 8, 64, 84, 3), 56), ((3, 9, 40, 30, 3), 48), ((2, 5, 20, 20, 3), 32)]):
        frames = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
        crops, params = T.random_crop_flip(frames, size, torch.Generator().manual_seed(seed), return_params=True)
        expected = T.to_float_clips(crops)
        x, same_params = T.random_crop_flip_float(frames, size, torch.Generator().manual_seed(seed))
        assert torch.equal(x, expected) and x.stride() == expected.stride()
        assert all(torch.equal(params[k], same_params[k]) for k in params)
