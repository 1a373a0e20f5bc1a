"""Every evaluation number is stored with the protocol that produced it.

Reproduction complaints about the seeds are mostly about undocumented protocol (clip vs video
accuracy, softmax vs logit averaging, which layer, which split, dropped test videos). A result
file is JSON `{"metrics": {...}, "protocol": {...}, "created": ...}`; `results_to_markdown`
turns many of them into one table and averages runs that differ only in their seed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from vsslkit import __version__
from vsslkit.atomic import write_text_atomic

# Protocol fields that never make two runs "different protocols" when aggregating over seeds.
_RUN_FIELDS = ("seed", "command", "checkpoint_sha256", "checkpoint")


@dataclass
class Protocol:
    """How a number was measured. Fields left at None did not apply to that protocol."""

    task: str  # e.g. "retrieval", "video_classification", "svm_loo", "pair_similarity"
    dataset: str
    split: int | None = None
    subset: str | None = None  # queries / test subset, e.g. "test"
    label_fraction: float | None = None
    layer: str | None = None
    pooling: str | None = None
    clips_per_video: int | None = None
    averaging: str | None = None  # "softmax" | "logits" for video-level accuracy
    crop: int | None = None
    clip_len: int | None = None
    stride: int | None = None
    residual: bool | None = None
    checkpoint: str | None = None  # path, or "random"
    checkpoint_sha256: str | None = None
    seed: int | None = None
    backbone: str | None = None
    vsslkit_version: str = __version__
    command: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (identifies the exact checkpoint behind a number)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_fields(checkpoint: str | os.PathLike | None) -> dict[str, str | None]:
    """`checkpoint` + `checkpoint_sha256` for a Protocol; "random"/None mean no weights were loaded."""
    if checkpoint is None or str(checkpoint) == "random":
        return {"checkpoint": None if checkpoint is None else "random", "checkpoint_sha256": None}
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return {"checkpoint": str(path.resolve()), "checkpoint_sha256": file_sha256(path)}


def write_result(path: str | os.PathLike, metrics: dict[str, Any], protocol: Protocol) -> Path:
    """Write metrics + protocol as JSON atomically (temp file + rename) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "metrics": _jsonable(metrics),
        "protocol": _jsonable(asdict(protocol)),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def load_results(paths: list[str | os.PathLike]) -> list[dict[str, Any]]:
    """Read result files; each dict gets a "path" key. Malformed files raise naming the file."""
    results = []
    for p in paths:
        p = Path(p)
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{p}: not a readable result file ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict) or not isinstance(
            data.get("protocol"), dict
        ):
            raise TypeError(f"{p}: result file needs 'metrics' and 'protocol' objects")
        data["path"] = str(p)
        results.append(data)
    return results


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Scalar metrics with dotted keys (`{"recall": {"1": .3}}` → `{"recall.1": .3}`); lists dropped."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def results_to_markdown(
    results: list[dict[str, Any]],
    columns: list[str] | None = None,
    *,
    protocol_columns: list[str] | None = None,
    aggregate_seeds: bool = True,
    digits: int = 3,
) -> str:
    """A markdown table: protocol columns, then metric columns; one row per protocol.

    `columns` picks metrics by dotted name (default: every scalar metric in any result, minus
    per-class entries). `protocol_columns` defaults to the protocol fields that differ between
    rows (always including task and dataset). With `aggregate_seeds`, runs whose protocols
    differ only in seed/checkpoint path/command are merged into "mean ± std (n)" cells
    (sample std; a single run shows just its value).
    """
    if not results:
        raise ValueError("no results to tabulate")
    flat = [flatten_metrics(r["metrics"]) for r in results]
    if columns is None:
        seen: dict[str, None] = {}
        for f in flat:
            seen.update({k: None for k in f if not k.startswith("per_class")})
        columns = list(seen)
    protos = [dict(r["protocol"]) for r in results]
    for p in protos:
        p.pop("vsslkit_version", None)
        extra = p.pop("extra", {}) or {}
        p.update({f"extra.{k}": v for k, v in extra.items()})
    if protocol_columns is None:
        skip = ("command", "checkpoint_sha256")
        keys = [f.name for f in fields(Protocol) if f.name not in skip]  # dataclass order, not JSON's
        keys += sorted({k for p in protos for k in p if k not in keys and k not in skip})
        protocol_columns = [k for k in keys if k in ("task", "dataset") or len({_cell(p.get(k)) for p in protos}) > 1]
    ignored = set(_RUN_FIELDS) if aggregate_seeds else set()
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(protos):
        key = json.dumps({k: v for k, v in p.items() if k not in ignored}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(i)
    shown_protocol = [c for c in protocol_columns if not (aggregate_seeds and c in _RUN_FIELDS)]
    header = shown_protocol + columns + (["runs"] if aggregate_seeds else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for members in groups.values():
        row = [_cell(protos[members[0]].get(c)) for c in shown_protocol]
        for col in columns:
            values = [flat[i][col] for i in members if col in flat[i]]
            row.append(_mean_std(values, digits))
        if aggregate_seeds:
            row.append(str(len(members)))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _mean_std(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str) and ("/" in value or os.sep in value):
        return Path(value).name
    return str(value).replace("|", "\\|")


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays → Python, Paths → str, NaN → None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return str(value)
    return value
