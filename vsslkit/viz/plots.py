"""Plotly figures for the notebooks and the quickstart report.

Plain functions of plain values (plans, arrays, metric rows) returning `plotly.graph_objects.Figure`
or numpy images, so tests can call them without a browser and notebooks stay thin.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from vsslkit.plans import Plan

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def plan_timeline(
    plans: Sequence[Plan], *, num_frames: int | None = None, names: Sequence[str] | None = None, title: str = ""
) -> go.Figure:
    """Which video frames each plan takes: x = frame index in the video, y = position in the clip.

    The slope of each line is the playback speed, so a speed change shows as a kink (marked with
    a dashed line at the first frame of the second part) and a reversed clip as a falling line.
    """
    fig = go.Figure()
    for i, plan in enumerate(plans):
        name = names[i] if names else f"{plan.kind} {i}"
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=plan.indices.tolist(), y=list(range(len(plan))), mode="lines+markers", name=name,
                line={"color": colour}, hovertemplate="clip position %{y}<br>video frame %{x}<extra>" + name + "</extra>",
            )
        )
        change_at = plan.params.get("change_at")
        if change_at is not None and 0 < change_at < len(plan):
            fig.add_hline(y=change_at - 0.5, line_dash="dash", line_color=colour,
                          annotation_text=f"speed change at clip frame {change_at}")
    if num_frames is not None:
        fig.add_vrect(x0=num_frames - 0.5, x1=num_frames + max(4, num_frames // 20), fillcolor="grey",
                      opacity=0.25, line_width=0, annotation_text="end of video")
        fig.update_xaxes(range=[-1, num_frames + max(4, num_frames // 20)])
    fig.update_layout(title=title, xaxis_title="frame index in the video", yaxis_title="position in the clip",
                      height=320, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return fig


def film_strip(frames: np.ndarray, *, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tile uint8 frames `(T, H, W, 3)` into one image, left to right, `columns` per row."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"expected frames (T, H, W, 3), got shape {frames.shape}")
    t, h, w, c = frames.shape
    columns = columns or t
    rows = -(-t // columns)
    sheet = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, c), 255, dtype=np.uint8)
    for i, frame in enumerate(frames):
        r, col = divmod(i, columns)
        sheet[r * (h + gap) : r * (h + gap) + h, col * (w + gap) : col * (w + gap) + w] = frame
    return sheet


def forward_backward_strips(clips: Mapping[str, np.ndarray], *, gap: int = 2) -> tuple[np.ndarray, list[str]]:
    """Each clip `(T, H, W, 3)` as two film-strip rows, played forward and then backward: `(sheet, row labels)`.

    For the arrow of time: put the same clip of two synthetic versions side by side (see
    `classroom.arrow_of_time_clips`); in version 2 both rows look equally possible, in version 3
    the backward row shows impossible physics (pebbles flying up, ink gathering, rings converging).
    All clips must have the same shape.
    """
    if not clips:
        raise ValueError("forward_backward_strips needs at least one clip")
    shapes = {np.asarray(c).shape for c in clips.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        raise ValueError(f"expected clips (T, H, W, 3) of one shape, got shapes {sorted(shapes)}")
    rows, labels = [], []
    for name, clip in clips.items():
        clip = np.asarray(clip)
        rows += [clip, clip[::-1]]
        labels += [f"{name}, forward", f"{name}, backward"]
    t = rows[0].shape[0]
    return film_strip(np.concatenate(rows), columns=t, gap=gap), labels


def image_figure(image: np.ndarray, *, title: str = "", height: int | None = None) -> go.Figure:
    """Show one uint8 RGB image without axes (film strips, neighbour galleries)."""
    fig = go.Figure(go.Image(z=image))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, margin={"l": 0, "r": 0, "t": 40 if title else 0, "b": 0},
                      height=height or max(120, image.shape[0] + (40 if title else 0)))
    return fig


def read_metric_rows(path: str | Path) -> list[dict[str, float]]:
    """Rows of a training `metrics.csv` with numeric values (blank cells dropped)."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def training_curves(
    runs: Mapping[str, Iterable[Mapping[str, float]]], *, metrics: Sequence[str] = ("loss",), x: str = "step", title: str = ""
) -> go.Figure:
    """One line per (run, metric): e.g. {"pace": rows, "speed change": rows} × ("loss", "acc")."""
    fig = go.Figure()
    for r, (run, rows) in enumerate(runs.items()):
        rows = list(rows)
        for m, metric in enumerate(metrics):
            points = [(row[x], row[metric]) for row in rows if x in row and metric in row]
            if not points:
                continue
            xs, ys = zip(*points)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"{run} · {metric}",
                                     line={"color": PALETTE[r % len(PALETTE)], "dash": ("solid", "dot", "dash")[m % 3]}))
    fig.update_layout(title=title, xaxis_title=x, height=360, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return fig


def confusion_figure(cm: np.ndarray, class_names: Sequence[str], *, title: str = "normalised confusion matrix") -> go.Figure:
    """Heatmap of a row-normalised confusion matrix (rows: true class, columns: predicted)."""
    cm = np.asarray(cm, dtype=float)
    fig = go.Figure(go.Heatmap(
        z=cm, x=list(class_names), y=list(class_names), colorscale="Blues", zmin=0, zmax=1,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.2f}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title="true class")
    fig.update_xaxes(title="predicted class", tickangle=45)
    side = 260 + 22 * len(class_names)
    fig.update_layout(title=title, height=side, width=side + 120, margin={"l": 100, "r": 20, "t": 50, "b": 100})
    return fig


def recall_figure(curves: Mapping[str, Mapping[int, float]], *, title: str = "retrieval R@k") -> go.Figure:
    """R@k against k for several initialisations / checkpoints (values in percent or [0, 1])."""
    fig = go.Figure()
    for i, (name, recall) in enumerate(curves.items()):
        ks = sorted(int(k) for k in recall)
        fig.add_trace(go.Scatter(x=ks, y=[recall[k] for k in ks], mode="lines+markers", name=name,
                                 line={"color": PALETTE[i % len(PALETTE)]}))
    fig.update_xaxes(type="log", title="k")
    fig.update_yaxes(title="R@k")
    fig.update_layout(title=title, height=340, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return fig


def bar_comparison(values: Mapping[str, tuple[float, float]], *, title: str = "", yaxis: str = "") -> go.Figure:
    """Bars with error bars: {"random init": (mean, std), "pretrained": (mean, std)}."""
    names = list(values)
    fig = go.Figure(go.Bar(x=names, y=[values[n][0] for n in names],
                           error_y={"type": "data", "array": [values[n][1] for n in names]},
                           marker_color=[PALETTE[i % len(PALETTE)] for i in range(len(names))]))
    fig.update_layout(title=title, yaxis_title=yaxis, height=320, margin={"l": 50, "r": 20, "t": 50, "b": 40})
    return fig


def frames_slider_figure(frames: np.ndarray, *, title: str = "", labels: Sequence[str] | None = None) -> go.Figure:
    """One image per frame with a plotly slider (e.g. CAM overlays, a clip played frame by frame)."""
    frames = np.asarray(frames)
    labels = list(labels) if labels is not None else [str(t) for t in range(len(frames))]
    fig = go.Figure(data=[go.Image(z=frames[0])],
                    frames=[go.Frame(data=[go.Image(z=f)], name=labels[t]) for t, f in enumerate(frames)])
    steps = [{"args": [[labels[t]], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}],
              "label": labels[t], "method": "animate"} for t in range(len(frames))]
    fig.update_layout(title=title, sliders=[{"steps": steps, "currentvalue": {"prefix": "frame "}}],
                      height=frames.shape[1] * 3 + 140, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
