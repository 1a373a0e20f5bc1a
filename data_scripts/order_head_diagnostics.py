"""Why does the pairwise order head stall under SGD? Two diagnostics behind docs/results/playback_order.md.

`gradient`: at initialisation, the gradient norm reaching the backbone through the pairwise head
(fc7 → ReLU → dropout → fc8, seed 002 fig. 2c) against one linear layer on the same [f0; f1], on random
clips, for a few seeds. `linear DATA_DIR STORE_DIR`: pretrains playback order n = 2 with SGD exactly as
`vsslkit pretrain --task playback-order --clips 2 --batch-size 16` does, but with the pairwise head
replaced by that linear layer, and prints the training loss and accuracy every 50 steps.

    PYTHONPATH=. python data_scripts/order_head_diagnostics.py gradient
    PYTHONPATH=. python data_scripts/order_head_diagnostics.py linear DATA_DIR STORE_DIR [STEPS]
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace

import torch
from torch import nn

from vsslkit.models import build_backbone
from vsslkit.models.heads import PairwiseOrderHead
from vsslkit.tasks import playback_order


class LinearOrderHead(nn.Module):
    """One linear layer on the concatenated slot features (n = 2 only): the diagnostic's control."""

    def __init__(self, in_dim: int, clips: int, *, hidden: int = 64, dropout: float = 0.5):
        super().__init__()
        if clips != 2:
            raise ValueError("the linear control is for n = 2")
        self.fc = nn.Linear(2 * in_dim, 2)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.fc(torch.cat(features, dim=1))


def gradient_ratio(seeds: int = 5) -> None:
    ratios = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        backbone = build_backbone("r3d_10", width=0.25)
        clips, labels = torch.randn(32, 3, 8, 56, 56), torch.randint(0, 2, (16,))
        norms = {}
        for name, head in (("pairwise", PairwiseOrderHead(backbone.feature_dim, 2, hidden=64, dropout=0.5)),
                           ("linear", LinearOrderHead(backbone.feature_dim, 2))):
            backbone.zero_grad()
            pooled = backbone(clips)
            nn.functional.cross_entropy(head([pooled[:16], pooled[16:]]), labels).backward()
            norms[name] = torch.sqrt(sum((p.grad ** 2).sum() for p in backbone.parameters() if p.grad is not None))
        ratios.append(float(norms["pairwise"] / norms["linear"]))
        print(f"seed {seed}: backbone gradient norm pairwise {norms['pairwise']:.3g}, linear {norms['linear']:.3g}, "
              f"ratio {ratios[-1]:.3f}")
    print(f"mean ratio {sum(ratios) / len(ratios):.3f}")


def linear_head_run(data_dir: str, store_dir: str, steps: int) -> None:
    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.store import FrameStore
    from vsslkit.experiments.quickstart import CPU_PRETRAIN
    from vsslkit.train.pretrain import pretrain

    playback_order.PairwiseOrderHead = LinearOrderHead  # what OrderModule builds for this run only
    store = FrameStore(store_dir, short_side=64)
    train, _ = open_dataset(data_dir, split=1, subset="train").with_frame_counts(store)
    config = replace(CPU_PRETRAIN, task="playback-order", task_options={"clips": 2}, moco=None, batch_size=16)
    with tempfile.TemporaryDirectory() as out:
        _, result = pretrain(config, paths=train.paths, num_frames=train.num_frames, source=store, out_dir=out,
                             max_steps=steps, log_every=50, checkpoint_every=None, resume=False, progress=False)
    for row in result.history:
        if "loss" in row:
            print(f"step {row['step']}: loss {row['loss']:.4f}, training accuracy {row['pretext.order_acc']:.3f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1:2] == ["gradient"]:
        gradient_ratio()
    elif sys.argv[1:2] == ["linear"] and len(sys.argv) >= 4:
        linear_head_run(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 400)
    else:
        sys.exit(__doc__)
