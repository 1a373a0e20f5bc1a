"""Seed 001: action classification from scratch with a tracking and an arrow-of-time branch.

    l = l_cls + w1 l_track + w2 l_dir      (eq. 3.1; w1 = 25, w2 = 2 by default, Table 4.2)

One trunk (`InflatedResNet50Conv5`: the inflated ResNet-50 without temporal downsampling, plus the
shared 3x3x3 max pool + conv5 of §3.3/§3.5), composed as a `Joint` of three branches:
- "cls": `SupervisedTask`: the video's label on a forward clip (labels ARE used: this is
  supervised training from scratch, the tracking and direction branches are auxiliary);
- "track": `TimeCycleTask` on the res4 maps ("pool4") of its own k + 1 frames at gap 4;
- "dir": `ArrowOfTimeTask`: a clip reversed with probability 1/2, its label read from its plan.
A weight of 0 leaves a branch out (no wasted forward), which is how the arms of the ablation
(cls only / + tracking / + direction / + both) are built. The optimiser is the seed's Adam
(lr 2e-4, β = (0.5, 0.999), weight decay 1e-4) for every arm (SPECS §4.2 D4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsslkit.data.clips import BatchPreparer, ClipDataset, EpochSampler, collate
from vsslkit.models.padding import use_circular_spatial_padding
from vsslkit.models.resnet50_inflated import InflatedResNet50Conv5
from vsslkit.tasks.arrow_of_time import ArrowOfTimeTask
from vsslkit.tasks.base import Features
from vsslkit.tasks.joint import Joint
from vsslkit.tasks.model import PretextModel
from vsslkit.tasks.supervised import SupervisedTask
from vsslkit.tasks.timecycle import TimeCycleTask
from vsslkit.train.loop import FitResult, fit


@dataclass(frozen=True)
class FromScratchConfig:
    """A from-scratch joint run (stored in its checkpoint). Defaults: the CPU miniature (SPECS
    §4.4) at the synthetic set's 64 px; the seed itself is width 1, 3 conv5 units, 13 frames, 240 px."""

    num_classes: int
    track_weight: float = 25.0
    direction_weight: float = 2.0
    width: float = 0.125
    conv5_units: int = 1
    clip_len: int = 8
    size: int = 64
    past: int = 3
    gap: int = 4
    track_layer: str = "pool4"
    proj_dim: int = 64
    cycle_weight: float = 0.1  # λ of eq. 3.3 (long and skip cycles)
    sim_weight: float = 1.0  # l_sim's factor (the thesis: 1)
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 1e-4
    flip: bool = False  # a flip turns MoveRight into MoveLeft: the synthetic classes are directional
    localiser: str = "learned"  # the thesis' localiser, or "soft-argmax" (no weights; models.cycle)
    padding: str = "zeros"  # the convolutions' spatial padding: "zeros" or "circular" (models.padding)
    direction_stride: int = 1  # frames between the direction clip's frames (1: consecutive, as the classification clip)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.track_weight < 0 or self.direction_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got w1={self.track_weight}, w2={self.direction_weight}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if self.localiser not in ("learned", "soft-argmax"):
            raise ValueError(f"localiser must be 'learned' or 'soft-argmax', got {self.localiser!r}")
        if self.direction_stride < 1:
            raise ValueError(f"direction_stride must be >= 1, got {self.direction_stride}")
        if self.padding not in ("zeros", "circular"):
            raise ValueError(f"padding must be 'zeros' or 'circular', got {self.padding!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FromScratchConfig:
        return cls(**raw)


def build_joint(config: FromScratchConfig) -> Joint:
    """The branches with their weights; a branch whose weight is 0 is left out."""
    tasks: dict[str, Any] = {"cls": SupervisedTask(num_classes=config.num_classes, clip_len=config.clip_len)}
    weights = {"cls": 1.0}
    if config.track_weight > 0:
        tasks["track"] = TimeCycleTask(past=config.past, gap=config.gap, layer=config.track_layer, size=config.size,
                                       proj_dim=config.proj_dim, weight=config.cycle_weight,
                                       sim_weight=config.sim_weight, localiser=config.localiser)
        weights["track"] = config.track_weight
    if config.direction_weight > 0:
        tasks["dir"] = ArrowOfTimeTask(clip_len=config.clip_len, speeds=(config.direction_stride,))
        weights["dir"] = config.direction_weight
    return Joint(tasks, weights=weights)


def build_model(config: FromScratchConfig) -> PretextModel:
    """Trunk + conv5 + the branches, initialised from `config.seed` (same seed, same weights)."""
    torch.manual_seed(config.seed)
    backbone = InflatedResNet50Conv5(width=config.width, conv5_units=config.conv5_units)
    if config.padding == "circular":
        use_circular_spatial_padding(backbone)
    return PretextModel(backbone, build_joint(config))


def make_adam(model: torch.nn.Module, config: FromScratchConfig) -> torch.optim.Optimizer:
    """The seed's optimiser (§4.2): Adam, β = (0.5, 0.999), weight decay 1e-4."""
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr, betas=(0.5, 0.999),
                            weight_decay=config.weight_decay)


def train_from_scratch(
    config: FromScratchConfig,
    *,
    paths: Sequence[str | Path],
    labels: Sequence[int],
    num_frames: Sequence[int],
    source: Any,
    out_dir: str | Path,
    steps: int,
    device: str | torch.device = "cpu",
    workers: int = 0,
    resume: bool = True,
    progress: bool = True,
    log_every: int = 10,
    checkpoint_every: int | None = 100,
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    on_log: Callable[[dict], None] | None = None,
    report: Callable[[str], None] = print,
) -> tuple[PretextModel, FitResult]:
    """Train the joint model for `steps` optimiser steps on labelled videos (checkpoint in out_dir).

    Videos too short for every branch are skipped and reported by name."""
    model = build_model(config)
    task = model.task
    dataset = ClipDataset(paths, labels, num_frames, source, task.sample, seed=config.seed, min_frames=task.min_frames)
    if dataset.skipped:
        report(f"skipped {len(dataset.skipped)} videos too short (the branches need {task.min_frames} frames):")
        for path, reason in dataset.skipped:
            report(f"  {path}: {reason}")
    sampler = EpochSampler(len(dataset), seed=config.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, collate_fn=collate,
                                         num_workers=workers, persistent_workers=workers > 0,
                                         drop_last=len(sampler) > config.batch_size)
    prepare = BatchPreparer(crop_size=config.size, flip=config.flip, seed=config.seed, device=device)
    epochs = -(-steps // max(1, len(loader)))
    result = fit(model, loader, optimizer=make_adam(model, config), epochs=epochs, max_steps=steps, out_dir=out_dir,
                 prepare=prepare, device=device, log_every=log_every, checkpoint_every=checkpoint_every,
                 resume=resume, progress=progress, config={"from_scratch": config.to_json()},
                 eval_fn=eval_fn, eval_every=eval_every, on_log=on_log)
    return model, result


def load_from_scratch(checkpoint: str | Path) -> tuple[PretextModel, FromScratchConfig]:
    """A from-scratch run's model and config from its checkpoint."""
    from vsslkit.models.weights import read_checkpoint

    raw = read_checkpoint(checkpoint)
    stored = (raw.get("config") or {}).get("from_scratch")
    if not stored:
        raise ValueError(f"{checkpoint}: not a from-scratch joint checkpoint (no config.from_scratch)")
    config = FromScratchConfig.from_json(stored)
    model = build_model(config)
    try:
        model.load_state_dict(raw["model"])
    except RuntimeError as exc:
        raise ValueError(f"{checkpoint}: weights do not match the model its config describes ({exc})") from exc
    return model, config


class BranchPredictor(torch.nn.Module):
    """One branch of the joint model as a plain `clips (B, 3, T, H, W) -> outputs` module (what
    `evaluate_classifier` and the probes call): the branch reads the clip as its "clip"."""

    def __init__(self, model: PretextModel, branch: str):
        super().__init__()
        if branch not in model.head.branches:
            raise KeyError(f"no branch {branch!r}; the model has {list(model.head.branches)}")
        self.model, self.branch = model, branch

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.head.branches[self.branch](Features(self.model.backbone, {"clip": clips}))


def direction_accuracy(model: PretextModel, paths: Sequence[str | Path], num_frames: Sequence[int], source: Any, *,
                       clip_len: int, size: int, clips_per_video: int = 4, seed: int = 0, batch_size: int = 16,
                       device: str | torch.device = "cpu", stride: int = 1, residual: bool = False) -> dict[str, float]:
    """Held-out accuracy of the direction branch: `clips_per_video` clips per video at `stride` (the
    run's `direction_stride`), each reversed with probability 1/2 (seeded), fitted to `size`
    (`fit_to`); the label is each clip's own plan's. With `residual` a clip has K+1 frames and the
    branch reads their K differences (data_scripts/direction_diagnostics.py)."""
    from vsslkit.data import transforms as T
    from vsslkit.eval.video_level_clips import fit_to

    task = ArrowOfTimeTask(clip_len=clip_len, speeds=(stride,), extra_frames=int(residual))
    predictor = BranchPredictor(model, "dir").to(device)
    clips, labels = [], []
    for v, (path, n) in enumerate(zip(paths, num_frames)):
        if n < task.min_frames:
            continue
        rng = np.random.default_rng([seed, v])
        for _ in range(clips_per_video):
            sample = task.sample(int(n), rng)
            clips.append(torch.from_numpy(np.ascontiguousarray(source.read(Path(path), sample.plan.indices))))
            labels.append(sample.labels["direction"])
    if not clips:
        raise ValueError("no held-out video is long enough for one direction clip")
    correct = 0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for i in range(0, len(clips), batch_size):
                x = T.to_float_clips(fit_to(torch.stack(clips[i : i + batch_size]), size)).to(device)
                x = T.residual_frames(x) if residual else x
                pred = predictor(x)["direction"].argmax(1).cpu().numpy()
                correct += int((pred == np.asarray(labels[i : i + batch_size])).sum())
    finally:
        model.train(was_training)
    return {"direction_accuracy": correct / len(labels), "direction_clips": len(labels),
            "backward_fraction": float(np.mean(labels))}



def evaluate_from_scratch(model: PretextModel, config: FromScratchConfig, test: Any, store: Any, *,
                          synthetic_root: str | Path | None = None, device: str | torch.device = "cpu",
                          seed: int = 0, max_clips: int | None = None,
                          track_radius: int | None = None) -> dict[str, Any]:
    """Held-out scores of one run: video-level classification over non-overlapping clips (Hit@1,
    Hit@5, confusion counts; at most `max_clips` per video when given), the direction branch's accuracy (when trained) and, on the
    synthetic set, the tracker's centre error against the constant-position baseline (when trained;
    `track_radius`: `vsslkit.eval.tracking.propagate`'s local search window in map cells)."""
    from vsslkit.eval.video_level_clips import video_scores

    out: dict[str, Any] = {"classification": video_scores(
        BranchPredictor(model, "cls"), test.paths, test.labels, test.num_frames, store, clip_len=config.clip_len,
        size=config.size, num_classes=len(test.class_names), device=device, max_clips=max_clips)}
    if "dir" in model.head.branches:
        out["direction"] = direction_accuracy(model, test.paths, test.num_frames, store, clip_len=config.clip_len,
                                              size=config.size, seed=seed, device=device, stride=config.direction_stride)
    if "track" in model.head.branches and synthetic_root is not None:
        from vsslkit.eval.tracking import tracking_error

        try:
            out["tracking"] = tracking_error(model, "track", synthetic_root, test.paths, store, size=config.size,
                                             steps=config.past, gap=config.gap, seed=seed, radius=track_radius)
        except ValueError as exc:  # e.g. no test video keeps its object inside for a whole window
            out["tracking_not_scored"] = str(exc)
        else:
            # the same tracker with the run's initial (untrained) weights: what the features learned
            out["tracking_untrained"] = tracking_error(build_model(config), "track", synthetic_root, test.paths,
                                                       store, size=config.size, steps=config.past, gap=config.gap,
                                                       seed=seed, radius=track_radius)
    return out
