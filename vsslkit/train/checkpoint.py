"""Checkpoints that survive a kill at any moment and load with `weights_only=True`.

A checkpoint holds everything an exact resume needs: model, optimizer, scheduler, grad scaler,
the numpy / torch / python RNG states (as tensors and ints, so the safe unpickler accepts them),
the sampler position, epoch, step, the run's config and the vsslkit version.
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import torch

import vsslkit


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically: temp file in the same directory, fsync, `os.replace`.

    A reader (or a resumed run after SIGKILL) sees either the old file or the new one, never a
    torn write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class CheckpointWriter:
    """`save_checkpoint` in a background thread, so training does not wait for pickling and fsync.

    `save` copies every tensor of the state to the CPU first (the copy is the checkpoint; training
    may change the weights right after), waits for the previous write, and starts the next one.
    `wait` blocks until the last write is durable and re-raises its error (e.g. a full disk).
    A loader of the same path (`load_checkpoint`) waits for a write still in flight; an exiting
    interpreter finishes pending writes (SIGKILL leaves the previous file, never a torn one).
    """

    def __init__(self) -> None:
        self._future: Future | None = None
        self._error: BaseException | None = None

    def save(self, path: str | os.PathLike, state: dict[str, Any]) -> None:
        self.wait()
        snapshot = _cpu_copy(state)
        with _PENDING_LOCK:  # registered before it starts, so a loader cannot miss it
            self._future = _PENDING[os.path.abspath(path)] = _WRITERS.submit(self._write, Path(path), snapshot)

    def wait(self) -> None:
        if self._future is not None:
            self._future.result()
            self._future = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _write(self, path: Path, state: dict[str, Any]) -> None:
        try:
            save_checkpoint(path, state)
        except BaseException as exc:  # noqa: BLE001 -- handed to the training thread by wait()
            self._error = exc


_PENDING: dict[str, Future] = {}
_PENDING_LOCK = threading.Lock()
# Long-lived writer threads (a thread start per checkpoint cost ~7 ms on a loaded machine); pool
# threads are joined at interpreter exit, so a pending write completes unless the process is killed.
_WRITERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="vsslkit-checkpoint")


def _cpu_copy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with the safe unpickler; a clear error names the file on failure."""
    with _PENDING_LOCK:
        pending = _PENDING.pop(os.path.abspath(path), None)
    if pending is not None:
        wait([pending])  # a background write of this file is still in flight in this process
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"{path}: not a loadable vsslkit checkpoint ({type(exc).__name__}: {exc})") from exc


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
