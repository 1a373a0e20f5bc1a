"""Pictures of ASCNet's two consistency ideas (notebook 09): a clip, its same-video partner (ACP)
and its retrieved same-speed partner from another video (SCP) as labelled film strips, and how
the retrieved partners change as training goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsslkit.plans import Sample
from vsslkit.viz.plots import film_strip, labelled_rows
from vsslkit.viz.widgets import FrameSource


def _name(path: str | Path) -> str:
    return Path(path).stem


def triplet_strips(sample: Sample, paths: Sequence[str | Path], video: int, frames: FrameSource, *,
                   class_names: Sequence[str] | None = None, labels: Sequence[int] | None = None,
                   prefix: str = "") -> tuple[np.ndarray, list[str]]:
    """The three clips of one ASCNet sample of `video` as film-strip rows: `(image, row labels)`.

    Each label names the clip's role, its video (and class when `labels` are given) and its stride:
    c_i and c_k always share the stride; c_j comes from c_i's video.
    """
    rows, names = [], []
    roles = (("clip_i", "c_i online"), ("clip_j", "c_j same video"), ("clip_k", "c_k retrieved"))
    for key, role in roles:
        plan = sample.plans[prefix + key]
        v = video if plan.video is None else plan.video
        clip = np.asarray(frames.read(paths[v], plan.indices))
        rows.append(film_strip(clip))
        what = class_names[labels[v]] if class_names is not None and labels is not None else _name(paths[v])
        names.append(f"{role}: {what}, x{plan.params['stride']}")
    return labelled_rows(rows, names, label_width=190), names


def partner_rows(query: int, tables: Mapping[str, Sequence[int]], paths: Sequence[str | Path], frames: FrameSource, *,
                 num_frames: Sequence[int], class_names: Sequence[str] | None = None,
                 labels: Sequence[int] | None = None, count: int = 8) -> tuple[np.ndarray, list[str]]:
    """Video `query` and its retrieved partner in each table snapshot (name → table), as
    film strips of `count` evenly spaced frames: the partners change as training goes on."""
    def strip(v: int) -> np.ndarray:
        idx = np.linspace(0, int(num_frames[v]) - 1, count).round().astype(np.int64)
        return film_strip(np.asarray(frames.read(paths[v], idx)))

    def what(v: int) -> str:
        return class_names[labels[v]] if class_names is not None and labels is not None else _name(paths[v])

    rows, names = [strip(query)], [f"query: {what(query)}"]
    for stage, table in tables.items():
        partner = int(table[query])
        if partner < 0:
            continue
        rows.append(strip(partner))
        names.append(f"{stage}: {what(partner)}")
    return labelled_rows(rows, names, label_width=190), names


def partner_stats(tables: Mapping[str, Sequence[int]], labels: Sequence[int]) -> list[dict[str, Any]]:
    """Per snapshot: how many videos have a partner, the share whose partner has their class
    (labels read for this picture only), and the share whose partner changed since the previous one."""
    out, previous = [], None
    labels = np.asarray(labels)
    for stage, table in tables.items():
        t = np.asarray(table)
        has = t >= 0
        same = float((labels[t[has]] == labels[has]).mean()) if has.any() else float("nan")
        changed = float((t[has] != previous[has]).mean()) if previous is not None and has.any() else float("nan")
        out.append({"stage": stage, "with partner": int(has.sum()), "same class": same, "changed": changed})
        previous = t
    return out


def partner_markdown(stats: Sequence[Mapping[str, Any]], *, chance: float) -> str:
    """`partner_stats` as a markdown table, with the chance of a random partner sharing the class."""
    lines = ["| snapshot | videos with a partner | partner shares the class | partner changed since previous |",
             "|---|---:|---:|---:|"]
    for s in stats:
        same = "–" if np.isnan(s["same class"]) else f"{s['same class']:.0%}"
        changed = "–" if np.isnan(s["changed"]) else f"{s['changed']:.0%}"
        lines.append(f"| {s['stage']} | {s['with partner']} | {same} | {changed} |")
    return "\n".join(lines) + f"\n\nA random partner of another video shares the class {chance:.0%} of the time."
