"""Explorer apps for the training notebooks (02-06), each a thin ipywidgets layout over pure functions.

The pattern of `widgets.clip_builder`: every callback is a plain function of plain values
(`misclassified`, `neighbour_gallery`, `localization_timeline`, …) that the tests call directly,
so what a notebook shows is checked without a browser. The held-out pretext clips these apps
browse come from `vsslkit.eval.pretext` (`predict_pretext_clips`, `localization_summary`).

- live training curves: `LiveCurves` is an `on_log` callback for `pretrain(...)` that redraws.
- pretext accuracy vs chance: `pretext_vs_chance` / `chance_markdown`.
- fine-tuned classifier: `confusion_explorer` (pick a class, watch its misclassified test videos).
- retrieval: `retrieval_explorer` (pick a query, see its nearest training videos per initialisation).
- localization (ch. 4): what the `loc` head predicts on held-out clips whose (r1, r2, m) is known.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from vsslkit.eval.pretext import PretextClip, base_task, label_names
from vsslkit.eval.retrieval import RetrievalResult
from vsslkit.tasks import Joint
from vsslkit.viz import plots
from vsslkit.viz.widgets import FrameSource

OK_COLOUR = (44, 160, 44)  # neighbour of the query's class
WRONG_COLOUR = (214, 39, 40)


def jpeg_bytes(image: np.ndarray, *, quality: int = 85) -> bytes:
    """JPEG bytes of a uint8 RGB image for an `ipywidgets.Image`.

    Not PNG: the synthetic frames carry pixel noise PNG cannot compress, and widget state is saved
    with the notebook.
    """
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not encode an image of shape {np.shape(image)} as JPEG")
    return buf.tobytes()


def _display(display: Callable[[Any], None] | None) -> Callable[[Any], None]:
    if display is not None:
        return display
    from IPython.display import display as ipy_display

    return ipy_display


# --- live training curves ---------------------------------------------------------------------


@dataclass
class LiveCurves:
    """An `on_log` callback that keeps the logged rows and redraws a loss/accuracy figure.

    `pretrain(..., on_log=curves)` calls it every `log_every` steps; `curves.widget` (an
    `ipywidgets.Output`, created on first use) shows the latest figure in a notebook. The rows are
    the same as `FitResult.history`, so `plots.training_curves` can redraw any run later.
    """

    name: str
    metrics: tuple[str, ...] = ("loss", "pretext.speed_acc")
    title: str = ""
    display: Callable[[Any], None] | None = None
    rows: list[dict[str, float]] = field(default_factory=list)
    _widget: Any = None

    @property
    def widget(self):
        if self._widget is None:
            import ipywidgets as w

            self._widget = w.Output()
        return self._widget

    def figure(self) -> go.Figure:
        fig = plots.training_curves({self.name: self.rows}, metrics=self.metrics,
                                    title=self.title or f"{self.name}: live training curves")
        fig.update_layout(height=300)
        return fig

    def __call__(self, row: Mapping[str, Any]) -> go.Figure:
        self.rows.append({k: float(v) for k, v in row.items() if isinstance(v, (int, float))})
        fig = self.figure()
        out = self.widget
        out.clear_output(wait=True)
        with out:
            _display(self.display)(fig)
        return fig


# --- pretext accuracy vs chance ---------------------------------------------------------------


def sampler_shares(task: Any, *, draws: int = 4000, seed: int = 0) -> dict[str, np.ndarray]:
    """Label shares per head under the task's own sampler (the majority-class baseline needs them)."""
    task = base_task(task)
    rng = np.random.default_rng(seed)
    counts = {head: np.zeros(n) for head, n in task.heads.items()}
    for _ in range(draws):
        params = task.sample_params(rng)
        for head, value in task.label_of(params).items():
            if head in counts:
                counts[head][value] += 1
    return {head: c / draws for head, c in counts.items()}


def pretext_vs_chance(history: Sequence[Mapping[str, float]], task: Any, *, last: int = 3) -> list[dict[str, Any]]:
    """Per head: mean training accuracy of the last `last` logged rows, chance (1/classes) and the
    majority-class share under the sampler. One row per head, in the task's head order.

    The training accuracy is measured on the augmented training batches, so it is noisy; "above
    the majority share" is the test that the network learnt something, not "above 1/classes".
    """
    rows = [r for r in history if "loss" in r]
    if not rows:
        raise ValueError("the training history has no logged loss rows")
    shares = sampler_shares(task)
    out = []
    prefix = f"{task.primary_name}." if isinstance(task, Joint) else ""  # pretrain logs "pretext.<head>_acc"
    for head, n in base_task(task).heads.items():
        key = f"{prefix}{head}_acc"
        values = [r[key] for r in rows[-last:] if key in r]
        if not values:
            raise KeyError(f"no '{key}' in the training history; logged keys: {sorted(rows[-1])}")
        out.append({"head": head, "classes": n, "accuracy": float(np.mean(values)), "chance": 1.0 / n,
                    "majority": float(shares[head].max()), "steps": int(rows[-1].get("step", len(rows)))})
    return out


def chance_markdown(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """{run name: pretext_vs_chance rows} as a markdown table (accuracies in percent)."""
    lines = ["| run | head | classes | train acc. (last logs) | chance | majority class |", "|---|---|---|---|---|---|"]
    for run, rows in results.items():
        lines += [f"| {run} | {r['head']} | {r['classes']} | {100 * r['accuracy']:.1f} % | {100 * r['chance']:.1f} % "
                  f"| {100 * r['majority']:.1f} % |" for r in rows]
    return "\n".join(lines)


def pretext_reading(summaries: Mapping[str, Mapping[str, Any]], *, margin: float = 0.05) -> str:
    """Sentences about held-out pretext accuracy, written from the run's own numbers (markdown).

    `summaries` is {run: {head: summary}} with `accuracy`, `chance`, `majority`, `names` and
    `counts` (a `localization_summary` result per run). A head is "above chance" when it beats both
    1/classes and always-the-most-frequent-label by more than `margin`; the most confused pair of
    each multi-class head is read off its counts, so the text can never describe another run.
    """
    from vsslkit.eval.confusion import most_confused_pairs, normalise_rows

    lines = []
    for run, heads in summaries.items():
        for head, s in heads.items():
            floor = max(s.chance, s.majority)
            verdict = ("above chance" if s.accuracy > floor + margin else
                       "near chance" if s.accuracy > floor - margin else "below chance")
            text = (f"- **{run}** (`{head}`, {len(s.names)} classes): {100 * s.accuracy:.1f} % of held-out clips right, "
                    f"against {100 * s.chance:.1f} % chance and {100 * s.majority:.1f} % for always answering the most "
                    f"frequent label: **{verdict}**.")
            pairs = most_confused_pairs(normalise_rows(np.asarray(s.counts)), list(s.names), k=1)
            if pairs:
                t, p, v = pairs[0]
                text += f" Most confused: true {t} answered as {p} ({100 * v:.0f} % of its clips)."
            lines.append(text)
    return "\n".join(lines)


# --- confusion explorer -----------------------------------------------------------------------


def misclassified(predictions: Sequence[Mapping[str, Any]], class_index: int) -> list[dict[str, Any]]:
    """Test videos of true class `class_index` that were predicted as another class.

    `predictions` is `evaluate_classifier(...)["predictions"]` (`{"path", "label", "pred", "score"}`).
    Most confident mistakes first (ties by path), because those are the instructive ones.
    """
    wrong = [dict(p) for p in predictions if int(p["label"]) == int(class_index) and int(p["pred"]) != int(p["label"])]
    return sorted(wrong, key=lambda p: (-float(p["score"]), str(p["path"])))


def mistake_options(predictions: Sequence[Mapping[str, Any]], class_index: int,
                    class_names: Sequence[str]) -> list[tuple[str, str]]:
    """(label, path) pairs for a selection list: "v_…mp4 → predicted MoveLeft (p = 0.41)"."""
    return [(f"{Path(p['path']).name} → predicted {class_names[int(p['pred'])]} (p = {float(p['score']):.2f})",
             str(p["path"])) for p in misclassified(predictions, class_index)]


def class_options(result: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Dropdown entries "MoveLeft: 2 of 3 wrong" per class, from an `evaluate_classifier` result."""
    counts = Counter(int(p["label"]) for p in result["predictions"])
    wrong = Counter(int(p["label"]) for p in result["predictions"] if int(p["pred"]) != int(p["label"]))
    return [(f"{name}: {wrong[c]} of {counts[c]} wrong", c) for c, name in enumerate(result["class_names"])]


def video_strip(frames: FrameSource, path: str | Path, *, num_frames: int | None = None, count: int = 16,
                columns: int = 8) -> np.ndarray:
    """`count` evenly spaced frames of a whole video as one film strip (uint8 RGB image)."""
    n = int(num_frames if num_frames is not None else frames.num_frames(path))
    if n < 1:
        raise ValueError(f"{path}: no frames")
    idx = np.linspace(0, n - 1, num=min(count, n)).round().astype(np.int64)
    return plots.film_strip(np.asarray(frames.read(path, idx)), columns=min(columns, len(idx)))


def confusion_explorer(result: Mapping[str, Any], frames: FrameSource, *, title: str = "normalised confusion matrix",
                       count: int = 16, display: Callable[[Any], None] | None = None):
    """Confusion matrix + a class Dropdown; picking a class lists its misclassified test videos and
    shows the chosen one as a film strip. `result` is an `evaluate_classifier` result (it needs
    "confusion", "class_names" and "predictions"). Returns the `ipywidgets.VBox`; its `.pick(class)`
    runs the class callback and `.show(path)` the video callback."""
    import ipywidgets as w

    show = _display(display)
    names = list(result["class_names"])
    matrix = w.Output()
    with matrix:
        show(plots.confusion_figure(np.asarray(result["confusion"]), names, title=title))
    cls = w.Dropdown(options=class_options(result), description="true class", layout={"width": "360px"})
    videos = w.Select(options=[], description="mistakes", rows=5, layout={"width": "620px"})
    note = w.HTML()
    strip = w.Image(format="jpeg")

    def show_video(path: str | None) -> np.ndarray | None:
        if not path:
            strip.value = b""
            return None
        image = video_strip(frames, path, count=count)
        strip.value = jpeg_bytes(image)
        return image

    def pick(class_index: int) -> list[tuple[str, str]]:
        options = mistake_options(result["predictions"], class_index, names)
        videos.options = options
        if options:
            note.value = f"{len(options)} misclassified test video(s) of <b>{html.escape(names[class_index])}</b>; " \
                         f"strip: {count} frames spread over the whole video"
            videos.value = options[0][1]
            show_video(options[0][1])
        else:
            note.value = f"every test video of <b>{html.escape(names[class_index])}</b> is classified correctly"
            show_video(None)
        return options

    cls.observe(lambda change: pick(change["new"]), names="value")
    videos.observe(lambda change: show_video(change["new"]), names="value")
    box = w.VBox([matrix, cls, videos, note, strip])
    box.pick = pick  # type: ignore[attr-defined]
    box.show = show_video  # type: ignore[attr-defined]
    pick(cls.value)
    return box


# --- retrieval explorer -----------------------------------------------------------------------


@dataclass(frozen=True)
class Gallery:
    """A query's middle frame followed by its neighbours' (framed green = same class, red = other)."""

    image: np.ndarray
    captions: list[str]
    hits: list[bool]


def _middle_frame(frames: FrameSource, path: str | Path, num_frames: int | None) -> np.ndarray:
    n = int(num_frames if num_frames is not None else frames.num_frames(path))
    return np.asarray(frames.read(path, [n // 2]))[0]


def _framed(image: np.ndarray, colour: tuple[int, int, int] | None, border: int = 3) -> np.ndarray:
    out = np.full((image.shape[0] + 2 * border, image.shape[1] + 2 * border, 3), 255, dtype=np.uint8)
    if colour is not None:
        out[:] = colour
    out[border:-border, border:-border] = image
    return out


def neighbour_gallery(query: int, neighbours: np.ndarray, similarities: np.ndarray, *, queries: Any, gallery: Any,
                      frames: FrameSource, k: int = 5) -> Gallery:
    """Middle frames of test video `query` and of its `k` nearest training videos, with captions.

    `neighbours` / `similarities` are `RetrievalResult.neighbours` / `.similarities` (rows =
    queries); `queries` / `gallery` are the `VideoIndex`es they index (paths, labels, class_names,
    num_frames).
    """
    neighbours, similarities = np.asarray(neighbours), np.asarray(similarities)
    if not 0 <= query < len(neighbours):
        raise IndexError(f"query {query} outside the {len(neighbours)} queries")
    if neighbours.shape != similarities.shape:
        raise ValueError(f"neighbours {neighbours.shape} and similarities {similarities.shape} differ in shape")
    names = list(gallery.class_names)
    q_label = int(queries.labels[query])
    q_frames = queries.num_frames[query] if queries.num_frames is not None else None
    tiles = [_framed(_middle_frame(frames, queries.paths[query], q_frames), None)]
    captions = [f"query: {names[q_label]} ({Path(queries.paths[query]).name})"]
    hits = []
    for rank, (g, sim) in enumerate(zip(neighbours[query][:k], similarities[query][:k]), start=1):
        g = int(g)
        label = int(gallery.labels[g])
        hit = label == q_label
        n = gallery.num_frames[g] if gallery.num_frames is not None else None
        tiles.append(_framed(_middle_frame(frames, gallery.paths[g], n), OK_COLOUR if hit else WRONG_COLOUR))
        captions.append(f"{rank}. {names[label]} · similarity {float(sim):.2f}{' ✓' if hit else ''}")
        hits.append(hit)
    shape = tiles[0].shape
    tiles = [t if t.shape == shape else _pad_to(t, shape) for t in tiles]
    return Gallery(plots.film_strip(np.stack(tiles), gap=6), captions, hits)


def _pad_to(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.full(shape, 255, dtype=np.uint8)
    h, w = min(shape[0], image.shape[0]), min(shape[1], image.shape[1])
    out[:h, :w] = image[:h, :w]
    return out


def recall_curves(results: Mapping[str, RetrievalResult]) -> dict[str, dict[int, float]]:
    """{initialisation: {k: R@k in percent}} for `plots.recall_figure`."""
    return {name: {int(k): 100.0 * v for k, v in r.recall.items()} for name, r in results.items()}


def recall_markdown(results: Mapping[str, RetrievalResult], *, chance: Mapping[int, float] | None = None) -> str:
    """R@k table, one row per initialisation (percent); `chance` ({k: R@k in [0, 1]}) adds the row
    a ranking that knows nothing would score (`eval.retrieval.chance_recall`)."""
    ks = sorted({int(k) for r in results.values() for k in r.recall})
    lines = ["| features | " + " | ".join(f"R@{k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * r.recall[k]:.1f}" if k in r.recall else "–" for k in ks) + " |")
    if chance is not None:
        lines.append("| *chance (random ranking)* | " + " | ".join(f"*{100 * chance[k]:.1f}*" if k in chance else "–"
                                                                  for k in ks) + " |")
    return "\n".join(lines)


def retrieval_reading(results: Mapping[str, RetrievalResult], *, baseline: str, chance: Mapping[int, float],
                      noise: float = 0.0) -> str:
    """How R@k moved from `baseline` to every other set of features, in points, from the run's numbers.

    `noise` (points; e.g. 100 / number of queries for one query) is the smallest move called a
    change rather than "no difference".
    """
    base = results[baseline]
    lines = []
    for name, r in results.items():
        if name == baseline:
            continue
        parts = []
        for k in sorted(base.recall):
            a, b = 100 * base.recall[k], 100 * r.recall[k]
            parts.append(f"R@{k} {a:.1f} → {b:.1f} % ({b - a:+.1f} points; chance {100 * chance[k]:.1f} %)")
        moves = [100 * (r.recall[k] - base.recall[k]) for k in base.recall]
        biggest = max(moves, key=abs)
        verdict = (f"the largest move is {biggest:+.1f} points" if abs(biggest) > noise else
                   f"no move beyond one query ({noise:.1f} points)")
        lines.append(f"- **{baseline} → {name}**: " + "; ".join(parts) + f". In this run {verdict}.")
    return "\n".join(lines)


def query_options(queries: Any) -> list[tuple[str, int]]:
    """Dropdown entries "MoveLeft · v_MoveLeft_g01_c02.mp4" for every query video, in index order."""
    return [(f"{queries.class_names[int(lab)]} · {Path(p).name}", i) for i, (p, lab) in enumerate(zip(queries.paths, queries.labels))]


def retrieval_explorer(results: Mapping[str, RetrievalResult], *, queries: Any, gallery: Any, frames: FrameSource,
                       k: int = 5):
    """Pick a query test video; see its `k` nearest training videos for every set of features in
    `results` (one row each). Returns the `ipywidgets.VBox` (`.pick(query)`).

    No R@k figure inside: the notebook draws it once above (a second copy only repeated it)."""
    import ipywidgets as w

    query = w.Dropdown(options=query_options(queries), description="query", layout={"width": "420px"})
    rows = {name: (w.HTML(), w.Image(format="jpeg")) for name in results}

    def pick(index: int) -> dict[str, Gallery]:
        out = {}
        for name, result in results.items():
            g = neighbour_gallery(index, result.neighbours, result.similarities, queries=queries, gallery=gallery,
                                  frames=frames, k=k)
            caption, image = rows[name]
            hits = sum(g.hits)
            caption.value = (f"<b>{html.escape(name)}</b> — {hits} of {len(g.hits)} neighbours share the query's class"
                             "<br><small>" + " | ".join(html.escape(c) for c in g.captions) + "</small>")
            image.value = jpeg_bytes(g.image)
            out[name] = g
        return out

    query.observe(lambda change: pick(change["new"]), names="value")
    box = w.VBox([query, *[c for pair in rows.values() for c in pair]])
    box.pick = pick  # type: ignore[attr-defined]
    pick(query.value)
    return box


# --- localization (ch. 4) ---------------------------------------------------------------------


def describe_clip(clip: PretextClip, task: Any) -> str:
    """"true (r1, r2) = (1, 3), change at m = 4 · predicted (1, 3), m = 3" for one clip."""
    task = base_task(task)
    speed_names, loc_names = label_names(task, "speed"), label_names(task, "loc")
    truth = f"true {speed_names[clip.labels['speed']]}, {loc_names[clip.labels['loc']]}"
    pred = (f"predicted {speed_names[clip.predicted['speed']]} (p {clip.confidence['speed']:.2f}), "
            f"{loc_names[clip.predicted['loc']]} (p {clip.confidence['loc']:.2f})")
    return f"{Path(clip.path).name}: {truth} · {pred}"


def localization_timeline(clip: PretextClip, task: Any, *, title: str | None = None) -> go.Figure:
    """The clip's plan on the video timeline, the true change (dashed, from the plan) and the
    predicted change (dotted black line; none when the head says "constant")."""
    task = base_task(task)
    fig = plots.plan_timeline([clip.plan], num_frames=clip.num_frames, names=["clip"], extra_frames=task.extra_frames,
                              title=title if title is not None else describe_clip(clip, task))
    loc = clip.predicted["loc"]
    if loc != task.dummy_loc:
        y = task.locations[loc] + task.extra_frames - 0.5  # plan position of the first r2 frame, as the true mark
        fig.add_hline(y=y, line_dash="dot", line_color="black",
                      annotation_text=f"predicted change at m = {task.locations[loc]}", annotation_position="top left")
    else:
        fig.add_annotation(text="predicted: constant speed", xref="paper", yref="paper", x=0.02, y=0.98,
                           showarrow=False, bgcolor="white")
    fig.update_layout(title_font_size=12)
    return fig


def localization_view(clips: Sequence[PretextClip], task: Any, frames: FrameSource | None = None, *,
                      display: Callable[[Any], None] | None = None):
    """Browse held-out clips: a slider picks one, the timeline shows true vs predicted change and the
    strip (with `frames`) the clip itself. Returns the `ipywidgets.VBox` (`.pick(i)`)."""
    import ipywidgets as w

    if not clips:
        raise ValueError("no clips to show")
    show = _display(display)
    task = base_task(task)
    slider = w.IntSlider(value=0, min=0, max=len(clips) - 1, description="clip")
    text = w.HTML()
    timeline = w.Output()
    strip = w.Image(format="jpeg")

    def pick(i: int) -> go.Figure:
        clip = clips[int(i)]
        text.value = f"<code>{html.escape(describe_clip(clip, task))}</code>"
        fig = localization_timeline(clip, task, title="")
        timeline.clear_output(wait=True)
        with timeline:
            show(fig)
        if frames is not None:
            strip.value = jpeg_bytes(plots.film_strip(np.asarray(frames.read(clip.path, clip.plan.indices)),
                                                     columns=min(len(clip.plan), 9)))
        return fig

    slider.observe(lambda change: pick(change["new"]), names="value")
    box = w.VBox([slider, text, timeline, strip] if frames is not None else [slider, text, timeline])
    box.pick = pick  # type: ignore[attr-defined]
    pick(0)
    return box
