"""Pretext tasks: each turns (number of frames, rng) into named frame-index plans plus labels, and
owns its module and loss. See `vsslkit.tasks.base` and docs/architecture.md for the shared shape;
`Joint` trains several together, `MoCo` is a branch composable with any of them.
"""

from __future__ import annotations

from typing import Any

from vsslkit.tasks.arrow_of_time import ArrowOfTimeTask
from vsslkit.tasks.ascnet import AscNetTask
from vsslkit.tasks.base import Features, classification_loss, label_name
from vsslkit.tasks.clips_only import ClipsOnlyTask
from vsslkit.tasks.contrastive import MoCo
from vsslkit.tasks.joint import Joint
from vsslkit.tasks.pace import PaceTask
from vsslkit.tasks.playback_order import PlaybackOrderTask, PlaybackSpeedTask
from vsslkit.tasks.speed_change import SpeedChangeCoarseTask, SpeedChangeFineTask
from vsslkit.tasks.statistics import StatisticsTask
from vsslkit.tasks.supervised import SupervisedTask
from vsslkit.tasks.timecycle import TimeCycleTask

TASK_NAMES: tuple[str, ...] = ("pace", "speed-change-coarse", "speed-change-fine", "arrow-of-time", "supervised", "none",
                              "ascnet", "playback-order", "playback-speed", "statistics", "tracking")


def make_task(name: str, **kwargs: Any) -> Any:
    """Build a task by its name (the CLI's `--task`), keyword arguments go to its constructor."""
    if name == "pace":
        return PaceTask(**kwargs)
    if name == "speed-change-coarse":
        return SpeedChangeCoarseTask(**kwargs)
    if name == "speed-change-fine":
        return SpeedChangeFineTask(**kwargs)
    if name == "arrow-of-time":
        return ArrowOfTimeTask(**kwargs)
    if name == "ascnet":
        return AscNetTask(**kwargs)
    if name == "statistics":
        return StatisticsTask(**kwargs)
    if name == "supervised":
        return SupervisedTask(**kwargs)
    if name == "playback-order":
        return PlaybackOrderTask(**kwargs)
    if name == "playback-speed":
        return PlaybackSpeedTask(**kwargs)
    if name == "none":  # clips only: the contrastive-only baseline
        return ClipsOnlyTask(**kwargs)
    if name == "tracking":  # seed 001's cycle-consistency tracking (TimeCycle) as a pretext task on its own
        return TimeCycleTask(**{"layer": "auto", **kwargs})
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")


def primary_task(task: Any) -> Any:
    """The task whose heads a pretext evaluation scores: a `Joint`'s first branch, else the task."""
    return task.primary if isinstance(task, Joint) else task


__all__ = ["TASK_NAMES", "ArrowOfTimeTask", "AscNetTask", "ClipsOnlyTask", "Features", "Joint", "MoCo", "PaceTask",
           "PlaybackOrderTask", "PlaybackSpeedTask", "SpeedChangeCoarseTask", "SpeedChangeFineTask", "StatisticsTask",
           "SupervisedTask", "TimeCycleTask", "classification_loss",
           "label_name", "make_task", "primary_task"]
