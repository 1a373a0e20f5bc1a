"""Pretext tasks: each turns (number of frames, rng) into frame-index plans plus labels, and owns
its heads and loss. See docs/architecture.md for the shared shape.
"""

from __future__ import annotations

from typing import Any

from vsslkit.tasks.clips_only import ClipsOnlyTask
from vsslkit.tasks.pace import PaceTask
from vsslkit.tasks.speed_change import SpeedChangeCoarseTask, SpeedChangeFineTask
from vsslkit.tasks.supervised import SupervisedTask

TASK_NAMES: tuple[str, ...] = ("pace", "speed-change-coarse", "speed-change-fine", "supervised", "none")


def make_task(name: str, **kwargs: Any) -> PaceTask | SpeedChangeCoarseTask | SpeedChangeFineTask | SupervisedTask | ClipsOnlyTask:
    """Build a task by its name (the CLI's `--task`), keyword arguments go to its constructor."""
    if name == "pace":
        return PaceTask(**kwargs)
    if name == "speed-change-coarse":
        return SpeedChangeCoarseTask(**kwargs)
    if name == "speed-change-fine":
        return SpeedChangeFineTask(**kwargs)
    if name == "supervised":
        return SupervisedTask(**kwargs)
    if name == "none":  # clips only: the contrastive-only baseline
        return ClipsOnlyTask(**kwargs)
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")


__all__ = ["TASK_NAMES", "ClipsOnlyTask", "PaceTask", "SpeedChangeCoarseTask", "SpeedChangeFineTask", "SupervisedTask", "make_task"]
