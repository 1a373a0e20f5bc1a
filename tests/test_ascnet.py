"""ASCNet (seed 004): BYOL loss, EMA and the target's batch-norm policy, memory bank, nearest
neighbours, the loader's partner clips, gradients, and a tiny end-to-end pretraining."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vsslkit.data.clips import ClipDataset, collate
from vsslkit.plans import ItemContext
from vsslkit.tasks import AscNetTask, Features, Joint, make_task
from vsslkit.tasks.ascnet import AscNetModule, byol_loss, nearest_neighbours, spread
from vsslkit.tasks.model import PretextModel

torch.set_num_threads(1)


class TinyBackbone(nn.Module):
    def __init__(self, feature_dim: int = 6):
        super().__init__()
        self.feature_dim = feature_dim
        self.conv = nn.Conv3d(3, feature_dim, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm3d(feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).mean(dim=(2, 3, 4))


def model_and_module(gamma: float = 0.5, tau: float = 0.9, n: int = 6, groups=None, **kw):
    torch.manual_seed(0)
    task = AscNetTask(clip_len=4, gamma=gamma, tau=tau, hidden=8, dim=4, **kw)
    model = PretextModel(TinyBackbone(), Joint({"pretext": task}))
    model.bind_dataset(n, groups)
    return model, model.head.branches["pretext"], task


def batch(b: int = 4, videos=None):
    g = torch.Generator().manual_seed(1)
    clips = {f"pretext.clip_{c}": torch.randn(b, 3, 4, 8, 8, generator=g) for c in "ijk"}
    video = torch.arange(b, dtype=torch.float32) if videos is None else torch.tensor(videos, dtype=torch.float32)
    return {"clips": clips, "labels": {}, "extras": {"pretext.video": video}}


def test_byol_loss_is_the_normalised_squared_distance():
    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g) * 3
    reference = sum(float(((p[r] / p[r].norm() - z[r] / z[r].norm()) ** 2).sum()) for r in range(5)) / 5
    assert float(byol_loss(p, z)) == pytest.approx(reference, rel=1e-5)
    assert float(byol_loss(p, 2.5 * p)) == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert float(byol_loss(p, -p)) == pytest.approx(4.0, rel=1e-6)


def test_spread_is_one_for_spread_rows_and_zero_for_collapse():
    z = torch.randn(4096, 16, generator=torch.Generator().manual_seed(0))
    assert spread(z) == pytest.approx(1.0, abs=0.03)
    assert spread(torch.ones(32, 16) + 1e-9 * torch.randn(32, 16)) < 1e-3


def test_targets_start_as_copies_and_follow_by_ema_parameters_and_buffers():
    model, asc, _ = model_and_module(tau=0.9)
    for online, target in ((model.backbone, asc.target_backbone), (asc.g_a, asc.target_g_a), (asc.g_m, asc.target_g_m)):
        for a, b in zip(online.state_dict().values(), target.state_dict().values()):
            assert torch.equal(a, b)
    assert not any(p.requires_grad for t in asc.targets() for p in t.parameters())
    assert not hasattr(asc, "target_h_a") and not hasattr(asc, "target_h_m")  # no target predictors
    before_t = {k: v.clone() for k, v in asc.target_backbone.state_dict().items()}
    model.train()
    loss, _ = model.training_step(batch())
    # the target's forward normalised with batch statistics but did not move its running buffers
    assert torch.equal(asc.target_backbone.bn.running_mean, before_t["bn.running_mean"])
    assert not torch.equal(model.backbone.bn.running_mean, before_t["bn.running_mean"])
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    opt.zero_grad()
    loss.backward()
    opt.step()
    online = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.after_optimizer_step()
    after = asc.target_backbone.state_dict()
    for name in ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
        expected = 0.9 * before_t[name] + 0.1 * online[name]
        assert torch.allclose(after[name], expected, atol=1e-7), name
    assert int(after["bn.num_batches_tracked"]) == int(online["bn.num_batches_tracked"])


def test_gradients_reach_only_the_online_side():
    model, asc, _ = model_and_module()
    model.train()
    loss, metrics = model.training_step(batch())
    loss.backward()
    for module in (model.backbone, asc.g_a, asc.g_m, asc.h_a, asc.h_m):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    assert all(p.grad is None for t in asc.targets() for p in t.parameters())
    assert set(metrics) >= {"pretext.loss_a", "pretext.loss_m", "pretext.spread_a", "pretext.spread_m"}


@pytest.mark.parametrize("gamma", [0.0, 0.25, 1.0])
def test_total_loss_mixes_the_two_losses_with_gamma(gamma):
    model, _, _ = model_and_module(gamma=gamma)
    model.train()
    loss, metrics = model.training_step(batch())
    parts = {"a": metrics.get("pretext.loss_a", 0.0), "m": metrics.get("pretext.loss_m", 0.0)}
    assert float(loss.detach()) == pytest.approx(gamma * parts["m"] + (1 - gamma) * parts["a"], rel=1e-5)
    assert ("pretext.loss_a" in metrics) == (gamma < 1) and ("pretext.loss_m" in metrics) == (gamma > 0)
    loss.backward()  # every online parameter gets a gradient (DDP needs that), a zero one for an unused predictor
    model_head = model.head.branches["pretext"]
    assert all(p.grad is not None for m in (model.backbone, model_head.g_a, model_head.g_m, model_head.h_a,
                                            model_head.h_m) for p in m.parameters())


def test_bank_holds_the_normalised_target_appearance_feature_of_each_video():
    model, asc, _ = model_and_module(n=6)
    old = asc.bank.clone()
    model.train()
    b = batch(3, videos=[4, 1, 4])  # video 4 twice: the later row wins
    out = model(b["clips"], b["extras"])
    model.after_optimizer_step()
    z = F.normalize(out["pretext.z_a"], dim=1)
    assert torch.allclose(asc.bank[1], z[1]) and torch.allclose(asc.bank[4], z[2])
    assert torch.equal(asc.bank[[0, 2, 3, 5]], old[[0, 2, 3, 5]])
    assert asc.seen.tolist() == [False, True, False, False, True, False]


def brute_neighbours(bank, seen, groups):
    out = []
    for v in range(len(bank)):
        best, arg = -math.inf, -1
        for u in range(len(bank)):
            if u == v or not seen[u] or (groups is not None and groups[u] == groups[v]):
                continue
            s = float(bank[v] @ bank[u])
            if s > best:
                best, arg = s, u
        out.append(arg if seen[v] else -1)
    return out


def test_nearest_neighbour_never_itself_never_its_group_never_unseen():
    g = torch.Generator().manual_seed(3)
    bank = F.normalize(torch.randn(23, 5, generator=g), dim=1)
    bank[7] = bank[3]  # an exact duplicate in another group
    seen = torch.rand(23, generator=g) > 0.2
    seen[[3, 7]] = True
    groups = torch.arange(23) // 4
    for grp in (groups, None):
        got = nearest_neighbours(bank, seen, grp, chunk=5).tolist()
        assert got == brute_neighbours(bank, seen, grp)
        for v, u in enumerate(got):
            assert u != v
            if u >= 0:
                assert seen[u] and (grp is None or grp[u] != grp[v])
    assert nearest_neighbours(bank, seen, None)[3] == 7  # the duplicate is found


def test_refresh_every_r_steps_and_the_loader_sees_it_at_the_next_epoch():
    groups = ["a", "a", "b", "b", "c", "c"]
    model, asc, task = model_and_module(n=6, groups=groups, refresh_every=2)
    model.train()
    model.before_epoch(0)
    assert task.table.table.tolist() == [-1] * 6
    for step in range(2):
        b = batch(6, videos=list(range(6)))
        model(b["clips"], b["extras"])
        model.after_optimizer_step()
        assert (asc.live >= 0).any() == (step == 1)
    assert task.table.table.tolist() == [-1] * 6  # not published mid-epoch
    model.before_epoch(1)
    table = task.table.table.tolist()
    assert table == asc.live.tolist() and all(t >= 0 for t in table)
    assert all(groups[t] != groups[v] and t != v for v, t in enumerate(table))


def context(index: int, n: int = 6, groups=("a", "a", "b", "b", "c", "c")):
    return ItemContext(index, tuple([40] * n), groups)


def test_partner_clip_same_speed_other_video_other_group():
    task = AscNetTask(clip_len=4, speeds=(1, 2, 3))
    seen_speeds = set()
    for seed in range(60):
        rng = np.random.default_rng(seed)
        s = task.sample(40, rng, context=context(2))
        i, j, k = (s.plans[c] for c in ("clip_i", "clip_j", "clip_k"))
        assert i.video is None and j.video is None and k.video not in (2, 3)  # not itself, not its group
        assert k.params["stride"] == i.params["stride"] == task.speeds[s.labels["speed_i"]]
        seen_speeds.add((i.params["stride"], j.params["stride"]))
        assert float(s.extras["video"]) == 2.0
    assert len(seen_speeds) > 3  # c_i and c_j at independently drawn speeds
    same = AscNetTask(clip_len=4, speeds=(1, 2, 3), acp_same_speed=True).sample(40, np.random.default_rng(0), context=context(2))
    assert same.plans["clip_i"].params["stride"] == same.plans["clip_j"].params["stride"]
    no_groups = AscNetTask(clip_len=4, exclude_same_group=False)
    assert {no_groups.sample(40, np.random.default_rng(s), context=context(2)).plans["clip_k"].video for s in range(80)} \
        == {0, 1, 3, 4, 5}


def test_partner_follows_the_published_table_and_sampling_is_deterministic():
    task = AscNetTask(clip_len=4)
    task.table.publish(torch.tensor([5, 4, 0, 1, 2, 3]))
    for v, nn_v in enumerate([5, 4, 0, 1, 2, 3]):
        assert task.sample(40, np.random.default_rng(v), context=context(v)).plans["clip_k"].video == nn_v
    a = task.sample(40, np.random.default_rng(9), context=context(1))
    b = task.sample(40, np.random.default_rng(9), context=context(1))
    assert all(np.array_equal(a.plans[c].indices, b.plans[c].indices) for c in a.plans)


def test_sample_refuses_without_context_or_with_one_video():
    task = AscNetTask(clip_len=4)
    with pytest.raises(ValueError, match="ItemContext"):
        task.sample(40, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 2"):
        task.sample(40, np.random.default_rng(0), context=ItemContext(0, (40,), None))
    with pytest.raises(ValueError, match="gamma"):
        make_task("ascnet", gamma=1.5)
    from vsslkit.train.pretrain import MoCoConfig, PretrainConfig, build_task

    with pytest.raises(ValueError, match="contrastive"):
        build_task(PretrainConfig(task="ascnet", moco=MoCoConfig()))


class ArraySource:
    """Frames whose pixel value is the video's number: the loader's cross-video read is visible."""

    def read(self, path, indices):
        v = int(str(path).rsplit("_", 1)[1])
        return np.full((len(indices), 8, 8, 3), 10 * v, dtype=np.uint8)


def test_loader_reads_the_partner_clip_from_the_other_video():
    task = AscNetTask(clip_len=4)
    task.table.publish(torch.tensor([3, 2, 1, 0]))
    ds = ClipDataset([f"v_{i}" for i in range(4)], None, [30] * 4, ArraySource(), Joint({"pretext": task}).sample,
                     groups=["a", "b", "c", "d"])
    items = collate([ds[(0, i)] for i in range(4)])
    own = items["frames"]["pretext.clip_i"][:, 0, 0, 0, 0].tolist()
    partner = items["frames"]["pretext.clip_k"][:, 0, 0, 0, 0].tolist()
    assert own == [0, 10, 20, 30] and partner == [30, 20, 10, 0]
    assert items["extras"]["pretext.video"].tolist() == [0, 1, 2, 3]


def test_checkpoint_holds_bank_and_tables_and_a_fresh_model_loads_them():
    model, asc, _ = model_and_module(n=6, refresh_every=1)
    model.train()
    b = batch(6, videos=list(range(6)))
    model(b["clips"], b["extras"])
    model.after_optimizer_step()
    model.before_epoch(1)
    state = copy.deepcopy(model.state_dict())
    torch.manual_seed(0)
    fresh = PretextModel(TinyBackbone(), Joint({"pretext": AscNetTask(clip_len=4, hidden=8, dim=4)}))
    fresh.load_state_dict(state)  # unsized bank: takes the checkpoint's size
    f = fresh.head.branches["pretext"]
    for name in ("bank", "seen", "live", "published", "published_epoch", "steps"):
        assert torch.equal(getattr(f, name), getattr(asc, name)), name
    f.before_epoch(1)  # a resumed epoch republishes the stored table, not a newer one
    assert f.table.table.tolist() == asc.published.tolist()


def test_features_pass_extras_through_prefixes():
    feats = Features(TinyBackbone(), {"x.clip": torch.zeros(1, 3, 4, 8, 8)}, extras={"x.video": torch.tensor([3.0])})
    from vsslkit.tasks.base import Prefixed

    assert float(Prefixed(feats, "x.").extra("video")) == 3.0
    with pytest.raises(KeyError, match="no extra"):
        feats.extra("nope")


def test_module_needs_two_videos():
    with pytest.raises(ValueError, match="at least 2"):
        AscNetModule(TinyBackbone(), table=AscNetTask().table, hidden=4, dim=4, tau=0.9, gamma=0.5,
                     refresh_every=5, exclude_same_group=True, seed=0).bind_dataset(1, None)


# --------------------------------------------------------------------- held-out diagnostics


def test_partner_same_class_against_a_hand_count():
    from vsslkit.eval.ascnet import partner_same_class

    feats = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [1, 0.05]], dtype=np.float32)
    labels = [0, 0, 1, 1, 1]
    # without groups: 0->4 (miss), 1->4 (miss... 1 is [0.9,0.1]: cos to 4 > cos to 0), 2->3, 3->2, 4->0 (miss)
    share, chance = partner_same_class(feats, labels, None)
    assert share == pytest.approx(2 / 5)
    assert chance == pytest.approx(np.mean([1 / 4, 1 / 4, 2 / 4, 2 / 4, 2 / 4]))
    # groups: 0 and 4 share a group, so 0 and 4 must look elsewhere: 0->1 (hit), 4->1 (miss)
    share, _ = partner_same_class(feats, labels, ["x", "y", "z", "w", "x"])
    assert share == pytest.approx(3 / 5)


def test_speed_probe_reads_a_speed_code_and_not_noise():
    from vsslkit.eval.ascnet import speed_probe

    rng = np.random.default_rng(0)
    speed = np.tile([0, 1], 100)
    groups = [f"g{i // 10}" for i in range(200)]
    noise = rng.normal(size=(200, 8))
    coded = noise.copy()
    coded[:, 3] += 8 * speed
    assert speed_probe(coded, speed, groups) > 0.95
    assert 0.3 < speed_probe(noise, speed, groups) < 0.7


def test_diagnostics_run_on_a_model_and_compare_with_random_init():
    from vsslkit.eval.ascnet import ascnet_diagnostics, diagnostics_markdown

    model, _, _ = model_and_module(n=8)
    paths = [f"v_{i}" for i in range(8)]
    d = ascnet_diagnostics(model, ArraySource(), paths, [30] * 8, [i % 2 for i in range(8)],
                           [f"g{i // 2}" for i in range(8)], crop_size=8)
    assert d.videos == 8 and d.clips == 16 and d.speed_chance == 0.5
    assert 0 <= d.partner_same_class <= 1 and d.partner_chance == pytest.approx(3 / 6)
    assert "random init" in diagnostics_markdown(d, d)


def test_backbone_speed_probe_runs_on_any_backbone():
    from vsslkit.eval.ascnet import backbone_speed_probe

    torch.manual_seed(0)
    acc = backbone_speed_probe(TinyBackbone(), ArraySource(), [f"v_{i}" for i in range(8)], [30] * 8,
                               [f"g{i // 2}" for i in range(8)], clip_len=4, speeds=(1, 2), crop_size=8, residual=True)
    assert 0.0 <= acc <= 1.0


# --------------------------------------------------------------------- pictures (viz.ascnet)


def test_triplet_strips_name_each_clip_its_video_and_stride():
    from vsslkit.viz.ascnet import triplet_strips

    task = AscNetTask(clip_len=4)
    task.table.publish(torch.tensor([2, 3, 0, 1]))
    sample = task.sample(30, np.random.default_rng(0), context=ItemContext(1, (30,) * 4, None))
    image, names = triplet_strips(sample, [f"v_{i}" for i in range(4)], 1, ArraySource(),
                                  class_names=["a", "b"], labels=[0, 1, 0, 1])
    s = sample.plans["clip_i"].params["stride"]
    assert names[0] == f"c_i online: b, x{s}" and names[1].startswith("c_j same video: b")
    assert names[2] == f"c_k retrieved: b, x{s}"  # video 3 (class b), c_i's stride
    assert image.ndim == 3 and image.shape[0] >= 3 * 8


def test_partner_rows_and_stats_follow_the_tables():
    from vsslkit.viz.ascnet import partner_markdown, partner_rows, partner_stats

    tables = {"start": [-1, -1, -1, -1], "step 10": [1, 0, 3, 2], "step 20": [2, 3, 0, 1]}
    image, names = partner_rows(0, tables, [f"v_{i}" for i in range(4)], ArraySource(), num_frames=[30] * 4, count=3)
    assert names == ["query: v_0", "step 10: v_1", "step 20: v_2"] and image.shape[0] >= 3 * 8
    stats = partner_stats(tables, [0, 0, 1, 1])
    assert [s["with partner"] for s in stats] == [0, 4, 4]
    assert stats[1]["same class"] == 1.0 and stats[2]["same class"] == 0.0 and stats[2]["changed"] == 1.0
    assert "| step 20 | 4 | 0% | 100% |" in partner_markdown(stats, chance=1 / 3)


def test_diagnostics_feed_frame_differences_to_a_residual_model():
    from vsslkit.eval.ascnet import held_out_features

    torch.manual_seed(0)
    model = PretextModel(TinyBackbone(), Joint({"pretext": AscNetTask(clip_len=4, extra_frames=1, hidden=8, dim=4)}))
    model.bind_dataset(4, None)
    seen = []
    model.backbone.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[2]))
    held_out_features(model, ArraySource(), [f"v_{i}" for i in range(4)], [30] * 4, crop_size=8)
    assert seen and set(seen) == {4}  # 5 frames read, 4 differences in
    # constant frames: the differences are all zero, so every clip gets the same features
