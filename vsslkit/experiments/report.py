"""Turn comparison results into a markdown report and a self-contained HTML page of plotly figures."""

from __future__ import annotations

import html
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

import plotly.graph_objects as go

from vsslkit.atomic import write_text_atomic
from vsslkit.viz import plots


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: Sequence[float], digits: int = 1) -> str:
    """"m ± s (n)" for several seeds, the plain value for one."""
    m, s = mean_std(values)
    if len(values) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def comparison_rows(runs: Mapping[str, list[dict]], metrics: Sequence[tuple[str, str, str]]) -> list[list[str]]:
    """Rows `[init, metric values…]`; `metrics` are (section, key, column title)."""
    rows = []
    for name, per_seed in runs.items():
        rows.append([name] + [fmt([r[section][key] for r in per_seed]) for section, key, _ in metrics])
    return rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def paired_differences(runs: Mapping[str, list[dict]], a: str, b: str, section: str, key: str) -> list[float]:
    """Per-seed differences b - a (the runs are paired by seed)."""
    return [rb[section][key] - ra[section][key] for ra, rb in zip(runs[a], runs[b])]


def write_html(path: str | Path, title: str, sections: Sequence[tuple[str, go.Figure | str]]) -> Path:
    """One self-contained page (plotly.js inlined once: it must open offline)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             ("<style>body{font-family:sans-serif;max-width:1100px;margin:auto} pre{background:#f6f6f6;padding:8px}"
             "</style></head><body>"), f"<h1>{html.escape(title)}</h1>"]
    first = True
    for heading, item in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(item, go.Figure):
            parts.append(item.to_html(full_html=False, include_plotlyjs="inline" if first else False))
            first = False
        else:
            parts.append(f"<pre>{html.escape(item)}</pre>")
    parts.append("</body></html>")
    path = Path(path)
    write_text_atomic(path, "\n".join(parts))
    return path


def curves_figure(curves: Mapping[str, list[dict]], *, metrics: Sequence[str], title: str) -> go.Figure:
    return plots.training_curves(curves, metrics=metrics, title=title)
