"""Video features and classifier evaluation with tiny stand-ins (frames in memory, toy nets)."""

import numpy as np
import pytest
import torch
from torch import nn

from vsslkit.data.transforms import MEAN, STD
from vsslkit.data.video import VideoError
from vsslkit.eval.features import extract_layer_features, extract_video_features, load_backbone_weights
from vsslkit.eval.video_level import evaluate_classifier

torch.set_num_threads(1)


class ArraySource:
    """Frame store stand-in: video v, frame t is a flat grey image of value `base[v] + t`."""

    def __init__(self, lengths, base):
        self.videos = {f"v{i}.mp4": np.stack([np.full((20, 24, 3), b + t, np.uint8) for t in range(n)])
                       for i, (n, b) in enumerate(zip(lengths, base))}
        self.reads = []

    def read(self, path, indices):
        self.reads.append((path, list(indices)))
        return self.videos[path][indices]


class Identity(nn.Module):
    """Backbone stand-in whose every 'layer' is the input clip itself."""

    feature_dim = 3

    def features(self, x, layers=("pool5",)):
        return {name: x * (i + 1) for i, name in enumerate(layers)}

    def forward(self, x):
        return x.mean(dim=(2, 3, 4))


def _grey_to_feature(value: float) -> np.ndarray:
    return (value / 255.0 - np.array(MEAN)) / np.array(STD)


def test_features_by_hand_and_batch_independent():
    lengths, base = [10, 13, 9, 30, 10], [0, 40, 80, 120, 160]
    src = ArraySource(lengths, base)
    paths = list(src.videos)
    kw = {"num_frames": lengths, "clip_len": 4, "stride": 2, "clips_per_video": 3, "crop_size": 16}
    a = extract_video_features(Identity(), paths, src, batch_size=2, **kw)
    b = extract_video_features(Identity(), paths, src, batch_size=100, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    shown = extract_video_features(Identity(), paths, src, batch_size=2, progress=True, **kw)  # tqdm bar only
    np.testing.assert_array_equal(a, shown)
    assert a.shape == (5, 3)  # every video kept, even the last partial batch
    # Video 0: span 7 of 10 frames, starts linspace(0, 3, 3) -> 0, 2, 3 (round half to even: 1.5 -> 2).
    # Clip means: start + 3 frames of stride 2 -> start + 3; average over clips -> (3 + 5 + 6) / 3.
    np.testing.assert_allclose(a[0], _grey_to_feature(14 / 3), rtol=1e-5)
    np.testing.assert_allclose(a[1], _grey_to_feature(40 + 3 + 3), rtol=1e-5)  # starts 0, 3, 6 -> mean 3+3


def test_max_pooling_residual_and_layers():
    src = ArraySource([12], [10])
    kw = {"num_frames": [12], "clip_len": 3, "stride": 1, "clips_per_video": 2, "crop_size": 16}
    mx = extract_video_features(Identity(), ["v0.mp4"], src, pooling="max", **kw)
    # Clips start at 0 and 9; the max frame of each clip is start + 2.
    np.testing.assert_allclose(mx[0], (_grey_to_feature(12) + _grey_to_feature(21)) / 2, rtol=1e-5)
    res = extract_video_features(Identity(), ["v0.mp4"], src, residual=True, **kw)
    assert all(len(idx) == 4 for _, idx in src.reads[-2:])  # residual reads clip_len + 1 frames
    np.testing.assert_allclose(res[0], 1 / 255 / np.array(STD), rtol=1e-4)  # consecutive frames differ by 1
    multi = extract_layer_features(Identity(), ["v0.mp4"], src, layers=("pool3", "pool4"), **kw)
    np.testing.assert_allclose(multi["pool4"], 2 * multi["pool3"], rtol=1e-6)


def test_short_video_is_named():
    src = ArraySource([5], [0])
    with pytest.raises(VideoError, match="v0.mp4"):
        extract_video_features(Identity(), ["v0.mp4"], src, num_frames=[5], clip_len=8, crop_size=16)


def test_real_backbone_layers_shapes():
    from vsslkit.models import build_backbone

    torch.manual_seed(0)
    net = build_backbone("r3d", width=0.25)
    src = ArraySource([20, 24], [0, 50])
    feats = extract_layer_features(net, list(src.videos), src, num_frames=[20, 24], clip_len=8,
                                   clips_per_video=2, crop_size=32, layers=("pool3", "pool4", "pool5"))
    assert [feats[k].shape[0] for k in feats] == [2, 2, 2]
    assert feats["pool5"].shape[1] == net.feature_dim and np.isfinite(feats["pool5"]).all()


class Wrapped(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.Linear(4, 2)


def test_load_backbone_weights_strips_prefixes(tmp_path):
    src_net = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4))
    ddp_like = nn.Module()
    ddp_like.module = Wrapped(src_net)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": ddp_like.state_dict(), "epoch": 3}, path)
    dst = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4))
    report = load_backbone_weights(dst, path)
    assert report.source_key == "model" and report.missing == []
    assert report.unexpected == ["heads.bias", "heads.weight"]
    torch.testing.assert_close(dst[0].weight, src_net[0].weight)
    wrong = nn.Sequential(nn.Conv3d(3, 5, 1))
    with pytest.raises(ValueError, match="ckpt.pt: weights do not fit this backbone: 0.weight has shape"):
        load_backbone_weights(wrong, path)
    torch.save({"state_dict": {"other.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="no tensor matches"):
        load_backbone_weights(dst, path)


class BrightnessClassifier(nn.Module):
    """Class 1 logit grows with brightness: dark clips -> class 0, bright clips -> class 1."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3, 4))
        return {"class": torch.stack([torch.zeros_like(m), 4 * m], dim=1)}


def test_evaluate_classifier_video_and_clip_accuracy():
    # Video 0 dark (class 0); video 1 bright (class 1); video 2 labelled 0 but mostly bright.
    src = ArraySource([10, 10, 40], [10, 200, 100])
    paths = list(src.videos)
    out = evaluate_classifier(BrightnessClassifier(), paths, [0, 1, 0], src, num_frames=[10, 10, 40], clip_len=4,
                              clips_per_video=4, crop_size=16, batch_size=5, class_names=["dark", "bright"])
    assert out["num_videos"] == 3 and out["num_clips"] == 12
    preds = [p["pred"] for p in out["predictions"]]
    # grey 100 + t: normalised mean > 0 from frame ~ 113 on; video 2's clips start at 0, 12, 24, 36
    assert preds == [0, 1, 1]
    assert out["video_accuracy"] == pytest.approx(2 / 3)
    assert out["clip_accuracy"] == pytest.approx(10 / 12)
    assert out["per_class_accuracy"] == {"dark": 0.5, "bright": 1.0}
    assert out["confusion"] == [[0.5, 0.5], [0.0, 1.0]] and out["hit_at_5"] == 1.0
