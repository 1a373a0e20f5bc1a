"""A briefly trained classifier looks at the moving object: a measured check, not a picture.

Tiny R3D on residual clips of the fast synthetic course set, 60 steps. Heat concentration =
mean heat on the main object (ground-truth disc from the renderer's trajectory) / mean heat
elsewhere, averaged over fresh clips of six motion classes (`classroom.cam_concentrations`).
Measured once: untrained activation map 1.82 / GradCAM 1.01; after 60 steps (no flips) 1.76 / 2.48.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vsslkit import classroom
from vsslkit.data.synthetic import CLASSES
from vsslkit.models import build_backbone
from vsslkit.train.supervised import VideoClassifier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> classroom.QuickClassifier:
    torch.set_num_threads(2)
    tmp = tmp_path_factory.mktemp("cam-course")
    course = classroom.course_dataset(tmp / "course", fast=True, store_root=tmp / "frames")
    return classroom.quick_classifier(course, steps=60, seed=0)


def _means(model: VideoClassifier) -> dict[str, float]:
    return {k: float(np.mean(v)) for k, v in classroom.cam_concentrations(model, list(CLASSES)).items()}


def test_trained_maps_concentrate_on_the_moving_object(trained):
    scores = _means(trained.model)
    assert scores["activation map"] > 1.0, scores
    assert scores["gradcam"] > 1.0, scores
    # HiResCAM on the last stage (before global average pooling + linear) equals GradCAM
    assert scores["hirescam"] == pytest.approx(scores["gradcam"], rel=1e-3)


def test_training_is_what_focuses_gradcam(trained):
    """An untrained classifier's GradCAM is not focused; the trained one is clearly more so."""
    torch.manual_seed(0)
    untrained = VideoClassifier(build_backbone("tiny_r3d"), len(CLASSES), dropout=0.0).eval()
    before, after = _means(untrained)["gradcam"], _means(trained.model)["gradcam"]
    assert after > before + 0.3, (before, after)
