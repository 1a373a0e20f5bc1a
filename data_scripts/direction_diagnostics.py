"""Why the direction branch of seed 001's joint model stays at chance: trunk and input diagnostics.

Trains the classification + direction arm of `vsslkit train-joint` (no tracking; circular padding,
Adam lr 1e-3 unless told otherwise) with one change at a time, then scores the direction branch
on the held-out videos (4 clips per video, each reversed by a seeded coin), in eval mode and,
with `--batch-stats`, again with batch norm using each held-out batch's own statistics.

Changes (each is a diagnostic, not a library option):
- `--input residual-dir`: the direction clip becomes the K differences of K+1 frames, the
  classification clip stays RGB; `residual-both`: both clips are differences.
- `--trunk stem3`: the thesis trunk with a 3x7x7 stem (temporal kernel 3, no temporal stride);
  `temporal`: every bottleneck's middle conv 3x3x3 (I3D-style inflation, no temporal stride);
  `r3d`: the kit's R3D-10 x 0.25 (the backbone on which the arrow-of-time pretext learns).
- `--optimizer adam` (β = (0.9, 0.999)) or `sgd` (momentum 0.9) instead of the thesis' Adam
  β = (0.5, 0.999); `--batch-size`, `--conv5-units`, `--width`, `--stride`, `--direction-weight`.

    VSSLKIT_STORE=/tmp/cycle/store python data_scripts/direction_diagnostics.py --data /tmp/cycle/data \
        --out /tmp/dir/r3d --trunk r3d --input residual-dir --steps 300 --batch-stats

Results and reading: docs/results/from_scratch.md, "Why the direction branch does not learn here".
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch

import vsslkit.train.from_scratch as fs
from vsslkit.commands.train import _load_index
from vsslkit.data import transforms as T
from vsslkit.data.clips import BatchPreparer
from vsslkit.data.datasets import open_dataset
from vsslkit.models.backbones import build_backbone
from vsslkit.tasks.arrow_of_time import ArrowOfTimeTask
from vsslkit.tasks.joint import Joint
from vsslkit.tasks.model import PretextModel
from vsslkit.tasks.supervised import SupervisedTask
from vsslkit.train.distributed import DistInfo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--store", default=os.environ.get("VSSLKIT_STORE"))
    p.add_argument("--out", required=True)
    p.add_argument("--input", choices=("rgb", "residual-dir", "residual-both"), default="rgb")
    p.add_argument("--trunk", choices=("thesis", "stem3", "temporal", "r3d"), default="thesis")
    p.add_argument("--optimizer", choices=("thesis", "adam", "sgd"), default="thesis")
    p.add_argument("--lr", type=float, default=None, help="default 1e-3 (Adam) / 0.05 (SGD)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--direction-weight", type=float, default=2.0)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--conv5-units", type=int, default=1)
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--batch-stats", action="store_true", help="also score with batch norm on batch statistics")
    args = p.parse_args()
    residual = {"rgb": (), "residual-dir": ("dir.clip",), "residual-both": ("cls.clip", "dir.clip")}[args.input]
    lr = args.lr if args.lr is not None else (0.05 if args.optimizer == "sgd" else 1e-3)

    def build_joint(config: fs.FromScratchConfig) -> Joint:
        tasks = {"cls": SupervisedTask(num_classes=config.num_classes, clip_len=config.clip_len,
                                       extra_frames=int("cls.clip" in residual)),
                 "dir": ArrowOfTimeTask(clip_len=config.clip_len, speeds=(config.direction_stride,),
                                        extra_frames=int("dir.clip" in residual))}
        return Joint(tasks, weights={"cls": 1.0, "dir": config.direction_weight})

    thesis_model = fs.build_model

    def build_model(config: fs.FromScratchConfig) -> PretextModel:
        if args.trunk == "r3d":
            torch.manual_seed(config.seed)
            return PretextModel(build_backbone("r3d_10", width=0.25), build_joint(config))
        model = thesis_model(config)
        if args.trunk == "stem3":
            old = model.backbone.stem[0]
            torch.manual_seed(config.seed)
            new = torch.nn.Conv3d(old.in_channels, old.out_channels, kernel_size=(3, 7, 7), stride=(1, 2, 2),
                                  padding=(1, 3, 3), bias=False)
            torch.nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
            model.backbone.stem[0] = new
        elif args.trunk == "temporal":
            torch.manual_seed(config.seed + 1)
            for layer in (model.backbone.layer1, model.backbone.layer2, model.backbone.layer3):
                for block in layer:
                    old = block.conv2
                    new = torch.nn.Conv3d(old.in_channels, old.out_channels, kernel_size=(3, 3, 3), stride=old.stride,
                                          padding=(1, 1, 1), bias=False)
                    torch.nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
                    block.conv2 = new
        return model

    class Preparer(BatchPreparer):  # differences for the named clips only
        def __call__(self, batch, *, step, train=True):
            out = super().__call__(batch, step=step, train=train)
            out["clips"] = {k: (T.residual_frames(v) if k in residual else v) for k, v in out["clips"].items()}
            return out

    def optimiser(model: torch.nn.Module, config: fs.FromScratchConfig) -> torch.optim.Optimizer:
        params = [q for q in model.parameters() if q.requires_grad]
        if args.optimizer == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
        betas = (0.5, 0.999) if args.optimizer == "thesis" else (0.9, 0.999)
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=1e-4)

    fs.build_joint, fs.build_model, fs.BatchPreparer, fs.make_adam = build_joint, build_model, Preparer, optimiser
    ns = argparse.Namespace(data=args.data, split=1, store=Path(args.store) if args.store else None, short_side=128,
                            store_format="auto", jpeg_quality=90, progress=False)
    index, store = _load_index(ns, DistInfo(device=torch.device("cpu")))
    config = fs.FromScratchConfig(num_classes=index.num_classes, track_weight=0.0, direction_weight=args.direction_weight,
                                  lr=lr, padding="circular", direction_stride=args.stride, batch_size=args.batch_size,
                                  conv5_units=args.conv5_units, width=args.width)
    model, result = fs.train_from_scratch(config, paths=index.paths, labels=index.labels, num_frames=index.num_frames,
                                          source=store, out_dir=args.out, steps=args.steps, progress=False,
                                          log_every=10, checkpoint_every=None, resume=False)
    train_acc = [h["dir.direction_acc"] for h in result.history]
    print(f"trained {result.steps} steps in {result.seconds:.1f} s; direction accuracy on the training batches, "
          f"mean of the last 50 steps: {100 * np.mean(train_acc[-5:]):.1f} %", flush=True)

    test, _ = open_dataset(args.data, split=1, subset="test").with_frame_counts(store, progress=False)

    def held_out() -> dict[str, float]:
        return fs.direction_accuracy(model, test.paths, test.num_frames, store, clip_len=config.clip_len,
                                     size=config.size, stride=args.stride, residual="dir.clip" in residual)

    score = held_out()
    print(f"held-out direction accuracy (eval mode): {100 * score['direction_accuracy']:.1f} % of "
          f"{score['direction_clips']} clips", flush=True)
    if args.batch_stats:  # batch norm without running statistics normalises with each held-out batch's own
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.track_running_stats, m.running_mean, m.running_var = False, None, None
        print(f"held-out direction accuracy (batch statistics): {100 * held_out()['direction_accuracy']:.1f} %",
              flush=True)


if __name__ == "__main__":
    main()
