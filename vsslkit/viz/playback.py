"""Pictures and a widget for playback-speed order prediction (seed 002, notebook 07).

`order_tuple` is the pure function behind the tuple builder: for n, a speed set and a shuffle
seed it gives what the task's sampler would emit (every slot's plan, the permutation, the label
and its name), or why it cannot. `tuple_timeline` / `tuple_strips` draw it; `tuple_builder` is the
ipywidgets app; `ceiling_markdown` puts held-out accuracy beside chance and the time-symmetric
ceiling; `order_confusion` is the permutation confusion matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from vsslkit.eval.confusion import normalise_rows
from vsslkit.eval.pretext import HeadSummary
from vsslkit.plans import Plan, VideoTooShortError
from vsslkit.tasks.playback_order import PlaybackOrderTask, format_speed, permutation_of_label
from vsslkit.viz import plots
from vsslkit.viz.widgets import FrameSource, png_bytes


@dataclass
class OrderTuple:
    """One drawn tuple: slot plans (slot order), their speeds, the permutation and the label."""

    plans: list[Plan] = field(default_factory=list)
    speeds: tuple[int, ...] = ()  # the speed each slot shows
    permutation: tuple[int, ...] = ()  # slot p holds the clip of canonical rank permutation[p]
    label: int | None = None
    label_name: str = ""
    classes: int = 0
    error: str | None = None


def parse_speeds(text: str) -> tuple[int, ...] | None:
    """"-3 1 3" or "-3, 1, 3" -> (-3, 1, 3); blank -> None (eq. 1's set); anything else: ValueError."""
    parts = text.replace(",", " ").split()
    if not parts:
        return None
    try:
        return tuple(int(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"speeds must be whole numbers like '-3 1 3', got {text!r}") from exc


def order_tuple(num_frames: int, *, clips: int = 3, speeds: Sequence[int] | None = None, seed: int = 0,
                clip_len: int = 8) -> OrderTuple:
    """What `PlaybackOrderTask(clip_len, clips, speeds).sample(num_frames, default_rng(seed))` emits."""
    try:
        task = PlaybackOrderTask(clip_len=clip_len, clips=clips, speeds=None if speeds is None else tuple(speeds))
        sample = task.sample(int(num_frames), np.random.default_rng(seed))
    except (ValueError, VideoTooShortError) as exc:
        return OrderTuple(error=str(exc))
    plans = [sample.plans[name] for name in task.names]
    label = int(sample.labels["order"])
    return OrderTuple(plans, tuple(int(p.params["speed"]) for p in plans), permutation_of_label(label, clips), label,
                      task.label_name("order", label), task.heads["order"])


def tuple_timeline(choice: OrderTuple, *, num_frames: int | None = None, title: str = "") -> go.Figure:
    """Every slot's frames on the video timeline (slope = speed; a falling line plays backwards)."""
    names = [f"slot {p}: {format_speed(s)}" for p, s in enumerate(choice.speeds)]
    return plots.plan_timeline(choice.plans, num_frames=num_frames, names=names,
                               title=title or f"label {choice.label} = {choice.label_name}")


def tuple_strips(choice: OrderTuple, frames: FrameSource, path: str | Path) -> np.ndarray:
    """One film strip per slot, in slot order, each row named by its slot and speed."""
    rows = [plots.film_strip(np.asarray(frames.read(path, plan.indices))) for plan in choice.plans]
    return plots.labelled_rows(rows, [f"slot {p}: {format_speed(s)}" for p, s in enumerate(choice.speeds)])


def describe_tuple(choice: OrderTuple) -> str:
    """One line: the slots' speeds, the permutation and the label (or the reason there is none)."""
    if choice.error:
        return f"not possible: {choice.error}"
    canonical = sorted(choice.speeds)
    return (f"slots show {choice.label_name}; canonical order (speeds ascending) "
            f"({', '.join(format_speed(s) for s in canonical)}); slot p holds canonical rank π[p], "
            f"π = {choice.permutation} → label {choice.label} of {choice.classes} (= {len(choice.speeds)}!)")


def tuple_builder(videos: Sequence[tuple[str, str | Path]], frames: FrameSource, *, clip_len: int = 8,
                  display: Callable[[Any], None] | None = None):
    """Pick a video, n and speeds (blank: eq. 1's set), press shuffle: see every slot on the video
    timeline, its film strip, and the label the sampler emits. Returns the `ipywidgets.VBox`
    (`.update()` redraws, `.shuffle()` draws a new tuple)."""
    import ipywidgets as w
    from IPython.display import display as ipy_display

    show = display or ipy_display
    video = w.Dropdown(options=[name for name, _ in videos], description="video")
    n = w.IntSlider(value=3, min=2, max=6, description="clips n")
    speeds = w.Text(value="", placeholder="blank: eq. 1", description="speeds")
    shuffle = w.Button(description="shuffle")
    seed = w.IntText(value=0, description="seed", layout={"width": "160px"})
    label = w.HTML()
    timeline = w.Output()
    strip = w.Image(format="png")

    def update(*_: Any) -> OrderTuple:
        path = dict(videos)[video.value]
        try:
            chosen = parse_speeds(speeds.value)
        except ValueError as exc:
            choice = OrderTuple(error=str(exc))
        else:
            choice = order_tuple(frames.num_frames(path), clips=n.value, speeds=chosen, seed=seed.value,
                                 clip_len=clip_len)
        timeline.clear_output(wait=True)
        if choice.error:
            label.value = f"<b style='color:#b00'>{describe_tuple(choice)}</b>"
            timeline.layout.display = strip.layout.display = "none"
            return choice
        label.value = f"<code>{describe_tuple(choice)}</code>"
        timeline.layout.display = strip.layout.display = None
        with timeline:
            show(tuple_timeline(choice, num_frames=frames.num_frames(path)))
        strip.value = png_bytes(tuple_strips(choice, frames, path))
        return choice

    def next_seed(*_: Any) -> None:
        seed.value += 1  # observed: redraws

    for control in (video, n, speeds, seed):
        control.observe(update, names="value")
    shuffle.on_click(next_seed)
    box = w.VBox([w.HBox([video, n, speeds]), w.HBox([shuffle, seed]), label, timeline, strip])
    box.update = update  # type: ignore[attr-defined]
    box.shuffle = next_seed  # type: ignore[attr-defined]
    update()
    return box


def labelled_forward_backward(clips: Mapping[str, np.ndarray], *, gap: int = 2) -> np.ndarray:
    """`plots.forward_backward_strips` with every row named on its left ("version 3, backward", ...)."""
    sheet, labels = plots.forward_backward_strips(clips, gap=gap)
    h = np.asarray(next(iter(clips.values()))).shape[1]
    rows = [sheet[i * (h + gap): i * (h + gap) + h] for i in range(len(labels))]
    return plots.labelled_rows(rows, labels, label_width=150)


def summaries_from_results(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, HeadSummary]]:
    """{run: a `vsslkit pretext-eval --out` JSON} -> {run: {head: HeadSummary}} (committed results)."""
    out = {}
    for run, raw in results.items():
        out[run] = {head: HeadSummary(head, list(h["labels"]), np.asarray(h["confusion"]), float(h["accuracy"]),
                                      float(h["majority"]), float(h["chance"]), h.get("ceiling"))
                    for head, h in raw["heads"].items()}
    return out


def ceiling_markdown(summaries: Mapping[str, Any], *, head: str = "order") -> str:
    """{run: localization_summary(...)} -> accuracy beside chance and the time-symmetric ceiling."""
    lines = ["| run | classes | held-out accuracy | chance | ceiling |", "|---|---|---|---|---|"]
    for run, heads in summaries.items():
        s = heads[head]
        ceiling = "100 % (solvable)" if s.ceiling is None or s.ceiling == 1.0 else f"{100 * s.ceiling:.1f} %"
        lines.append(f"| {run} | {len(s.names)} | {100 * s.accuracy:.1f} % | {100 * s.chance:.1f} % | {ceiling} |")
    return "\n".join(lines)


def order_confusion(summary: Any, *, title: str = "") -> go.Figure:
    """Row-normalised permutation confusion matrix; axes named by the speeds the slots show."""
    counts = np.asarray(summary.counts, dtype=float)
    classes = counts.shape[0]
    n = next(k for k in range(2, 8) if math.factorial(k) == classes)
    return plots.confusion_figure(normalise_rows(counts), list(summary.names),
                                  title=title or f"order confusion, n = {n} ({classes} permutations)")
