"""Supervised action classification on top of a (pretrained) backbone: fine-tuning and linear probe.

`VideoClassifier` is a linear classifier on the backbone's pooled features with the same
`training_step` shape as the pretext models, so `fit` trains both; its clips are drawn by
`vsslkit.tasks.SupervisedTask` (one random constant-stride clip per video), as any task's are. `train_classifier` is the
whole downstream recipe behind `vsslkit finetune`: data, loader, optimizer, schedule, fit, and a
checkpoint + config that the evaluation code (10 clips per test video) loads afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsslkit.atomic import write_text_atomic
from vsslkit.data.clips import BatchPreparer, ClipDataset, EpochSampler, collate
from vsslkit.models import build_backbone
from vsslkit.models.heads import LinearHead
from vsslkit.models.weights import read_checkpoint
from vsslkit.tasks.supervised import SupervisedTask
from vsslkit.train.checkpoint import save_checkpoint
from vsslkit.train.distributed import DistInfo
from vsslkit.train.loop import FitResult, fit, make_optimizer, make_scheduler


class VideoClassifier(nn.Module):
    """backbone → dropout → linear; `freeze_backbone=True` gives the linear-probe protocol.

    A frozen backbone is also kept in eval mode, so its BatchNorm statistics stay those it was
    pretrained with (a probe must not adapt the representation it measures).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, *, dropout: float = 0.5, freeze_backbone: bool = False):
        super().__init__()
        if not hasattr(backbone, "feature_dim"):
            raise TypeError("the backbone must expose .feature_dim (see vsslkit.models.build_backbone)")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.backbone = backbone
        self.head = LinearHead(int(backbone.feature_dim), num_classes, dropout)
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for p in backbone.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> VideoClassifier:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(clips))

    def training_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        clips = batch["clips"]["clip"] if isinstance(batch["clips"], dict) else batch["clips"]
        target = batch["labels"]["class"]
        if (target < 0).any():
            raise ValueError("supervised training needs a class label for every video (got -1)")
        logits = self(clips)
        loss = F.cross_entropy(logits, target)
        return loss, {"acc": float((logits.detach().argmax(1) == target).float().mean())}


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything needed to rebuild the classifier for evaluation (saved as classifier.json)."""

    backbone: str
    width: float
    num_classes: int
    clip_len: int
    stride: int
    size: int
    residual: bool
    freeze_backbone: bool
    dropout: float
    class_names: tuple[str, ...] = ()
    init: str = "random"
    flip: bool = True  # False for direction-labelled classes (a flip swaps left and right)
    norm: str = "bn"  # "tgn": temporal group norm (built for clips of clip_len frames)
    tgn_group_frames: int = 2  # TGN's frames per group g (seed 002 T6); build_backbone's default

    def to_json(self) -> dict[str, Any]:
        """JSON types, as stored in classifier.pt / classifier.json. `tgn_group_frames` is left out
        at its default, so configs written before it existed still match (a resumed run, a report)."""
        out = json.loads(json.dumps(asdict(self)))
        if out["tgn_group_frames"] == 2:
            del out["tgn_group_frames"]
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any], *, source: str | Path = "<config>") -> ClassifierConfig:
        """Rebuild from the JSON-typed dict stored in classifier.pt / classifier.json."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{source}: unknown classifier config keys {unknown}")
        try:
            config = cls(**{**raw, "class_names": tuple(raw.get("class_names", ()))})
        except TypeError as exc:
            raise ValueError(f"{source}: incomplete classifier config ({exc})") from exc
        if config.class_names and len(config.class_names) != config.num_classes:
            raise ValueError(f"{source}: {len(config.class_names)} class names for {config.num_classes} classes")
        return config


def load_classifier(path: str | Path) -> tuple[VideoClassifier, ClassifierConfig]:
    """The `VideoClassifier` saved by `train_classifier` (`{"model", "config"}`), in eval mode.

    The architecture comes from the stored `ClassifierConfig`, so evaluation needs no flags;
    every tensor must match (strict), or the error names the file.
    """
    raw = read_checkpoint(path)
    if not isinstance(raw.get("model"), dict) or not isinstance(raw.get("config"), dict):
        raise TypeError(f"{path}: not a classifier checkpoint (needs 'model' and 'config'; "
                         "write one with `vsslkit finetune`)")
    if "num_classes" not in raw["config"]:
        raise ValueError(f"{path}: 'config' is not a ClassifierConfig (a pretraining checkpoint? "
                         "fine-tune it first with `vsslkit finetune --init`)")
    config = ClassifierConfig.from_json(raw["config"], source=path)
    backbone = build_backbone(config.backbone, width=config.width, norm=config.norm,
                              in_frames=config.clip_len if config.norm == "tgn" else None,
                              tgn_group_frames=config.tgn_group_frames)
    model = VideoClassifier(backbone, config.num_classes, dropout=config.dropout,
                            freeze_backbone=config.freeze_backbone)
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in raw["model"].items()}
    # classifiers written before the heads moved to models.heads named the layer "classifier"
    state = {("head.fc." + k.removeprefix("classifier.") if k.startswith("classifier.") else k): v
             for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the classifier its config describes ({exc})") from exc
    return model.eval(), config


def train_classifier(
    *,
    backbone: nn.Module,
    config: ClassifierConfig,
    paths: Sequence[str | Path],
    labels: Sequence[int],
    num_frames: Sequence[int],
    source: Any,
    out_dir: str | Path,
    batch_size: int = 16,
    epochs: int = 1,
    max_steps: int | None = None,
    lr: float = 0.01,
    optimizer: str = "sgd",
    milestones: Sequence[int] = (),
    seed: int = 0,
    workers: int = 0,
    device: str | torch.device = "cpu",
    amp: bool = False,
    resume: bool = True,
    progress: bool = True,
    dist_info: DistInfo | None = None,
    log_every: int = 10,
    checkpoint_every: int | None = 100,
    decode_on: str = "cpu",
) -> tuple[VideoClassifier, FitResult]:
    """Fine-tune (or linear-probe) a classifier; writes `out_dir/classifier.pt` + `classifier.json`.

    `classifier.pt` holds `{"model": state_dict, "config": config.to_json()}`: the hook for the
    downstream evaluation (10 uniformly spaced clips per test video). `backbone` is built by the
    caller and must be the one `config` describes (norm and its g included), or the saved
    classifier will not reload. `decode_on="device"` (a JPEG store) decodes batches on `device`
    in the training step instead of in the loader (`vsslkit.data.clips`).
    """
    info = dist_info or DistInfo(device=torch.device(device))
    plain_config = config.to_json()  # JSON types, identical in .pt and .json
    model = VideoClassifier(backbone, config.num_classes, dropout=config.dropout,
                            freeze_backbone=config.freeze_backbone)
    task = SupervisedTask(num_classes=config.num_classes, clip_len=config.clip_len, stride=config.stride,
                          extra_frames=int(config.residual))
    min_frames = task.min_frames
    dataset = ClipDataset(paths, labels, num_frames, source, task.sample, seed=seed, min_frames=min_frames,
                          decode_on=decode_on)
    if dataset.skipped and info.is_main:
        print(f"skipped {len(dataset.skipped)} videos shorter than {min_frames} frames:")
        for path, reason in dataset.skipped:
            print(f"  {path}: {reason}")
    sampler = EpochSampler(len(dataset), seed=seed, rank=info.rank, world_size=info.world_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                                         num_workers=workers, persistent_workers=workers > 0,
                                         pin_memory=info.device.type == "cuda", drop_last=len(sampler) > batch_size)
    opt = make_optimizer(optimizer, model.parameters(), lr)
    scheduler = make_scheduler("multistep", opt, milestones=milestones) if milestones else None
    prepare = BatchPreparer(crop_size=config.size, residual=config.residual, flip=config.flip, seed=seed,
                            device=info.device, rank=info.rank)
    result = fit(model, loader, optimizer=opt, scheduler=scheduler, epochs=epochs, max_steps=max_steps,
                 out_dir=out_dir, prepare=prepare, device=info.device, amp=amp, resume=resume, progress=progress,
                 config=plain_config, dist_info=info, log_every=log_every, checkpoint_every=checkpoint_every,
                 settings={"lr": lr, "batch_size": batch_size, "optimizer": optimizer, "milestones": list(milestones),
                           "seed": seed, "videos": len(dataset)})  # resuming with other choices is refused
    if info.is_main:
        out = Path(out_dir)
        save_checkpoint(out / "classifier.pt", {"model": model.state_dict(), "config": plain_config})
        write_text_atomic(out / "classifier.json", json.dumps(plain_config, indent=1))
    return model, result
