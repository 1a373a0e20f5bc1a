"""The closing notebook's pictures: every method side by side.

- `methods_figure`: the `reproduce methods` table as bars (mean ± std over seeds) with a metric menu
  and a sort menu, drawn from `experiments.methods.summary_rows` (plain plotly: it works without a
  kernel, in the exported HTML too).
- `cam_grid` / `cam_explorer`: what each method's frozen features respond to: the thesis'
  activation map (channel mean before pooling, no label needed) of the same clip under every
  method's backbone, one film-strip row per method, with the heat concentration on the moving
  object (the renderer's own mask) printed beside it.
- `method_retrieval_explorer`: pick a method and a query; its nearest training videos next to
  random init's.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from vsslkit.eval import cam
from vsslkit.viz import plots
from vsslkit.viz.explorers import jpeg_bytes, neighbour_gallery, query_options

RANDOM = "random init"
DOWNSTREAM_METRICS = ("R@1", "R@5", "linear probe", "fine-tuned 10 %", "fine-tuned 25 %")


def _metric_values(rows: Sequence[Mapping[str, Any]], metric: str) -> tuple[list[float], list[float]]:
    if metric == "pretext":
        means = [float(r["pretext"]["accuracy"]) if "pretext" in r else math.nan for r in rows]
        return means, [0.0] * len(rows)
    pairs = [r.get(metric, (math.nan, math.nan)) for r in rows]
    return [float(p[0]) for p in pairs], [0.0 if math.isnan(p[1]) else float(p[1]) for p in pairs]


def metric_order(rows: Sequence[Mapping[str, Any]], metric: str) -> list[str]:
    """Arm names sorted by `metric`, highest first; arms without the metric go last."""
    means, _ = _metric_values(rows, metric)
    order = sorted(range(len(rows)), key=lambda i: (math.isnan(means[i]), 0.0 if math.isnan(means[i]) else -means[i]))
    return [rows[i]["arm"] for i in order]


def methods_figure(rows: Sequence[Mapping[str, Any]], *, metrics: Sequence[str] = DOWNSTREAM_METRICS,
                   title: str = "every method, one recipe, one protocol") -> go.Figure:
    """Bars per arm for each metric (error bars: std over seeds), random init's level as a dashed line.

    Two menus: which metric (one at a time, or all side by side) and the order of the arms (as in
    the table, or sorted by a metric). `rows` are `summary_rows(...)` of a run."""
    names = [r["arm"] for r in rows]
    fig = go.Figure()
    for i, metric in enumerate(metrics):
        means, stds = _metric_values(rows, metric)
        seeds = [r.get("seeds", 1) for r in rows]
        fig.add_bar(name=metric, x=names, y=means, error_y={"type": "data", "array": stds, "visible": True},
                    marker={"color": plots.PALETTE[i % len(plots.PALETTE)]}, visible=i == 0,
                    customdata=seeds, hovertemplate="%{x}<br>" + metric + ": %{y:.1f} ± %{error_y.array:.1f} "
                                                    "(%{customdata} seeds)<extra></extra>")
    base = next((r for r in rows if r["arm"] == RANDOM), None)

    def level(metric: str) -> list[dict]:
        if base is None or metric not in base:
            return []
        return [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": base[metric][0], "y1": base[metric][0],
                 "line": {"dash": "dash", "color": "grey"}}]

    metric_buttons = [{"label": m, "method": "update",
                       "args": [{"visible": [j == i for j in range(len(metrics))]},
                                {"shapes": level(m), "yaxis.title.text": f"{m} (%)"}]}
                      for i, m in enumerate(metrics)]
    metric_buttons.append({"label": "all", "method": "update",
                           "args": [{"visible": [True] * len(metrics)},
                                    {"shapes": [], "yaxis.title.text": "per cent"}]})
    sort_buttons = [{"label": "table order", "method": "relayout",
                     "args": [{"xaxis.categoryorder": "array", "xaxis.categoryarray": names}]}]
    sort_buttons += [{"label": f"sort by {m}", "method": "relayout",
                      "args": [{"xaxis.categoryorder": "array", "xaxis.categoryarray": metric_order(rows, m)}]}
                     for m in metrics]
    fig.update_layout(
        title=title, barmode="group", height=480, margin={"t": 90, "b": 150},
        yaxis_title=f"{metrics[0]} (%)", xaxis={"title": "initialisation", "tickangle": -35,
                                                "categoryorder": "array", "categoryarray": names},
        shapes=level(metrics[0]),
        updatemenus=[{"buttons": metric_buttons, "x": 0.0, "y": 1.18, "xanchor": "left", "direction": "down"},
                     {"buttons": sort_buttons, "x": 0.35, "y": 1.18, "xanchor": "left", "direction": "down"}],
        annotations=[{"text": "dashed: random init", "xref": "paper", "yref": "paper", "x": 1, "y": 1.1,
                      "showarrow": False, "xanchor": "right"}],
    )
    return fig


def _network_input(clips: Sequence[np.ndarray], *, residual: bool) -> Any:
    """uint8 clips `(T, H, W, 3)` of one length → the normalised batch the backbones take (differences
    with `residual`, as `classroom.model_input` makes for one clip)."""
    import torch

    from vsslkit.data.transforms import residual_frames, to_float_clips

    x = to_float_clips(torch.from_numpy(np.stack([np.ascontiguousarray(c) for c in clips])))
    return residual_frames(x) if residual else x


def cam_grid(backbones: Mapping[str, Any], frames: np.ndarray, mask: np.ndarray | None = None, *,
             count: int = 6, residual: bool = True) -> tuple[np.ndarray, dict[str, float]]:
    """One clip under every backbone: rows of `count` frames with the activation map overlaid, the
    plain frames on top; and each method's heat concentration on `mask` (object vs background).

    `frames` are uint8 `(T, H, W, 3)`; with `residual` the backbones see T-1 differences and the
    maps belong to frames 1..T-1 (`classroom.probe_clip` aligns its mask the same way)."""
    clip = _network_input([frames], residual=residual)
    shown = frames[1:] if residual else frames
    pick = np.linspace(0, len(shown) - 1, count).round().astype(int)
    rows, labels, concentration = [plots.film_strip(shown[pick])], ["clip"], {}
    for name, backbone in backbones.items():
        heat = cam.activation_map(backbone, clip)
        if mask is not None:
            concentration[name] = cam.heat_concentration(heat, mask)
        rows.append(plots.film_strip(cam.overlay(shown, heat)[pick]))
        labels.append(name if mask is None else f"{name} ({concentration[name]:.2f})")
    return plots.labelled_rows(rows, labels, label_width=250), concentration


def mean_concentrations(backbones: Mapping[str, Any], clips: Sequence[tuple[np.ndarray, np.ndarray]], *,
                        residual: bool = True) -> dict[str, float]:
    """Mean heat concentration on the moving object over `clips` ((frames, mask) pairs) per backbone
    (one batched forward pass per backbone)."""
    batch = _network_input([f for f, _ in clips], residual=residual)
    out = {}
    for name, backbone in backbones.items():
        heat = cam.activation_maps(backbone, batch)
        out[name] = float(np.mean([cam.heat_concentration(h, m) for h, (_, m) in zip(heat, clips)]))
    return out


def cam_explorer(backbones: Mapping[str, Any], clips: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                 count: int = 6, residual: bool = True):
    """A clip picker over `clips` (name → (frames, mask)); shows `cam_grid` of the picked clip.
    Returns the `ipywidgets.VBox` (`.pick(name)` returns the concentrations it drew)."""
    import ipywidgets as w

    choice = w.Dropdown(options=list(clips), description="clip", layout={"width": "360px"})
    note = w.HTML()
    image = w.Image(format="jpeg")

    def pick(name: str) -> dict[str, float]:
        frames, mask = clips[name]
        grid, conc = cam_grid(backbones, frames, mask, count=count, residual=residual)
        image.value = jpeg_bytes(grid)
        best = max(conc, key=conc.get)
        note.value = (f"<b>{html.escape(name)}</b>: activation map (channel mean before pooling) under each "
                      f"initialisation; in brackets the mean heat on the moving object over the mean heat on the "
                      f"background (1.00: no preference). Highest here: <b>{html.escape(best)}</b> "
                      f"({conc[best]:.2f}).")
        return conc

    choice.observe(lambda change: pick(change["new"]), names="value")
    box = w.VBox([choice, note, image])
    box.pick = pick  # type: ignore[attr-defined]
    pick(choice.value)
    return box


def method_retrieval_explorer(results: Mapping[str, Any], *, queries: Any, gallery: Any, frames: Any, k: int = 5,
                              baseline: str = RANDOM):
    """Pick a method and a query test video: its `k` nearest training videos under that method's
    frozen features, with the baseline's (random init) row beneath for comparison. `results` maps arm
    names to `RetrievalResult`s. Returns the `ipywidgets.VBox` (`.pick(method, query)`)."""
    import ipywidgets as w

    if baseline not in results:
        raise ValueError(f"baseline {baseline!r} is not among the results ({', '.join(results)})")
    others = [name for name in results if name != baseline] or [baseline]
    chosen = w.Dropdown(options=others, description="method", layout={"width": "420px"})
    query = w.Dropdown(options=query_options(queries), description="query", layout={"width": "420px"})
    rows = [(w.HTML(), w.Image(format="jpeg")) for _ in range(2)]

    def pick(name: str, index: int) -> dict[str, Any]:
        out = {}
        for (caption, image), arm in zip(rows, (name, baseline)):
            r = results[arm]
            g = neighbour_gallery(index, r.neighbours, r.similarities, queries=queries, gallery=gallery,
                                  frames=frames, k=k)
            caption.value = (f"<b>{html.escape(arm)}</b> — {sum(g.hits)} of {len(g.hits)} neighbours share the "
                             "query's class<br><small>" + " | ".join(html.escape(c) for c in g.captions) + "</small>")
            image.value = jpeg_bytes(g.image)
            out[arm] = g
        return out

    chosen.observe(lambda change: pick(change["new"], query.value), names="value")
    query.observe(lambda change: pick(chosen.value, change["new"]), names="value")
    box = w.VBox([w.HBox([chosen, query]), *[c for pair in rows for c in pair]])
    box.pick = pick  # type: ignore[attr-defined]
    pick(chosen.value, query.value)
    return box


__all__ = ["DOWNSTREAM_METRICS", "cam_explorer", "cam_grid", "mean_concentrations", "method_retrieval_explorer",
           "methods_figure", "metric_order"]
