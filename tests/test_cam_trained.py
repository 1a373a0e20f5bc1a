"""A briefly trained classifier looks at the moving object: a measured check, not a picture.

Tiny R3D on residual clips of the fast synthetic course set, 60 steps (~40 s on 2 busy cores).
Heat concentration = mean heat on the main object (ground-truth disc from the renderer's
trajectory) / mean heat elsewhere, averaged over clips of six motion classes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsslkit import classroom
from vsslkit.data.synthetic import CLASSES, render, sample_params
from vsslkit.eval import cam
from vsslkit.models import build_backbone
from vsslkit.train.supervised import VideoClassifier

pytestmark = pytest.mark.slow
PROBE_CLASSES = ("MoveRight", "MoveUp", "RotateCW", "Bounce", "Zigzag", "Orbit")


def _concentrations(model: VideoClassifier) -> dict[str, float]:
    """Mean heat concentration of the activation map and of GradCAM over the probe clips."""
    scores: dict[str, list[float]] = {"activation": [], "gradcam": []}
    for i, name in enumerate(PROBE_CLASSES):
        params = sample_params(name, np.random.default_rng(100 + i), num_frames=9)
        clip = classroom.model_input(render(params))  # 8 differences of 9 frames
        mask = classroom.object_mask(params)
        mask = mask[1:] | mask[:-1]  # difference t spans frames t and t+1
        heat = cam.activation_map(model.backbone, clip)
        scores["activation"].append(cam.heat_concentration(heat, mask))
        heat = cam.gradient_cam(model, clip, model.backbone.layer_module("pre_pool"), target_class=CLASSES.index(name))
        scores["gradcam"].append(cam.heat_concentration(heat, mask))
    return {k: float(np.mean(v)) for k, v in scores.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> classroom.QuickClassifier:
    torch.set_num_threads(2)
    tmp = tmp_path_factory.mktemp("cam-course")
    course = classroom.course_dataset(tmp / "course", fast=True, store_root=tmp / "frames")
    return classroom.quick_classifier(course, steps=60, seed=0)


def test_trained_maps_concentrate_on_the_moving_object(trained):
    scores = _concentrations(trained.model)
    assert scores["activation"] > 1.0, scores
    assert scores["gradcam"] > 1.0, scores


def test_training_is_what_focuses_gradcam(trained):
    """An untrained classifier's GradCAM is not focused; the trained one is clearly more so."""
    torch.manual_seed(0)
    untrained = VideoClassifier(build_backbone("tiny_r3d"), len(CLASSES), dropout=0.0).eval()
    before, after = _concentrations(untrained)["gradcam"], _concentrations(trained.model)["gradcam"]
    assert after > before + 0.3, (before, after)
