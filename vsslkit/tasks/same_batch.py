"""Same-batch strategy (thesis ch. 3.4.3, after SpeedNet): a batch holds every transform class
of each sampled video, so the only cue that separates them is motion, not content.

`all_transforms(task, num_frames, rng)` returns one Sample per class of the task's "speed" head
(coarse: all 8; pace: all 4; fine: every (r1, r2) pair, with a uniformly drawn change location
for r1 != r2). By default every clip of the group starts at the same frame, drawn uniformly over
the starts where the task's longest plan fits, so the clips differ only in their speed pattern.
For a `Joint`, its first branch is enumerated and every other branch (e.g. MoCo's key) draws its
own plans for each Sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vsslkit.plans import Sample, VideoTooShortError
from vsslkit.tasks.joint import Joint


def all_transforms(task: Any, num_frames: int, rng: np.random.Generator, *, shared_start: bool = True,
                   epoch: int = 0, context: Any = None) -> list[Sample]:
    """One Sample per speed class of `task` for one video (see the module docstring)."""
    base = task.primary if isinstance(task, Joint) else task
    if not hasattr(base, "params_for_class") or "speed" not in base.heads:
        raise TypeError(f"task {getattr(base, 'name', base)!r} has no speed classes to enumerate for same-batch training")
    if num_frames < task.min_frames:
        raise VideoTooShortError(task.min_frames, num_frames, f"same-batch group of task {task.name}")
    start = int(rng.integers(0, num_frames - base.min_frames + 1)) if shared_start else None
    samples = []
    for label in range(base.heads["speed"]):
        params = base.params_for_class(label, rng)
        sample = Sample({"clip": base.plan_for(params, num_frames, rng, start=start)}, base.label_of(params))
        if isinstance(task, Joint):
            first = next(iter(task.tasks))
            others = {b: t.sample(num_frames, rng, epoch=epoch, context=context)
                      for b, t in task.tasks.items() if b != first}
            sample = task.combine({first: sample, **others})
        samples.append(sample)
    return samples
