"""Self-supervised pretraining as one library call: task + backbone (+ MoCo) + ClipDataset + `fit`.

`vsslkit pretrain`, the quickstart, the ablation and the notebooks all call `pretrain`, so the
classroom run and the GPU run are the same code. `PretrainConfig` is saved in the checkpoint, so
`build_pretext_model(config)` rebuilds the exact model later (e.g. to read the localization head).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsslkit.data.clips import BatchPreparer, ClipDataset, EpochSampler, collate
from vsslkit.models import build_backbone
from vsslkit.tasks import Joint, MoCo, make_task
from vsslkit.tasks.model import PretextModel
from vsslkit.tasks.same_batch import all_transforms
from vsslkit.train.distributed import DistInfo
from vsslkit.train.loop import FitResult, fit, make_optimizer, make_scheduler

TGN_GROUP_FRAMES = 2  # build_backbone's default g
CONFIG_FORMAT = 2  # 1: flat MoCo fields and positional clips (before the task-shape redesign)


@dataclass(frozen=True)
class MoCoConfig:
    """The MoCo branch (thesis ch. 3.3-3.4): weight λ of its loss, queue, key-encoder momentum, τ."""

    weight: float = 0.5  # lambda: 0.25 in ch. 3, 0.5 in ch. 4
    queue_size: int = 2048
    momentum: float = 0.999
    temperature: float = 0.07

    def __post_init__(self) -> None:
        if self.weight < 0 or self.queue_size < 1 or not 0.0 <= self.momentum <= 1.0 or self.temperature <= 0:
            raise ValueError(f"bad MoCo settings: {self}")


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that defines a pretraining run (stored in its checkpoint as plain JSON types).

    The defaults are the classroom recipe (slim R3D-10, 64 px crops); the thesis' recipe is
    `backbone="r2plus1d_10", width=1.0, clip_len=16, size=112, batch_size=32, lr=0.01`,
    400 epochs with milestones at epochs 150/250/350, MoCo queue 2048, m 0.999, tau 0.07.
    A branch that a method adds gets its own nested config (`moco: MoCoConfig | None`).
    """

    task: str = "speed-change-fine"
    task_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"pool": (1, 2), "primary": "class"}
    moco: MoCoConfig | None = None
    same_batch: bool = False
    backbone: str = "r3d_10"
    width: float = 0.25
    norm: str = "bn"
    tgn_group_frames: int = 2  # frames per temporal group when norm="tgn" (seed 002 T6's g); = TGN_GROUP_FRAMES
    clip_len: int = 16
    size: int = 64
    residual: bool = False
    flip: bool = True  # speed labels do not change under a horizontal flip
    batch_size: int = 16
    lr: float = 0.05
    optimizer: str = "sgd"
    milestones: tuple[int, ...] = ()
    seed: int = 0
    curriculum: float | None = None  # seed 003: easy half first, all videos from this fraction of the run on
    video_half: str | None = None  # seed 003 T3: train on one half only: "easy", "hard" (score f) or "random"

    @property
    def contrastive(self) -> bool:
        return self.moco is not None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["milestones"] = list(self.milestones)
        out["task_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.task_options.items()}
        out["format"] = CONFIG_FORMAT
        if out["tgn_group_frames"] == TGN_GROUP_FRAMES:  # stored only when not the default, so checkpoints
            del out["tgn_group_frames"]                  # written before the field existed still resume
        if out["video_half"] is None:  # likewise
            del out["video_half"]
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PretrainConfig:
        """Rebuild from `to_json`'s dict; a format-1 dict (flat MoCo fields) is upgraded."""
        raw = upgrade_config(raw)
        raw.pop("format", None)
        raw["milestones"] = tuple(raw.get("milestones", ()))
        raw["task_options"] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.get("task_options", {}).items()}
        if raw.get("moco") is not None:
            raw["moco"] = MoCoConfig(**raw["moco"])
        return cls(**raw)


def upgrade_config(raw: dict[str, Any]) -> dict[str, Any]:
    """A format-1 config (flat `contrastive`, `ctr_weight`, `queue_size`, `momentum`,
    `temperature`) as format 2 (`moco`: a nested MoCoConfig or None); format 2 unchanged."""
    raw = dict(raw)
    version = int(raw.get("format", 1))
    if version > CONFIG_FORMAT:
        raise ValueError(f"config format {version} is newer than this vsslkit understands ({CONFIG_FORMAT})")
    if version == 1:
        flat = {k: raw.pop(k) for k in ("contrastive", "ctr_weight", "queue_size", "momentum", "temperature") if k in raw}
        moco = {"weight": flat.get("ctr_weight", 0.5), "queue_size": flat.get("queue_size", 2048),
                "momentum": flat.get("momentum", 0.999), "temperature": flat.get("temperature", 0.07)}
        raw["moco"] = moco if flat.get("contrastive") else None
        raw["format"] = CONFIG_FORMAT
    return raw


def upgrade_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """A format-1 `PretextModel` state dict under format 2's names: the task heads moved from
    `heads.classifiers.<h>` to `head.branches.pretext.head.heads.<h>.fc`, MoCo from
    `contrastive.` to `head.branches.moco.`. MoCo's shuffle-generator state did not exist in
    format 1 (it is why resuming with MoCo was not exact): the caller's fresh one is kept."""
    out = {}
    for key, value in state.items():
        if key.startswith("heads.classifiers."):
            name, _, param = key.removeprefix("heads.classifiers.").rpartition(".")
            key = f"head.branches.pretext.head.heads.{name}.fc.{param}"
        elif key.startswith("contrastive."):
            key = key.removeprefix("contrastive.")
            match = re.fullmatch(r"(key_projection|projection)\.([02])\.(weight|bias)", key)
            if match:  # nn.Sequential(Linear, ReLU, Linear) -> MLPHead.net (Linear, Identity, ReLU, Linear)
                key = f"{match[1]}.net.{0 if match[2] == '0' else 3}.{match[3]}"
            key = "head.branches.moco." + key
        out[key] = value
    return out


def build_task(config: PretrainConfig) -> Joint:
    """The config's task as a `Joint`: branch "pretext" (K+1 frames per plan with residual input),
    plus branch "moco" (a key clip drawn by the same task) when MoCo is on."""
    if config.task == "ascnet" and config.moco is not None:
        raise ValueError("ascnet has its own momentum target; the MoCo branch (--contrastive) does not apply")
    if config.task == "none" and config.moco is None:
        raise ValueError("task 'none' has no pretext head: it only makes sense with MoCo (CL baseline)")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in config.task_options.items()}
    if config.task == "ascnet":
        options.setdefault("seed", config.seed)  # the memory bank's random start
    if config.task == "tracking":
        options.setdefault("size", config.size)  # the localiser is sized from the maps of this crop
    task = make_task(config.task, clip_len=config.clip_len, extra_frames=int(config.residual), **options)
    if config.moco is None:
        return Joint({"pretext": task})
    # A multi-clip task names its query clip and gives MoCo a one-clip key sampler.
    moco = MoCo(key_task=getattr(task, "moco_key_task", task), query="pretext." + getattr(task, "moco_query", "clip"),
                queue_size=config.moco.queue_size, momentum=config.moco.momentum,
                temperature=config.moco.temperature, seed=config.seed)
    return Joint({"pretext": task, "moco": moco}, weights={"pretext": 1.0, "moco": config.moco.weight})


def build_pretext_model(config: PretrainConfig) -> PretextModel:
    """Backbone + the task's module (+ MoCo) exactly as `pretrain` builds them; load a
    checkpoint's "model" into it."""
    torch.manual_seed(config.seed)
    backbone = build_backbone(config.backbone, width=config.width, norm=config.norm,
                              in_frames=config.clip_len if config.norm == "tgn" else None,
                              tgn_group_frames=config.tgn_group_frames)
    return PretextModel(backbone, build_task(config))


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
    groups: Sequence[str] | None = None,
    flow: Any = None,
    decode_on: str = "cpu",
) -> tuple[PretextModel, FitResult]:
    """Pretrain on unlabelled videos; returns the model and the fit result (checkpoint in out_dir).

    Videos shorter than the task's `min_frames` are skipped and reported by name, never wrapped.
    `groups` (e.g. UCF101's "gXX") let a cross-video task avoid near-duplicate partners (ASCNet).
    A task whose labels come from optical flow (`flow_clips`, e.g. statistics) reads it from `flow`
    (a `FlowCache`; default: Farneback flow beside `source`, built here first, bad videos skipped).
    `decode_on="device"` (a JPEG store) decodes each batch on `device` in the training step
    instead of in the loader (see `vsslkit.data.clips`); the clips are the same.
    """
    info = dist_info or DistInfo(device=torch.device(device))
    model = build_pretext_model(config)
    task = model.task
    sample_fn = partial(all_transforms, task) if config.same_batch else task.sample
    flow_clips = tuple(f"{b}.{c}" for b, t in task.tasks.items() for c in getattr(t, "flow_clips", ()))
    if flow_clips:
        paths, num_frames, flow, keep = _with_flow(paths, num_frames, source, flow, progress and info.is_main, report)
        groups = [groups[i] for i in keep] if groups is not None else None
    dataset = ClipDataset(paths, None, num_frames, source, sample_fn, seed=config.seed,
                          min_frames=task.min_frames, same_batch=config.same_batch, groups=groups,
                          flow=flow if flow_clips else None, flow_clips=flow_clips, decode_on=decode_on)
    model.bind_dataset(len(dataset), dataset.groups)  # per-video state (ASCNet's bank) is sized here
    if dataset.skipped and info.is_main:
        report(f"skipped {len(dataset.skipped)} videos too short for task {config.task} "
               f"(needs {task.min_frames} frames):")
        for path, reason in dataset.skipped:
            report(f"  {path}: {reason}")
    group = len(sample_fn(dataset.num_frames[0], np.random.default_rng(0), context=dataset.context(0))) if config.same_batch else 1
    batch_size = max(1, config.batch_size // group)  # with same-batch, batch_size counts clips
    sampler = EpochSampler(len(dataset), seed=config.seed, rank=info.rank, world_size=info.world_size)
    if config.curriculum is not None or config.video_half is not None:
        sampler = _curriculum_sampler(config, task, dataset, flow, sampler, batch_size, epochs, max_steps, info, report)
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


def _with_flow(paths: Sequence[str | Path], num_frames: Sequence[int], source: Any, flow: Any, progress: bool,
               report: Callable[[str], None]) -> tuple[list, list, Any, list[int]]:
    """The flow cache (built for every video first); videos whose flow failed are dropped, by name
    (the kept positions are returned too, so per-video lists such as groups stay aligned)."""
    from vsslkit.data.flow_cache import FlowCache

    flow = flow if flow is not None else FlowCache(source)
    built = flow.build(paths, progress=progress)
    if built.skipped:
        report(f"skipped {len(built.skipped)} videos without optical flow:")
        for path, reason in built.skipped:
            report(f"  {path}: {reason}")
    ok = {str(p) for p in built.ok}
    keep = [i for i, p in enumerate(paths) if str(Path(p)) in ok]
    return [paths[i] for i in keep], [num_frames[i] for i in keep], flow, keep


def _curriculum_sampler(config: PretrainConfig, task: Joint, dataset: ClipDataset, flow: Any, sampler: EpochSampler,
                        batch_size: int, epochs: int, max_steps: int | None, info: DistInfo,
                        report: Callable[[str], None]) -> EpochSampler:
    """Seed 003's curriculum: the easy half (by `video_difficulty`) until the switch epoch; or, for
    T3's controls (`video_half`), one half of the videos for the whole run, epochs of the same length."""
    from vsslkit.data.curriculum import VIDEO_HALVES, CurriculumSampler, easy_half, switch_epoch
    from vsslkit.tasks.statistics import video_difficulty

    half = config.video_half
    if half is not None and (half not in VIDEO_HALVES or config.curriculum is not None):
        raise ValueError(f"video_half must be one of {', '.join(VIDEO_HALVES)} and without a curriculum, got {half!r}")
    per_epoch = max(1, len(sampler) // batch_size if len(sampler) > batch_size else 1)
    total = max_steps if max_steps is not None else epochs * per_epoch
    if half == "random":  # T3's "50 % random": a seeded half, no motion statistics needed
        chosen = np.sort(np.random.default_rng([config.seed, 3]).permutation(len(dataset))[: max(1, len(dataset) // 2)])
        if info.is_main:
            report(f"video half: a random {len(chosen)} of {len(dataset)} videos for all {total} steps")
        return CurriculumSampler(len(dataset), easy=chosen, switch_epoch=total + 1, seed=config.seed, rank=info.rank,
                                 world_size=info.world_size)
    primary = task.primary
    if not getattr(primary, "flow_clips", ()):
        raise ValueError(f"the curriculum ranks videos by their motion statistics; task {primary.name} has none")
    scores = video_difficulty(flow, dataset.videos, dataset.num_frames, clip_len=primary.clip_len, size=config.size)
    easy = easy_half(scores)
    if half is not None:
        chosen = easy if half == "easy" else np.setdiff1d(np.arange(len(scores)), easy)
        if info.is_main:
            report(f"video half: the {len(chosen)} {half.replace('y', 'i')}est of {len(scores)} videos (score f "
                   f"{scores[chosen].min():.3f}-{scores[chosen].max():.3f}) for all {total} steps")
        return CurriculumSampler(len(dataset), easy=chosen, switch_epoch=total + 1, seed=config.seed, rank=info.rank,
                                 world_size=info.world_size)
    switch = switch_epoch(float(config.curriculum), total, per_epoch)
    if info.is_main:
        report(f"curriculum: {len(easy)} easiest of {len(scores)} videos (score f >= {scores[easy].min():.3f}) "
               f"until epoch {switch} (step {switch * per_epoch} of {total}), then all")
    return CurriculumSampler(len(dataset), easy=easy, switch_epoch=switch, seed=config.seed, rank=info.rank,
                             world_size=info.world_size)


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
    state = raw["model"]
    if int(((raw.get("config") or {}).get("pretrain") or {}).get("format", 1)) == 1:
        fresh = model.state_dict()
        state = {**{k: v for k, v in fresh.items() if k.endswith("shuffle_state")}, **upgrade_state_dict(state)}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{checkpoint}: weights do not match the model its config describes ({exc})") from exc
    return model, config


def config_from_checkpoint(state: dict[str, Any]) -> PretrainConfig:
    """The PretrainConfig stored by `pretrain` in a checkpoint's "config"."""
    raw = dict((state.get("config") or {}).get("pretrain") or {})
    if not raw:
        raise ValueError("this checkpoint was not written by vsslkit.train.pretrain (no config.pretrain)")
    return PretrainConfig.from_json(raw)
