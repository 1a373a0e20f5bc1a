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
from plotly.subplots import make_subplots

from vsslkit.plans import Plan

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def plan_timeline(
    plans: Sequence[Plan], *, num_frames: int | None = None, names: Sequence[str] | None = None, title: str = "",
    extra_frames: int = 0,
) -> go.Figure:
    """Which video frames each plan takes: x = frame index in the video, y = position in the clip.

    The slope of each line is the playback speed, so a speed change shows as a kink (marked with
    a dashed line at the first frame of the second part) and a reversed clip as a falling line.
    The mark is labelled with the task's change location m (the plan position minus
    `extra_frames`, 1 for residual input), the same m the sliders and the localization head use.
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
                          annotation_text=f"speed change at m = {change_at - extra_frames}")
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


def labelled_rows(rows: Sequence[np.ndarray], labels: Sequence[str], *, label_width: int = 110,
                  gap: int = 2) -> np.ndarray:
    """Stack film strips (uint8 `(H, W, 3)` images, one per row) with each row's name written on its left.

    A grid of strips without names makes the reader count rows against a printed list.
    """
    import cv2

    if len(rows) != len(labels):
        raise ValueError(f"{len(rows)} rows but {len(labels)} labels")
    if not rows:
        raise ValueError("no rows to draw")
    width = max(r.shape[1] for r in rows)
    out = []
    for row, text in zip(rows, labels):
        h = row.shape[0]
        line = np.full((h + gap, label_width + width, 3), 255, dtype=np.uint8)
        line[:h, label_width:label_width + row.shape[1]] = row
        scale = 0.45
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        while tw > label_width - 6 and scale > 0.25:
            scale -= 0.05
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.putText(line, text, (3, (h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        out.append(line)
    return np.concatenate(out)[:-gap] if gap else np.concatenate(out)


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


# Which panel a logged metric belongs on, and that panel's axis title with its unit: accuracies
# (fractions in [0, 1]) and losses (~1-6 nats) on one axis would flatten the accuracies to a line.
_PANEL_TITLES = {"accuracy": "accuracy (fraction correct)", "loss": "loss (cross-entropy, nats)"}
_X_TITLES = {"step": "optimiser step", "epoch": "epoch", "time": "time (s)"}


def metric_panel(metric: str) -> str:
    """"accuracy" for `*acc*` metrics, "loss" for `*loss*`, else the metric's own name."""
    if "acc" in metric:
        return "accuracy"
    if "loss" in metric:
        return "loss"
    return metric


def training_curves(
    runs: Mapping[str, Iterable[Mapping[str, float]]], *, metrics: Sequence[str] = ("loss",), x: str = "step", title: str = ""
) -> go.Figure:
    """One line per (run, metric), e.g. {"pace": rows, "speed change": rows} × ("loss", "acc").

    Accuracies and losses go on separate stacked panels sharing the x axis (one panel per kind
    that was logged); colour = run, dash = metric (the first solid, the second dotted, …).
    """
    runs = {run: list(rows) for run, rows in runs.items()}
    logged = [m for m in metrics if any(m in row for rows in runs.values() for row in rows)] or list(metrics)
    panels = list(dict.fromkeys(metric_panel(m) for m in logged))
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.1 if len(panels) > 1 else 0.0)
    for r, (run, rows) in enumerate(runs.items()):
        for m, metric in enumerate(logged):
            points = [(row[x], row[metric]) for row in rows if x in row and metric in row]
            if not points:
                continue
            xs, ys = zip(*points)
            panel = panels.index(metric_panel(metric))
            dash = ("solid", "dot", "dash", "dashdot")[m % 4]
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines" if len(xs) > 1 else "markers", name=f"{run} · {metric}",
                                     line={"color": PALETTE[r % len(PALETTE)], "dash": dash}),
                          row=panel + 1, col=1)
    for i, panel in enumerate(panels):
        fig.update_yaxes(title_text=_PANEL_TITLES.get(panel, panel), row=i + 1, col=1)
        if panel == "accuracy":
            fig.update_yaxes(range=[-0.02, 1.02], row=i + 1, col=1)
    fig.update_xaxes(title_text=_X_TITLES.get(x, x), row=len(panels), col=1)
    fig.update_layout(title=title, height=360 if len(panels) == 1 else 150 + 220 * len(panels),
                      margin={"l": 60, "r": 20, "t": 50, "b": 40})
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


def recall_figure(curves: Mapping[str, Mapping[int, float]], *, title: str = "retrieval R@k",
                  unit: str = "%") -> go.Figure:
    """R@k against k (log axis) for several initialisations / checkpoints; values in `unit` ("%" or "fraction").

    The x axis is labelled only at the measured k (1, 5, 10, 20, 50 in the kit): a log axis's own
    minor labels ("2 5 … 2 5") would make 20 and 50 read as 2 and 5.
    """
    fig = go.Figure()
    for i, (name, recall) in enumerate(curves.items()):
        ks = sorted(int(k) for k in recall)
        fig.add_trace(go.Scatter(x=ks, y=[recall[k] for k in ks], mode="lines+markers", name=name,
                                 line={"color": PALETTE[i % len(PALETTE)]}))
    measured = sorted({int(k) for recall in curves.values() for k in recall})
    fig.update_xaxes(type="log", title="k (nearest training videos retrieved)", tickmode="array", tickvals=measured,
                     ticktext=[str(k) for k in measured], minor={"showgrid": False, "ticks": ""})
    fig.update_yaxes(title=f"R@k ({unit} of test queries)", range=[0, 100 if unit == "%" else 1])
    fig.update_layout(title=title, height=340, margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return fig


def paired_figure(measures: Mapping[str, Mapping[str, Sequence[float]]], *, seeds: Sequence[object] | None = None,
                  title: str = "", yaxis: str = "%") -> go.Figure:
    """One panel per measure: {measure: {initialisation: [value per seed]}} (same seed order everywhere).

    With two or more seeds each seed is one line from the first initialisation to the next, so a
    reader sees whether every pair moves the same way (a bar of means hides that); a thick black
    line joins the means. With one seed, plain points: there is no spread to draw.
    """
    names = list(measures)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.08)
    n_seeds = max(len(v) for per_init in measures.values() for v in per_init.values())
    labels = [f"seed {s}" for s in (seeds if seeds is not None else range(n_seeds))]
    for col, name in enumerate(names, start=1):
        inits = list(measures[name])
        for s in range(n_seeds):
            fig.add_trace(go.Scatter(
                x=inits, y=[measures[name][i][s] for i in inits], mode="lines+markers" if n_seeds > 1 else "markers",
                name=labels[s], legendgroup=labels[s], showlegend=col == 1, marker={"size": 9},
                line={"color": PALETTE[s % len(PALETTE)]},
                hovertemplate="%{x}: %{y:.1f}<extra>" + labels[s] + "</extra>"), row=1, col=col)
        if n_seeds > 1:
            means = [float(np.mean(measures[name][i])) for i in inits]
            fig.add_trace(go.Scatter(x=inits, y=means, mode="lines+markers", name="mean", legendgroup="mean",
                                     showlegend=col == 1, line={"color": "black", "width": 4},
                                     marker={"symbol": "diamond", "size": 11},
                                     hovertemplate="mean %{x}: %{y:.1f}<extra></extra>"), row=1, col=col)
        fig.update_yaxes(title_text=yaxis, row=1, col=col)
        # two-line category labels, kept off the panel edges so neighbouring panels' labels never touch
        fig.update_xaxes(title_text="initialisation", tickmode="array", tickvals=inits,
                         ticktext=[i.replace(" ", "<br>", 1) for i in inits], range=[-0.4, len(inits) - 0.6],
                         row=1, col=col)
    fig.update_layout(title=title, height=380, margin={"l": 60, "r": 20, "t": 80, "b": 50})
    return fig


def frames_slider_figure(frames: np.ndarray, *, title: str = "", labels: Sequence[str] | None = None,
                         colour_scale: str | None = None) -> go.Figure:
    """One image per frame with a plotly slider and a play button (e.g. CAM overlays, a clip).

    `colour_scale` (a title such as "heat") adds a jet colour bar from 0 to 1, the colours of
    `eval.cam.overlay`, so an overlay can be read without guessing what red means.
    """
    frames = np.asarray(frames)
    labels = list(labels) if labels is not None else [str(t) for t in range(len(frames))]
    fig = go.Figure(data=[go.Image(z=frames[0])],
                    frames=[go.Frame(data=[go.Image(z=f)], name=labels[t], traces=[0]) for t, f in enumerate(frames)])
    steps = [{"args": [[labels[t]], {"frame": {"duration": 0, "redraw": True}, "mode": "immediate"}],
              "label": labels[t], "method": "animate"} for t in range(len(frames))]
    play = {"type": "buttons", "showactive": False, "x": 0.0, "y": 0.0, "xanchor": "left", "yanchor": "top",
            "pad": {"t": 40, "r": 10}, "direction": "left",
            "buttons": [{"label": "▶ play", "method": "animate",
                         "args": [None, {"frame": {"duration": 120, "redraw": True}, "fromcurrent": True,
                                         "transition": {"duration": 0}, "mode": "immediate"}]}]}
    fig.update_layout(title=title, updatemenus=[play],
                      sliders=[{"steps": steps, "currentvalue": {"prefix": "frame "}, "x": 0.12, "len": 0.88}],
                      height=frames.shape[1] * 3 + 160, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    if colour_scale is not None:
        # An invisible one-pixel heatmap carries the colour bar (images have none); jet = cv2's COLORMAP_JET.
        fig.add_trace(go.Heatmap(z=[[0.0, 1.0]], x=[0, 0], y=[0, 0], colorscale="Jet", zmin=0, zmax=1, opacity=0,
                                 hoverinfo="skip", showscale=True,
                                 colorbar={"title": {"text": colour_scale}, "tickvals": [0, 0.5, 1],
                                           "ticktext": ["0 (low)", "0.5", "1 (high)"], "len": 0.8}))
        fig.update_layout(margin={"l": 10, "r": 90, "t": 50, "b": 10})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
