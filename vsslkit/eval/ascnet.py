"""What an ASCNet checkpoint learned, on held-out videos (behind `vsslkit pretext-eval` for
`--task ascnet` and notebook 09).

- **Collapse monitor** (`spread`): the spread of the L2-normalised g_a and g_m projections over
  held-out clips, ~1 when spread over the sphere, 0 when collapsed. Compared with the same
  network at random initialisation: a healthy run stays above half of that value.
- **Retrieval diagnostic**: each video's appearance feature (the *target* g_a'(f'(c)), as the
  memory bank holds it) retrieves its nearest other video (not of its group when the run
  excluded groups); how often the partner shares the action class, beside the chance of a random
  eligible partner doing so. Labels are read here only, never in training.
- **Speed probe**: a linear classifier (logistic regression) predicts a clip's playback speed
  from frozen g_m features, and from frozen g_a features; trained on half the groups, scored on
  the other half. SCP should make m encode speed; ACP should make a invariant to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vsslkit.data.transforms import center_crop, residual_frames, to_float_clips
from vsslkit.eval.features import FrameSource
from vsslkit.plans import constant_plan
from vsslkit.tasks import primary_task
from vsslkit.tasks.ascnet import AscNetModule, spread


@dataclass(frozen=True)
class HeldOutFeatures:
    """Per held-out clip: its video, speed index, online g_a and g_m, and target g_a features."""

    video: np.ndarray  # (n,)
    speed: np.ndarray  # (n,) index into the task's speeds
    a: np.ndarray  # (n, d) online g_a(f(c))
    m: np.ndarray  # (n, d) online g_m(f(c))
    x: np.ndarray  # (n, D) online f(c), the backbone's pooled features
    target_a: np.ndarray  # (n, d) target g_a'(f'(c))


def ascnet_branch(model: Any) -> tuple[Any, AscNetModule]:
    """The ASCNet task and module of a `PretextModel` (its primary branch)."""
    task = primary_task(model.task)
    head = model.head.branches[model.task.primary_name] if hasattr(model.head, "branches") else model.head
    if not isinstance(head, AscNetModule):
        raise TypeError(f"not an ascnet model (task {task.name})")
    return task, head


def held_out_features(model: Any, source: FrameSource, paths: Sequence[str | Path], num_frames: Sequence[int], *,
                      crop_size: int, seed: int = 0, batch_size: int = 16) -> HeldOutFeatures:
    """One centre-cropped clip per video and speed (seeded starts), through the frozen networks."""
    task, head = ascnet_branch(model)
    rng = np.random.default_rng(seed)
    drawn = [(v, s, constant_plan(int(n), task.input_frames, stride, rng))
             for v, n in enumerate(num_frames) if int(n) >= task.min_frames
             for s, stride in enumerate(task.speeds)]
    if not drawn:
        raise ValueError(f"no video has the {task.min_frames} frames ascnet needs")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    a, m, xs, ta = [], [], [], []
    try:
        with torch.inference_mode():
            for b in range(0, len(drawn), batch_size):
                chunk = drawn[b:b + batch_size]
                x = torch.cat([to_float_clips(center_crop(torch.from_numpy(np.ascontiguousarray(
                    source.read(paths[v], plan.indices)))[None], crop_size)) for v, _, plan in chunk])
                x = (residual_frames(x) if task.extra_frames == 1 else x).to(device)  # as it was trained
                x_online = model.backbone(x)
                a.append(head.g_a(x_online).cpu())
                m.append(head.g_m(x_online).cpu())
                xs.append(x_online.cpu())
                ta.append(head.target_g_a(head.target_backbone(x)).cpu())
    finally:
        model.train(was_training)
    return HeldOutFeatures(np.array([v for v, _, _ in drawn]), np.array([s for _, s, _ in drawn]),
                           torch.cat(a).numpy(), torch.cat(m).numpy(), torch.cat(xs).numpy(), torch.cat(ta).numpy())


def partner_same_class(features: np.ndarray, labels: Sequence[int], groups: Sequence[str] | None) -> tuple[float, float]:
    """(share of videos whose nearest other video — dot product of normalised features, not of its
    group when `groups` is given — has its class; the same share for a random eligible partner)."""
    z = F.normalize(torch.as_tensor(np.asarray(features, dtype=np.float32)), dim=1)
    labels = np.asarray(labels)
    n = len(labels)
    banned = torch.eye(n, dtype=torch.bool)
    if groups is not None:
        g = np.asarray(groups)
        banned |= torch.as_tensor(g[:, None] == g[None, :])
    sim = (z @ z.t()).masked_fill(banned, float("-inf"))
    eligible = ~banned.numpy()
    keep = eligible.any(axis=1)
    if not keep.any():
        raise ValueError("no video has an eligible partner (every other video is in its group)")
    best = sim.argmax(dim=1).numpy()
    hits = labels[best] == labels
    same = (labels[None, :] == labels[:, None]) & eligible
    chance = same.sum(axis=1)[keep] / eligible.sum(axis=1)[keep]
    return float(hits[keep].mean()), float(chance.mean())


def speed_probe(features: np.ndarray, speed: np.ndarray, video_groups: Sequence[str], *, seed: int = 0) -> float:
    """Held-out accuracy of a logistic regression predicting the speed from frozen features;
    trained on a seeded half of the groups, scored on the rest (no scene seen on both sides)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    groups = np.asarray(video_groups)
    names = np.random.default_rng(seed).permutation(sorted(set(groups.tolist())))
    if len(names) < 2:
        raise ValueError("the speed probe needs videos of at least 2 groups (train and test sides)")
    train_groups = set(names[: len(names) // 2].tolist())
    train = np.array([g in train_groups for g in groups])
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(features[train], speed[train])
    return float((probe.predict(features[~train]) == speed[~train]).mean())


@dataclass(frozen=True)
class AscNetDiagnostics:
    videos: int
    clips: int
    spread_a: float
    spread_m: float
    partner_same_class: float
    partner_chance: float
    speed_probe_m: float
    speed_probe_a: float
    speed_probe_f: float
    speed_chance: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def ascnet_diagnostics(model: Any, source: FrameSource, paths: Sequence[str | Path], num_frames: Sequence[int],
                       labels: Sequence[int], groups: Sequence[str], *, crop_size: int, seed: int = 0,
                       batch_size: int = 16) -> AscNetDiagnostics:
    """Collapse monitor, retrieval diagnostic and speed probes of one model on held-out videos."""
    task, _ = ascnet_branch(model)
    feats = held_out_features(model, source, paths, num_frames, crop_size=crop_size, seed=seed, batch_size=batch_size)
    per_video = np.unique(feats.video)
    first = np.array([np.flatnonzero(feats.video == v)[0] for v in per_video])  # one clip (speed 0) per video
    vid_labels = [labels[v] for v in per_video]
    vid_groups = [groups[v] for v in per_video]
    share, chance = partner_same_class(feats.target_a[first], vid_labels, vid_groups if task.exclude_same_group else None)
    clip_groups = [groups[v] for v in feats.video]
    return AscNetDiagnostics(
        videos=len(per_video), clips=len(feats.video),
        spread_a=spread(torch.as_tensor(feats.a)), spread_m=spread(torch.as_tensor(feats.m)),
        partner_same_class=share, partner_chance=chance,
        speed_probe_m=speed_probe(feats.m, feats.speed, clip_groups, seed=seed),
        speed_probe_a=speed_probe(feats.a, feats.speed, clip_groups, seed=seed),
        speed_probe_f=speed_probe(feats.x, feats.speed, clip_groups, seed=seed),
        speed_chance=1.0 / len(task.speeds))


def diagnostics_markdown(trained: AscNetDiagnostics, random: AscNetDiagnostics) -> str:
    """The trained checkpoint beside the same network at random initialisation."""
    rows = [
        ("collapse monitor, spread of g_a (1 = spread, 0 = collapsed)", "spread_a", "{:.3f}"),
        ("collapse monitor, spread of g_m", "spread_m", "{:.3f}"),
        ("retrieved partner shares the class (diagnostic)", "partner_same_class", "{:.1%}"),
        ("  ... chance for a random eligible partner", "partner_chance", "{:.1%}"),
        ("speed probe on frozen g_m (held-out groups)", "speed_probe_m", "{:.1%}"),
        ("speed probe on frozen g_a (held-out groups)", "speed_probe_a", "{:.1%}"),
        ("speed probe on the frozen backbone f (pooled)", "speed_probe_f", "{:.1%}"),
        ("  ... chance", "speed_chance", "{:.1%}"),
    ]
    lines = ["| | checkpoint | random init |", "|---|---:|---:|"]
    for name, key, fmt in rows:
        lines.append(f"| {name} | {fmt.format(getattr(trained, key))} | {fmt.format(getattr(random, key))} |")
    return "\n".join(lines)


def backbone_speed_probe(backbone: torch.nn.Module, source: FrameSource, paths: Sequence[str | Path],
                         num_frames: Sequence[int], groups: Sequence[str], *, clip_len: int, speeds: Sequence[int],
                         crop_size: int, residual: bool = False, seed: int = 0, batch_size: int = 16) -> float:
    """The speed probe on any frozen backbone's pooled features (to set ASCNet beside another
    method): one clip per video and speed, held-out groups; `residual` feeds frame differences."""
    frames_per_clip = clip_len + int(residual)
    need = (frames_per_clip - 1) * max(speeds) + 1
    rng = np.random.default_rng(seed)
    drawn = [(v, s, constant_plan(int(n), frames_per_clip, stride, rng))
             for v, n in enumerate(num_frames) if int(n) >= need for s, stride in enumerate(speeds)]
    if not drawn:
        raise ValueError(f"no video has the {need} frames the speed probe needs")
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    feats = []
    try:
        with torch.inference_mode():
            for b in range(0, len(drawn), batch_size):
                x = torch.cat([to_float_clips(center_crop(torch.from_numpy(np.ascontiguousarray(
                    source.read(paths[v], plan.indices)))[None], crop_size)) for v, _, plan in drawn[b:b + batch_size]])
                feats.append(backbone((residual_frames(x) if residual else x).to(device)).cpu())
    finally:
        backbone.train(was_training)
    return speed_probe(torch.cat(feats).numpy(), np.array([s for _, s, _ in drawn]),
                       [groups[v] for v, _, _ in drawn], seed=seed)
