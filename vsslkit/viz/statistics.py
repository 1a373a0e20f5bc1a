"""Seed 003's labels, drawn: a clip with its three partition patterns, the M_u / M_v boundary maps,
the chosen blocks with their orientation arrows, the dominant colours (label cells filled with their
colour bin), and every label value.

`statistics_view(frames, flow, flip=...)` is a pure function (the tests call it) returning the
labels and a plotly figure; flipping the clip (u mirrored and negated) shows the chosen blocks
and arrows move as `flip_labels` says. `statistics_explorer` is the thin ipywidgets app around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from vsslkit.plans import IGNORE_INDEX
from vsslkit.tasks.statistics_labels import LABELS, clip_labels, motion_boundaries, pattern_masks

COLOUR_NAMES = ("black", "blue", "green", "cyan", "red", "magenta", "yellow", "white")  # c = 4R + 2G + B
COLOUR_RGB = tuple((255 * (c >> 2 & 1), 255 * (c >> 1 & 1), 255 * (c & 1)) for c in range(8))  # a bin's corner colour
OUTLINES = {"pu": (255, 0, 0), "pv": (0, 160, 255), "pl": (255, 200, 0), "ps": (0, 200, 0)}  # chosen blocks
BIN_ANGLES = np.deg2rad(45 * np.arange(8) + 22.5)  # centre of hard bin k, CCW on screen from "right"


def flip_clip(frames: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A horizontal flip of one clip `(N, S, S, 3)` and its flow `(N-1, S, S, 2)`: u mirrored AND negated."""
    flow = flow[:, :, ::-1].copy()
    flow[..., 0] *= -1
    return frames[:, :, ::-1].copy(), flow


@dataclass
class StatisticsView:
    labels: dict[str, int]
    figure: go.Figure
    magnitude: np.ndarray  # (S, S, 2): |M_u|, |M_v|


def _outline(mask: np.ndarray) -> np.ndarray:
    """Boolean edge pixels of a block mask."""
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return mask & ~inner


def statistics_view(frames: np.ndarray, flow: np.ndarray, *, flip: bool = False, frame: int = 0) -> StatisticsView:
    """Labels and figure of one clip: uint8 `(N, S, S, 3)` frames and their `(N-1, S, S, 2)` flow."""
    if flip:
        frames, flow = flip_clip(frames, flow)
    labels = {k: int(v[0]) for k, v in clip_labels(frames[None], flow[None]).items()}
    total, _ = motion_boundaries(flow[None])
    magnitude = np.sqrt((total[0] ** 2).sum(-1))  # (S, S, 2)
    size = frames.shape[1]
    masks = pattern_masks(size)
    fig = make_subplots(rows=2, cols=3, subplot_titles=[f"pattern {p}: chosen blocks" for p in (1, 2, 3)]
                        + ["|M_u| (chosen block: u)", "|M_v| (chosen block: v)", "labels"],
                        specs=[[{}, {}, {}], [{}, {}, {"type": "table"}]], vertical_spacing=0.08)
    for col, p in enumerate((1, 2, 3), start=1):
        image = frames[frame].astype(np.float32).copy()
        for mask in masks[p]:
            image[_outline(mask)] = 0.5 * image[_outline(mask)] + 0.5 * 255  # every block, faint
        for key, colour in OUTLINES.items():
            block = labels.get(f"m{p}_{key}" if key in ("pu", "pv") else f"a{p}_{key}", IGNORE_INDEX)
            if block != IGNORE_INDEX:
                image[_outline(masks[p][block])] = colour
        fig.add_trace(go.Image(z=image.clip(0, 255).astype(np.uint8)), row=1, col=col)
    for col, c in ((1, 0), (2, 1)):
        fig.add_trace(go.Heatmap(z=magnitude[:, :, c], colorscale="Viridis", showscale=False), row=2, col=col)
        fig.update_yaxes(autorange="reversed", row=2, col=col)
        comp = "uv"[c]
        block, orient = labels[f"m1_p{comp}"], labels[f"m1_o{comp}"]
        if block != IGNORE_INDEX:
            r, q = divmod(block, 4)
            side = size // 4
            cy, cx = r * side + side / 2, q * side + side / 2
            dx, dy = np.cos(BIN_ANGLES[orient]) * side / 2, -np.sin(BIN_ANGLES[orient]) * side / 2  # screen: y down
            fig.add_annotation(x=cx + dx, y=cy + dy, ax=cx, ay=cy, xref=f"x{3 + col}", yref=f"y{3 + col}",
                               axref=f"x{3 + col}", ayref=f"y{3 + col}", showarrow=True, arrowhead=3,
                               arrowcolor="red", arrowwidth=2)
    names = list(LABELS)
    values = [_describe(k, labels.get(k, IGNORE_INDEX)) for k in names]
    # a colour label's cell is filled with its colour bin (the dominant colours, seen), the rest stay white
    fill = ["rgb({}, {}, {})".format(*COLOUR_RGB[labels[k]]) if _is_colour(k) and labels.get(k, IGNORE_INDEX) != IGNORE_INDEX
            else "white" for k in names]
    ink = ["white" if f in ("rgb(0, 0, 0)", "rgb(0, 0, 255)", "rgb(255, 0, 0)", "rgb(255, 0, 255)") else "black"
           for f in fill]
    fig.add_trace(go.Table(header={"values": ["label", "value"]},
                           cells={"values": [names, values], "fill_color": [["white"] * len(names), fill],
                                  "font": {"color": [["black"] * len(names), ink]}}), row=2, col=3)
    fig.update_layout(height=780, margin={"l": 10, "r": 10, "t": 70, "b": 10},
                      title=f"seed 003 labels{' (flipped: u mirrored and negated)' if flip else ''}; "
                            "<br>red = p_u, blue = p_v, yellow = p_l, green = p_s; arrows: o_u / o_v (pattern 1); "
                            "colour cells: the dominant colour bins")
    return StatisticsView(labels, fig, magnitude)


def _is_colour(name: str) -> bool:
    return name.split("_")[1] in ("cl", "cs", "C")


def _describe(name: str, value: int) -> str:
    if value == IGNORE_INDEX:
        return "ignored (no motion)"
    kind = name.split("_")[1]
    if kind in ("ou", "ov"):
        return f"{value} ({45 * value}-{45 * value + 45} deg)"
    if _is_colour(name):
        return f"{value} ({COLOUR_NAMES[value]})"
    return str(value)


def statistics_explorer(clips: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> Any:
    """ipywidgets app: pick a clip (name, frames, flow), toggle the flip, scrub the frame shown."""
    import ipywidgets as W

    choice = W.Dropdown(options=[(name, i) for i, (name, _, _) in enumerate(clips)], description="clip")
    flip = W.ToggleButton(description="flip horizontally", value=False)
    frame = W.IntSlider(description="frame", min=0, max=len(clips[0][1]) - 1, value=0)
    out = W.Output()

    def redraw(*_: Any) -> None:
        _, frames, flow = clips[choice.value]
        frame.max = len(frames) - 1
        view = statistics_view(frames, flow, flip=flip.value, frame=min(frame.value, len(frames) - 1))
        out.clear_output(wait=True)
        with out:
            view.figure.show()

    for w in (choice, flip, frame):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([choice, flip, frame]), out])


def heldout_figure(rows: Sequence[Any], *, title: str = "held-out accuracy per label against its majority rate") -> go.Figure:
    """Bars per label (`eval.statistics.LabelScore` rows): the network's accuracy, the label's majority
    rate on the same clips and, where fitted, the network-free probe; percent."""
    names = [r.label for r in rows]
    fig = go.Figure([go.Bar(name="network", x=names, y=[100 * r.accuracy for r in rows]),
                     go.Bar(name="majority rate", x=names, y=[100 * r.majority for r in rows])])
    probed = [r for r in rows if r.probe is not None]
    if probed:
        fig.add_trace(go.Bar(name="block-energy probe (no network)", x=[r.label for r in probed],
                             y=[100 * r.probe for r in probed]))
    fig.update_layout(barmode="group", title=title, height=380, margin={"l": 50, "r": 10, "t": 50, "b": 60},
                      xaxis_title="label (m: motion, a: appearance; 1-3: pattern)", yaxis_title="accuracy (%)")
    return fig


def centre_clip(store: Any, flow: Any, path: Any, *, clip_len: int = 8, size: int = 56,
                start: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A stride-1 clip of a stored video (from its middle unless `start`) and its cached flow, both
    centre-cropped to `size` with the same window, as training's eval path crops them:
    uint8 `(clip_len, size, size, 3)` and float32 `(clip_len - 1, size, size, 2)`."""
    n = store.ensure(path).num_frames
    if n < clip_len:
        raise ValueError(f"{path}: {n} frames, a clip needs {clip_len}")
    start = (n - clip_len) // 2 if start is None else int(start)
    indices = np.arange(start, start + clip_len)
    frames, fields = store.read(path, indices), flow.read(path, indices)
    h, w = frames.shape[1:3]
    if min(h, w) < size:
        raise ValueError(f"{path}: frames of {h}x{w} px are smaller than the {size} px crop")
    top, left = (h - size) // 2, (w - size) // 2
    return (np.ascontiguousarray(frames[:, top : top + size, left : left + size]),
            np.ascontiguousarray(fields[:, top : top + size, left : left + size]))


def flow_figure(frames: np.ndarray, flow: np.ndarray, *, index: int = 0) -> go.Figure:
    """Frame `index`, the horizontal (u) and vertical (v) flow to the next frame, in px per frame
    (u > 0: right, v > 0: down), and the magnitude of its motion boundaries (|grad u| + |grad v|)."""
    u, v = flow[index, ..., 0], flow[index, ..., 1]
    boundary = sum(np.hypot(*np.gradient(c)) for c in (u, v))
    fig = make_subplots(rows=1, cols=4, subplot_titles=[f"frame {index}", "u (px/frame, + right)",
                                                        "v (px/frame, + down)", "|∇u| + |∇v| (motion boundaries)"])
    fig.add_trace(go.Image(z=frames[index]), row=1, col=1)
    lim = float(max(np.abs(flow[index]).max(), 1e-3))
    for col, (z, bar, scale, zmin) in enumerate(((u, 0.49, "RdBu", -lim), (v, 0.74, "RdBu", -lim),
                                                 (boundary, 1.0, "Viridis", 0.0)), start=2):
        fig.add_trace(go.Heatmap(z=z, colorscale=scale, zmin=zmin, zmax=lim if zmin < 0 else None,
                                 colorbar={"x": bar, "len": 0.9, "thickness": 10}), row=1, col=col)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{col}", row=1, col=col)
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig
