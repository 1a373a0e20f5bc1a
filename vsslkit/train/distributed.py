"""Data-parallel training under `torchrun`: process group, model wrapping, cross-rank averages.

`torchrun --nproc_per_node=N -m vsslkit pretrain ...` sets RANK / WORLD_SIZE / LOCAL_RANK; without
them everything here is a no-op for a single process. gloo on CPU, nccl on CUDA. Only rank 0
writes checkpoints and logs (`DistInfo.is_main`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` → CUDA when available, else CPU; an explicit `cuda` without a GPU is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA device")
    return device


def init_distributed(device: str | torch.device = "auto") -> DistInfo:
    """Join the process group described by the torchrun environment (or run alone without it)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if world_size <= 1:
        return DistInfo(0, 1, 0, dev)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, local_rank, dev)


def cleanup() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class StepModule(nn.Module):
    """`forward(batch)` = `model.training_step(batch)`, so DDP sees the whole step.

    DDP synchronises gradients only for computation that ran through its own `forward`; our
    models compute losses in `training_step`, so the step itself becomes the forward.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any]) -> Any:
        return self.model.training_step(batch)


def wrap_for_training(model: nn.Module, info: DistInfo, *, sync_bn: bool = False,
                      find_unused_parameters: bool = False) -> nn.Module:
    """A module whose call runs one training step: DDP-wrapped when the job has several ranks.

    `sync_bn` converts BatchNorm to SyncBatchNorm (batch statistics over all ranks; useful when
    the per-GPU batch is small). PyTorch's SyncBatchNorm runs on CUDA only.
    """
    if sync_bn:
        if info.device.type != "cuda":
            raise RuntimeError("SyncBatchNorm needs CUDA; drop --sync-bn on CPU")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    step = StepModule(model)
    if not info.enabled:
        return step
    # 1x1x1 convolutions get gradients whose strides differ from DDP's bucket only in size-1
    # dimensions: same memory layout, yet PyTorch warns on every backward. Silence just that one.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(step, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)


def mean_across_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar metrics over ranks (identity for a single process)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                     device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(keys, t.tolist()))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
