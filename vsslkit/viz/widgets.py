"""ipywidgets apps over plain callback functions.

Each app is a thin layout around a pure function of the widgets' values (`build_clip`,
`label_frequencies`, …) that the tests call directly: a widget's callback is a function of its
values, so nothing here needs a browser to be checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from vsslkit.plans import Plan, VideoTooShortError
from vsslkit.tasks import label_name, make_task
from vsslkit.viz import plots

CLIP_TASKS = ("pace", "speed-change-coarse", "speed-change-fine")


class FrameSource(Protocol):
    def read(self, path: str | Path, indices: Sequence[int]) -> np.ndarray: ...
    def num_frames(self, path: str | Path) -> int: ...


@dataclass
class ClipChoice:
    """What the sampler would emit for the chosen parameters (or why it can't)."""

    plan: Plan | None
    labels: dict[str, int] = field(default_factory=dict)
    description: str = ""
    error: str | None = None


def task_params(task_name: str, *, r1: int, r2: int, m: int | None, clip_len: int) -> dict[str, Any]:
    """Translate the widget's (r1, r2, m) into the parameters each task's `label_of` expects."""
    if task_name == "pace":
        return {"p": r1}
    if task_name == "speed-change-coarse":
        if r1 == r2:
            return {"pattern": "constant", "p": r1, "r1": r1, "r2": r2}
        return {"pattern": "jump-up" if r2 > r1 else "drop-down", "j": abs(r2 - r1), "r1": r1, "r2": r2}
    if task_name == "speed-change-fine":
        return {"r1": r1, "r2": r2, "m": None if r1 == r2 else m}
    raise ValueError(f"unknown clip task {task_name!r}; choose one of {CLIP_TASKS}")


def build_clip(
    task_name: str, num_frames: int, *, r1: int, r2: int, m: int | None = None, clip_len: int = 16, start: int = 0
) -> ClipChoice:
    """The plan and labels for explicit parameters; `start` is clamped so the clip fits the video.

    Pace ignores r2 and m; the coarse task always changes at K/2 (the thesis' chapter 3), so m is
    ignored there too and the description says so.
    """
    task = make_task(task_name, clip_len=clip_len)
    params = task_params(task_name, r1=r1, r2=r2, m=m, clip_len=clip_len)
    try:
        labels = task.label_of(params)
        span = task.span_of(params)
        if span > num_frames:
            raise VideoTooShortError(span, num_frames, f"{task_name} clip {params}")
        start = int(min(max(start, 0), num_frames - span))
        plan = task.plan_for(params, num_frames, np.random.default_rng(0), start=start)
    except (ValueError, KeyError) as exc:
        return ClipChoice(None, {}, "", str(exc))
    text = ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)
    if task_name == "speed-change-coarse" and r1 != r2:
        text += f" (change fixed at K/2 = {clip_len // 2})"
    labels_text = ", ".join(f"{head} = {value}" for head, value in labels.items())
    return ClipChoice(plan, labels, f"{task_name}: {text} → labels {labels_text}; frames {plan.indices.tolist()}")


def label_frequencies(task: Any, *, draws: int = 7000, seed: int = 0, num_frames: int | None = None) -> dict[str, list[dict]]:
    """Empirical class frequencies of a task's sampler: {head: [{label, count, share, params}, …]}.

    Shows, e.g., that location-primary sampling gives 1/7 constant clips and class-primary 1/3.
    """
    rng = np.random.default_rng(seed)
    num_frames = num_frames or task.min_frames
    counts: dict[str, Counter] = {head: Counter() for head in task.heads}
    for _ in range(draws):
        for head, value in task.sample(num_frames, rng).labels.items():
            counts[head][value] += 1
    table = {}
    for head, n_classes in task.heads.items():
        rows = []
        for label in range(n_classes):
            described = _describe_label(task, head, label)
            rows.append({"label": label, "count": counts[head][label], "share": counts[head][label] / draws,
                         "meaning": described})
        table[head] = rows
    return table


def _describe_label(task: Any, head: str, label: int) -> str:
    return label_name(task, head, label)


def frequency_markdown(table: dict[str, list[dict]]) -> str:
    """The frequency table as markdown (stable text: nbval can compare it)."""
    lines = []
    for head, rows in table.items():
        lines += [f"head `{head}`", "", "| label | meaning | share |", "|---|---|---|"]
        lines += [f"| {r['label']} | {r['meaning']} | {r['share']:.3f} |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def png_bytes(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError("could not encode image as PNG")
    return buf.tobytes()


def clip_builder(videos: Sequence[tuple[str, str | Path]], frames: FrameSource, *, clip_len: int = 16,
                 display: Callable[[Any], None] | None = None):
    """Pick a video, a task, r1, r2 and m; see the frame indices on a timeline, the film strip and
    the label the sampler would emit. Returns the `ipywidgets.VBox` (its `.update()` redraws)."""
    import ipywidgets as w
    from IPython.display import display as ipy_display

    show = display or ipy_display
    names = [name for name, _ in videos]
    video = w.Dropdown(options=names, description="video")
    task = w.Dropdown(options=CLIP_TASKS, value="speed-change-fine", description="task")
    r1 = w.IntSlider(value=1, min=1, max=4, description="r1")
    r2 = w.IntSlider(value=3, min=1, max=4, description="r2")
    m = w.IntSlider(value=clip_len // 2, min=1, max=clip_len - 1, description="change m")
    start = w.IntSlider(value=0, min=0, max=400, description="start")
    label = w.HTML()
    timeline = w.Output()
    strip = w.Image(format="png")

    def update(*_: Any) -> ClipChoice:
        path = dict(videos)[video.value]
        n = frames.num_frames(path)
        start.max = max(0, n - 1)
        choice = build_clip(task.value, n, r1=r1.value, r2=r2.value, m=m.value, clip_len=clip_len, start=start.value)
        timeline.clear_output(wait=True)
        if choice.error:
            label.value = f"<b style='color:#b00'>{choice.error}</b>"
            return choice
        label.value = f"<code>{choice.description}</code>"
        with timeline:
            show(plots.plan_timeline([choice.plan], num_frames=n, names=[task.value]))
        strip.value = png_bytes(plots.film_strip(frames.read(path, choice.plan.indices), columns=8))
        return choice

    for control in (video, task, r1, r2, m, start):
        control.observe(update, names="value")
    box = w.VBox([w.HBox([video, task]), w.HBox([r1, r2, m, start]), label, timeline, strip])
    box.update = update  # type: ignore[attr-defined]
    update()
    return box
