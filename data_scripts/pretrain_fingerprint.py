"""Pretrain with the quickstart recipe for a few steps and print the logged losses and a hash of the
backbone's weights: run it on two checkouts to show a refactor changed nothing (bit for bit on CPU).

    PYTHONPATH=/path/to/checkout python data_scripts/pretrain_fingerprint.py --data DIR --steps 24 --batch-size 32
"""

import argparse
import hashlib
from dataclasses import replace

import torch

from vsslkit.experiments.paired import ensure_synthetic, load_data
from vsslkit.experiments.quickstart import CPU_PRETRAIN
from vsslkit.train.pretrain import pretrain


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="synthetic set folder (built with 7 videos per class if missing)")
    p.add_argument("--store", help="frame store folder (default: DATA/frame_store)")
    p.add_argument("--out", default="/tmp/vsslkit_fingerprint")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--same-batch", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    root = ensure_synthetic(args.data, videos_per_class=7, progress=False)
    data = load_data(root, progress=False, store_dir=args.store)
    config = replace(CPU_PRETRAIN, batch_size=args.batch_size, seed=args.seed, same_batch=args.same_batch)
    model, result = pretrain(config, paths=data.train.paths, num_frames=data.train.num_frames, source=data.store,
                             out_dir=args.out, max_steps=args.steps, resume=False, progress=False, log_every=3,
                             checkpoint_every=None)
    digest = hashlib.sha256()
    for _, tensor in sorted(model.backbone.state_dict().items()):
        digest.update(tensor.numpy().tobytes())
    print("losses", [round(r["loss"], 10) for r in result.history if "loss" in r])
    print("backbone sha256", digest.hexdigest()[:16])


if __name__ == "__main__":
    main()
