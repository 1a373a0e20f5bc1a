"""Tracking you can check: the renderer's ground-truth centres, the windows that stay inside the
frame, and box propagation through the affinity on features whose motion is known."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from vsslkit.data.synthetic import object_centres, params_from_record, params_record, render, sample_params
from vsslkit.eval.tracking import inside_windows, propagate

torch.set_num_threads(1)


def test_object_centres_are_where_the_renderer_draws_the_object():
    p = sample_params("Orbit", np.random.default_rng(1), size=64, num_frames=30, version=2)
    p = dataclasses.replace(p, colors=((255, 0, 0), (250, 0, 0)), background=(0, 160, 0), num_distractors=0,
                            noise_amplitude=0.0, stripes=False, shape="circle")
    frames, centres = render(p), object_centres(p)
    assert centres.shape == (30, 2)
    for t in (0, 10, 20, 29):
        ys, xs = np.nonzero((frames[t, :, :, 0] > 150) & (frames[t, :, :, 1] < 90))
        assert abs(xs.mean() - centres[t, 0]) < 1.0 and abs(ys.mean() - centres[t, 1]) < 1.0


def test_params_round_trip_through_the_json_record():
    p = sample_params("Zigzag", np.random.default_rng(4), size=64, num_frames=40, version=3)
    record = {**params_record(p), "path": "videos/Zigzag/v.mp4", "group": 1}
    assert params_from_record(record) == p


def test_inside_windows_exclude_wraps_and_borders():
    centres = np.stack([np.arange(40) * 2.0 % 64, np.full(40, 32.0)], 1)  # moves right, wraps at frame 32
    starts = inside_windows(centres, size=64, margin=8, steps=3, gap=4)
    for s in starts:
        window = centres[s : s + 13]
        assert (window[:, 0] >= 8).all() and (window[:, 0] <= 56).all()
    assert 4 in starts and 20 not in starts and 28 not in starts


def test_propagation_follows_a_known_motion():
    """Identity features (a random 16-channel texture) moving one map cell per frame: the box
    must move one cell (frame side / 16 px) per frame, and a box that stays does not drift."""
    g = torch.Generator().manual_seed(0)
    texture = torch.randn(1, 16, 1, 16, 16, generator=g)
    frames = torch.cat([torch.roll(texture, shifts=t, dims=-1) for t in range(4)], 2)  # (1, 16, 4, 16, 16)
    module = SimpleNamespace(embed=lambda x: F.normalize(x, dim=1), layer="pool4", scale=0.25, patch_size=4,
                             temperature=0.01)
    backbone = SimpleNamespace(features=lambda x, layers: {layers[0]: x})
    path = propagate(module, backbone, frames, np.array([7.5, 7.5]))
    assert np.allclose(path[:, 0], 7.5 + np.arange(4), atol=0.05) and np.allclose(path[:, 1], 7.5, atol=0.05)
    still = propagate(module, backbone, torch.cat([texture] * 4, 2), np.array([5.5, 9.5]))
    assert np.allclose(still, [[5.5, 9.5]] * 4, atol=0.05)


def test_local_affinity_is_a_softmax_inside_the_window_only():
    from vsslkit.eval.tracking import local_affinity

    g = torch.Generator().manual_seed(1)
    image = F.normalize(torch.randn(1, 8, 8, 8, generator=g), dim=1)
    patch = F.normalize(torch.randn(1, 8, 3, 3, generator=g), dim=1)
    centre = torch.tensor([(2 * 2 + 1) / 8 - 1, (2 * 5 + 1) / 8 - 1])  # cell (x 2, y 5)
    a = local_affinity(image, patch, 0.1, centre, radius=1)
    assert torch.allclose(a.sum(1), torch.ones(1, 9))
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[4:7, 1:4] = True  # rows y 4..6, columns x 1..3
    assert (a[0].reshape(8, 8, 9)[~inside] == 0).all() and (a[0].reshape(8, 8, 9)[inside] > 0).all()
    from vsslkit.models.cycle import affinity
    assert torch.equal(local_affinity(image, patch, 0.1, centre, radius=None), affinity(image, patch, 0.1))


def test_a_search_window_ignores_a_lookalike_far_away():
    """Two copies of the same texture: without a window the box jumps halfway to the far copy
    (the affinity is shared between them); with radius 2 it stays on the copy it started on."""
    g = torch.Generator().manual_seed(2)
    blob = torch.randn(1, 16, 1, 3, 3, generator=g)
    frames = torch.zeros(1, 16, 2, 16, 16)
    frames[..., 0, 2:5, 2:5] = blob[:, :, 0]
    frames[..., 1, 2:5, 2:5] = blob[:, :, 0]
    frames[..., 1, 11:14, 11:14] = blob[:, :, 0]
    module = SimpleNamespace(embed=lambda x: F.normalize(x + 1e-3, dim=1), layer="pool4", scale=3 / 16, patch_size=3,
                             temperature=0.01)
    backbone = SimpleNamespace(features=lambda x, layers: {layers[0]: x})
    start = np.array([3.5, 3.5])
    assert np.linalg.norm(propagate(module, backbone, frames, start)[1] - start) > 3
    assert np.linalg.norm(propagate(module, backbone, frames, start, radius=2)[1] - start) < 0.5


def test_the_pixel_tracker_follows_a_coloured_disc():
    from vsslkit.eval.tracking import pixel_propagate

    yy, xx = np.mgrid[0:64, 0:64]
    frames = np.zeros((4, 64, 64, 3), dtype=np.float32) + 0.2
    truth = np.array([[20.0 + 6 * t, 30.0 + 3 * t] for t in range(4)])
    for t, (cx, cy) in enumerate(truth):
        frames[t][(xx - cx) ** 2 + (yy - cy) ** 2 <= 36] = (0.9, 0.1, 0.1)
    x = torch.from_numpy(frames).permute(3, 0, 1, 2)[None]
    path = pixel_propagate(x, truth[0])
    still = np.linalg.norm(truth[1:] - truth[0], axis=1).mean()
    assert np.linalg.norm(path[1:] - truth[1:], axis=1).mean() < still / 2
