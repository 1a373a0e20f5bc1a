"""Two-process DDP (gloo, CPU) matches one process on the same global batch.

This file is also the training script: `python tests/test_ddp.py OUT_DIR` (alone, global batch 4)
or under `torchrun --nproc_per_node=2` (batch 2 per rank). The model has no BatchNorm and no
dropout, so per-rank averaged gradients equal the full-batch gradient and the runs must agree.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
GLOBAL_BATCH, STEPS = 4, 5


def train(out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sys.path.insert(0, str(HERE))
    from test_clips import MemorySource, speed_sample
    from test_loop import TinyNet

    from vsslkit.data.clips import ClipDataset, EpochSampler, collate, prepare_batch
    from vsslkit.train.distributed import cleanup, init_distributed
    from vsslkit.train.loop import fit, make_optimizer

    info = init_distributed("cpu")
    counts = {f"/v/{i:02d}.mp4": 12 + i for i in range(10)}
    paths = sorted(counts)
    ds = ClipDataset(paths, None, [counts[p] for p in paths], MemorySource(counts), speed_sample, seed=1)
    sampler = EpochSampler(len(ds), seed=1, rank=info.rank, world_size=info.world_size)
    loader = torch.utils.data.DataLoader(ds, batch_size=GLOBAL_BATCH // info.world_size, sampler=sampler,
                                         collate_fn=collate)
    model = TinyNet(dropout=0.0)
    # Centre crops: the same input whichever rank a clip lands on.
    result = fit(model, loader, optimizer=make_optimizer("sgd", model.parameters(), lr=0.5), max_steps=STEPS,
                 out_dir=out_dir, prepare=lambda b, step: prepare_batch(b, crop_size=16, train=False),
                 log_every=1, progress=False, dist_info=info)
    torch.save(model.state_dict(), Path(out_dir) / f"weights_rank{info.rank}.pt")
    print(f"rank {info.rank}/{info.world_size} steps {result.steps} checkpoint {result.checkpoint}")
    cleanup()


def _losses(out: Path) -> list[float]:
    with (out / "metrics.csv").open(newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_two_gloo_ranks_match_a_single_process(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    from conftest import (  # not at the top: the ranks run this file as a script
        TORCHRUN_2_RANKS,
        run_as_script,
    )

    run_as_script(__file__, single)
    out = run_as_script(__file__, ddp, TORCHRUN_2_RANKS)
    assert "rank 0/2" in out and "rank 1/2" in out
    assert "checkpoint None" in out  # rank 1 wrote no checkpoint
    r0, r1 = (torch.load(ddp / f"weights_rank{r}.pt", weights_only=True) for r in (0, 1))
    ref = torch.load(single / "weights_rank0.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # DDP keeps the replicas identical
    # Same maths, different summation order: equal up to float round-off (measured max |diff| 2e-5).
    assert all(torch.allclose(r0[k], ref[k], rtol=1e-4, atol=1e-4) for k in r0)
    assert max((ref[k] - v).abs().max().item() for k, v in TinyNet_init().items()) > 1e-2  # training moved them
    a, b = _losses(single), _losses(ddp)
    assert len(a) == len(b) == STEPS and a == pytest.approx(b, rel=1e-5)
    assert sorted(p.name for p in ddp.iterdir()) == ["checkpoints", "metrics.csv", "weights_rank0.pt",
                                                     "weights_rank1.pt"]


def TinyNet_init() -> dict[str, torch.Tensor]:
    from test_loop import TinyNet

    torch.manual_seed(0)
    return TinyNet(dropout=0.0).state_dict()


if __name__ == "__main__":
    train(sys.argv[1])
