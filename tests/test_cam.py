"""CAM maps: shape (T, H, W), values in [0, 1], finite; every exposed grad-cam method works on 5-D."""

import numpy as np
import pytest
import torch
from torch import nn

from vsslkit.eval import cam


class TinyBackbone(nn.Module):
    """Two 3D convs; `.features` like vsslkit backbones (pre_pool = last map)."""

    feature_dim = 8

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv3d(4, 8, 3, stride=(1, 2, 2), padding=1), nn.ReLU())

    def features(self, x, layers=("pre_pool",)):
        a = self.conv1(x)
        b = self.conv2(a)
        maps = {"pool1": a, "pre_pool": b}
        return {name: maps[name] for name in layers}

    def forward(self, x):
        return self.conv2(self.conv1(x)).mean((2, 3, 4))


def test_activation_map_is_channel_mean_upsampled():
    torch.manual_seed(0)
    backbone = TinyBackbone()
    clip = torch.randn(1, 3, 4, 16, 16)
    heat = cam.activation_map(backbone, clip)
    assert heat.shape == (4, 16, 16) and heat.dtype == np.float32
    assert heat.min() == 0.0 and heat.max() == pytest.approx(1.0)
    fmap = backbone.features(clip)["pre_pool"].mean(1)  # (1, 4, 8, 8)
    # the hottest cell of the coarse map is where the upsampled map is hottest
    t, y, x = np.unravel_index(np.argmax(fmap[0].detach().numpy()), fmap.shape[1:])
    assert heat[t, 2 * y : 2 * y + 2, 2 * x : 2 * x + 2].mean() > 0.5
    with pytest.raises(ValueError):
        cam.activation_map(backbone, torch.randn(2, 3, 4, 16, 16))


@pytest.mark.parametrize("method", cam.CAM_METHODS)
def test_gradient_cam_methods_on_5d(method):
    torch.manual_seed(0)
    backbone = TinyBackbone()
    model = nn.Sequential()
    model.add_module("body", nn.Sequential(backbone.conv1, backbone.conv2))
    model.add_module("head", nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 3)))
    heat = cam.gradient_cam(model, torch.randn(1, 3, 4, 16, 16), backbone.conv2, method=method, target_class=1)
    assert heat.shape == (4, 16, 16)
    assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    with pytest.raises(ValueError, match="unknown CAM method"):
        cam.gradient_cam(model, torch.randn(1, 3, 4, 16, 16), backbone.conv2, method="scorecam")


def test_overlay_and_concentration():
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    heat = np.zeros((2, 4, 4), np.float32)
    heat[:, :2, :2] = 1.0
    out = cam.overlay(frames, heat, alpha=0.5)
    assert out.shape == frames.shape
    assert out[0, 0, 0, 0] > out[0, 3, 3, 0] and out[0, 0, 0, 2] < out[0, 3, 3, 2]  # jet: hot red, cold blue
    mask = heat > 0.5
    assert cam.heat_concentration(heat + 0.1, mask) == pytest.approx(11.0)
    with pytest.raises(ValueError):
        cam.overlay(frames, heat[:, :3])
    with pytest.raises(ValueError):
        cam.heat_concentration(heat, np.ones_like(mask))
