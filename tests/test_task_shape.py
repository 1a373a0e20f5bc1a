"""The task shape every seed method must fit: arrow of time (labels from plans, never from batch
position), a multi-clip pairwise task, a cross-video plan, labels from augmented pixels, `Joint`
weights and prefixes, the EMA helper's buffer policies, old checkpoints, and the documented
"how to add a task" recipe."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_clips import MemorySource
from torch import nn

from vsslkit.data.clips import BatchPreparer, ClipDataset, collate
from vsslkit.plans import IGNORE_INDEX, Plan, Sample, constant_plan
from vsslkit.tasks import ArrowOfTimeTask, Features, Joint, MoCo, PaceTask, label_name, make_task
from vsslkit.tasks.base import classification_loss
from vsslkit.tasks.model import PretextModel
from vsslkit.tasks.momentum import update_momentum

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


class TinyBackbone(nn.Module):
    def __init__(self, feature_dim: int = 6):
        super().__init__()
        self.feature_dim = feature_dim
        self.conv = nn.Conv3d(3, feature_dim, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm3d(feature_dim)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.bn(self.conv(x)).mean(dim=(2, 3, 4))

    def features(self, x: torch.Tensor, layers=("pool5",)) -> dict[str, torch.Tensor]:
        self.calls += 1
        return {layer: self.bn(self.conv(x)) for layer in layers}


# --- arrow of time ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(num_frames=st.integers(16, 200), seed=st.integers(0, 2**32 - 1), speeds=st.sampled_from([(1,), (1, 2), (2, 3)]))
def test_arrow_of_time_label_is_the_plans_direction(num_frames, seed, speeds):
    task = ArrowOfTimeTask(clip_len=8, speeds=speeds)
    if num_frames < task.min_frames:
        return
    sample = task.sample(num_frames, np.random.default_rng(seed))
    steps = np.diff(sample.plan.indices)
    assert sample.plan.indices.min() >= 0 and sample.plan.indices.max() < num_frames
    assert len(set(np.abs(steps))) == 1 and abs(int(steps[0])) in speeds
    assert sample.labels == {"direction": int(steps[0] < 0)} == task.label_of_plan(sample.plan)
    assert np.all(steps < 0) if sample.labels["direction"] else np.all(steps > 0)
    assert task.label_of(task.params_of(sample.labels)) == sample.labels
    assert label_name(task, "direction", sample.labels["direction"]) in ("forward", "backward")


def test_arrow_of_time_classes_are_balanced():
    task = ArrowOfTimeTask(clip_len=8)
    rng = np.random.default_rng(0)
    labels = [task.sample(50, rng).labels["direction"] for _ in range(2000)]
    assert abs(np.mean(labels) - 0.5) < 0.03


def _rows_direction(frames: torch.Tensor) -> list[int]:
    """1 where a clip's frames decrease in time (MemorySource paints frame t as value t + 50 v)."""
    values = frames[:, :, 0, 0, 0].long()
    return [int(v[1] < v[0]) for v in values]


@pytest.mark.parametrize("same_batch_order", [False, True])
def test_direction_labels_follow_the_rows_under_any_reordering(same_batch_order):
    """Labels come from each clip's plan, so they stay with their row whatever the batch order.

    A labelling by batch position (the seed author's bug: the first half forward, the second
    reversed, then rows reordered) fails this: the labels would not match the pixels."""
    counts = {f"/v/{i}.mp4": 60 for i in range(4)}
    source = MemorySource(counts)
    task = ArrowOfTimeTask(clip_len=4)
    ds = ClipDataset(sorted(counts), None, [60] * 4, source, task.sample, seed=7, min_frames=task.min_frames)
    items = [ds[(e, i)] for e in range(3) for i in range(4)]
    if same_batch_order:
        items = items[::-1]
    batch = collate(items)
    perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(0))
    frames, labels = batch["frames"]["clip"][perm], batch["labels"]["direction"][perm]
    assert labels.tolist() == _rows_direction(frames)
    assert 0 < labels.sum() < len(labels)  # both directions present, so position could have mattered


def test_arrow_of_time_trains_through_the_model_and_with_moco():
    torch.manual_seed(0)
    task = ArrowOfTimeTask(clip_len=4)
    joint = Joint({"pretext": task, "moco": MoCo(key_task=task, dim=4, queue_size=8)}, weights={"moco": 0.5})
    model = PretextModel(TinyBackbone(), joint)
    counts = {f"/v/{i}.mp4": 40 for i in range(4)}
    ds = ClipDataset(sorted(counts), None, [40] * 4, MemorySource(counts), joint.sample, seed=1, min_frames=joint.min_frames)
    batch = BatchPreparer(crop_size=8)(collate([ds[(0, i)] for i in range(4)]), step=0)
    assert set(batch["clips"]) == {"pretext.clip", "moco.key"}
    loss, metrics = model.training_step(batch)
    loss.backward()
    assert {"pretext.direction_acc", "moco.acc", "loss"} <= set(metrics)
    assert make_task("arrow-of-time").heads == {"direction": 2}


# --- a multi-clip task with a pairwise head (the shape of playback-order prediction) ---------------


class PairwiseHead(nn.Module):
    """Every pair of clip features concatenated -> shared FC + ReLU -> concatenated -> FC to n!."""

    def __init__(self, dim: int, names: tuple[str, ...]):
        super().__init__()
        self.names = names
        self.pair = nn.Sequential(nn.Linear(2 * dim, 8), nn.ReLU())
        n_pairs = len(names) * (len(names) - 1) // 2
        self.out = nn.Linear(8 * n_pairs, len(list(itertools.permutations(names))))

    def forward(self, features: Any) -> dict[str, torch.Tensor]:
        f = [features.pooled(n) for n in self.names]
        pairs = [self.pair(torch.cat([f[i], f[j]], dim=1)) for i, j in itertools.combinations(range(len(f)), 2)]
        return {"order": self.out(torch.cat(pairs, dim=1))}


@dataclass(frozen=True)
class ShuffledStridesTask:
    """n clips at strides 1..n in a random order; the label is the permutation's index (test only)."""

    n: int = 3
    clip_len: int = 4
    name: ClassVar[str] = "shuffled-strides"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"clip{i}" for i in range(self.n))

    @property
    def together(self) -> tuple[tuple[str, ...], ...]:
        return (self.names,)

    @property
    def heads(self) -> dict[str, int]:
        return {"order": len(list(itertools.permutations(range(self.n))))}

    @property
    def min_frames(self) -> int:
        return (self.clip_len - 1) * self.n + 1

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        perms = list(itertools.permutations(range(self.n)))
        label = int(rng.integers(len(perms)))
        plans = {name: constant_plan(num_frames, self.clip_len, perms[label][i] + 1, rng)
                 for i, name in enumerate(self.names)}
        return Sample(plans, {"order": label})

    def make_module(self, backbone: nn.Module) -> nn.Module:
        return PairwiseHead(int(backbone.feature_dim), self.names)

    def loss(self, outputs, labels, extras=None):
        return classification_loss(outputs, labels, self.heads)


def test_multi_clip_task_runs_the_backbone_once_for_its_clips():
    task = ShuffledStridesTask()
    counts = {f"/v/{i}.mp4": 30 for i in range(3)}
    ds = ClipDataset(sorted(counts), None, [30] * 3, MemorySource(counts), task.sample, seed=0, min_frames=task.min_frames)
    batch = BatchPreparer(crop_size=8)(collate([ds[(0, i)] for i in range(3)]), step=0)
    assert set(batch["clips"]) == {"clip0", "clip1", "clip2"}
    for name in task.names:  # each slot shows the stride the label's permutation put there
        steps = batch["clips"][name]  # (B, C, T, H, W); strides are checked on the plans below
        assert steps.shape == (3, 3, 4, 8, 8)
    torch.manual_seed(0)
    model = PretextModel(TinyBackbone(), task)
    loss, metrics = model.training_step(batch)
    assert model.backbone.calls == 1  # one forward for all three clips: batch norm sees them together
    loss.backward()
    assert model.head.pair[0].weight.grad is not None and np.isfinite(metrics["loss"])
    sample = task.sample(30, np.random.default_rng(3))
    perm = list(itertools.permutations(range(3)))[sample.labels["order"]]
    assert [int(np.diff(sample.plans[n].indices)[0]) for n in task.names] == [p + 1 for p in perm]


# --- a plan from another video (the shape of ASCNet's positive) ------------------------------------


@dataclass(frozen=True)
class OtherVideoTask:
    """An anchor clip of this video and a clip of another video (never this one; test only)."""

    clip_len: int = 4
    name: ClassVar[str] = "other-video"
    heads: ClassVar[dict[str, int]] = {}
    min_frames: ClassVar[int] = 4

    def sample(self, num_frames: int, rng: np.random.Generator, *, epoch: int = 0, context: Any = None) -> Sample:
        others = [i for i in range(len(context.num_frames)) if i != context.index]
        other = others[int(rng.integers(len(others)))]
        positive = constant_plan(context.num_frames[other], self.clip_len, 1, rng)
        return Sample({"anchor": constant_plan(num_frames, self.clip_len, 1, rng),
                       "positive": Plan(positive.indices, positive.kind, positive.params, video=other)},
                      extras={"other": np.array([other])})

    def make_module(self, backbone):
        return nn.Identity()

    def loss(self, outputs, labels, extras=None):
        return torch.zeros(()), {}


def test_cross_video_plan_reads_the_other_videos_frames():
    counts = {"/v/0.mp4": 10, "/v/1.mp4": 25, "/v/2.mp4": 40}
    source = MemorySource(counts)
    task = OtherVideoTask()
    ds = ClipDataset(sorted(counts), None, [10, 25, 40], source, task.sample, seed=0, min_frames=4)
    for index in range(3):
        item = ds[(0, index)]
        other = int(item["extras"]["other"][0][0])
        assert other != index
        reads = source.reads[-2:]
        assert reads[0][0] == f"/v/{index}.mp4" and reads[1][0] == f"/v/{other}.mp4"
        assert max(reads[1][1]) < counts[f"/v/{other}.mp4"]
        # the positive's pixels are the other video's (MemorySource paints 50 * v + t)
        assert int(item["frames"]["positive"][0][0, 0, 0, 0]) == (50 * other + reads[1][1][0]) % 256
    with pytest.raises(ValueError, match="names video 9"):
        bad = ClipDataset(sorted(counts), None, [10, 25, 40], source,
                          lambda n, rng, **_: Sample({"clip": Plan([0, 1], "constant", video=9)}), seed=0)
        bad[(0, 0)]


# --- labels computed from the augmented pixels ---------------------------------------------------


@dataclass(frozen=True)
class BrightSideTask:
    """Label = 1 when the bright half of the frame is on the right *after* crop and flip (test only)."""

    name: ClassVar[str] = "bright-side"
    heads: ClassVar[dict[str, int]] = {"side": 2}
    min_frames: ClassVar[int] = 2

    def sample(self, num_frames, rng, *, epoch=0, context=None):
        return Sample({"clip": constant_plan(num_frames, 2, 1, rng)}, {"side": IGNORE_INDEX})

    def pixel_labels(self, clips, labels, augment):
        x = clips["clip"]
        half = x.shape[-1] // 2
        right = x[..., half:].mean(dim=(1, 2, 3, 4)) > x[..., :half].mean(dim=(1, 2, 3, 4))
        return {**labels, "side": right.long()}

    def make_module(self, backbone):
        return nn.Sequential()

    def loss(self, outputs, labels, extras=None):
        return torch.zeros(()), {"side_mean": float(labels["side"].float().mean())}


class LeftBrightSource:
    def read(self, path, indices):
        out = np.zeros((len(indices), 16, 16, 3), dtype=np.uint8)
        out[..., :8, :] = 250  # bright on the left in the stored video
        return out


def test_pixel_labels_follow_the_flip():
    task = BrightSideTask()
    ds = ClipDataset([f"/v/{i}" for i in range(8)], None, [5] * 8, LeftBrightSource(), task.sample, seed=0)
    raw = collate([ds[(0, i)] for i in range(8)])
    batch = BatchPreparer(crop_size=16, flip=True, seed=3)(raw, step=0)
    flipped = batch["augment"]["clip"]["flip"]
    assert 0 < int(flipped.sum()) < 8
    labels = task.pixel_labels(batch["clips"], batch["labels"], batch["augment"])
    assert labels["side"].tolist() == flipped.long().tolist()  # bright side moved right exactly when flipped
    model = PretextModel(TinyBackbone(), task)
    _, metrics = model.training_step(batch)  # the model calls the hook before the loss
    assert metrics["side_mean"] == pytest.approx(float(flipped.float().mean()))


# --- Joint, EMA, ignore labels -------------------------------------------------------------------


def test_joint_prefixes_names_and_weights_losses():
    a, b = PaceTask(clip_len=4, speeds=(1, 2)), ArrowOfTimeTask(clip_len=4)
    joint = Joint({"pace": a, "dir": b}, weights={"dir": 2.0})
    sample = joint.sample(30, np.random.default_rng(0))
    assert set(sample.plans) == {"pace.clip", "dir.clip"} and set(sample.labels) == {"pace.speed", "dir.direction"}
    assert joint.heads == {"pace.speed": 2, "dir.direction": 2}
    torch.manual_seed(0)
    model = PretextModel(TinyBackbone(), joint)
    clips = {"pace.clip": torch.randn(4, 3, 4, 8, 8), "dir.clip": torch.randn(4, 3, 4, 8, 8)}
    labels = {"pace.speed": torch.tensor([0, 1, 0, 1]), "dir.direction": torch.tensor([1, 1, 0, 0])}
    _, metrics = model.training_step({"clips": clips, "labels": labels})
    assert metrics["loss"] == pytest.approx(metrics["pace.loss"] + 2.0 * metrics["dir.loss"], rel=1e-5)
    assert model.backbone.calls == 2
    assert label_name(joint, "dir.direction", 1) == "backward"
    with pytest.raises(ValueError, match="unknown branches"):
        Joint({"pace": a}, weights={"other": 1.0})
    with pytest.raises(ValueError, match="contain no"):
        Joint({"pa.ce": a})


def test_ignored_labels_are_skipped_by_the_loss():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    labels = {"h": torch.tensor([0, IGNORE_INDEX, 1])}
    loss, metrics = classification_loss({"h": logits}, labels, {"h": 2})
    ref = nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([0, 1]))
    assert torch.allclose(loss, ref) and metrics["h_acc"] == 0.5
    loss, metrics = classification_loss({"h": logits}, {"h": torch.full((3,), IGNORE_INDEX)}, {"h": 2})
    assert float(loss) == 0.0 and np.isnan(metrics["h_acc"])


@pytest.mark.parametrize("policy", ["own", "copy", "ema"])
def test_update_momentum_parameters_and_buffer_policy(policy):
    torch.manual_seed(0)
    online, target = TinyBackbone(), TinyBackbone()
    online.bn.running_mean.fill_(4.0)
    target.bn.running_mean.fill_(2.0)
    before = [p.clone() for p in target.parameters()]
    update_momentum(online, target, 0.75, buffers=policy)
    for t, t0, o in zip(target.parameters(), before, online.parameters()):
        assert torch.allclose(t, 0.75 * t0 + 0.25 * o)
    expected = {"own": 2.0, "copy": 4.0, "ema": 0.75 * 2.0 + 0.25 * 4.0}[policy]
    assert torch.allclose(target.bn.running_mean, torch.full_like(target.bn.running_mean, expected))
    with pytest.raises(ValueError, match="buffers"):
        update_momentum(online, target, 0.5, buffers="average")


def test_features_cache_and_maps():
    backbone = TinyBackbone()
    feats = Features(backbone, {"a": torch.randn(2, 3, 4, 8, 8)})
    assert feats.pooled("a") is feats.pooled("a") and backbone.calls == 1
    assert feats.maps("a", "pool4").shape == (2, 6, 4, 8, 8) and backbone.calls == 2
    with pytest.raises(KeyError, match="no clip 'b'"):
        feats.pooled("b")


# --- checkpoints written before the redesign ------------------------------------------------------


def test_format_1_checkpoint_loads_through_the_upgrade(tmp_path):
    from vsslkit.train.checkpoint import save_checkpoint
    from vsslkit.train.pretrain import MoCoConfig, PretrainConfig, build_pretext_model, load_pretext_model

    config = PretrainConfig(task="speed-change-fine", moco=MoCoConfig(queue_size=8, weight=0.25), width=0.125,
                            clip_len=6, size=16)
    model = build_pretext_model(config)
    old_names = {}
    for key in model.state_dict():  # the names format 1 used
        if key.startswith("head.branches.pretext.head.heads."):
            name, _, param = key.removeprefix("head.branches.pretext.head.heads.").partition(".fc.")
            old_names[key] = f"heads.classifiers.{name}.{param}"
        elif key.startswith("head.branches.moco."):
            rest = key.removeprefix("head.branches.moco.")
            rest = re.sub(r"projection\.net\.0\.", "projection.0.", rest)
            rest = re.sub(r"projection\.net\.3\.", "projection.2.", rest)
            if rest != "shuffle_state":
                old_names[key] = "contrastive." + rest
        else:
            old_names[key] = key
    state = {old: model.state_dict()[new] for new, old in old_names.items()}
    raw = config.to_json()
    raw.pop("format")
    raw.pop("moco")
    raw.update(contrastive=True, ctr_weight=0.25, queue_size=8, momentum=0.999, temperature=0.07)
    save_checkpoint(tmp_path / "old.pt", {"model": state, "config": {"pretrain": raw}})
    loaded, cfg = load_pretext_model(tmp_path / "old.pt")
    assert cfg == config
    for key, value in loaded.state_dict().items():
        if not key.endswith("shuffle_state"):
            assert torch.equal(value, model.state_dict()[key]), key
    save_checkpoint(tmp_path / "bad.pt", {"model": {"x": torch.zeros(1)}, "config": {"pretrain": config.to_json()}})
    with pytest.raises(ValueError, match="bad.pt: weights do not match"):
        load_pretext_model(tmp_path / "bad.pt")


# --- docs/architecture.md: "How to add a task" runs as written ------------------------------------


def test_the_documented_new_task_trains():
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"## How to add a task.*?```python\n(.*?)```", text, re.DOTALL)
    assert block, "docs/architecture.md lost its 'How to add a task' code block"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 25
    namespace: dict[str, Any] = {}
    exec(compile(code, "architecture.md", "exec"), namespace)  # noqa: S102 - the documented recipe, run as written
    task = namespace["task"]
    counts = {f"/v/{i}.mp4": 40 for i in range(4)}
    ds = ClipDataset(sorted(counts), None, [40] * 4, MemorySource(counts), task.sample, seed=0, min_frames=task.min_frames)
    torch.manual_seed(0)
    model = PretextModel(TinyBackbone(), task)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    prepare = BatchPreparer(crop_size=8)
    for step in range(3):
        batch = prepare(collate([ds[(step, i)] for i in range(4)]), step=step)
        loss, metrics = model.training_step(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_optimizer_step()
    assert np.isfinite(metrics["loss"]) and any(k.endswith("_acc") for k in metrics)
