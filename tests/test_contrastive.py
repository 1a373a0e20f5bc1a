"""MoCo branch: queue ring buffer, EMA, gradients, InfoNCE reference, shuffle-BN, key clips."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vsslkit.tasks import Joint, MoCo, PaceTask, SpeedChangeFineTask
from vsslkit.tasks.contrastive import MoCoModule, info_nce, shuffled_forward
from vsslkit.tasks.model import PretextModel

torch.set_num_threads(1)


class TinyBackbone(nn.Module):
    def __init__(self, feature_dim: int = 6, bn: bool = True):
        super().__init__()
        self.feature_dim = feature_dim
        self.conv = nn.Conv3d(3, feature_dim, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm3d(feature_dim) if bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).mean(dim=(2, 3, 4))


MOCO_DEFAULTS = {"dim": 4, "hidden_dim": None, "queue_size": 2048, "momentum": 0.999, "temperature": 0.07,
                 "bn_splits": 2, "seed": 0}


def make_moco(**kwargs) -> tuple[TinyBackbone, MoCoModule]:
    torch.manual_seed(0)
    backbone = TinyBackbone(bn=kwargs.pop("bn", True))
    return backbone, MoCoModule(backbone, query="q", key="k", **{**MOCO_DEFAULTS, **kwargs})


class Feats:
    """Just enough of `tasks.base.Features` for the module tests: fixed pooled vectors and clips."""

    def __init__(self, pooled: dict, clips: dict):
        self._pooled, self.clips = pooled, clips

    def pooled(self, name):
        return self._pooled[name]

    def clip(self, name):
        return self.clips[name]


def joint_model(task, **moco) -> tuple[PretextModel, MoCoModule]:
    """backbone + Joint(pretext task, MoCo) as `train.pretrain.build_task` composes them."""
    torch.manual_seed(0)
    joint = Joint({"pretext": task, "moco": MoCo(key_task=task, dim=4, **moco)}, weights={"moco": 0.5})
    model = PretextModel(TinyBackbone(), joint)
    return model, model.head.branches["moco"]


def test_queue_pointer_wraps_around():
    _, moco = make_moco(queue_size=5)
    first = F.normalize(torch.arange(12, dtype=torch.float32).view(3, 4) + 1, dim=1)
    moco.enqueue(first)
    assert int(moco.queue_ptr) == 3 and torch.equal(moco.queue[:3], first)
    second = F.normalize(-torch.arange(12, dtype=torch.float32).view(3, 4) - 1, dim=1)
    old_row = moco.queue[2].clone()
    moco.enqueue(second)
    assert int(moco.queue_ptr) == 1  # 3 + 3 = 6 -> 1
    assert torch.equal(moco.queue[3], second[0]) and torch.equal(moco.queue[4], second[1])
    assert torch.equal(moco.queue[0], second[2]) and torch.equal(moco.queue[2], old_row)
    many = torch.randn(7, 4)
    moco.enqueue(many)  # more keys than slots: the newest 5 fill the ring from the pointer
    assert int(moco.queue_ptr) == 1
    assert torch.equal(moco.queue[[1, 2, 3, 4, 0]], many[2:])


def test_momentum_update_formula():
    backbone, moco = make_moco(momentum=0.9)
    moco.sync_key_encoder(backbone)
    key_before = [p.clone() for p in moco.key_backbone.parameters()]
    proj_key_before = [p.clone() for p in moco.key_projection.parameters()]
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(1.0)
        for p in moco.projection.parameters():
            p.mul_(2.0)
    moco.after_optimizer_step(backbone)
    for k, k0, q in zip(moco.key_backbone.parameters(), key_before, backbone.parameters()):
        assert torch.allclose(k, 0.9 * k0 + 0.1 * q)
    for k, k0, q in zip(moco.key_projection.parameters(), proj_key_before, moco.projection.parameters()):
        assert torch.allclose(k, 0.9 * k0 + 0.1 * q)


def test_info_nce_matches_a_hand_written_reference():
    g = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(3, 4, generator=g), dim=1)
    k = F.normalize(torch.randn(3, 4, generator=g), dim=1)
    queue = F.normalize(torch.randn(5, 4, generator=g), dim=1)
    tau = 0.07
    reference = 0.0
    for i in range(3):
        pos = math.exp(float(q[i] @ k[i]) / tau)
        neg = sum(math.exp(float(q[i] @ queue[j]) / tau) for j in range(5))
        reference += -math.log(pos / (pos + neg)) / 3
    loss, logits = info_nce(q, k, queue, tau)
    assert logits.shape == (3, 6)
    assert abs(float(loss) - reference) < 1e-4


def test_moco_loss_uses_the_queue_and_normalised_vectors():
    _, moco = make_moco(queue_size=8, temperature=0.2, bn=False)
    feats = torch.randn(2, 6)
    keys_in = torch.randn(2, 3, 2, 4, 4)
    outputs = moco(Feats({"q": feats}, {"k": keys_in}))
    loss, metrics = MoCo(key_task=PaceTask()).loss(outputs, {})
    q = F.normalize(moco.projection(feats), dim=1)
    k = F.normalize(moco.key_projection(moco.key_backbone(keys_in)), dim=1)
    ref, _ = info_nce(q, k, moco.queue, 0.2)
    assert torch.allclose(loss, ref, atol=1e-6) and torch.allclose(moco._pending_keys[0], k, atol=1e-6)
    assert set(metrics) == {"loss", "acc"} and 0.0 <= metrics["acc"] <= 1.0


def test_key_encoder_gets_no_gradient():
    model, moco = joint_model(PaceTask(clip_len=4))
    backbone = model.backbone
    batch = {"clips": {"pretext.clip": torch.randn(4, 3, 4, 8, 8), "moco.key": torch.randn(4, 3, 4, 8, 8)},
             "labels": {"pretext.speed": torch.tensor([0, 1, 2, 3])}}
    loss, metrics = model.training_step(batch)
    loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in moco.key_backbone.parameters())
    assert all(not p.requires_grad and p.grad is None for p in moco.key_projection.parameters())
    assert all(p.grad is not None for p in moco.projection.parameters())
    assert all(p.grad is not None for p in backbone.parameters())
    assert metrics["loss"] == pytest.approx(metrics["pretext.loss"] + 0.5 * metrics["moco.loss"], rel=1e-5)


def test_shuffle_bn_unshuffles_to_the_input_order():
    x = torch.arange(8, dtype=torch.float32).view(8, 1)
    perm = torch.tensor([3, 7, 0, 5, 1, 6, 2, 4])
    seen: list[list[float]] = []

    def per_chunk(chunk: torch.Tensor) -> torch.Tensor:
        seen.append(chunk.view(-1).tolist())
        return torch.cat([chunk * 10, chunk - chunk.mean()], dim=1)  # row-wise part + chunk statistics

    out = shuffled_forward(per_chunk, x, perm, splits=2)
    assert seen == [[3, 7, 0, 5], [1, 6, 2, 4]]  # chunks hold the shuffled rows
    assert torch.equal(out[:, 0], x[:, 0] * 10)  # every row back in place
    chunk_mean = {3: 3.75, 7: 3.75, 0: 3.75, 5: 3.75, 1: 3.25, 6: 3.25, 2: 3.25, 4: 3.25}
    assert torch.allclose(out[:, 1], torch.tensor([i - chunk_mean[i] for i in range(8)]))


def test_encode_keys_is_row_aligned_under_shuffle():
    _, moco = make_moco(bn=False, bn_splits=2)
    clips = torch.randn(6, 3, 2, 4, 4)
    keys = moco.encode_keys(clips)
    direct = F.normalize(moco.key_projection(moco.key_backbone(clips)), dim=1)
    assert torch.allclose(keys, direct, atol=1e-6)


def test_training_loop_updates_queue_after_the_step():
    model, moco = joint_model(SpeedChangeFineTask(clip_len=6), queue_size=6, momentum=0.5)
    for a, b in zip(model.backbone.parameters(), moco.key_backbone.parameters()):
        assert torch.equal(a, b)  # key encoder starts as a copy
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    g = torch.Generator().manual_seed(0)
    for step in range(3):  # 3 x 4 keys through a 6-slot queue: wraps once
        batch = {"clips": {"pretext.clip": torch.randn(4, 3, 6, 8, 8, generator=g),
                           "moco.key": torch.randn(4, 3, 6, 8, 8, generator=g)},
                 "labels": {"pretext.speed": torch.tensor([0, 1, 4, 8]), "pretext.loc": torch.tensor([3, 0, 3, 3])}}
        queue_before = moco.queue.clone()
        loss, _ = model.training_step(batch)
        assert torch.equal(moco.queue, queue_before)  # nothing written before backward
        opt.zero_grad()
        loss.backward()
        opt.step()
        pending = moco._pending_keys[0].clone()
        key_before = [p.clone() for p in moco.key_backbone.parameters()]
        model.after_optimizer_step()
        for k, k0, q in zip(moco.key_backbone.parameters(), key_before, model.backbone.parameters()):
            assert torch.allclose(k, 0.5 * k0 + 0.5 * q)
        slots = [(4 * step + i) % 6 for i in range(4)]
        assert torch.equal(moco.queue[slots], pending)
        assert not moco._pending_keys
    assert int(moco.queue_ptr) == 0


def test_missing_key_clip_is_a_clear_error():
    model, _ = joint_model(PaceTask(clip_len=4))
    with pytest.raises(KeyError, match="moco.key"):
        model.training_step({"clips": {"pretext.clip": torch.randn(2, 3, 4, 8, 8)},
                             "labels": {"pretext.speed": torch.tensor([0, 1])}})


def test_queue_key_encoder_and_shuffle_state_are_checkpointed():
    model, moco = joint_model(PaceTask(clip_len=4), queue_size=4)
    moco.enqueue(torch.randn(3, 4))
    moco.encode_keys(torch.randn(4, 3, 4, 8, 8))  # advances the shuffle generator
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    prefix = "head.branches.moco."
    assert prefix + "queue" in state and int(state[prefix + "queue_ptr"]) == 3 and prefix + "shuffle_state" in state
    assert any(k.startswith(prefix + "key_backbone.") for k in state)
    restored, other = joint_model(PaceTask(clip_len=4), queue_size=4)
    restored.load_state_dict(state)
    assert torch.equal(other.queue, moco.queue) and int(other.queue_ptr) == 3
    # the permutation stream continues where it was, not from the seed (exact resume with MoCo)
    assert torch.equal(other._permutation(16), moco._permutation(16))
    fresh, _ = joint_model(PaceTask(clip_len=4), queue_size=4)
    assert not torch.equal(fresh.head.branches["moco"]._permutation(16), other._permutation(16))


def test_moco_branch_draws_an_independent_key_plan():
    task = Joint({"pretext": SpeedChangeFineTask(), "moco": MoCo(key_task=SpeedChangeFineTask())})
    assert task.heads == {"pretext.speed": 9, "pretext.loc": 7} and task.min_frames == 46
    starts_q, starts_k = set(), set()
    for seed in range(50):
        sample = task.sample(120, np.random.default_rng(seed))
        q, k = sample.plans["pretext.clip"], sample.plans["moco.key"]
        assert len(q) == len(k) == 16 and k.indices.max() < 120
        assert set(sample.labels) == {"pretext.speed", "pretext.loc"}
        starts_q.add(int(q.indices[0]))
        starts_k.add(int(k.indices[0]))
    assert len(starts_q) > 10 and len(starts_k) > 10
    rng = np.random.default_rng(0)
    differ = 0
    for _ in range(20):
        plans = task.sample(120, rng).plans
        differ += plans["pretext.clip"].params != plans["moco.key"].params
    assert differ == 20


def _enqueue_on_rank(rank: int, init_file: str, results: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        _, moco = make_moco(queue_size=8)
        moco.enqueue(torch.full((2, 4), float(rank + 1)))  # rank 0 writes ones, rank 1 twos
        torch.save({"queue": moco.queue.clone(), "ptr": int(moco.queue_ptr)}, f"{results}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes import torch: ~15 s on 2 busy cores
def test_enqueue_gathers_keys_from_every_ddp_rank(tmp_path):
    import torch.multiprocessing as mp

    results = str(tmp_path / "queue")
    mp.spawn(_enqueue_on_rank, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    for rank in range(2):
        state = torch.load(f"{results}.{rank}", weights_only=True)
        assert state["ptr"] == 4  # 2 ranks x 2 keys
        assert torch.equal(state["queue"][:4], torch.tensor([1.0, 1.0, 2.0, 2.0]).view(4, 1).expand(4, 4))
