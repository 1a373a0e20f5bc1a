"""Video-level scores over non-overlapping clips (seed 001 §4.2) with Hit@k.

Seed 001 scores a test video by the mean of its clips' predictions over *non-overlapping*
clips covering the video (rather than seed 000's ten clips): `non_overlapping_plans` places
floor(n / K) clips evenly, which never overlap. Hit@k is top-k accuracy of the video scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vsslkit.data import transforms as T
from vsslkit.eval.confusion import confusion_counts
from vsslkit.eval.metrics import softmax, top_k_accuracy
from vsslkit.plans import Plan, VideoTooShortError, uniform_plans


def fit_to(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 `(B, T, H, W, C)` resized (area) so the short side is `size`, then centre-cropped to
    `size`x`size`: the whole frame at the scale training's random resized crops mostly see (a
    plain centre crop of a larger stored frame would zoom in and cut the scene)."""
    b, t, h, w, c = frames.shape
    if min(h, w) != size:
        new = (max(size, round(h * size / min(h, w))), max(size, round(w * size / min(h, w))))
        x = frames.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=new, mode="area" if min(h, w) > size else "bilinear")
        frames = x.permute(0, 2, 3, 1).round_().clamp_(0, 255).to(torch.uint8).reshape(b, t, *new, c)
    return T.center_crop(frames, size)


def non_overlapping_plans(num_frames: int, clip_len: int) -> list[Plan]:
    """floor(num_frames / clip_len) evenly spaced clips of `clip_len` frames; consecutive ones
    start at least `clip_len` apart, so no frame is in two clips."""
    if num_frames < clip_len:
        raise VideoTooShortError(clip_len, num_frames, f"non-overlapping test clips (K={clip_len})")
    return uniform_plans(num_frames, clip_len, 1, num_frames // clip_len)


@torch.inference_mode()
def video_scores(predictor: torch.nn.Module, paths: Sequence[str | Path], labels: Sequence[int],
                 num_frames: Sequence[int], source: Any, *, clip_len: int, size: int, num_classes: int,
                 batch_size: int = 16, device: str | torch.device = "cpu", head: str = "class",
                 max_clips: int | None = None) -> dict[str, Any]:
    """Video scores = mean softmax over each video's non-overlapping clips (`fit_to` `size`); returns
    Hit@1, Hit@5, clip counts, confusion counts and per-video predictions. Videos shorter than
    one clip are listed in `unscored` (never dropped silently). `max_clips` keeps at most that many
    of each video's clips, evenly spread (still non-overlapping): a cheaper score for validation
    during training, or for a budget where scoring every clip costs as much as training."""
    if max_clips is not None and max_clips < 1:
        raise ValueError(f"max_clips must be >= 1 or None, got {max_clips}")
    was_training = predictor.training
    predictor.eval()
    sums = np.zeros((len(paths), num_classes))
    counts = np.zeros(len(paths), dtype=np.int64)
    unscored: list[str] = []
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        x = T.to_float_clips(fit_to(torch.stack([c for _, c in pending]), size)).to(device)
        probs = softmax(predictor(x)[head].double().cpu().numpy(), axis=1)
        for (v, _), p in zip(pending, probs):
            sums[v] += p
            counts[v] += 1
        pending.clear()

    try:
        for v, (path, n) in enumerate(zip(paths, num_frames)):
            if int(n) < clip_len:
                unscored.append(f"{path}: {n} frames, shorter than one clip")
                continue
            plans = non_overlapping_plans(int(n), clip_len)
            if max_clips is not None and len(plans) > max_clips:
                plans = [plans[i] for i in np.linspace(0, len(plans) - 1, max_clips).round().astype(int)]
            for plan in plans:
                pending.append((v, torch.from_numpy(np.ascontiguousarray(source.read(Path(path), plan.indices)))))
                if len(pending) == batch_size:
                    flush()
        if pending:
            flush()
    finally:
        predictor.train(was_training)
    keep = counts > 0
    if not keep.any():
        raise ValueError("no test video is long enough for one clip")
    scores = sums[keep] / counts[keep, None]
    y = np.asarray(labels, dtype=np.int64)[keep]
    preds = scores.argmax(1)
    return {"hit_at_1": top_k_accuracy(scores, y, k=1), "hit_at_5": top_k_accuracy(scores, y, k=min(5, num_classes)),
            "videos": int(keep.sum()), "clips": int(counts.sum()),
            "confusion_counts": confusion_counts(y, preds, num_classes).tolist(),
            "predictions": [{"path": str(p), "label": int(t), "pred": int(q)}
                            for p, t, q in zip(np.asarray([str(p) for p in paths])[keep], y, preds)],
            "unscored": unscored}
