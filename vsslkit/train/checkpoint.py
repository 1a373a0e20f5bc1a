"""Checkpoints that survive a kill at any moment and load with `weights_only=True`.

A checkpoint holds everything an exact resume needs: model, optimizer, scheduler, grad scaler,
the numpy / torch / python RNG states (as tensors and ints, so the safe unpickler accepts them),
the sampler position, epoch, step, the run's config and the vsslkit version.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vsslkit
from vsslkit.atomic import fsync_dir
from vsslkit.errors import DiskFullError, checkpoint_error, is_disk_full


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], *, keep_previous: bool = False) -> Path:
    """Write `state` to `path` atomically: temp file in the same directory, fsync, `os.replace`.

    A reader (or a resumed run after SIGKILL) sees either the old file or the new one, never a
    torn write. With `keep_previous`, the file being replaced stays as `previous_checkpoint(path)`
    (a hard link, so no copy), the fallback when `path` turns out unreadable. A full disk raises
    `DiskFullError` and leaves the existing files untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.is_file():
            _keep_as_previous(path)
        os.replace(tmp, path)
        fsync_dir(path.parent)  # make the rename itself durable
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as a RuntimeError
        if is_disk_full(exc):
            raise DiskFullError(path, "a checkpoint") from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class BackgroundSaver:
    """`save_checkpoint` on a background thread, one write at a time, so training goes on meanwhile.

    Why: a checkpoint is mostly serialisation and `fsync` (the disk, not the CPU): ~12-35 ms for the
    classroom network's 7 MB on the 2-core machine, seconds for a paper-size network on a network
    disk, every `checkpoint_every` steps. `save` copies every tensor of the state first (training
    mutates the live ones in place; CUDA tensors are copied to the CPU), then returns. A write's error
    (a full disk: `DiskFullError`) is raised by the next `save` or by `wait`. The file is written as
    `save_checkpoint` writes it, so a kill at any moment leaves the previous checkpoint or the new
    one, never a torn file; a resume from the previous one is as exact, only a few steps earlier.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, path: str | os.PathLike, state: dict[str, Any], *, keep_previous: bool = False) -> None:
        self.wait()
        snapshot = _copied(state)

        def write() -> None:
            try:
                save_checkpoint(path, snapshot, keep_previous=keep_previous)
            except BaseException as exc:  # noqa: BLE001 -- re-raised on the training thread
                self._error = exc

        # Not a daemon: an interpreter exiting mid-write finishes the write first.
        self._thread = threading.Thread(target=write, name="vsslkit-checkpoint")
        self._thread.start()

    def close(self) -> None:
        """`wait`, except that while an exception is already on its way out (training stopped) the
        write's own error is dropped, so the first error is the one the user sees."""
        if sys.exc_info()[1] is None:
            self.wait()
            return
        try:
            self.wait()
        except BaseException:  # noqa: BLE001,S110 -- the exception in flight wins
            pass

    def wait(self) -> None:
        """Block until the write in flight (if any) is on disk; raise its error, if it had one."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error


def _copied(value: Any) -> Any:
    """`value` with every tensor replaced by a CPU copy (containers rebuilt, other leaves shared)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return type(value)(*(_copied(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(v) for v in value)
    return value


def previous_checkpoint(path: str | os.PathLike) -> Path:
    """Where `save_checkpoint(..., keep_previous=True)` keeps the replaced file (`last.pt` -> `prev.pt`)."""
    path = Path(path)
    return path.with_name(f"prev{path.suffix}" if path.stem == "last" else f"{path.stem}.prev{path.suffix}")


def _keep_as_previous(path: Path) -> None:
    previous = previous_checkpoint(path)
    tmp = path.with_name(f".{previous.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError as exc:
        if is_disk_full(exc):
            raise
        shutil.copyfile(path, tmp)  # a filesystem without hard links
    os.replace(tmp, previous)


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with the safe unpickler; a one-line `CheckpointError` names the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise checkpoint_error(path, exc) from exc


# Alias names used in docs/architecture.md.
save_atomic = save_checkpoint
load = load_checkpoint


def rng_state() -> dict[str, Any]:
    """numpy (global), torch (CPU and CUDA) and python `random` states as tensors / ints."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_state(
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    sampler_state: dict[str, int] | None = None,
    epoch: int = 0,
    step: int = 0,
    config: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dictionary `save_checkpoint` writes (weights of an uncompiled, unwrapped model)."""
    return {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state(),
        "sampler": dict(sampler_state or {}),
        "epoch": int(epoch),
        "step": int(step),
        "config": dict(config or {}),
        **({"settings": dict(settings)} if settings else {}),
        "vsslkit_version": vsslkit.__version__,
    }


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP / torch.compile wrappers (its state-dict keys are stable)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model
