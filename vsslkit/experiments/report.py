"""Numbers for the reports: mean ± std over seeds, markdown tables, paired differences, verdicts.

The HTML page itself is rendered by `vsslkit.viz.report_html` (one renderer for every report)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std over seeds; NaN, NaN when there is no value or one is NaN (a run without
    that number, e.g. tracking's pretext rate: `statistics.stdev` would raise on it)."""
    values = [float(v) for v in values]
    if not values or any(math.isnan(v) for v in values):
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


def verdict(diffs: Sequence[float], what: str) -> tuple[str, str]:
    """The headline sentence for one measure from its per-seed paired differences, and its tone.

    "beats" only when pretraining is better on every paired seed; a mixed record is called so.
    Returns (sentence, tone): "better" (every seed better), "worse" (no seed better and the mean
    difference negative) or "mixed" (the rest, ties included).
    """
    m, s = mean_std(diffs)
    wins, n = sum(d > 0 for d in diffs), len(diffs)
    spread = f" ± {s:.1f}" if n > 1 else ""
    seeds = "seed" if n == 1 else "seeds"
    if wins == n:
        return (f"Pretraining beats random initialisation on {what}: {m:+.1f}{spread} points "
                f"(paired, better on {n} of {n} {seeds})."), "better"
    if wins == 0:
        return (f"Pretraining does not beat random initialisation on {what}: {m:+.1f}{spread} points "
                f"(paired, better on 0 of {n} {seeds})."), "worse" if m < 0 else "mixed"
    return (f"No clear difference on {what}: {m:+.1f}{spread} points (paired, pretraining better on {wins} of "
            f"{n} {seeds})."), "mixed"
