"""Look at an embedding's neighbours: film strips of a video and of its nearest videos.

Two views over the same plain functions: `embedding_explorer` (an ipywidgets app: pick a video,
see its neighbours) and `neighbours_html` (a self-contained page, thumbnails embedded as base64
JPEG, what `vsslkit neighbours --html` writes). Strips come from the retrieval explorer's pieces
(`video_strip`, green/red frames); the neighbours from `vsslkit.eval.embed`. A neighbour from the
query's own folder is framed green, one from another folder red: with one folder per class (as
in `../shared/real_videos/labeled`) that is "same class".
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsslkit.eval.embed import Embedding, Neighbours, atomic_write, neighbours_of, short_names
from vsslkit.viz.explorers import OK_COLOUR, WRONG_COLOUR, _framed, jpeg_bytes, video_strip
from vsslkit.viz.widgets import FrameSource

STRIP_HEIGHT = 64  # thumbnail height of one film strip, pixels


@dataclass(frozen=True)
class StripRow:
    """One video of a neighbour list: its caption and film strip (None when its frames are unreadable)."""

    path: str
    caption: str
    strip: np.ndarray | None
    same_folder: bool | None  # None for the query itself
    problem: str = ""


def thumbnail_strip(frames: FrameSource, path: str, *, num_frames: int | None = None, count: int = 8,
                    height: int = STRIP_HEIGHT) -> np.ndarray:
    """`count` frames spread over the video in one row, scaled to `height` pixels (small pages)."""
    import cv2

    strip = video_strip(frames, path, num_frames=num_frames, count=count, columns=count)
    if strip.shape[0] != height:
        width = max(1, round(strip.shape[1] * height / strip.shape[0]))
        strip = cv2.resize(strip, (width, height), interpolation=cv2.INTER_AREA)
    return strip


def strip_rows(embedding: Embedding, result: Neighbours, frames: FrameSource, *, count: int = 8,
               height: int = STRIP_HEIGHT) -> list[StripRow]:
    """The query's strip, then each neighbour's (rank, cosine, name; framed by same/other folder).

    A video whose frames cannot be read any more (moved, deleted) gets a row with its problem
    instead of a picture: one missing file never hides the other neighbours.
    """
    names = dict(zip(embedding.paths, short_names(embedding.paths)))
    counts = dict(zip(embedding.paths, embedding.num_frames))
    folder = os.path.dirname(result.query)

    def strip_of(path: str, colour: tuple[int, int, int] | None) -> tuple[np.ndarray | None, str]:
        try:
            image = thumbnail_strip(frames, path, num_frames=counts.get(path), count=count, height=height)
        except Exception as exc:  # noqa: BLE001 -- shown next to the video instead of aborting the page
            return None, f"frames unavailable ({type(exc).__name__}: {exc})"
        return _framed(image, colour), ""

    q_strip, q_problem = strip_of(result.query, None)
    rows = [StripRow(result.query, f"query: {names.get(result.query, Path(result.query).name)}", q_strip, None,
                     q_problem)]
    for rank, (row, sim) in enumerate(zip(result.rows, result.similarities), start=1):
        path = embedding.paths[int(row)]
        same = os.path.dirname(path) == folder
        itself = result.query_row is not None and int(row) == result.query_row
        caption = f"{rank}. {names[path]} · cosine {float(sim):.3f}" + (" · itself" if itself else "")
        image, problem = strip_of(path, OK_COLOUR if same else WRONG_COLOUR)
        rows.append(StripRow(path, caption, image, same, problem))
    return rows


def video_options(embedding: Embedding) -> list[tuple[str, int]]:
    """Dropdown entries ("wave/clip.avi", row) for every embedded video, in file order."""
    return [(name, i) for i, name in enumerate(short_names(embedding.paths))]


def neighbours_summary(rows: Sequence[StripRow]) -> str:
    """"3 of 5 neighbours from the query's folder" (the query row excluded)."""
    neighbours = [r for r in rows if r.same_folder is not None]
    same = sum(bool(r.same_folder) for r in neighbours)
    return f"{same} of {len(neighbours)} neighbours from the query's folder"


def embedding_explorer(embedding: Embedding, frames: FrameSource, *, k: int = 5, count: int = 8,
                       exclude_self: bool = True, display: Callable[[Any], None] | None = None):
    """Pick an embedded video; see its film strip and its `k` nearest videos' strips below it.

    `frames` is the frame store the videos were embedded through (any `FrameSource`). Returns
    the `ipywidgets.VBox`; `.pick(row)` runs the selection callback and returns its `StripRow`s,
    `.toggle(flag)` switches "leave the video itself out".
    """
    import ipywidgets as w

    if len(embedding) < 2:
        raise ValueError(f"an embedding of {len(embedding)} video(s) has no neighbours to show")
    video = w.Dropdown(options=video_options(embedding), description="video", layout={"width": "520px"})
    leave_out = w.Checkbox(value=exclude_self, description="leave the video itself out")
    summary = w.HTML()
    panel = w.VBox()
    state = {"exclude": exclude_self}

    def pick(row: int) -> list[StripRow]:
        result = neighbours_of(embedding, [embedding.paths[int(row)]], k=k, exclude_self=state["exclude"])[0]
        rows = strip_rows(embedding, result, frames, count=count)
        summary.value = f"<b>{html.escape(neighbours_summary(rows))}</b> (green frame: same folder, red: another)"
        children = []
        for r in rows:
            children.append(w.HTML(f"<small>{html.escape(r.caption)}</small>"))
            children.append(w.Image(value=jpeg_bytes(r.strip), format="jpeg") if r.strip is not None
                            else w.HTML(f"<small><i>{html.escape(r.problem)}</i></small>"))
        panel.children = children
        return rows

    def toggle(flag: bool) -> list[StripRow]:
        state["exclude"] = bool(flag)
        return pick(video.value)

    video.observe(lambda change: pick(change["new"]), names="value")
    leave_out.observe(lambda change: toggle(change["new"]), names="value")
    box = w.VBox([w.HBox([video, leave_out]), summary, panel])
    box.pick = pick  # type: ignore[attr-defined]
    box.toggle = toggle  # type: ignore[attr-defined]
    pick(video.value)
    return box


def _img(image: np.ndarray) -> str:
    return f'<img alt="" src="data:image/jpeg;base64,{base64.b64encode(jpeg_bytes(image, quality=80)).decode()}">'


def neighbours_html(embedding: Embedding, results: Sequence[Neighbours], frames: FrameSource, *,
                    title: str = "vsslkit neighbours", count: int = 8) -> str:
    """A self-contained HTML page: per query, its strip and its neighbours' strips with captions."""
    proto = embedding.protocol
    head = (f"{len(embedding)} videos · checkpoint {html.escape(str(proto.get('checkpoint')))} · layer "
            f"{html.escape(str(proto.get('layer')))}/{html.escape(str(proto.get('pooling')))} · "
            f"{proto.get('clips_per_video')} clips per video · cosine on features standardised with all "
            "embedded videos")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        ("<style>body{font-family:sans-serif;margin:1em}td{padding:2px 8px;vertical-align:middle}"
        "h2{font-size:1.1em;margin-top:1.5em}.note{color:#a00}</style></head><body>"),
        f"<h1>{html.escape(title)}</h1><p>{head}. Green frame: same folder as the query; red: another folder.</p>",
    ]
    for result in results:
        rows = strip_rows(embedding, result, frames, count=count)
        parts.append(f"<h2>{html.escape(rows[0].caption)} — {html.escape(neighbours_summary(rows))}</h2><table>")
        for r in rows:
            picture = _img(r.strip) if r.strip is not None else f"<span class='note'>{html.escape(r.problem)}</span>"
            parts.append(f"<tr><td>{html.escape(r.caption)}</td><td>{picture}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html(path: str | os.PathLike, text: str) -> Path:
    """Write a page atomically: an interrupted write never leaves half a page."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
