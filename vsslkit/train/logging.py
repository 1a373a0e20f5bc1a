"""Training metrics to `metrics.csv`, optionally TensorBoard, and a callback for live notebook plots.

The CSV is the record a notebook or a report reads back; its header grows when a new metric
appears (e.g. the first evaluation), and a resumed run drops the rows logged after the step it
resumed from, so the file always describes one consistent run.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = dict[str, Any]


class MetricsLogger:
    """Append rows to `out_dir/metrics.csv`; mirror them to TensorBoard and `on_log` when asked."""

    def __init__(self, out_dir: str | os.PathLike, *, tensorboard: bool = False,
                 on_log: Callable[[Row], None] | None = None, enabled: bool = True,
                 resume_step: int | None = None):
        self.path = Path(out_dir) / "metrics.csv"
        self.on_log, self.enabled = on_log, enabled
        self.rows: list[Row] = []
        self.fields: list[str] = []
        self.writer = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= resume_step]
            for r in self.rows:
                self._add_fields(r)
        self._rewrite()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise RuntimeError("TensorBoard logging needs the `tensorboard` package: "
                                   "pip install 'vsslkit[tensorboard]'") from exc
            self.writer = SummaryWriter(log_dir=str(self.path.parent / "tensorboard"))

    def _add_fields(self, row: Row) -> bool:
        new = [k for k in row if k not in self.fields]
        self.fields.extend(new)
        return bool(new)

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, restval="")
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.path)

    def log(self, row: Row) -> None:
        """Record one row (step, epoch, loss, metrics, lr, time, ...)."""
        if self.on_log is not None:
            self.on_log(dict(row))
        if not self.enabled:
            return
        self.rows.append(row)
        if self._add_fields(row):
            self._rewrite()
        else:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields, restval="").writerow(row)
        if self.writer is not None:
            step = int(row["step"])
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
