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
    span: int = 0  # video frames the clip covers (start can go up to num_frames - span)


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


def clip_ranges(task_name: str, *, r1: int, r2: int, clip_len: int = 16) -> dict[str, tuple[int, int] | None]:
    """The values each clip-builder slider may take for this task, None where the task ignores it.

    Why: a slider that offers an invalid value (r2 = 4 for the fine pool {1, 2, 3}) or one the task
    silently ignores (r2 and m for pace) leaves a student looking at a clip that does not match
    the controls. Ranges: pace p = r1 over its speeds; coarse r1 over its speeds and r2 within
    one allowed jump of r1 (the change is always at K/2, so no m); fine r1, r2 over the pool and
    m over the change locations, hidden for a constant clip (r1 = r2 has no change).
    """
    task = make_task(task_name, clip_len=clip_len)
    if task_name == "pace":
        return {"r1": (min(task.speeds), max(task.speeds)), "r2": None, "m": None}
    if task_name == "speed-change-coarse":
        gaps = {0, *task.jumps}
        r2_values = [s for s in task.speeds if abs(s - r1) in gaps] or list(task.speeds)
        return {"r1": (min(task.speeds), max(task.speeds)), "r2": (min(r2_values), max(r2_values)), "m": None}
    if task_name == "speed-change-fine":
        pool = (min(task.pool), max(task.pool))
        return {"r1": pool, "r2": pool, "m": None if r1 == r2 else (min(task.locations), max(task.locations))}
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
    span = int(span)
    text = ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)
    if task_name == "speed-change-coarse" and r1 != r2:
        text += f" (change fixed at K/2 = {clip_len // 2})"
    labels_text = ", ".join(f"{head} = {value}" for head, value in labels.items())
    return ClipChoice(plan, labels, f"{task_name}: {text} → labels {labels_text}; frames {plan.indices.tolist()}",
                      span=span)


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


def _set_range(slider: Any, lo: int, hi: int) -> None:
    """Move an IntSlider's range without ever passing through min > max (ipywidgets refuses it)."""
    if lo > slider.max:
        slider.max = hi
        slider.min = lo
    else:
        slider.min = lo
        slider.max = hi


def clip_builder(videos: Sequence[tuple[str, str | Path]], frames: FrameSource, *, clip_len: int = 16,
                 display: Callable[[Any], None] | None = None):
    """Pick a video, a task, r1, r2 and m; see the frame indices on a timeline, the film strip and
    the label the sampler would emit. Returns the `ipywidgets.VBox` (its `.update()` redraws).

    The sliders only offer what the chosen task accepts (`clip_ranges`); a slider the task ignores
    is hidden, and `start` goes up to the last start at which the clip still fits. If a choice
    is refused anyway (a video too short for the task), the timeline and strip are removed and the
    reason is shown in red, so the picture never belongs to an earlier choice.
    """
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
    busy = False  # setting a range moves a value, which would call update again from inside it

    def follow_task() -> None:
        _set_range(r1, *clip_ranges(task.value, r1=r1.value, r2=r2.value, clip_len=clip_len)["r1"])
        ranges = clip_ranges(task.value, r1=r1.value, r2=r2.value, clip_len=clip_len)
        for slider, name in ((r2, "r2"), (m, "m")):
            if ranges[name] is None:
                slider.layout.display = "none"
            else:
                _set_range(slider, *ranges[name])
                slider.layout.display = None

    def update(*_: Any) -> ClipChoice | None:
        nonlocal busy
        if busy:
            return None
        busy = True
        try:
            follow_task()
            path = dict(videos)[video.value]
            n = frames.num_frames(path)
            choice = build_clip(task.value, n, r1=r1.value, r2=r2.value, m=m.value, clip_len=clip_len,
                                start=start.value)
            timeline.clear_output(wait=True)
            if choice.error:
                label.value = f"<b style='color:#b00'>not possible: {choice.error}</b>"
                timeline.layout.display = strip.layout.display = "none"
                return choice
            _set_range(start, 0, max(0, n - choice.span))
            label.value = f"<code>{choice.description}</code>"
            timeline.layout.display = strip.layout.display = None
            with timeline:
                show(plots.plan_timeline([choice.plan], num_frames=n, names=[task.value]))
            strip.value = png_bytes(plots.film_strip(frames.read(path, choice.plan.indices), columns=8))
            return choice
        finally:
            busy = False

    for control in (video, task, r1, r2, m, start):
        control.observe(update, names="value")
    box = w.VBox([w.HBox([video, task]), w.HBox([r1, r2, m, start]), label, timeline, strip])
    box.update = update  # type: ignore[attr-defined]
    update()
    return box
