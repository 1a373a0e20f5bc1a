"""The one renderer for every `report.html` the kit writes: verdict first, then the table, the
figures, and the protocol and configuration folded away.

A reader opens the page for the answer, so the page leads with one verdict sentence per measure;
the results table is markdown rendered by `markdown-it-py` into a real `<table>` (never shown as
pipes and dashes); plotly figures follow (plotly.js inlined once, so the file opens offline);
everything else sits in `<details>`. The CSS keeps every element inside the page width.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from markdown_it import MarkdownIt

from vsslkit.atomic import write_text_atomic

# commonmark + GFM tables; raw HTML in the text is escaped, not passed through.
_MD = MarkdownIt("commonmark", {"html": False}).enable("table")

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.45;color:#222;
     max-width:1100px;margin:0 auto;padding:16px 24px;overflow-wrap:anywhere}
h1{font-size:1.6em;margin:.4em 0 .6em} h2{font-size:1.25em;margin:1.6em 0 .4em;border-bottom:1px solid #ddd}
.verdict p{font-size:1.15em;margin:.35em 0;padding:.35em .7em;border-left:6px solid #999;background:#f7f7f7}
.verdict p.better{border-color:#2ca02c} .verdict p.worse{border-color:#d62728} .verdict p.mixed{border-color:#ff7f0e}
table{border-collapse:collapse;width:100%;max-width:100%;margin:.6em 0;font-size:.95em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f0f0f0} td:not(:first-child){font-variant-numeric:tabular-nums}
.figure{max-width:100%;overflow:hidden} .caption{color:#555;margin:.2em 0 .6em}
details table{width:auto}
details{margin:.8em 0;padding:.3em .7em;border:1px solid #ddd;border-radius:4px}
summary{cursor:pointer;font-weight:600}
code{overflow-wrap:anywhere;white-space:normal}
"""


@dataclass
class Verdict:
    """One headline sentence (markdown inline); `tone` is "better", "worse" or "mixed" (the colour bar)."""

    text: str
    tone: str = "mixed"


@dataclass
class PageFigure:
    heading: str
    figure: go.Figure
    caption: str = ""  # markdown: how to read the figure


@dataclass
class ReportPage:
    """Everything a report page shows, in reading order."""

    title: str
    verdicts: Sequence[Verdict]
    body: str  # markdown: the results table and a short note under it
    figures: Sequence[PageFigure] = ()
    details: Sequence[tuple[str, str]] = ()  # (summary, markdown), folded at the end
    notes: Sequence[str] = field(default_factory=list)  # markdown, e.g. what this results file lacks


def render_markdown(text: str) -> str:
    return _MD.render(text)


def config_table(config: Mapping[str, Any]) -> str:
    """A nested configuration as a two-column markdown table of dotted keys (fits the page, unlike a JSON dump)."""
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append(f"| `{prefix}` | {_cell(_shown(value)) or '–'} |")

    walk("", config)
    return "\n".join(["| setting | value |", "|---|---|", *rows])


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, (Mapping, bool)) or value is None:
        return json.dumps(value)  # {} / true / null, as in the results JSON
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_html(page: ReportPage) -> str:
    """The whole page as one string (plotly.js inlined with the first figure)."""
    esc = html.escape
    parts = ["<!doctype html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{esc(page.title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{esc(page.title)}</h1>", "<section class='verdict'>"]
    parts += [f"<p class='{esc(v.tone)}'>{_MD.renderInline(v.text)}</p>" for v in page.verdicts]
    parts += ["</section>", "<section class='results'>", render_markdown(page.body)]
    parts += [f"<p class='caption'>{_MD.renderInline(n)}</p>" for n in page.notes]
    parts.append("</section>")
    first = True
    for item in page.figures:
        parts.append(f"<h2>{esc(item.heading)}</h2>")
        if item.caption:
            parts.append(f"<p class='caption'>{_MD.renderInline(item.caption)}</p>")
        plot = item.figure.to_html(full_html=False, include_plotlyjs="inline" if first else False,
                                   default_width="100%", config={"responsive": True, "displaylogo": False})
        parts.append(f"<div class='figure'>{plot}</div>")
        first = False
    for summary, text in page.details:
        parts.append(f"<details><summary>{esc(summary)}</summary>{render_markdown(text)}</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report_html(path: str | Path, page: ReportPage) -> Path:
    return write_text_atomic(path, render_html(page))
