"""Backbones: shapes, parameter counts, forward + backward with BN and TGN; heads."""

from __future__ import annotations

import io

import pytest
import torch
import torchvision
from torch import nn

from vsslkit.models import LinearHead, MLPHead, MultiHead, build_backbone, count_parameters
from vsslkit.models.norms import TemporalGroupNorm

torch.set_num_threads(1)

ALL_LAYERS = ("conv1", "pool1", "pool2", "pool3", "pool4", "pool5", "pre_pool")
SMALL = [  # (name, width) run at (2, 3, 8, 32, 32)
    ("c3d", 0.25), ("r3d_10", 0.25), ("r3d_18", 0.25), ("mc3_10", 0.25), ("mc3_18", 0.25),
    ("r2plus1d_10", 0.25), ("r2plus1d_18", 0.25), ("s3d", 1.0), ("r50_inflated", 0.25),
]


def clip(t=8, size=32, batch=2, channels=3, seed=0):
    return torch.randn(batch, channels, t, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("norm", ["bn", "tgn"])
@pytest.mark.parametrize("name, width", SMALL)
def test_forward_backward(name, width, norm):
    torch.manual_seed(0)
    model = build_backbone(name, width=width, norm=norm, in_frames=8, tgn_group_frames=2)
    assert any(isinstance(m, TemporalGroupNorm) for m in model.modules()) == (norm == "tgn")
    x = clip()
    out = model(x)
    assert out.shape == (2, model.feature_dim)
    out.pow(2).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    model.eval()
    with torch.no_grad():
        pooled = model.features(x, layers=("pre_pool",))["pre_pool"].mean(dim=(2, 3, 4))
        torch.testing.assert_close(model(x), pooled)


# Expected (C, T, H, W) for input (2, 3, 8, 32, 32): conv1, pool1, pool2, pool3, pool4, pool5.
SHAPES = {
    "tiny_c3d": [(16, 8, 32, 32), (16, 8, 16, 16), (32, 4, 8, 8), (64, 2, 4, 4), (128, 1, 2, 2), (128, 1, 2, 2)],
    "tiny_r3d": [(16, 8, 16, 16), (16, 8, 16, 16), (16, 8, 16, 16), (32, 4, 8, 8), (64, 2, 4, 4),
                 (128, 1, 2, 2)],
    "tiny_r2plus1d": [(16, 8, 16, 16), (16, 8, 16, 16), (16, 8, 16, 16), (32, 4, 8, 8), (64, 2, 4, 4),
                      (128, 1, 2, 2)],
    "tiny_mc3": [(16, 8, 16, 16), (16, 8, 16, 16), (16, 8, 16, 16), (32, 8, 8, 8), (64, 8, 4, 4),
                 (128, 8, 2, 2)],
    "s3d": [(64, 4, 16, 16), (64, 4, 8, 8), (192, 4, 4, 4), (480, 4, 4, 4), (832, 2, 2, 2), (1024, 1, 1, 1)],
    "tiny_r50_inflated": [(16, 8, 16, 16), (16, 8, 8, 8), (64, 8, 8, 8), (128, 8, 4, 4), (256, 8, 4, 4),
                          (256, 8, 4, 4)],
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_feature_shapes(name):
    model = build_backbone(name).eval()
    with torch.no_grad():
        maps = model.features(clip(), layers=ALL_LAYERS)
    assert list(maps) == list(ALL_LAYERS)
    got = [tuple(maps[layer].shape[1:]) for layer in ALL_LAYERS[:-1]]
    assert got == SHAPES[name]
    assert maps["pre_pool"] is maps["pool5"]
    assert all(m.shape[0] == 2 for m in maps.values())
    assert SHAPES[name][-1][0] == model.feature_dim
    seen = []
    model.layer_module("pool3").register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    with torch.no_grad():
        model.features(clip(), layers=("pool3",))
    assert seen == [maps["pool3"].shape]


def test_features_default_layers_and_early_stop():
    model = build_backbone("tiny_r3d").eval()
    ran = []
    model.layer4.register_forward_hook(lambda *_: ran.append("layer4"))
    with torch.no_grad():
        assert list(model.features(clip())) == ["pool3", "pool4", "pool5"]
        assert ran == ["layer4"]
        model.features(clip(), layers=("pool3",))
    assert ran == ["layer4"]  # pool3 alone does not run the last stage


def test_unknown_layer_and_names_are_reported():
    model = build_backbone("tiny_r3d")
    with pytest.raises(ValueError, match="unknown layer 'fc6'"):
        model.features(clip(), layers=("fc6",))
    with pytest.raises(ValueError, match="unknown backbone 'resnet_3000'"):
        build_backbone("resnet_3000")
    with pytest.raises(ValueError, match="has depth 18, but depth=10"):
        build_backbone("r3d_18", depth=10)
    with pytest.raises(ValueError, match="depth must be one of"):
        build_backbone("r3d", depth=50)
    with pytest.raises(ValueError, match="tiny_r3d is a preset"):
        build_backbone("tiny_r3d", width=0.5)
    with pytest.raises(ValueError, match="s3d is torchvision's fixed network"):
        build_backbone("s3d", width=0.5)


# TECH_NOTES parameter counts without classifier (millions), checked to +-0.01 M.
@pytest.mark.parametrize(
    "name, millions",
    [("r3d_18", 33.17), ("r2plus1d_18", 31.30), ("mc3_18", 11.49), ("r3d_10", 14.36), ("r2plus1d_10", 12.49),
     ("tiny_r3d", 0.90), ("tiny_r2plus1d", 0.78)],
)
def test_parameter_counts(name, millions):
    assert abs(count_parameters(build_backbone(name)) / 1e6 - millions) <= 0.01


@pytest.mark.parametrize("name, builder", [("r3d_18", torchvision.models.video.r3d_18),
                                           ("mc3_18", torchvision.models.video.mc3_18),
                                           ("r2plus1d_18", torchvision.models.video.r2plus1d_18)])
def test_width_one_has_torchvision_parameter_shapes(name, builder):
    ours = {k: v.shape for k, v in build_backbone(name).state_dict().items()}
    theirs = {k: v.shape for k, v in builder(weights=None).state_dict().items() if not k.startswith("fc.")}
    assert ours == theirs


def test_s3d_is_torchvision_s3d_without_classifier():
    tv = torchvision.models.video.s3d(weights=None)
    assert count_parameters(build_backbone("s3d")) == count_parameters(tv.features)


def test_width_scales_resnet_stages():
    model = build_backbone("r3d_10", width=0.25)
    assert [model.stem[0].out_channels] + [getattr(model, f"layer{i}")[0].conv2[0].out_channels
                                           for i in range(1, 5)] == [16, 16, 32, 64, 128]
    r21 = build_backbone("r2plus1d_10", width=0.25)
    # Conv2Plus1D midplanes follow the scaled widths: 16*16*27 // (16*9 + 3*16) = 36
    assert r21.layer1[0].conv1[0][0].out_channels == 36
    assert r21.stem[0].out_channels == 11  # torchvision's 45 scaled by 0.25


def bottleneck_params(cin: int, planes: int, projection: bool) -> int:
    """1x1x1 (cin->p) + 1x3x3 (p->p) + 1x1x1 (p->4p), BN = 2 per channel, optional 1x1x1 projection."""
    convs = cin * planes + planes * planes * 9 + planes * 4 * planes
    bns = 2 * (planes + planes + 4 * planes)
    proj = cin * 4 * planes + 2 * 4 * planes if projection else 0
    return convs + bns + proj


def test_r50_inflated_parameter_count_by_hand():
    stem = 3 * 64 * 7 * 7 + 2 * 64  # 9,536
    conv2 = bottleneck_params(64, 64, True) + 2 * bottleneck_params(256, 64, False)  # 215,808
    conv3 = bottleneck_params(256, 128, True) + 3 * bottleneck_params(512, 128, False)  # 1,219,584
    conv4 = bottleneck_params(512, 256, True) + 5 * bottleneck_params(1024, 256, False)  # 7,098,368
    assert stem + conv2 + conv3 + conv4 == 8_543_296
    model = build_backbone("r50_inflated")
    assert count_parameters(model) == 8_543_296 and model.feature_dim == 1024
    # Temporal kernels are all 1, so it is a 2D ResNet-50's conv1..layer3, parameter for parameter.
    r50 = torchvision.models.resnet50(weights=None)
    assert count_parameters(model) == sum(count_parameters(getattr(r50, n))
                                          for n in ("conv1", "bn1", "layer1", "layer2", "layer3"))


@pytest.mark.parametrize("frames", [1, 5, 13])
def test_r50_inflated_keeps_temporal_length(frames):
    model = build_backbone("tiny_r50_inflated").eval()
    with torch.no_grad():
        maps = model.features(clip(t=frames, batch=1), layers=ALL_LAYERS)
    assert {m.shape[2] for m in maps.values()} == {frames}
    assert maps["pool4"].shape[3:] == (4, 4)  # spatial /8: conv4 has stride 1


def test_in_channels():
    for name in ("tiny_c3d", "tiny_r3d", "tiny_r2plus1d", "tiny_r50_inflated"):
        model = build_backbone(name, in_channels=1)
        assert model(clip(channels=1)).shape == (2, model.feature_dim)


def test_tgn_backbone_eval_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_backbone("tiny_r3d", norm="tgn", in_frames=8)
    model(clip())  # one training step's statistics
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    again = build_backbone("tiny_r3d", norm="tgn", in_frames=8)
    again.load_state_dict(torch.load(buffer, weights_only=True))
    model.eval()
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(clip(seed=1)), again(clip(seed=1)))


def test_heads():
    torch.manual_seed(0)
    x = torch.randn(4, 16)
    assert LinearHead(16, 5, dropout=0.5)(x).shape == (4, 5)
    assert MLPHead(16, 32, 8)(x).shape == (4, 8)
    assert MLPHead(16, 32, 8, batch_norm=True)(x).shape == (4, 8)
    heads = MultiHead(16, {"speed": 4, "where": 5})
    out = heads(x)
    assert {k: v.shape for k, v in out.items()} == {"speed": (4, 4), "where": (4, 5)}
    sum(v.sum() for v in out.values()).backward()
    assert all(p.grad is not None for p in heads.parameters())
    with pytest.raises(ValueError, match="at least 1 class"):
        MultiHead(16, {"speed": 0})
    with pytest.raises(ValueError, match="dropout"):
        LinearHead(16, 3, dropout=1.0)
    head = LinearHead(16, 3, dropout=0.5).eval()
    torch.testing.assert_close(head(x), head.fc(x))  # no dropout at eval
    assert isinstance(head.dropout, nn.Dropout)
