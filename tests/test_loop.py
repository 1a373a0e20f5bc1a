"""The fit loop with tiny stand-ins: a frame source in memory and a two-layer model."""

from __future__ import annotations

import csv
import importlib.util

import pytest
import torch
import torch.nn.functional as F
from test_clips import MemorySource, speed_sample
from torch import nn

from vsslkit.data.clips import BatchPreparer, ClipDataset, EpochSampler, collate
from vsslkit.train.loop import fit, make_optimizer, make_scheduler

torch.set_num_threads(1)


class TinyNet(nn.Module):
    """Conv3d + dropout + linear, with the PretextModel-style `training_step` the loop calls."""

    def __init__(self, classes: int = 2, dropout: float = 0.2):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4, classes)
        self.after_steps = 0

    def forward(self, x):
        return self.fc(self.drop(self.conv(x).relu().mean((2, 3, 4))))

    def training_step(self, batch):
        logits = self(batch["clips"]["clip"])
        y = batch["labels"]["speed"]
        return F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()}

    def after_optimizer_step(self):
        self.after_steps += 1


def make_loader(n_videos: int = 10, batch_size: int = 2, seed: int = 0, broken=(), workers: int = 0):
    counts = {f"/v/{i:02d}.mp4": 12 + i for i in range(n_videos)}
    source = MemorySource(counts, broken=set(broken))
    paths = sorted(counts)
    ds = ClipDataset(paths, None, [counts[p] for p in paths], source, speed_sample, seed=seed)
    sampler = EpochSampler(len(ds), seed=seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                                       num_workers=workers)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_fit_logs_checkpoints_and_calls_hooks(tmp_path):
    torch.manual_seed(0)
    model = TinyNet()
    opt = make_optimizer("sgd", model.parameters(), lr=0.1)
    sched = make_scheduler("multistep", opt, milestones=[4])
    seen = []
    result = fit(model, make_loader(), optimizer=opt, scheduler=sched, epochs=2, out_dir=tmp_path,
                 prepare=BatchPreparer(crop_size=16), log_every=2, eval_fn=lambda m: {"score": 0.5},
                 eval_every=5, checkpoint_every=3, progress=False, on_log=seen.append, config={"lr": 0.1})
    assert result.steps == 10 and result.epochs == 2 and model.after_steps == 10
    rows = read_csv(tmp_path / "metrics.csv")
    train_rows = [r for r in rows if r["loss"]]
    assert [int(r["step"]) for r in train_rows] == [2, 4, 6, 8, 10]
    assert {"step", "epoch", "loss", "acc", "lr", "time", "val_score"} <= set(rows[0])
    assert [float(r["val_score"]) for r in rows if r["val_score"]] == [0.5, 0.5]
    assert float(train_rows[0]["lr"]) == pytest.approx(0.1) and float(train_rows[-1]["lr"]) == pytest.approx(0.01)
    assert len(seen) == len(rows)
    from vsslkit.train.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 10 and state["epoch"] == 2 and state["config"] == {"lr": 0.1}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state["model"].items())


def test_fit_learns_a_fixed_batch(tmp_path):
    torch.manual_seed(0)
    model = TinyNet(dropout=0.0)
    x = torch.randn(4, 3, 2, 6, 6)
    y = torch.tensor([0, 1, 0, 1])
    x[y == 1] += 1.0
    batches = [{"clips": {"clip": x}, "labels": {"speed": y}}] * 30
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    result = fit(model, loader, optimizer=make_optimizer("adamw", model.parameters(), lr=0.05), epochs=1,
                 out_dir=tmp_path, log_every=1, checkpoint_every=None, progress=False)
    losses = [r["loss"] for r in result.history]
    assert len(losses) == 30 and losses[-1] < 0.5 * losses[0]


def test_max_steps_amp_and_grad_clip(tmp_path):
    torch.manual_seed(0)
    model = TinyNet()
    result = fit(model, make_loader(), optimizer=make_optimizer("sgd", model.parameters(), lr=0.1), max_steps=3,
                 out_dir=tmp_path, prepare=BatchPreparer(crop_size=16), amp=True, grad_clip=0.5, log_every=1,
                 progress=False)
    assert result.steps == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    from vsslkit.train.checkpoint import load_checkpoint

    state = load_checkpoint(result.checkpoint)
    assert state["step"] == 3 and state["sampler"]["position"] == 6 and state["epoch"] == 0


def test_unreadable_videos_are_reported_not_fatal(tmp_path, capsys):
    model = TinyNet()
    fit(model, make_loader(broken={"/v/03.mp4"}), optimizer=make_optimizer("sgd", model.parameters(), lr=0.01),
        epochs=1, out_dir=tmp_path, prepare=BatchPreparer(crop_size=16), progress=False)
    captured = capsys.readouterr()
    assert "skipped unreadable video /v/03.mp4" in captured.out + captured.err
    rows = read_csv(tmp_path / "read_failures.csv")
    assert [r["path"] for r in rows] == ["/v/03.mp4"] and "corrupt file" in rows[0]["reason"]


def test_bad_settings_are_clear_errors(tmp_path):
    model = TinyNet()
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("rmsprop", model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no trainable"):
        make_optimizer("sgd", [p.requires_grad_(False) for p in TinyNet().parameters()], lr=0.1)
    with pytest.raises(ValueError, match="unknown schedule"):
        make_scheduler("step", make_optimizer("sgd", model.parameters(), lr=0.1))
    bad = TinyNet()
    with pytest.raises(FloatingPointError, match="loss became nan at step 1"):
        fit(bad, make_loader(), optimizer=make_optimizer("sgd", bad.parameters(), lr=float("inf")), max_steps=2,
            out_dir=tmp_path, prepare=BatchPreparer(crop_size=16), progress=False)


def test_tensorboard_logs_or_names_the_missing_package(tmp_path):
    model = TinyNet()
    kwargs = {"optimizer": make_optimizer("sgd", model.parameters(), lr=0.1), "max_steps": 1, "out_dir": tmp_path,
              "prepare": BatchPreparer(crop_size=16), "tensorboard": True, "progress": False}
    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(RuntimeError, match="tensorboard"):
            fit(model, make_loader(), **kwargs)
    else:
        fit(model, make_loader(), **kwargs)
        assert any((tmp_path / "tensorboard").iterdir())


class StubBackbone(nn.Module):
    """BatchNorm + pooling: enough to see whether a probe changes a backbone's statistics."""

    feature_dim = 3

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm3d(3)

    def forward(self, x):
        return self.bn(x).mean((2, 3, 4))


def test_video_classifier_probe_and_finetune(tmp_path):
    from vsslkit.models.weights import load_backbone_weights
    from vsslkit.train.checkpoint import save_checkpoint
    from vsslkit.train.supervised import VideoClassifier

    x = torch.randn(4, 3, 2, 5, 5) * 3 + 1
    batch = {"clips": {"clip": x}, "labels": {"class": torch.tensor([0, 1, 2, 0])}}
    probe = VideoClassifier(StubBackbone(), 3, freeze_backbone=True).train()
    loss, metrics = probe.training_step(batch)
    loss.backward()
    assert not probe.backbone.training and probe.backbone.bn.running_mean.abs().max() == 0
    assert probe.backbone.bn.weight.grad is None and probe.head.fc.weight.grad is not None
    assert 0.0 <= metrics["acc"] <= 1.0
    tuned = VideoClassifier(StubBackbone(), 3).train()
    tuned.training_step(batch)
    assert tuned.backbone.training and tuned.backbone.bn.running_mean.abs().max() > 0
    with pytest.raises(ValueError, match="class label"):
        tuned.training_step({"clips": {"clip": x}, "labels": {"class": torch.tensor([0, -1, 2, 0])}})

    pre = StubBackbone()
    pre.bn.weight.data.fill_(2.0)
    save_checkpoint(tmp_path / "pre.pt", {"model": {f"backbone.{k}": v for k, v in pre.state_dict().items()}})
    target = StubBackbone()
    assert load_backbone_weights(target, tmp_path / "pre.pt").missing == []
    assert torch.equal(target.bn.weight, pre.bn.weight)
    save_checkpoint(tmp_path / "other.pt", {"model": {"backbone.conv.weight": torch.zeros(1)}})
    with pytest.raises(ValueError, match="other.pt: weights do not fit"):
        load_backbone_weights(StubBackbone(), tmp_path / "other.pt")
    save_checkpoint(tmp_path / "wide.pt", {"model": {"backbone.bn.weight": torch.ones(5)}})
    with pytest.raises(ValueError, match="wide.pt: weights do not fit"):
        load_backbone_weights(StubBackbone(), tmp_path / "wide.pt")
    save_checkpoint(tmp_path / "none.pt", {"model": {"fc.weight": torch.zeros(1)}})
    with pytest.raises(ValueError, match="no 'backbone"):
        load_backbone_weights(StubBackbone(), tmp_path / "none.pt")


@pytest.mark.parametrize("background", [True, False])
def test_inline_and_background_preparation_train_the_same_weights(tmp_path, monkeypatch, background):
    """`fit` prepares batches on a thread only when a core is free for it; either way the run is
    bit-identical to the other (same crops per step, same order)."""
    from vsslkit.train import loop

    def run(out, use_thread):
        monkeypatch.setattr(loop, "core_is_free", lambda device: use_thread)
        torch.manual_seed(0)
        model = TinyNet()
        fit(model, make_loader(), optimizer=make_optimizer("sgd", model.parameters(), lr=0.1), epochs=2,
            out_dir=out, prepare=BatchPreparer(crop_size=16, seed=3), log_every=2, checkpoint_every=3,
            progress=False)
        return model.state_dict()

    a, b = run(tmp_path / "a", background), run(tmp_path / "b", not background)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_callback_that_switches_to_eval_does_not_leave_training_in_eval(tmp_path):
    """Train mode is set once per epoch and after each log row / evaluation, not every step: a
    callback's `eval()` on the model or on a submodule must still not reach the next step."""
    torch.manual_seed(0)
    model = TinyNet()
    modes = []
    step = model.training_step

    def recording_step(batch):
        modes.append((model.training, model.drop.training))
        return step(batch)

    model.training_step = recording_step

    def evaluate(m):
        m.drop.eval()  # a submodule only: the root still says training
        return {"score": 1.0}

    fit(model, make_loader(), optimizer=make_optimizer("sgd", model.parameters(), lr=0.1), epochs=1,
        out_dir=tmp_path, prepare=BatchPreparer(crop_size=16), log_every=2, eval_fn=evaluate, eval_every=1,
        on_log=lambda row: model.eval(), checkpoint_every=None, progress=False)
    assert len(modes) == 5 and all(m == (True, True) for m in modes)
