"""What does the cycle loss learn in a short CPU run? The diagnostics behind docs/results/from_scratch.md
("What the cycle learns at this budget").

Trains the from-scratch joint model (`vsslkit.train.from_scratch`) with one change at a time:
- `--localiser soft-argmax`: the localiser replaced by the weightless affinity-weighted mean location
  (`models.cycle.SoftArgmaxLocaliser`, no angle), so the cycle's gradient reaches the features directly;
- `--circular-padding`: every trunk Conv3d pads its two spatial axes circularly (time stays zero-padded),
  so a feature cannot tell where in the frame it is (`models.padding`; zero padding lets a small map
  encode position);
- `--layer pool2`: tracking on the 16x16 maps SPECS §4.4 suggests for 64 px input.
(`vsslkit train-joint --localiser soft-argmax --padding circular` trains the same model.)
Then it scores the held-out tracker (`eval.tracking.tracking_error`, whole map and search windows of 1
and 2 cells) against the constant position and the network-free pixel tracker, and the direction
branch when it was trained.

    PYTHONPATH=. python data_scripts/cycle_diagnostics.py DATA_DIR STORE_DIR OUT_DIR [--steps 400]
        [--localiser learned|soft-argmax] [--circular-padding] [--layer pool4] [--sim-weight 0]
        [--cycle-weight 1] [--lr 1e-3] [--track-weight 25] [--direction-weight 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("store")
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--localiser", choices=("learned", "soft-argmax"), default="learned")
    p.add_argument("--circular-padding", action="store_true")
    p.add_argument("--layer", default="pool4")
    p.add_argument("--sim-weight", type=float, default=0.0)
    p.add_argument("--cycle-weight", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--track-weight", type=float, default=25.0)
    p.add_argument("--direction-weight", type=float, default=0.0)
    args = p.parse_args()

    from vsslkit.data.datasets import open_dataset
    from vsslkit.data.stores import open_store
    from vsslkit.eval.tracking import tracking_error
    from vsslkit.train.from_scratch import FromScratchConfig, direction_accuracy, train_from_scratch

    store = open_store(args.store, short_side=128)
    train, _ = open_dataset(args.data, split=1, subset="train").with_frame_counts(store, progress=False)
    test, _ = open_dataset(args.data, split=1, subset="test").with_frame_counts(store, progress=False)
    config = FromScratchConfig(num_classes=train.num_classes, track_weight=args.track_weight,
                               direction_weight=args.direction_weight, track_layer=args.layer, lr=args.lr,
                               sim_weight=args.sim_weight, cycle_weight=args.cycle_weight, localiser=args.localiser,
                               padding="circular" if args.circular_padding else "zeros")
    start = time.time()

    def show(row: dict) -> None:
        print({k: round(v, 3) for k, v in row.items() if isinstance(v, float)}, flush=True)

    model, _ = train_from_scratch(config, paths=train.paths, labels=train.labels, num_frames=train.num_frames,
                                  source=store, out_dir=args.out, steps=args.steps, progress=False, log_every=50,
                                  checkpoint_every=args.steps, on_log=show)
    print(f"trained {args.steps} steps in {time.time() - start:.0f} s", flush=True)
    if args.track_weight > 0:
        for radius in (None, 1, 2):
            r = tracking_error(model, "track", args.data, test.paths, store, size=config.size, steps=config.past,
                               gap=config.gap, radius=radius)
            print(f"tracking, search window {radius if radius is not None else 'whole map'}: affinity "
                  f"{r['centre_error_px']:.2f} px, localiser {r['localiser_error_px']:.2f} px; constant position "
                  f"{r['constant_baseline_px']:.2f} px, pixel tracker {r['pixel_tracker_px']:.2f} px; per step "
                  f"{np.round(r['per_step_error_px'], 2).tolist()} vs constant "
                  f"{np.round(r['per_step_baseline_px'], 2).tolist()}", flush=True)
    if args.direction_weight > 0:
        d = direction_accuracy(model, test.paths, test.num_frames, store, clip_len=config.clip_len, size=config.size)
        print(f"direction: {100 * d['direction_accuracy']:.1f} % of {d['direction_clips']} held-out clips", flush=True)


if __name__ == "__main__":
    main()
