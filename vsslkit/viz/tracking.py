"""Pictures of cycle-consistency tracking (seed 001, TimeCycle) for notebook 10.

- `trace_cycle` runs the longest cycle of a trained tracker on one clip and keeps what the loss
  never shows: the box in every frame it visits (back from the target, then forward again) and
  the affinity of each step as a distribution over the frame; `cycle_figure` /
  `affinity_heatmap` draw them on the frames.
- `tracking_videos` / `read_window` / `propagate_window` / `propagation_figure` carry a box you choose through a
  held-out synthetic video with `eval.tracking.propagate` and compare it with the renderer's true
  centres and the constant-position baseline; `propagation_explorer` is the widget around them.
- `loss_terms_figure` draws the joint loss terms of a from-scratch run, `direction_figure` the
  direction branch's held-out accuracy against chance; `comparison_markdown` /
  `comparison_reading` and `direction_reading` turn a run's numbers into the notebook's table and
  sentences (the committed three-seed table is read by `classroom.committed_from_scratch_table`).

The step of the cycle is the library's (`models.cycle.track`, `affinity`); nothing here changes
how tracking is trained or scored, it only looks at it. Coordinates: normalised map coordinates
([-1, 1], align_corners=False) become pixels as p = ((n + 1) W - 1) / 2, as `propagate` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from vsslkit.models.cycle import affinity, grid_loss, sample_patch, soft_argmax_theta, track
from vsslkit.viz import plots
from vsslkit.viz.widgets import FrameSource

GT_COLOUR, BACK_COLOUR, FORWARD_COLOUR = "#2ca02c", "#ff7f0e", "#1f77b4"
TRUTH_COLOUR, TRACKER_COLOUR, CONSTANT_COLOUR = "#2ca02c", "#d62728", "#7f7f7f"
HEAT_TITLE = "affinity<br>(share of<br>the patch)"


# --- geometry -----------------------------------------------------------------------------------


def to_pixels(normalised: np.ndarray, size: int) -> np.ndarray:
    """Normalised coordinates (align_corners=False) -> pixel coordinates of a `size`-pixel side."""
    return ((np.asarray(normalised, dtype=np.float64) + 1) * size - 1) / 2


def box_corners(theta: np.ndarray | torch.Tensor, width: int, height: int) -> np.ndarray:
    """`(5, 2)` pixel (x, y) of the patch θ `(2, 3)` covers: its four corners, the first repeated
    (a closed outline; rotation and scale included)."""
    theta = np.asarray(theta.detach().cpu() if isinstance(theta, torch.Tensor) else theta, dtype=np.float64)
    theta = theta.reshape(2, 3)
    unit = np.array([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1], [-1, -1, 1]], dtype=np.float64)
    corners = unit @ theta.T  # (5, 2) normalised
    return np.stack([to_pixels(corners[:, 0], width), to_pixels(corners[:, 1], height)], 1)


def box_centre(theta: np.ndarray | torch.Tensor, width: int, height: int) -> np.ndarray:
    """Pixel (x, y) of the centre of the patch θ `(2, 3)`."""
    theta = np.asarray(theta.detach().cpu() if isinstance(theta, torch.Tensor) else theta, dtype=np.float64)
    theta = theta.reshape(2, 3)
    return np.array([to_pixels(theta[0, 2], width), to_pixels(theta[1, 2], height)])


# --- the cycle on one clip --------------------------------------------------------------------


@dataclass
class CycleTrace:
    """The longest cycle of one clip: the frames it visits (k, k-1 … 0, 1 … k; frame k is the
    target), the patch θ `(2, 3)` in each (the first is θ_GT), the affinity of each step as a
    distribution over that frame's map cells `(h, w)` (None for the target's given patch), and how
    far the cycle's end lands from θ_GT (the grid loss l_long of the longest cycle)."""

    order: list[int]
    thetas: list[np.ndarray]
    heats: list[np.ndarray | None]
    end_grid_loss: float
    method: str

    @property
    def past(self) -> int:
        return self.order[0]

    def steps(self, direction: str) -> list[int]:
        """Positions in `order` of the backward ("back") or forward ("forward") steps."""
        k = self.past
        return list(range(1, k + 1)) if direction == "back" else list(range(k + 1, 2 * k + 1))


@torch.no_grad()
def trace_cycle(module: Any, backbone: Any, clip: torch.Tensor, theta_gt: torch.Tensor, *,
                method: str = "localiser") -> CycleTrace:
    """Run the longest cycle of the tracking `module` on `clip` (float `(1, 3, k + 1, H, W)`, the
    last frame the target) from the patch θ_GT `(1, 2, 3)`, step by step with `models.cycle.track`.

    `method="localiser"` moves the patch as training does (the localiser's θ, with its angle);
    `"affinity"` takes the affinity-weighted mean location, as box propagation does. Put the
    model in eval mode first (batch norm)."""
    if method not in ("localiser", "affinity"):
        raise ValueError(f"method must be 'localiser' or 'affinity', got {method!r}")
    phi = module.embed(backbone.features(clip, layers=(module.layer,))[module.layer])  # (1, d, T, h, w)
    frames = [phi[:, :, t] for t in range(phi.shape[2])]
    k = len(frames) - 1
    if k < 1:
        raise ValueError(f"a cycle needs the target and at least one past frame, got {len(frames)} frames")
    mh, mw = phi.shape[-2:]
    if method == "localiser":
        localise: Callable[[torch.Tensor], torch.Tensor] = module.localiser
    else:
        def localise(a: torch.Tensor) -> torch.Tensor:
            return soft_argmax_theta(a, mh, mw, module.scale)
    theta_gt = theta_gt.to(phi.dtype)
    current = sample_patch(frames[k], theta_gt, module.patch_size)
    order = [k, *range(k - 1, -1, -1), *range(1, k + 1)]
    thetas, heats = [theta_gt[0].numpy().copy()], [None]
    theta = theta_gt
    for t in order[1:]:
        a = affinity(frames[t], current, module.temperature)  # (1, h*w, p*p): each patch cell's distribution
        heats.append(a[0].mean(-1).reshape(mh, mw).numpy())  # averaged over the patch's cells: still sums to 1
        theta, current = track(frames[t], current, localise, temperature=module.temperature,
                               patch_size=module.patch_size)
        thetas.append(theta[0].numpy().copy())
    return CycleTrace(order, thetas, heats, float(grid_loss(theta, theta_gt)), method)


def _outline(fig: go.Figure, theta: np.ndarray, size: tuple[int, int], *, colour: str, name: str, row: int, col: int,
             legend: bool, dash: str = "solid") -> None:
    corners = box_corners(theta, size[1], size[0])
    centre = box_centre(theta, size[1], size[0])
    fig.add_trace(go.Scatter(x=corners[:, 0], y=corners[:, 1], mode="lines", name=name, legendgroup=name,
                             showlegend=legend, line={"color": colour, "width": 2, "dash": dash},
                             hovertemplate=f"{name}<br>centre ({centre[0]:.1f}, {centre[1]:.1f}) px<extra></extra>"),
                  row=row, col=col)


def _heat_trace(heat: np.ndarray, size: tuple[int, int], *, opacity: float = 0.55) -> go.Heatmap:
    """The map-cell affinity as a heat map aligned with the frame's pixels (cell j spans
    [j W/w, (j + 1) W/w)), on the shared colour axis."""
    h, w = heat.shape
    xs = (np.arange(w) + 0.5) * size[1] / w - 0.5
    ys = (np.arange(h) + 0.5) * size[0] / h - 0.5
    return go.Heatmap(z=heat, x=xs, y=ys, coloraxis="coloraxis", opacity=opacity,
                      hovertemplate="x %{x:.0f} px, y %{y:.0f} px<br>affinity %{z:.3f}<extra></extra>")


def cycle_figure(frames: np.ndarray, trace: CycleTrace, *, labels: Sequence[str] | None = None,
                 title: str = "") -> go.Figure:
    """The cycle drawn on the k + 1 frames `(k + 1, H, W, 3)` uint8 (time order, the target last).

    Row 1: every frame with the ground-truth patch (green, on the target), the backward boxes
    (orange) and the forward boxes (blue; the one on the target is where the cycle ends).
    Row 2: the affinity of each backward step over the frame it lands in; row 3: the same for
    the forward steps. One colour bar (the share of the patch's affinity on each map cell)."""
    frames = np.asarray(frames)
    k = trace.past
    if frames.ndim != 4 or len(frames) != k + 1:
        raise ValueError(f"expected the cycle's {k + 1} frames (T, H, W, 3), got shape {frames.shape}")
    size = frames.shape[1:3]
    labels = list(labels) if labels is not None else [f"frame {t}" for t in range(k)] + [f"frame {k} (target)"]
    titles = [*labels, *(f"back to {labels[t]}" if t < k else "" for t in range(k + 1)),
              *(f"forward to {labels[t]}" if t > 0 else "" for t in range(k + 1))]
    fig = make_subplots(rows=3, cols=k + 1, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.07)
    for row in (1, 2, 3):
        for t in range(k + 1):
            if (row == 2 and t == k) or (row == 3 and t == 0):
                continue
            fig.add_trace(go.Image(z=frames[t], hoverinfo="skip"), row=row, col=t + 1)
    _outline(fig, trace.thetas[0], size, colour=GT_COLOUR, name="ground-truth patch (θ_GT)", row=1, col=k + 1,
             legend=True)
    for direction, row, colour, name in (("back", 2, BACK_COLOUR, "backward step"),
                                         ("forward", 3, FORWARD_COLOUR, "forward step")):
        for n, i in enumerate(trace.steps(direction)):
            t = trace.order[i]
            fig.add_trace(_heat_trace(trace.heats[i], size), row=row, col=t + 1)
            for r in (1, row):
                _outline(fig, trace.thetas[i], size, colour=colour, name=name, row=r, col=t + 1,
                         legend=r == 1 and n == 0, dash="dot" if r == 1 and direction == "forward" else "solid")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    top = max(float(np.max(h)) for h in trace.heats if h is not None)
    fig.update_layout(title=title or f"the longest cycle ({trace.method}): end {trace.end_grid_loss:.3f} from θ_GT "
                                     "(grid loss)",
                      coloraxis={"colorscale": "Inferno", "cmin": 0.0, "cmax": top,
                                 "colorbar": {"title": {"text": HEAT_TITLE}}},
                      height=3 * 190 + 110, width=(k + 1) * 190 + 160, margin={"l": 10, "r": 10, "t": 70, "b": 10},
                      legend={"orientation": "h", "y": -0.02})
    return fig


def affinity_heatmap(frame: np.ndarray, heat: np.ndarray, *, theta: np.ndarray | None = None,
                     title: str = "") -> go.Figure:
    """One frame `(H, W, 3)` with the affinity `(h, w)` of a step over it as a heat map (colour
    bar: the share of the patch's affinity on each map cell) and, optionally, the box θ landed on."""
    frame = np.asarray(frame)
    size = frame.shape[:2]
    fig = go.Figure(go.Image(z=frame, hoverinfo="skip"))
    fig.add_trace(_heat_trace(np.asarray(heat), size))
    if theta is not None:
        corners = box_corners(theta, size[1], size[0])
        fig.add_trace(go.Scatter(x=corners[:, 0], y=corners[:, 1], mode="lines", name="box", showlegend=False,
                                 line={"color": "white", "width": 2}))
    fig.update_xaxes(title="x (pixels)", range=[-0.5, size[1] - 0.5])
    fig.update_yaxes(title="y (pixels)", range=[size[0] - 0.5, -0.5])
    fig.update_layout(title=title, coloraxis={"colorscale": "Inferno", "cmin": 0.0,
                                              "colorbar": {"title": {"text": HEAT_TITLE}}},
                      height=380, width=460, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return fig


# --- propagating a box through a held-out video -----------------------------------------------


@dataclass(frozen=True)
class TrackVideo:
    """A held-out synthetic video with its main object's true centre in every frame, in pixels of
    the network's `size` input, and the object's radius at that scale."""

    name: str
    path: Path
    centres: np.ndarray
    radius: float
    size: int

    def windows(self, *, steps: int, gap: int) -> list[int]:
        """Start frames of the windows of `steps` + 1 frames `gap` apart in which the object stays
        inside the frame (no wrap on the torus): what `eval.tracking.inside_windows` scores."""
        from vsslkit.eval.tracking import inside_windows

        return inside_windows(self.centres, size=self.size, margin=1.2 * self.radius, steps=steps, gap=gap)


def tracking_videos(root: str | Path, paths: Sequence[str | Path], *, size: int) -> list[TrackVideo]:
    """The videos of `paths` that the synthetic set at `root` describes, with their true centres."""
    from vsslkit.data.synthetic import load_metadata, object_centres, params_from_record

    records = {Path(r["path"]).name: r for r in load_metadata(root)["videos"]}
    out = []
    for path in paths:
        record = records.get(Path(path).name)
        if record is None:
            continue
        params = params_from_record(record)
        scale = size / params.size
        out.append(TrackVideo(Path(path).stem, Path(path), object_centres(params) * scale, params.radius * scale, size))
    return out


@dataclass
class Propagation:
    """A propagated box against the truth: centres `(T, 2)` in pixels, per-step errors (frames
    1 … T-1; frame 0 is given) of the tracker and of the box that stays where it started."""

    frames: list[int]
    predicted: np.ndarray
    truth: np.ndarray
    start: np.ndarray
    errors: np.ndarray
    constant: np.ndarray

    @property
    def mean_error(self) -> float:
        return float(self.errors.mean())

    @property
    def mean_constant(self) -> float:
        return float(self.constant.mean())


def propagation_errors(predicted: np.ndarray, truth: np.ndarray, frames: Sequence[int]) -> Propagation:
    """Centre errors of a propagated box (`predicted[0]` is the start) and of the constant box."""
    predicted, truth = np.asarray(predicted, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if predicted.shape != truth.shape or predicted.ndim != 2 or len(predicted) < 2:
        raise ValueError(f"expected two (T >= 2, 2) paths, got {predicted.shape} and {truth.shape}")
    start = predicted[0]
    return Propagation(list(frames), predicted, truth, start, np.linalg.norm(predicted[1:] - truth[1:], axis=1),
                       np.linalg.norm(start[None] - truth[1:], axis=1))


def read_window(source: FrameSource, video: TrackVideo, *, start: int, steps: int, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """(frame indices, uint8 frames `(steps + 1, size, size, 3)`) of the window of `steps` steps
    `gap` frames apart from `start`, resized to the network's input as `tracking_error` does."""
    from vsslkit.eval.video_level_clips import fit_to

    indices = int(start) + gap * np.arange(steps + 1)
    if indices[-1] >= len(video.centres):
        raise ValueError(f"{video.name}: a window of {steps} steps of {gap} frames from frame {start} ends after "
                         f"the video's {len(video.centres)} frames")
    clip = fit_to(torch.from_numpy(np.ascontiguousarray(source.read(video.path, indices)))[None], video.size)
    return indices, clip[0].numpy()


def propagate_window(module: Any, backbone: Any, source: FrameSource, video: TrackVideo, *, start: int, steps: int,
                     gap: int, xy: Sequence[float], method: str = "affinity") -> tuple[np.ndarray, Propagation]:
    """Frames `(steps + 1, size, size, 3)` uint8 of one window and the box started at pixel `xy`
    in its first frame, carried through it by `eval.tracking.propagate`."""
    from vsslkit.data import transforms as T
    from vsslkit.eval.tracking import propagate

    indices, frames = read_window(source, video, start=start, steps=steps, gap=gap)
    clip = T.to_float_clips(torch.from_numpy(frames)[None])
    predicted = propagate(module, backbone, clip, np.asarray(xy, dtype=np.float64), method=method)
    return frames, propagation_errors(predicted, video.centres[indices], indices.tolist())


def propagation_figure(frames: np.ndarray, result: Propagation, *, title: str = "") -> go.Figure:
    """Top: the window's frames side by side with the true centre (green), the tracker's box
    centre (red) and the constant box (grey) in each. Bottom: the centre error per step."""
    frames = np.asarray(frames)
    t, _, w = frames.shape[:3]
    gap = 2
    strip = plots.film_strip(frames, gap=gap)
    offsets = np.arange(t) * (w + gap)
    fig = make_subplots(rows=2, cols=1, row_heights=[0.6, 0.4], vertical_spacing=0.12,
                        subplot_titles=("centres in each frame of the window", "centre error per frame"))
    fig.add_trace(go.Image(z=strip, hoverinfo="skip"), row=1, col=1)
    for name, xy, colour, symbol in (("true centre", result.truth, TRUTH_COLOUR, "x"),
                                     ("tracked box", result.predicted, TRACKER_COLOUR, "circle-open"),
                                     ("constant position", np.repeat(result.start[None], t, 0), CONSTANT_COLOUR,
                                      "square-open")):
        fig.add_trace(go.Scatter(x=xy[:, 0] + offsets, y=xy[:, 1], mode="markers", name=name, legendgroup=name,
                                 marker={"color": colour, "symbol": symbol, "size": 11, "line": {"width": 2}},
                                 text=[f"frame {f}" for f in result.frames],
                                 hovertemplate="%{text}<br>(%{customdata[0]:.1f}, %{customdata[1]:.1f}) px<extra>"
                                 + name + "</extra>", customdata=xy), row=1, col=1)
    later = result.frames[1:]
    for name, values, colour in (("tracked box", result.errors, TRACKER_COLOUR),
                                 ("constant position", result.constant, CONSTANT_COLOUR)):
        fig.add_trace(go.Scatter(x=later, y=values, mode="lines+markers", name=name, legendgroup=name,
                                 showlegend=False, line={"color": colour}), row=2, col=1)
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_yaxes(visible=False, row=1, col=1)
    fig.update_xaxes(title_text="frame index in the video", tickmode="array", tickvals=later, row=2, col=1)
    fig.update_yaxes(title_text="centre error (px)", rangemode="tozero", row=2, col=1)
    fig.update_layout(title=title, height=560, width=max(640, 170 * t + 220),
                      margin={"l": 60, "r": 20, "t": 70, "b": 50})
    return fig


def propagation_text(video: TrackVideo, result: Propagation) -> str:
    """One line: the mean errors of the tracked and the constant box, and how far the start was
    from the object (errors are measured to the main object's true centre)."""
    offset = float(np.linalg.norm(result.start - result.truth[0]))
    verdict = "closer to" if result.mean_error < result.mean_constant else "not closer to"
    return (f"{video.name}, frames {result.frames[0]}-{result.frames[-1]}: mean centre error {result.mean_error:.1f} px "
            f"for the tracked box, {result.mean_constant:.1f} px if it stays put (start {offset:.1f} px from the "
            f"object's centre): the tracker is {verdict} the object than standing still here")


def longest_window(video: TrackVideo, *, gap: int, max_steps: int) -> int:
    """The most steps (at most `max_steps`) for which `video` has a window inside the frame; 0 if none."""
    return max((n for n in range(1, max_steps + 1) if video.windows(steps=n, gap=gap)), default=0)


def propagation_explorer(module: Any, backbone: Any, source: FrameSource, videos: Sequence[TrackVideo], *, gap: int,
                         steps: int = 3, max_steps: int = 6, methods: Sequence[str] = ("affinity", "localiser"),
                         display: Callable[[Any], None] | None = None):
    """Pick a held-out video, a window and a start point (x, y sliders; they jump to the object's
    centre when the window changes) and watch `propagate` carry the box.

    Only valid choices are offered: videos with a window inside the frame, a step count up to the
    longest window the chosen video has (`longest_window`), first frames of windows that stay inside.
    Returns the `ipywidgets.VBox` (its `.update()` redraws)."""
    import ipywidgets as w
    from IPython.display import display as ipy_display

    from vsslkit.viz.widgets import _set_range

    show = display or ipy_display
    longest = {v.name: longest_window(v, gap=gap, max_steps=max_steps) for v in videos}
    offered = [v for v in videos if longest[v.name] >= 1]
    if not offered:
        raise ValueError("no held-out video keeps its object inside the frame for two frames")
    size = offered[0].size
    by_name = {v.name: v for v in offered}
    video = w.Dropdown(options=list(by_name), description="video")
    first_max = longest[offered[0].name]
    n_steps = w.IntSlider(value=min(steps, first_max), min=1, max=first_max, description="steps")
    start = w.SelectionSlider(options=[0], description="first frame")
    x = w.IntSlider(value=size // 2, min=0, max=size - 1, description="x (px)")
    y = w.IntSlider(value=size // 2, min=0, max=size - 1, description="y (px)")
    method = w.Dropdown(options=list(methods), description="method")
    text = w.HTML()
    out = w.Output()
    busy = False

    def place() -> None:
        """Offer the chosen video's step counts and windows; put the box on the object."""
        v = by_name[video.value]
        _set_range(n_steps, 1, longest[v.name])
        starts = v.windows(steps=n_steps.value, gap=gap)
        keep = start.value if start.value in starts else starts[0]
        start.options = starts
        start.value = keep
        x.value, y.value = (round(float(c)) for c in v.centres[keep])

    def redraw() -> Propagation:
        v = by_name[video.value]
        frames, result = propagate_window(module, backbone, source, v, start=start.value, steps=n_steps.value, gap=gap,
                                          xy=(x.value, y.value), method=method.value)
        text.value = f"<code>{propagation_text(v, result)}</code>"
        out.clear_output(wait=True)
        with out:
            show(propagation_figure(frames, result, title=f"{v.name}: box propagated by {method.value}"))
        return result

    def update(change: Any = None) -> Propagation | None:
        nonlocal busy
        if busy:
            return None
        busy = True
        try:
            owner = change["owner"] if change is not None else None
            if owner is start:
                x.value, y.value = (round(float(c)) for c in by_name[video.value].centres[start.value])
            elif owner in (None, video, n_steps):
                place()
            return redraw()
        finally:
            busy = False

    for control in (video, n_steps, start, x, y, method):
        control.observe(update, names="value")
    box = w.VBox([w.HBox([video, method, n_steps]), w.HBox([start, x, y]), text, out])
    box.update = update  # type: ignore[attr-defined]
    update()
    return box


# --- the run's numbers ----------------------------------------------------------------------


LOSS_PANELS = (
    ("cross-entropy (nats)", (("cls.class_loss", "classification l_cls"), ("dir.direction_loss", "direction l_dir"))),
    ("l_sim (−patch similarity)", (("track.sim", "track: l_sim"),)),
    ("grid loss (normalised units²)", (("track.long", "track: l_long"), ("track.skip", "track: l_skip"))),
)


def loss_terms_figure(history: Sequence[Mapping[str, float]], *, title: str = "") -> go.Figure:
    """The joint run's loss terms against the step, unweighted, one panel per unit: the two
    cross-entropies, l_sim (−1 is a perfect match) and the cycle's grid losses (long, skip).
    A term the run did not log (a branch it left out) is left out; so is a panel with none."""
    rows = [dict(r) for r in history]
    panels = [(t, [(k, n) for k, n in terms if any(k in r for r in rows)]) for t, terms in LOSS_PANELS]
    panels = [(t, terms) for t, terms in panels if terms]
    if not panels:
        raise ValueError("the history has none of the joint loss terms (cls.class_loss, track.*, dir.direction_loss)")
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    n = 0
    for p, (axis, terms) in enumerate(panels, start=1):
        for key, name in terms:
            points = [(r["step"], r[key]) for r in rows if key in r and "step" in r]
            xs, ys = zip(*points)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 3 else "lines", name=name,
                                     line={"color": plots.PALETTE[n % len(plots.PALETTE)]}), row=p, col=1)
            n += 1
        fig.update_yaxes(title_text=axis, row=p, col=1)
    fig.update_xaxes(title_text="optimiser step", row=len(panels), col=1)
    fig.update_layout(title=title, height=150 + 200 * len(panels), margin={"l": 70, "r": 20, "t": 50, "b": 40})
    return fig


def term_trends(history: Sequence[Mapping[str, float]], keys: Sequence[str], *, tolerance: float = 0.01) -> list[str]:
    """One line per logged term: its first and last logged value and whether it fell, rose or
    stayed level (a change within `tolerance` of the first value's size is level: two equal
    printed values must not read as "fell")."""
    rows = [r for r in history if "step" in r]
    lines = []
    for key in keys:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if not points:
            continue
        (s0, v0), (s1, v1) = points[0], points[-1]
        band = tolerance * max(abs(v0), 1e-12)
        trend = "fell" if v1 < v0 - band else "rose" if v1 > v0 + band else "stayed level"
        lines.append(f"{key}: step {s0:.0f} {v0:.3f}, step {s1:.0f} {v1:.3f}: {trend}")
    return lines


def proportion_interval(p: float, n: int) -> float:
    """Half-width of a 95 % normal-approximation interval of a proportion `p` over `n` trials."""
    return 1.96 * math.sqrt(max(p * (1 - p), 0.25 / max(n, 1)) / max(n, 1))


def direction_reading(results: Mapping[str, Mapping[str, float]]) -> str:
    """A sentence per dataset: held-out direction accuracy against chance (50 %), with the 95 %
    interval of chance over that many clips (`results[name]` as `direction_accuracy` returns)."""
    lines = []
    for name, r in results.items():
        acc, n = float(r["direction_accuracy"]), int(r["direction_clips"])
        half = proportion_interval(0.5, n)
        if abs(acc - 0.5) <= half:
            verdict = "indistinguishable from chance"
        else:
            verdict = "above chance" if acc > 0.5 else "below chance (worse than guessing)"
        lines.append(f"- {name}: {100 * acc:.1f} % of {n} held-out clips, {verdict} "
                     f"(a coin would land within 50 ± {100 * half:.1f} % 95 times in 100)")
    return "\n".join(lines)


def direction_figure(results: Mapping[str, Mapping[str, float]], *, title: str = "") -> go.Figure:
    """Held-out direction accuracy per dataset (bars, %) against chance: a dashed line at 50 % and,
    per bar, the band a coin would stay in 95 times in 100 over that many clips."""
    names = list(results)
    acc = [100 * float(results[n]["direction_accuracy"]) for n in names]
    half = [100 * proportion_interval(0.5, int(results[n]["direction_clips"])) for n in names]
    fig = go.Figure(go.Bar(x=names, y=acc, name="held-out accuracy", marker={"color": plots.PALETTE[0]},
                           text=[f"{a:.1f} %" for a in acc], textposition="outside",
                           hovertemplate="%{x}: %{y:.1f} %<extra></extra>"))
    for i, h in enumerate(half):
        fig.add_shape(type="rect", x0=i - 0.45, x1=i + 0.45, y0=50 - h, y1=50 + h, fillcolor="grey", opacity=0.25,
                      line_width=0, layer="above")
    fig.add_hline(y=50, line_dash="dash", line_color="black", annotation_text="chance (50 %)",
                  annotation_position="top left")
    fig.update_yaxes(title="direction accuracy (% of held-out clips)", range=[0, 105])
    fig.update_xaxes(title="synthetic generator version")
    fig.update_layout(title=title or "arrow of time on held-out clips (grey: where a coin lands 95 times in 100)",
                      height=360, width=520, margin={"l": 60, "r": 20, "t": 60, "b": 50}, showlegend=False)
    return fig


def comparison_markdown(scores: Mapping[str, Mapping[str, Any]]) -> str:
    """A table of the arms' held-out scores (`evaluate_from_scratch` outputs): video Hit@1/Hit@5,
    direction accuracy and tracking centre error where the arm has those branches."""
    lines = ["| arm | Hit@1 (%) | Hit@5 (%) | direction (%) | tracking error (px) | constant position (px) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in scores.items():
        cls = s["classification"]
        direction = f"{100 * s['direction']['direction_accuracy']:.1f}" if "direction" in s else "—"
        track = s.get("tracking")
        error = f"{track['centre_error_px']:.2f} | {track['constant_baseline_px']:.2f}" if track else "— | —"
        lines.append(f"| {name} | {100 * cls['hit_at_1']:.1f} | {100 * cls['hit_at_5']:.1f} | {direction} | {error} |")
    return "\n".join(lines)


def comparison_reading(scores: Mapping[str, Mapping[str, Any]], *, baseline: str, steps: int) -> str:
    """Whether each arm's video Hit@1 differs from `baseline`'s by more than the noise of one test
    set (the 95 % interval of a proportion over its videos); says it is one seed at `steps` steps."""
    base = scores[baseline]["classification"]
    n = int(base["videos"])
    lines = []
    for name, s in scores.items():
        if name == baseline:
            continue
        hit, ref = float(s["classification"]["hit_at_1"]), float(base["hit_at_1"])
        half = proportion_interval(max(min(ref, 1.0), 0.0), n)
        diff = hit - ref
        if abs(diff) <= half:
            verdict = "no difference this test set can show"
        else:
            verdict = "better" if diff > 0 else "worse"
        lines.append(f"{name} vs {baseline}: Hit@1 {100 * hit:.1f} % vs {100 * ref:.1f} % on {n} test videos, "
                     f"{100 * diff:+.1f} points against a noise band of ±{100 * half:.1f}: {verdict} "
                     f"(one seed, {steps} steps)")
    return "\n".join(lines)
