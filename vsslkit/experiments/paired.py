"""Paired downstream comparison: one backbone initialisation → frozen retrieval, a linear probe of the
frozen features and low-label fine-tuning.

Every initialisation (random, or a pretrained checkpoint) goes through exactly the same protocol
with the same seed: the same labelled subset, the same fine-tuning steps and crops, the same
10 test clips per video. That pairing is what makes "pretraining helps" a measured statement.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsslkit.data.datasets import VideoIndex, label_fraction, open_dataset
from vsslkit.data.store import FrameStore
from vsslkit.data.synthetic import GENERATOR_VERSION, load_metadata, make_synthetic
from vsslkit.eval.features import extract_video_features
from vsslkit.eval.results import Protocol, write_result
from vsslkit.eval.retrieval import recall_at_k
from vsslkit.eval.svm import linear_probe
from vsslkit.eval.video_level import evaluate_classifier
from vsslkit.train.pretrain import PretrainConfig
from vsslkit.train.supervised import ClassifierConfig, train_classifier

RETRIEVAL_KS = (1, 5, 10, 20, 50)


def synthetic_version_problem(root: str | Path, version: int) -> str | None:
    """One line when `root` already holds a synthetic set of another generator version, else None."""
    if not (Path(root) / "synthetic.json").is_file():
        return None
    found = load_metadata(root)["request"]["generator_version"]
    if found == version:
        return None
    return (f"{root}: holds synthetic generator version {found}, asked for version {version}; "
            "choose another data folder or delete this one")


def ensure_synthetic(root: str | Path, *, progress: bool = True, version: int = GENERATOR_VERSION,
                     **kwargs: Any) -> Path:
    """Build the built-in synthetic dataset at `root` unless one is already there (then reuse it as is).

    A set of another generator `version` is refused (ValueError), never silently used or replaced.
    """
    root = Path(root)
    problem = synthetic_version_problem(root, version)
    if problem:
        raise ValueError(problem)
    if (root / "synthetic.json").is_file():
        print(f"using the synthetic dataset at {root}")
        return root
    return make_synthetic(root, progress=progress, version=version, **kwargs)


@dataclass
class Data:
    """Train and test videos (with frame counts) and the frame store they are read from."""

    name: str
    split: int
    train: VideoIndex
    test: VideoIndex
    store: FrameStore
    skipped: list[tuple[Path, str]]


def load_data(root: str | Path, *, split: int = 1, store_dir: str | Path | None = None, short_side: int = 64,
              progress: bool = True, workers: int = 1) -> Data:
    """Open a dataset's official split and make sure every video is in the frame store.

    Unusable videos are skipped and returned in `.skipped` (path, reason): reported, not hidden.
    """
    root = Path(root)
    store = FrameStore(store_dir or root / "frame_store", short_side=short_side)
    train, skipped_train = open_dataset(root, split=split, subset="train").with_frame_counts(
        store, progress=progress, workers=workers)
    test, skipped_test = open_dataset(root, split=split, subset="test").with_frame_counts(
        store, progress=progress, workers=workers)
    return Data(root.name, split, train, test, store, list(skipped_train) + list(skipped_test))


@dataclass(frozen=True)
class DownstreamConfig:
    """The downstream protocol shared by every initialisation in a comparison.

    `flip=False` by default because the synthetic classes include left/right and CW/CCW pairs:
    a horizontal flip would silently swap their labels.
    """

    label_fraction: float = 0.1
    finetune_steps: int = 150
    batch_size: int = 16
    lr: float = 0.05
    stride: int = 2
    clips_per_video: int = 10
    layer: str = "pool5"
    pooling: str = "avg"
    averaging: str = "softmax"
    dropout: float = 0.5
    flip: bool = False
    freeze_backbone: bool = False
    # More labelled fractions to fine-tune on (same steps and seed), beside `label_fraction`: the
    # result's "finetune_at" maps "0.25" -> the same fields as "finetune". Empty: one fraction.
    extra_label_fractions: tuple[float, ...] = ()


def downstream(
    name: str,
    backbone: nn.Module,
    data: Data,
    *,
    input_cfg: PretrainConfig,
    down: DownstreamConfig,
    seed: int,
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Retrieval with the frozen `backbone`, then fine-tuning a copy on the labelled fraction.

    `input_cfg` supplies the input format the backbone was (or would be) pretrained with: clip
    length, crop size, residual frames. Returns {"retrieval": {...}, "finetune": {...}} and writes
    both as JSON results with their protocol under `out_dir`.
    """
    out_dir = Path(out_dir)
    clip = {"clip_len": input_cfg.clip_len, "stride": down.stride, "crop_size": input_cfg.size,
                "residual": input_cfg.residual, "clips_per_video": down.clips_per_video, "device": device}
    protocol = {"dataset": data.name, "split": data.split, "clip_len": input_cfg.clip_len, "stride": down.stride,
                    "crop": input_cfg.size, "residual": input_cfg.residual, "clips_per_video": down.clips_per_video,
                    "seed": seed, "backbone": f"{input_cfg.backbone}x{input_cfg.width}",
                    "checkpoint": str(checkpoint) if checkpoint else "random", "extra": {"init": name}}

    # 1. frozen features: test videos query the training videos
    frozen = copy.deepcopy(backbone).eval()
    feats = {}
    for subset, index in (("train", data.train), ("test", data.test)):
        feats[subset] = extract_video_features(frozen, index.paths, data.store, num_frames=index.num_frames,
                                               layer=down.layer, pooling=down.pooling, progress=progress, **clip)
    ret = recall_at_k(feats["test"], np.asarray(data.test.labels), feats["train"], np.asarray(data.train.labels),
                      RETRIEVAL_KS)
    retrieval = {f"R@{k}": 100.0 * v for k, v in ret.recall.items()}
    write_result(out_dir / "retrieval.json", retrieval,
                 Protocol(task="retrieval", subset="test", layer=down.layer, pooling=down.pooling, **protocol))

    # 2. linear probe: a linear SVM on the frozen features of the labelled fraction only
    labelled = label_fraction(data.train, down.label_fraction, seed)
    row = {path: i for i, path in enumerate(data.train.paths)}
    rows = [row[path] for path in labelled.paths]
    probe = linear_probe(feats["train"][rows], labelled.labels, feats["test"], data.test.labels, seed=seed)
    linear = {"video_accuracy": 100.0 * probe["accuracy"], "labelled_videos": len(labelled)}
    write_result(out_dir / "linear_probe.json", linear,
                 Protocol(task="linear_probe", subset="test", label_fraction=down.label_fraction, layer=down.layer,
                          pooling=down.pooling, **protocol))

    # 3. fine-tune a copy on the labelled fraction (same subset for every initialisation)
    def finetune_on(fraction: float, subset: VideoIndex, folder: str) -> tuple[dict[str, Any], dict[str, Any], Any]:
        torch.manual_seed(seed)
        config = ClassifierConfig(backbone=input_cfg.backbone, width=input_cfg.width,
                                  num_classes=data.train.num_classes, clip_len=input_cfg.clip_len, stride=down.stride,
                                  size=input_cfg.size, residual=input_cfg.residual,
                                  freeze_backbone=down.freeze_backbone, dropout=down.dropout,
                                  class_names=tuple(data.train.class_names), init=name, flip=down.flip,
                                  norm=input_cfg.norm, tgn_group_frames=input_cfg.tgn_group_frames)
        model, fit_result = train_classifier(
            backbone=copy.deepcopy(backbone), config=config, paths=subset.paths, labels=subset.labels,
            num_frames=subset.num_frames, source=data.store, out_dir=out_dir / folder,
            batch_size=down.batch_size, max_steps=down.finetune_steps, lr=down.lr, seed=seed, device=device,
            resume=False, progress=progress, checkpoint_every=None)
        scores = evaluate_classifier(model.eval(), data.test.paths, data.test.labels, data.store,
                                     num_frames=data.test.num_frames, averaging=down.averaging,
                                     class_names=data.test.class_names, **clip)
        summary = {"video_accuracy": 100.0 * scores["video_accuracy"],
                   "clip_accuracy": 100.0 * scores["clip_accuracy"], "hit_at_5": 100.0 * scores["hit_at_5"],
                   "mean_class_accuracy": 100.0 * scores["mean_class_accuracy"], "labelled_videos": len(subset),
                   "finetune_seconds": fit_result.seconds}
        write_result(out_dir / f"{folder}.json", {**summary, "per_class_accuracy": scores["per_class_accuracy"],
                                                  "confusion": scores["confusion"]},
                     Protocol(task="video_classification", subset="test", label_fraction=fraction,
                              averaging=down.averaging,
                              **{**protocol, "extra": {**protocol["extra"], **asdict(down)}}))
        return summary, scores, fit_result

    finetune, scores, fit_result = finetune_on(down.label_fraction, labelled, "finetune")
    finetune_at = {}
    for fraction in down.extra_label_fractions:  # e.g. 25 % beside 10 %: same seed, steps and test clips
        finetune_at[f"{fraction:g}"] = finetune_on(fraction, label_fraction(data.train, fraction, seed),
                                                   f"finetune_{fraction:g}")[0]
    extra = {"finetune_at": finetune_at} if finetune_at else {}
    return {"retrieval": retrieval, "linear_probe": linear, "finetune": finetune, **extra,
            "confusion": scores["confusion"], "class_names": list(data.test.class_names), "curve": fit_result.history}
