"""One training loop for pretext tasks and downstream fine-tuning; read it top to bottom.

`fit` asks the model for `training_step(batch) -> (loss, metrics)` and does the rest: device,
AMP, DDP, gradient clipping, the LR schedule, logging, periodic evaluation and checkpoints from
which a killed run resumes *exactly* (same weights bit for bit on CPU with deterministic
algorithms): the checkpoint holds every RNG state and the sampler's position in the epoch, and
the crops of step `s` are seeded by `s` (see `vsslkit.data.clips.BatchPreparer`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from vsslkit.data.clips import EpochSampler, ReadFailure
from vsslkit.errors import CheckpointError, UsageError
from vsslkit.train.checkpoint import (
    BackgroundSaver,
    load_checkpoint,
    make_state,
    previous_checkpoint,
    set_rng_state,
    unwrap,
)
from vsslkit.train.distributed import DistInfo, mean_across_ranks, wrap_for_training
from vsslkit.train.logging import MetricsLogger, Row
from vsslkit.train.prefetch import core_is_free, prefetched


def make_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float, *, momentum: float = 0.9,
                   weight_decay: float | None = None) -> torch.optim.Optimizer:
    """`sgd` (momentum 0.9, weight decay 5e-4, as in the seeds) or `adamw` (weight decay 0.05)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters (is everything frozen?)")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum,
                               weight_decay=5e-4 if weight_decay is None else weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=0.05 if weight_decay is None else weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; use 'sgd' or 'adamw'")


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, *, milestones: Iterable[int] = (),
                   gamma: float = 0.1, total_steps: int | None = None) -> torch.optim.lr_scheduler.LRScheduler | None:
    """`multistep` (LR × gamma at each milestone), `cosine` (to 0 over `total_steps`) or `constant`.

    `fit` steps the scheduler once per optimizer step, so milestones count steps.
    """
    if name == "constant":
        return None
    if name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=sorted(int(m) for m in milestones),
                                                    gamma=gamma)
    if name == "cosine":
        if not total_steps:
            raise ValueError("the cosine schedule needs total_steps")
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(total_steps))
    raise ValueError(f"unknown schedule {name!r}; use 'multistep', 'cosine' or 'constant'")


@dataclass
class FitResult:
    """What a run did: steps, last logged loss, the logged rows, files written, unreadable videos."""

    steps: int
    epochs: int
    final_loss: float
    history: list[Row]
    out_dir: Path
    checkpoint: Path | None
    seconds: float
    resumed_from: int | None = None
    failures: list[ReadFailure] = field(default_factory=list)


def fit(
    model: torch.nn.Module,
    train_loader: torch.utils.data.DataLoader,
    *,
    optimizer: torch.optim.Optimizer,
    out_dir: str | Path,
    scheduler: Any = None,
    epochs: int = 1,
    max_steps: int | None = None,
    prepare: Callable[..., dict[str, Any]] | None = None,
    device: str | torch.device = "cpu",
    amp: bool = False,
    grad_clip: float | None = None,
    compile: bool = False,
    channels_last: bool = False,
    log_every: int = 10,
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    checkpoint_every: int | None = 100,
    resume: bool = True,
    progress: bool = True,
    on_log: Callable[[Row], None] | None = None,
    tensorboard: bool = False,
    config: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    dist_info: DistInfo | None = None,
    sync_bn: bool = False,
    find_unused_parameters: bool = False,
) -> FitResult:
    """Train `model` for `epochs` (or exactly `max_steps` optimizer steps) and return a `FitResult`.

    `prepare(raw_batch, step=step)` turns a loader batch into model input (e.g. `BatchPreparer`);
    without it tensors are moved to `device`. With `resume`, an existing
    `out_dir/checkpoints/last.pt` is loaded and training continues from the next batch (exactly
    the batch an uninterrupted run would have seen when the loader uses an `EpochSampler`).
    Checkpoints are written every `checkpoint_every` steps and at epoch ends (unless it is None),
    and always after the last step. `config` (and `settings`: training choices a recipe keeps out of
    its model config, e.g. the learning rate) are stored in the checkpoint; resuming with other
    values raises `ResumeMismatchError` listing them.
    `amp` uses float16 + GradScaler on CUDA and bfloat16 autocast on CPU. Each logged row holds the
    mean of the loss and metrics over the `log_every` steps since the previous row.
    """
    # --- setup -----------------------------------------------------------------------------
    device = torch.device(device)
    info = dist_info or DistInfo(device=device)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "checkpoints" / "last.pt"
    cuda = device.type == "cuda"
    model.to(device)
    if channels_last and cuda:
        model.to(memory_format=torch.channels_last_3d)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and cuda)
    amp_dtype = torch.float16 if cuda else torch.bfloat16
    sampler = _find_sampler(train_loader)
    steps_per_epoch = len(train_loader)
    total_steps = int(max_steps) if max_steps is not None else int(epochs) * steps_per_epoch
    if total_steps < 1 or steps_per_epoch < 1:
        raise ValueError(f"nothing to train: {total_steps} steps, {steps_per_epoch} batches per epoch")

    # --- resume ----------------------------------------------------------------------------
    step, epoch, position, resumed_from = 0, 0, 0, None
    state = _resume_state(ckpt_path, device, info) if resume else None
    if state is not None:
        check_same_config(_with_settings(state.get("config"), state.get("settings")),
                          _with_settings(config, settings), ckpt_path)
        try:
            unwrap(model).load_state_dict(state["model"])
        except RuntimeError as exc:  # same config, other model (a library caller without config)
            first = str(exc).strip().splitlines()[-1].strip()
            raise ResumeMismatchError(ckpt_path, f"does not fit this model ({first}); resume=False (--no-resume) "
                                      "starts over, or use another out_dir (--out)") from exc
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        step, epoch, resumed_from = int(state["step"]), int(state["epoch"]), int(state["step"])
        position = int(state["sampler"].get("position", 0))
        if sampler is not None:
            sampler.load_state_dict(state["sampler"])
        if info.is_main:
            tqdm.write(f"resumed from {ckpt_path} at step {step} (epoch {epoch}, item {position})")
            if sampler is None and position:
                tqdm.write("note: this loader has no EpochSampler; the epoch is replayed up to the resume point, "
                           "which repeats the same batches only if the loader's order is deterministic")

    step_fn = wrap_for_training(model, info, sync_bn=sync_bn, find_unused_parameters=find_unused_parameters)
    if compile:
        step_fn = torch.compile(step_fn)
    logger = MetricsLogger(out_dir, tensorboard=tensorboard, on_log=on_log, enabled=info.is_main,
                           resume_step=resumed_from)
    bar = tqdm(total=total_steps, initial=step, disable=not (progress and info.is_main), desc="train")
    failures: list[ReadFailure] = []
    history: list[Row] = []
    window: list[dict[str, float]] = []
    last_loss = float("nan")
    t_start = time.perf_counter()

    saver = BackgroundSaver()  # serialising and fsync happen while the next steps train

    def checkpoint(consumed: int, at_epoch: int) -> None:
        if info.is_main:
            sampler_state = sampler.state_dict(consumed) if sampler is not None else {"position": consumed}
            sampler_state["epoch"] = at_epoch  # the epoch the next batch belongs to
            saver.save(ckpt_path, make_state(model=model, optimizer=optimizer, scheduler=scheduler,
                                             scaler=scaler if scaler.is_enabled() else None,
                                             sampler_state=sampler_state, epoch=at_epoch, step=step,
                                             config=config, settings=settings), keep_previous=True)

    # --- the loop --------------------------------------------------------------------------
    batch_size = train_loader.batch_size or 1
    background = core_is_free(device)  # else preparing inline is faster (vsslkit.train.prefetch)

    def to_model_input(raw: Any, at_step: int) -> Any:
        return prepare(raw, step=at_step) if prepare is not None else _to_device(raw, device)

    try:  # (indented for the finally: the loop itself reads as it always did)
        while step < total_steps:
            if sampler is not None:
                sampler.set_epoch(epoch)
            if hasattr(train_loader.dataset, "set_epoch"):
                train_loader.dataset.set_epoch(epoch)
            if hasattr(unwrap(model), "before_epoch"):  # e.g. ASCNet publishes its neighbour table to the loader
                unwrap(model).before_epoch(epoch)
            # Creating a loader iterator draws a worker seed from the global torch RNG; isolate it so
            # a run resumed mid-epoch keeps the same RNG stream as an uninterrupted one.
            rng = torch.get_rng_state()
            batches = iter(train_loader)
            torch.set_rng_state(rng)
            batch_in_epoch = position // batch_size
            skip = batch_in_epoch if sampler is None else 0  # no EpochSampler: replay up to the resume point
            position = 0
            # Train mode once per epoch and again after each log row and evaluation (their callbacks may
            # switch any submodule to eval): not every step, where walking the modules cost ~0.5 ms.
            model.train()
            # the next batch is loaded and prepared in a thread while this one trains, when a core is free
            # for it (bit-identical batches either way)
            for raw, batch in prefetched(batches, to_model_input, first_step=step, skip=skip, background=background):
                for failure in raw.get("failures", []) if isinstance(raw, dict) else []:
                    failures.append(failure)
                    _report_failure(out_dir, failure, info)
                if not model.training:
                    model.train()
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
                    loss, metrics = step_fn(batch)
                if not torch.isfinite(loss.detach()).all():
                    raise FloatingPointError(f"loss became {loss.item()} at step {step} (lower the LR or use grad_clip)")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if grad_clip is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None:
                    scheduler.step()
                if hasattr(unwrap(model), "after_optimizer_step"):
                    unwrap(model).after_optimizer_step()
                step += 1
                batch_in_epoch += 1
                bar.update(1)
                window.append({"loss": float(loss.detach()), **{k: float(v) for k, v in metrics.items()}})

                if step % log_every == 0 or step == total_steps:
                    # the mean over the steps since the last row: one batch's accuracy is too noisy to read
                    values = {k: sum(w[k] for w in window if k in w) / sum(k in w for w in window) for k in window[-1]}
                    window.clear()
                    values = mean_across_ranks(values, info)
                    last_loss = values["loss"]
                    row: Row = {"step": step, "epoch": epoch, **values,
                                "lr": optimizer.param_groups[0]["lr"], "time": round(time.perf_counter() - t_start, 3)}
                    logger.log(row)
                    history.append(row)
                    bar.set_postfix(loss=f"{last_loss:.4f}")
                    model.train()
                if eval_fn is not None and eval_every and (step % eval_every == 0 or step == total_steps) and info.is_main:
                    scores = eval_fn(unwrap(model))
                    row = {"step": step, "epoch": epoch, **{f"val_{k}": float(v) for k, v in scores.items()}}
                    logger.log(row)
                    history.append(row)
                    model.train()
                if step >= total_steps:
                    break
                if checkpoint_every and step % checkpoint_every == 0 and batch_in_epoch < steps_per_epoch:
                    checkpoint(batch_in_epoch * batch_size, epoch)
            if batch_in_epoch >= steps_per_epoch:  # the epoch is over: resume starts the next one
                epoch, batch_in_epoch = epoch + 1, 0
            if checkpoint_every or step >= total_steps:
                checkpoint(batch_in_epoch * batch_size, epoch)
    finally:
        saver.close()  # the last checkpoint is on disk before fit returns or raises
    bar.close()
    logger.close()
    return FitResult(steps=step, epochs=epoch, final_loss=last_loss, history=history, out_dir=out_dir,
                     checkpoint=ckpt_path if info.is_main else None, seconds=time.perf_counter() - t_start,
                     resumed_from=resumed_from, failures=failures)


class ResumeMismatchError(UsageError):
    """The run directory holds a checkpoint of another run (other settings or another model)."""


def check_same_config(stored: dict[str, Any], current: dict[str, Any], ckpt_path: str | Path) -> None:
    """Refuse to resume a run whose settings changed: one line listing every differing key.

    Compared as JSON (tuples and lists alike), nested dicts key by key, so it holds whatever the
    config's layout. Either side empty (an old checkpoint, a caller without config) is accepted.
    """
    if not stored or not current:
        return
    old, new = _flat(json.loads(json.dumps(stored, default=str))), _flat(json.loads(json.dumps(current, default=str)))
    differ = [k for k in sorted(set(old) | set(new)) if old.get(k, _MISSING) != new.get(k, _MISSING)]
    if differ:
        shown = ", ".join(f"{k} {_show(old.get(k, _MISSING))} -> {_show(new.get(k, _MISSING))}" for k in differ)
        raise ResumeMismatchError(ckpt_path, f"was written with other settings ({shown}); resume=False "
                                  "(--no-resume) starts over, or use another out_dir (--out)")


_MISSING = object()


def _with_settings(config: dict[str, Any] | None, settings: dict[str, Any] | None) -> dict[str, Any]:
    return {**(config or {}), **({"training": settings} if settings else {})}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def _show(value: Any) -> str:
    return "(unset)" if value is _MISSING else json.dumps(value)


def _resume_state(ckpt_path: Path, device: torch.device, info: DistInfo) -> dict[str, Any] | None:
    """The checkpoint to resume from: `last.pt`, or `prev.pt` with a warning when `last.pt` is unreadable."""
    previous = previous_checkpoint(ckpt_path)
    if not ckpt_path.is_file() and not previous.is_file():
        return None
    try:
        return load_checkpoint(ckpt_path, map_location=device)
    except (CheckpointError, FileNotFoundError) as exc:
        if not previous.is_file():
            raise
        try:
            state = load_checkpoint(previous, map_location=device)
        except CheckpointError:
            raise exc from None
        if info.is_main:
            tqdm.write(f"warning: {exc}; resuming from the previous checkpoint {previous} (step {state['step']})")
        return state


def _find_sampler(loader: torch.utils.data.DataLoader) -> EpochSampler | None:
    for candidate in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        if isinstance(candidate, EpochSampler):
            return candidate
    return None


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _report_failure(out_dir: Path, failure: ReadFailure, info: DistInfo) -> None:
    """Unreadable videos are skipped, never silently: printed and appended to read_failures.csv."""
    tqdm.write(f"warning: skipped unreadable video {failure.path} ({failure.reason}); used {failure.substitute}")
    if info.is_main:
        path = out_dir / "read_failures.csv"
        new = not path.exists()
        with path.open("a") as f:
            if new:
                f.write("path,reason,substitute\n")
            reason = failure.reason.replace('"', "'")
            f.write(f'"{failure.path}","{reason}","{failure.substitute}"\n')
