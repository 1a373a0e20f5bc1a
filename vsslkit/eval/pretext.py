"""Held-out pretext accuracy: does a pretrained model solve its own task on videos it never saw?

Training logs report accuracy on the batches being trained on. That is already a fair estimate
for speed tasks (every clip's transform is drawn fresh), but the videos are the training ones;
here the task draws `clips_per_video` clips from each *other* video (e.g. the test split, used
without its labels), the model sees centre crops in eval mode, and every head gets its accuracy,
its chance level (the most frequent label among the drawn clips) and a confusion matrix, which
shows e.g. which change locations are confused with their neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix

from vsslkit.data.clips import ClipDataset, collate, prepare_batch
from vsslkit.models.weights import read_checkpoint
from vsslkit.tasks.model import PretextModel
from vsslkit.train.pretrain import PretrainConfig, build_pretext_model, build_task, config_from_checkpoint


def load_pretext_model(checkpoint: str | Path) -> tuple[PretextModel, PretrainConfig]:
    """The pretraining run's whole model (backbone, task heads, MoCo branch) and its config."""
    raw = read_checkpoint(checkpoint)
    try:
        config = config_from_checkpoint(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{checkpoint}: not a vsslkit pretraining checkpoint ({exc})") from exc
    model = build_pretext_model(config)
    model.load_state_dict(raw["model"])
    return model, config


@torch.no_grad()
def pretext_accuracy(
    model: PretextModel,
    config: PretrainConfig,
    *,
    paths: Sequence[str | Path],
    num_frames: Sequence[int],
    source: Any,
    clips_per_video: int = 4,
    seed: int = 0,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Per head: accuracy, chance (majority share), confusion (rows = true labels); plus `clips`, `skipped`.

    The same seed draws the same clips (transforms and starts), so two checkpoints can be compared
    on identical inputs. Videos too short for the task are skipped and listed, not wrapped.
    """
    if clips_per_video < 1:
        raise ValueError(f"clips_per_video must be >= 1, got {clips_per_video}")
    task = build_task(replace(config, contrastive=False))  # the task clip only, no MoCo key
    dataset = ClipDataset(paths, None, num_frames, source, task.sample, seed=seed, min_frames=task.min_frames)
    device = torch.device(device)
    was_training = model.training
    model.eval().to(device)
    predictions: dict[str, list[np.ndarray]] = {head: [] for head in task.heads}
    targets: dict[str, list[np.ndarray]] = {head: [] for head in task.heads}
    keys = [(epoch, i) for epoch in range(clips_per_video) for i in range(len(dataset))]
    for start in range(0, len(keys), batch_size):
        batch = collate([dataset[key] for key in keys[start : start + batch_size]])
        inputs = prepare_batch(batch, crop_size=config.size, train=False, residual=config.residual, device=device)
        outputs = model(inputs["clips"][0])
        for head in task.heads:
            predictions[head].append(outputs[head].argmax(1).cpu().numpy())
            targets[head].append(inputs["labels"][head].cpu().numpy())
    model.train(was_training)
    heads = {}
    for head, classes in task.heads.items():
        y_true, y_pred = np.concatenate(targets[head]), np.concatenate(predictions[head])
        heads[head] = {
            "accuracy": float(np.mean(y_true == y_pred)),
            "chance": float(np.bincount(y_true, minlength=classes).max() / len(y_true)),
            "confusion": confusion_matrix(y_true, y_pred, labels=list(range(classes))).tolist(),
        }
    return {"task": config.task, "heads": heads, "clips": len(keys), "videos": len(dataset),
            "skipped": [(str(path), reason) for path, reason in dataset.skipped]}
