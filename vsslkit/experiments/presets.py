"""The seeds' full-size training recipes as named presets (`vsslkit pretrain --preset NAME`).

A preset is data, not a code path: a `PretrainConfig` (what `vsslkit pretrain` builds anyway),
the run length and LR milestones in *epochs* as the papers give them, and the fine-tuning recipe
where the paper gives one. The kit counts milestones in optimiser steps, so the command converts
epochs with the run's own steps per epoch (`steps_per_epoch`, the same rule as the loaders).

Every number is cited to its seed (section / table); what a seed does not say is marked
"not in the seed" with the value used and why. Seed 001 (classification + TimeCycle + arrow of
time from scratch) has no preset: it trains *with* labels, so it is not a `vsslkit pretrain` run
(its recipe is `vsslkit train-joint`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from vsslkit.train.pretrain import MoCoConfig, PretrainConfig


@dataclass(frozen=True)
class FinetuneRecipe:
    """Supervised fine-tuning settings a seed gives (epochs and milestones in epochs)."""

    batch_size: int
    lr: float
    optimizer: str = "sgd"
    epochs: int | None = None
    milestone_epochs: tuple[int, ...] = ()


@dataclass(frozen=True)
class Preset:
    """A seed's recipe: pretraining config, its length and schedule in epochs, fine-tuning, and
    where each setting comes from (`source`, `notes`: what the seed leaves open)."""

    name: str
    description: str
    source: str
    pretrain: PretrainConfig
    epochs: int | None = None  # None: the seed gives none (the command's default applies)
    milestone_epochs: tuple[int, ...] = ()
    finetune: FinetuneRecipe | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def steps_per_epoch(num_samples: int, batch_size: int, world_size: int = 1) -> int:
    """Optimiser steps in one epoch of `num_samples` samples, exactly as the training loaders
    batch them: `EpochSampler` gives each rank ceil(n / world) samples and the loader drops the
    last partial batch only when a rank holds more than one batch."""
    if num_samples < 1 or batch_size < 1 or world_size < 1:
        raise ValueError(f"need num_samples, batch_size, world_size >= 1, got {num_samples}, {batch_size}, {world_size}")
    per_rank = math.ceil(num_samples / world_size)
    return per_rank // batch_size if per_rank > batch_size else 1


def milestone_steps(milestone_epochs: tuple[int, ...], per_epoch: int) -> tuple[int, ...]:
    """Epoch milestones as the step counts `make_scheduler("multistep")` expects."""
    return tuple(int(e) * per_epoch for e in milestone_epochs)


# --- seed 000: the thesis, chapter 4 (speediness-change classification + localization + MoCo) ---
THESIS = Preset(
    name="thesis",
    description="speed-change-fine (9 classes + 7-way localization) + MoCo-v2, R(2+1)D, 16 x 112^2",
    source="seed 000 §3.5.1, §4.4-4.5.1",
    pretrain=PretrainConfig(
        task="speed-change-fine",
        task_options={},  # pool r in {1,2,3} (§4.4.3) and location-primary sampling (§4.5.1) are the task's defaults
        moco=MoCoConfig(weight=0.5,  # lambda = 0.5 in ch. 4 (§4.5.1; 0.25 in ch. 3)
                        queue_size=2048, momentum=0.999, temperature=0.07),  # K, m, tau (§3.5.1)
        backbone="r2plus1d_10",  # R(2+1)D (§3.5.2, T4.3); its depth is not in the seed: 10 layers as in PacePred/VCOP
        width=1.0,
        norm="bn",
        clip_len=16, size=112,  # "16 with a resolution of 112 x 112" (§3.5.1)
        residual=True,  # not in the seed: the kit's quickstart recipe feeds frame differences
        flip=True,  # horizontal flipping p = 0.5 (§3.5.1)
        batch_size=32, lr=0.01, optimizer="sgd",  # §3.5.1
    ),
    epochs=400, milestone_epochs=(150, 250, 350),  # §3.5.1, kept in ch. 4 (§4.5.1)
    finetune=FinetuneRecipe(batch_size=16, lr=0.01, optimizer="sgd", epochs=200, milestone_epochs=(80, 160)),  # §3.5.1
    notes=("depth of R(2+1)D and residual input are not in the seed (kit choices: 10 layers, frame differences)",
           "§3.5.1's colour jitter, grey-scale and blur augmentations are not in the kit (crop + flip only)",
           "§3.5.1 holds out 10% of the training set for validation; the kit trains on all of it"),
)

# --- seed 002: playback-speed order prediction + layer-dependable temporal group norm ---
_PLAYBACK_ORDER = PretrainConfig(
    task="playback-order",
    task_options={"clips": 3,  # n = 3, speeds {-3, +1, +3} by eq. 1 (T2, T3, T6)
                  "hidden": 512},  # fc7 = Linear(2D, 512): Fig. 2c follows VCOP's head (SPECS §1.1)
    backbone="c3d",  # C3D: every ablation of §4.1 (T2-T7)
    width=1.0,
    norm="tgn", tgn_group_frames=2,  # layer-dependable TGN, g = 2 is best for C3D and R3D (T6, T7)
    clip_len=16, size=112,  # m = 16 frames, random 112 x 112 crops of 128 x 171 frames (§4 impl. details)
    residual=False,  # RGB clips (not in the seed; kit default)
    flip=True,
    batch_size=8,  # "mini-batch size is 8 x n": 8 tuples of n clips (§4 impl. details)
    lr=0.001,  # not in the seed; VCOP's default 1e-3 (SPECS §1.1)
    optimizer="sgd",  # SGD, momentum 0.9, weight decay 5e-4 (§4; the kit's SGD)
)
_PLAYBACK_FINETUNE = FinetuneRecipe(batch_size=16,  # not in the seed; kit default
                                    lr=0.001, optimizer="sgd", epochs=150)  # §4: 150 epochs at lr 0.001
_PLAYBACK_NOTES = ("the pretraining lr is not in the seed (VCOP's 1e-3; VCOP lowers it on plateaus, the kit keeps it)",
                   "fine-tuning batch size is not in the seed (kit default 16); dropout 0.5 is the kit's default too")
PLAYBACK_ORDER = Preset(
    name="playback-order",
    description="playback-order n = 3 {-3,+1,+3}, C3D with TGN g = 2, 16 x 112^2",
    source="seed 002 §4, T6-T7",
    pretrain=_PLAYBACK_ORDER,
    epochs=300,  # "300 epochs" of PSP training (§4 impl. details)
    finetune=_PLAYBACK_FINETUNE,
    notes=_PLAYBACK_NOTES,
)
PLAYBACK_ORDER_R3D = Preset(
    name="playback-order-r3d",
    description="playback-order n = 3, R3D-10 with TGN g = 2, 16 x 112^2",
    source="seed 002 §4, T6-T7, T10",
    # "R3D" follows VCOP's R3DNet(1,1,1,1) = R3D-10 (SPECS §1.2 A7); T6/T7's R3D row, T10's retrieval backbone
    pretrain=replace(_PLAYBACK_ORDER, backbone="r3d_10"),
    epochs=300,
    finetune=_PLAYBACK_FINETUNE,
    notes=_PLAYBACK_NOTES,
)

# --- seed 003: spatio-temporal statistics ---
STATISTICS = Preset(
    name="statistics",
    description="statistics (27 classification heads), R(2+1)D, 16 x 112^2, 25 epochs",
    source="seed 003 §4.2, T2, T4",
    pretrain=PretrainConfig(
        task="statistics",
        task_options={"targets": "classification"},  # the best target (T4: R(2+1)D 77.8 / 40.7)
        # motion / appearance weights 1 and 0.1 (§4.2) are the task's defaults
        backbone="r2plus1d_10",  # R(2+1)D (T4); T2's 14.4 M parameters fit the 10-layer nets, not 18
        width=1.0,
        norm="bn",
        clip_len=16, size=112, flip=True,  # 16 frames, random 112 crop of 128 x 171, whole-clip flip (§4.2)
        residual=False,  # RGB frames (§4.2)
        batch_size=30, lr=5e-4, optimizer="sgd",  # §4.2
    ),
    epochs=25, milestone_epochs=(6, 12, 18, 24),  # lr / 10 every 6 epochs, stopped at 25 (§4.2)
    finetune=FinetuneRecipe(batch_size=30, lr=3e-3, optimizer="sgd", epochs=25,  # same recipe, lr 3e-3 (§4.2)
                            milestone_epochs=(6, 12, 18, 24)),
    notes=("the curriculum (§3.4) is a K-400 study (T3): add --curriculum 0.5 for it",
           "§4.2 keeps the model with the lowest validation loss; the kit keeps the last one",
           "colour histograms use the kit's 32 bins (the reference code: 256 at 112 px)"),
)

# --- seed 004: ASCNet (a poster: backbones, no hyper-parameters) ---
_ASCNET_NOTES = (("the poster gives no clip length, crop, batch, lr, schedule or epochs: 16 x 112^2 is the kit's "
                  "full-size input, the rest kit defaults (batch 16 videos, SGD 0.05; SPECS §3.2 C4 for gamma/tau/heads)"),)
ASCNET = Preset(
    name="ascnet",
    description="ascnet (ACP + SCP, BYOL-style), R3D-18, 16 x 112^2",
    source="seed 004 T1, T2",
    pretrain=PretrainConfig(
        task="ascnet",
        task_options={"speeds": (1, 2)},  # "different playback speed (i.e., 1x and 2x)" (poster, model overview)
        backbone="r3d_18",  # "3D R18" (T1, T2)
        width=1.0, norm="bn",
        clip_len=16, size=112,  # not in the seed; the kit's full-size input
        residual=False, flip=True,  # not in the seed; kit defaults
        batch_size=16, lr=0.05, optimizer="sgd",  # not in the seed; kit defaults
    ),
    notes=_ASCNET_NOTES,
)
ASCNET_S3D = Preset(
    name="ascnet-s3d",
    description="ascnet, S3D (torchvision's, without S3D-G's feature gating), 16 x 112^2",
    source="seed 004 T1",
    pretrain=replace(ASCNET.pretrain, backbone="s3d"),  # S3D-G (T1): nearest kit net
    notes=("S3D-G's feature gating is not built: torchvision's S3D is the nearest backbone in the kit",
           *_ASCNET_NOTES),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (THESIS, PLAYBACK_ORDER, PLAYBACK_ORDER_R3D, STATISTICS, ASCNET,
                                                  ASCNET_S3D)}


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name raises ValueError listing the names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)} (or 'list')") from None


def preset_table() -> str:
    """One row per preset: what `vsslkit presets` and `--preset list` print."""
    header = ("name", "task", "backbone", "clip x size", "batch", "epochs", "lr / optimizer", "fine-tune", "source")
    rows = [header]
    for p in PRESETS.values():
        c = p.pretrain
        backbone = c.backbone + (f" ({c.norm} g={c.tgn_group_frames})" if c.norm == "tgn" else "")
        schedule = f"{p.epochs}" + (f" (/10 at {','.join(map(str, p.milestone_epochs))})" if p.milestone_epochs else "")
        ft = p.finetune
        tune = (f"{ft.epochs or '-'} ep, bs {ft.batch_size}, {ft.lr:g} {ft.optimizer}" if ft else "-")
        rows.append((p.name, c.task + (" + moco" if c.moco else ""), backbone, f"{c.clip_len} x {c.size}^2", str(c.batch_size),
                     schedule if p.epochs else "-", f"{c.lr:g} {c.optimizer}", tune, p.source))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
