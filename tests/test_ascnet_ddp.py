"""ASCNet under two gloo ranks: the bank, the tables and the refresh counter agree across ranks and
hold every rank's videos (the same videos as one process on the same global batch).

This file is also the training script: `python tests/test_ascnet_ddp.py OUT_DIR` (alone, global
batch 4) or under `torch.distributed.run --nproc_per_node=2` (batch 2 per rank).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
GLOBAL_BATCH, STEPS, VIDEOS = 4, 5, 10
STATE = ("bank", "seen", "live", "published", "published_epoch", "steps")


def train(out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    sys.path.insert(0, str(HERE))
    from test_ascnet import TinyBackbone
    from test_clips import MemorySource

    from vsslkit.data.clips import ClipDataset, EpochSampler, collate, prepare_batch
    from vsslkit.tasks import AscNetTask, Joint
    from vsslkit.tasks.model import PretextModel
    from vsslkit.train.distributed import cleanup, init_distributed
    from vsslkit.train.loop import fit, make_optimizer

    info = init_distributed("cpu")
    counts = {f"/v/{i:02d}.mp4": 12 + i for i in range(VIDEOS)}
    paths = sorted(counts)
    task = Joint({"pretext": AscNetTask(clip_len=4, hidden=8, dim=4, refresh_every=2)})
    groups = [f"g{i // 2}" for i in range(VIDEOS)]
    ds = ClipDataset(paths, None, [counts[p] for p in paths], MemorySource(counts), task.sample, seed=1, groups=groups)
    model = PretextModel(TinyBackbone(), task)
    model.bind_dataset(len(ds), ds.groups)
    sampler = EpochSampler(len(ds), seed=1, rank=info.rank, world_size=info.world_size)
    loader = torch.utils.data.DataLoader(ds, batch_size=GLOBAL_BATCH // info.world_size, sampler=sampler,
                                         collate_fn=collate, drop_last=True)
    fit(model, loader, optimizer=make_optimizer("sgd", model.parameters(), lr=0.1), max_steps=STEPS,
        out_dir=out_dir, prepare=lambda b, step: prepare_batch(b, crop_size=16, train=False),
        log_every=1, progress=False, dist_info=info)
    head = model.head.branches["pretext"]
    torch.save({k: getattr(head, k) for k in STATE}, Path(out_dir) / f"bank_rank{info.rank}.pt")
    print(f"rank {info.rank}/{info.world_size} done")
    cleanup()


@pytest.mark.slow
def test_two_gloo_ranks_share_one_bank_and_table(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    from conftest import (  # not at the top: the ranks run this file as a script
        TORCHRUN_2_RANKS,
        run_as_script,
    )

    run_as_script(__file__, single)
    out = run_as_script(__file__, ddp, TORCHRUN_2_RANKS)
    assert "rank 0/2" in out and "rank 1/2" in out
    r0, r1 = (torch.load(ddp / f"bank_rank{r}.pt", weights_only=True) for r in (0, 1))
    ref = torch.load(single / "bank_rank0.pt", weights_only=True)
    for name in STATE:
        assert torch.equal(r0[name], r1[name]), name
    assert torch.equal(r0["seen"], ref["seen"])  # every rank wrote the other rank's videos too
    assert int(r0["seen"].sum()) == VIDEOS and int(r0["steps"]) == STEPS
    assert (r0["live"] >= 0).all()  # refreshed at steps 2 and 4
    assert int(r0["published_epoch"]) == 2


if __name__ == "__main__":
    train(sys.argv[1])
