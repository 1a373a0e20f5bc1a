"""Self-supervised pretraining as one library call: task + backbone (+ MoCo) + ClipDataset + `fit`.

`vsslkit pretrain`, the quickstart, the ablation and the notebooks all call `pretrain`, so the
classroom run and the GPU run are the same code. `PretrainConfig` is saved in the checkpoint, so
`build_pretext_model(config)` rebuilds the exact model later (e.g. to read the localization head).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsslkit.data.clips import BatchPreparer, ClipDataset, EpochSampler, collate
from vsslkit.models import build_backbone
from vsslkit.tasks import make_task
from vsslkit.tasks.contrastive import MoCo, with_key_clip
from vsslkit.tasks.model import PretextModel
from vsslkit.tasks.same_batch import all_transforms
from vsslkit.train.distributed import DistInfo
from vsslkit.train.loop import FitResult, fit, make_optimizer, make_scheduler


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that defines a pretraining run (stored in its checkpoint as plain JSON types).

    The defaults are the classroom recipe (slim R3D-10, 64 px crops); the thesis' recipe is
    `backbone="r2plus1d_10", width=1.0, clip_len=16, size=112, batch_size=32, lr=0.01`,
    400 epochs with milestones at epochs 150/250/350, MoCo queue 2048, m 0.999, tau 0.07.
    """

    task: str = "speed-change-fine"
    task_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"pool": (1, 2), "primary": "class"}
    contrastive: bool = False
    ctr_weight: float = 0.5  # lambda: 0.25 in ch. 3, 0.5 in ch. 4
    queue_size: int = 2048
    momentum: float = 0.999
    temperature: float = 0.07
    same_batch: bool = False
    backbone: str = "r3d_10"
    width: float = 0.25
    norm: str = "bn"
    clip_len: int = 16
    size: int = 64
    residual: bool = False
    flip: bool = True  # speed labels do not change under a horizontal flip
    batch_size: int = 16
    lr: float = 0.05
    optimizer: str = "sgd"
    milestones: tuple[int, ...] = ()
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["milestones"] = list(self.milestones)
        out["task_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.task_options.items()}
        return out


def build_task(config: PretrainConfig):
    """The config's task (with K+1 frames per plan for residual input, and a key clip for MoCo)."""
    if config.task == "none" and not config.contrastive:
        raise ValueError("task 'none' has no pretext head: it only makes sense with contrastive=True (CL baseline)")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in config.task_options.items()}
    task = make_task(config.task, clip_len=config.clip_len, extra_frames=int(config.residual), **options)
    return with_key_clip(task) if config.contrastive else task


def build_pretext_model(config: PretrainConfig) -> PretextModel:
    """Backbone + heads (+ MoCo) exactly as `pretrain` builds them; load a checkpoint's "model" into it."""
    torch.manual_seed(config.seed)
    backbone = build_backbone(config.backbone, width=config.width, norm=config.norm,
                              in_frames=config.clip_len if config.norm == "tgn" else None)
    moco = None
    if config.contrastive:
        moco = MoCo(backbone, queue_size=config.queue_size, momentum=config.momentum,
                    temperature=config.temperature, seed=config.seed)
    return PretextModel(backbone, build_task(config), contrastive=moco, ctr_weight=config.ctr_weight)


def pretrain(
    config: PretrainConfig,
    *,
    paths: Sequence[str | Path],
    num_frames: Sequence[int],
    source: Any,
    out_dir: str | Path,
    epochs: int = 1,
    max_steps: int | None = None,
    device: str | torch.device = "cpu",
    workers: int = 0,
    amp: bool = False,
    compile: bool = False,
    resume: bool = True,
    progress: bool = True,
    log_every: int = 10,
    checkpoint_every: int | None = 100,
    tensorboard: bool = False,
    sync_bn: bool = False,
    on_log: Callable[[dict], None] | None = None,
    dist_info: DistInfo | None = None,
    report: Callable[[str], None] = print,
) -> tuple[PretextModel, FitResult]:
    """Pretrain on unlabelled videos; returns the model and the fit result (checkpoint in out_dir).

    Videos shorter than the task's `min_frames` are skipped and reported by name, never wrapped.
    """
    info = dist_info or DistInfo(device=torch.device(device))
    model = build_pretext_model(config)
    task = model.task
    sample_fn = partial(all_transforms, task) if config.same_batch else task.sample
    dataset = ClipDataset(paths, None, num_frames, source, sample_fn, seed=config.seed,
                          min_frames=task.min_frames, same_batch=config.same_batch)
    if dataset.skipped and info.is_main:
        report(f"skipped {len(dataset.skipped)} videos too short for task {config.task} "
               f"(needs {task.min_frames} frames):")
        for path, reason in dataset.skipped:
            report(f"  {path}: {reason}")
    group = len(sample_fn(dataset.num_frames[0], np.random.default_rng(0))) if config.same_batch else 1
    sampler = EpochSampler(len(dataset), seed=config.seed, rank=info.rank, world_size=info.world_size)
    batch_size = max(1, config.batch_size // group)  # with same-batch, batch_size counts clips
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                                         num_workers=workers, persistent_workers=workers > 0,
                                         pin_memory=info.device.type == "cuda",
                                         drop_last=len(sampler) > batch_size)
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr)
    scheduler = make_scheduler("multistep", optimizer, milestones=config.milestones) if config.milestones else None
    cuda = info.device.type == "cuda"
    prepare = BatchPreparer(crop_size=config.size, residual=config.residual, flip=config.flip, seed=config.seed,
                            device=info.device, channels_last=cuda, rank=info.rank)
    result = fit(model, loader, optimizer=optimizer, scheduler=scheduler, epochs=epochs, max_steps=max_steps,
                 out_dir=out_dir, prepare=prepare, device=info.device, amp=amp, compile=compile,
                 channels_last=cuda, log_every=log_every, checkpoint_every=checkpoint_every, resume=resume,
                 progress=progress, tensorboard=tensorboard, config={"pretrain": config.to_json()},
                 dist_info=info, sync_bn=sync_bn, on_log=on_log)
    return model, result


def load_pretext_model(checkpoint: str | Path) -> tuple[PretextModel, PretrainConfig]:
    """A pretraining run's whole model (backbone, task heads, MoCo branch) and its config, e.g. to
    score the pretext task on held-out videos (`vsslkit pretext-eval`)."""
    from vsslkit.models.weights import read_checkpoint

    raw = read_checkpoint(checkpoint)
    try:
        config = config_from_checkpoint(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{checkpoint}: not a vsslkit pretraining checkpoint ({exc})") from exc
    model = build_pretext_model(config)
    model.load_state_dict(raw["model"])
    return model, config


def config_from_checkpoint(state: dict[str, Any]) -> PretrainConfig:
    """The PretrainConfig stored by `pretrain` in a checkpoint's "config"."""
    raw = dict((state.get("config") or {}).get("pretrain") or {})
    if not raw:
        raise ValueError("this checkpoint was not written by vsslkit.train.pretrain (no config.pretrain)")
    raw["milestones"] = tuple(raw.get("milestones", ()))
    raw["task_options"] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.get("task_options", {}).items()}
    return PretrainConfig(**raw)
