"""Does training from the JPEG store learn the pretext task as well as from the raw store?

Same synthetic set, same seeds, same recipe; only `--store-format` differs. Each run pretrains
(`vsslkit pretrain`) and scores held-out pretext accuracy on the test split (`vsslkit
pretext-eval`); the table shows per-seed accuracy and the mean per format, so the gap can be read
against the seed-to-seed spread. Defaults fit a 2-core CPU in minutes:

    python data_scripts/jpeg_vs_raw_pretext.py --out runs/jpeg_vs_raw
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vsslkit.cli import main as vsslkit


def run(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--videos-per-class", type=int, default=7)
    p.add_argument("--task", default="pace")
    p.add_argument("--jpeg-quality", type=int, default=90)
    args = p.parse_args(argv)
    data, store = args.out / "synthetic", args.out / "store"
    if vsslkit(["data", "synthetic", "--out", str(data), "--videos-per-class", str(args.videos_per_class),
                "--min-length", "40", "--max-length", "80", "--workers", "1", "--no-progress"]) != 0:
        return 1
    recipe = ["--task", args.task, "--backbone", "r3d_10", "--width", "0.125", "--clip-len", "8", "--size", "48",
              "--short-side", "64", "--batch-size", "16", "--lr", "0.05", "--residual", "--steps", str(args.steps),
              "--device", "cpu", "--no-progress", "--log-every", "25", "--checkpoint-every", "1000"]
    scores: dict[str, list[float]] = {"raw": [], "jpeg": []}
    for seed in range(args.seeds):
        for fmt in ("raw", "jpeg"):
            run_dir = args.out / f"{fmt}_seed{seed}"
            fmt_args = ["--store", str(store), "--store-format", fmt, "--jpeg-quality", str(args.jpeg_quality)]
            if vsslkit(["pretrain", "--data", str(data), "--out", str(run_dir), "--seed", str(seed), *fmt_args,
                        *recipe]) != 0:
                return 1
            result = run_dir / "pretext_eval.json"
            if vsslkit(["pretext-eval", "--checkpoint", str(run_dir / "checkpoints" / "last.pt"), "--data", str(data),
                        "--subset", "test", "--short-side", "64", "--seed", "0", "--device", "cpu", "--out",
                        str(result), *fmt_args]) != 0:
                return 1
            heads = json.loads(result.read_text())["heads"]
            scores[fmt].append(statistics.mean(h["accuracy"] for h in heads.values()))
    print(f"\n{args.task} pretext accuracy on the test split ({args.steps} steps, seeds 0-{args.seeds - 1}):")
    print("| store | " + " | ".join(f"seed {s}" for s in range(args.seeds)) + " | mean | spread (max-min) |")
    print("|---|" + "---|" * (args.seeds + 2))
    for fmt, accs in scores.items():
        print(f"| {fmt} | " + " | ".join(f"{a:.3f}" for a in accs)
              + f" | {statistics.mean(accs):.3f} | {max(accs) - min(accs):.3f} |")
    gap = statistics.mean(scores["jpeg"]) - statistics.mean(scores["raw"])
    spread = max(max(a) - min(a) for a in scores.values())
    print(f"jpeg - raw: {gap:+.3f}; seed spread up to {spread:.3f} -> "
          f"{'within' if abs(gap) <= spread else 'OUTSIDE'} seed noise")
    return 0


if __name__ == "__main__":
    sys.exit(run())
