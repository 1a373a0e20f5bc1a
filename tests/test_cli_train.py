"""`vsslkit pretrain`, `finetune` and `bench train` end to end on a tiny synthetic dataset."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from vsslkit.cli import build_parser, main
from vsslkit.train.checkpoint import load_checkpoint

torch.set_num_threads(1)
SMALL = ["--backbone", "r3d_10", "--width", "0.125", "--clip-len", "4", "--size", "32", "--batch-size", "4",
         "--device", "cpu", "--no-progress", "--log-every", "1", "--short-side", "32"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from vsslkit.data.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("syn"), videos_per_class=7, size=32, length_range=(24, 32),
                          progress=False)


def test_commands_are_registered():
    parser = build_parser()
    args = parser.parse_args(["pretrain", "--data", "d", "--out", "o", "--task", "pace", "--steps", "3"])
    assert args.func.__name__ == "run_pretrain" and args.steps == 3 and args.resume
    args = parser.parse_args(["finetune", "--data", "d", "--out", "o", "--init", "x.pt", "--freeze", "--no-resume"])
    assert args.func.__name__ == "run_finetune" and args.freeze and not args.resume
    args = parser.parse_args(["bench", "train", "--steps", "2"])
    assert args.steps == 2 and args.batch_size == 4
    with pytest.raises(SystemExit):
        parser.parse_args(["pretrain", "--data", "d", "--out", "o", "--epochs", "1", "--steps", "2"])


@pytest.mark.slow
def test_pretrain_resume_then_finetune_from_it(synthetic, tmp_path, capsys):
    out = tmp_path / "pre"
    store = tmp_path / "store"
    common = ["--data", str(synthetic), "--store", str(store), "--out", str(out), *SMALL]
    assert main(["pretrain", "--task", "pace", "--residual", "--steps", "2", *common]) == 0
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == 2 and state["config"]["pretrain"]["task"] == "pace"
    assert any(k.startswith("backbone.") for k in state["model"])
    # --steps 3 on the same --out continues from the checkpoint instead of starting over
    assert main(["pretrain", "--task", "pace", "--residual", "--steps", "3", *common]) == 0
    assert "resumed from" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and "pretext.speed_acc" in rows[0]

    ft = tmp_path / "ft"
    assert main(["finetune", "--data", str(synthetic), "--store", str(store), "--out", str(ft), "--residual",
                 "--init", str(out / "checkpoints" / "last.pt"), "--label-fraction", "0.5", "--steps", "2",
                 *SMALL]) == 0
    saved = load_checkpoint(ft / "classifier.pt")
    config = json.loads((ft / "classifier.json").read_text())
    assert config["num_classes"] == 14 and config["residual"] and config["init"].endswith("last.pt")
    assert saved["config"] == config and saved["model"]["head.fc.weight"].shape[0] == 14
    # the classifier started from the pretrained backbone, not from a fresh random one
    from vsslkit.models import build_backbone

    pre = {k[len("backbone."):]: v for k, v in load_checkpoint(out / "checkpoints" / "last.pt")["model"].items()
           if k.startswith("backbone.")}
    random_init = build_backbone("r3d_10", width=0.125).state_dict()
    name = next(k for k, v in pre.items() if v.dtype.is_floating_point and v.dim() == 5)
    tuned = saved["model"][f"backbone.{name}"]
    assert (tuned - pre[name]).norm() < 0.1 * (random_init[name] - pre[name]).norm()


@pytest.mark.slow
def test_linear_probe_keeps_the_backbone_fixed(synthetic, tmp_path):
    ft = tmp_path / "probe"
    torch.manual_seed(0)
    assert main(["finetune", "--data", str(synthetic), "--store", str(tmp_path / "store"), "--out", str(ft),
                 "--freeze", "--steps", "2", "--seed", "3", *SMALL]) == 0
    from vsslkit.models import build_backbone

    torch.manual_seed(3)
    fresh = build_backbone("r3d_10", width=0.125).state_dict()
    saved = load_checkpoint(ft / "classifier.pt")["model"]
    assert all(torch.equal(saved[f"backbone.{k}"], v) for k, v in fresh.items())


def test_bench_train_prints_figures(tmp_path, capsys):
    assert main(["bench", "train", "--width", "0.125", "--frames", "4", "--size", "32", "--steps", "2",
                 "--videos", "2", "--batch-size", "2", "--log-every", "1", "--checkpoint-every", "1", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    for text in ("bare model step", "full fit loop", "loop overhead", "clips/s", "round 1:", "round 2:",
                 "median of 2 rounds"):
        assert text in out
    assert "round 3:" not in out


@pytest.mark.slow
def test_same_batch_contrastive_pretraining_with_workers(synthetic, tmp_path):
    out = tmp_path / "sb"
    assert main(["pretrain", "--data", str(synthetic), "--store", str(tmp_path / "store"), "--out", str(out),
                 "--task", "speed-change-coarse", "--contrastive", "--queue-size", "32", "--same-batch",
                 "--workers", "2", "--steps", "2", *SMALL]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 2 and {"pretext.speed_acc", "moco.loss"} <= set(rows[0])


@pytest.mark.slow
def test_pretrain_under_torchrun(synthetic, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "vsslkit", "pretrain", "--data", str(synthetic), "--store", str(tmp_path / "store"),
                           "--out", str(out), "--task", "pace", "--steps", "2", *SMALL],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("pretrained 2 steps") == 1  # only rank 0 reports and writes
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 2
    assert "Grad strides" not in proc.stderr
