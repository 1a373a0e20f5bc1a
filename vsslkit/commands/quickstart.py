"""`vsslkit quickstart`: the main job (see vsslkit.experiments.quickstart)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from vsslkit.commands.arguments import device
from vsslkit.commands.datasets import SYNTHETIC_DEFAULT_VERSION, SYNTHETIC_VERSIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quickstart", help="synthetic data -> speed-change pretraining -> fine-tune + retrieval vs random init -> report",
        description="Build the synthetic dataset if missing, pretrain (fine-grained speed change + localization + "
                    "MoCo; --method: any method of `vsslkit reproduce methods`) without labels, then compare with "
                    "random initialisation under one paired protocol. Writes OUT/report.md and OUT/report.html.")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="synthetic dataset folder")
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    p.add_argument("--seeds", type=int, default=1, help="number of paired seeds (0..N-1); 3+ gives mean ± std")
    p.add_argument("--device", type=device, default="auto", help="auto | cpu | cuda")
    p.add_argument("--full", action="store_true", help="thesis-sized preset for a GPU (R(2+1)D-10, 16x112x112)")
    p.add_argument("--method", default=None, metavar="KEY",
                   help="pretrain this method instead, with the recipe of `vsslkit reproduce methods` (one of: "
                        "pace, speed-change-coarse, speed-change-fine, speed-change-fine-moco, playback-order, "
                        "speed-prediction, statistics, ascnet, arrow-of-time, tracking); default: the chapter-4 "
                        "method with the classroom recipe")
    p.add_argument("--pretrain-steps", type=int, default=None)
    p.add_argument("--finetune-steps", type=int, default=None)
    p.add_argument("--label-fraction", type=float, default=None)
    p.add_argument("--videos-per-class", type=int, default=43)
    p.add_argument("--synthetic-version", type=int, choices=SYNTHETIC_VERSIONS, default=SYNTHETIC_DEFAULT_VERSION,
                   help=f"generator version of the synthetic set built when --data is missing (default "
                   f"{SYNTHETIC_DEFAULT_VERSION}; 3 adds irreversible physics); a folder of another version is refused")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--report-from", type=Path, default=None, metavar="RESULTS_JSON",
                   help="do not run: re-render OUT/report.md and OUT/report.html from a quickstart results.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vsslkit.experiments import quickstart as qs
    from vsslkit.experiments.paired import synthetic_version_problem

    problem = synthetic_version_problem(args.data, args.synthetic_version)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    if args.report_from is not None:
        try:
            results = qs.load_results(args.report_from)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            qs.write_report(results, args.out)
        except OSError as exc:
            print(f"error: {args.out}: cannot write the report ({exc.strerror or exc})", file=sys.stderr)
            return 2
        print(f"report: {args.out / 'report.md'} and {args.out / 'report.html'} (from {args.report_from})")
        return 0
    pre, down, steps = (qs.FULL_PRETRAIN, qs.FULL_DOWNSTREAM, qs.FULL_PRETRAIN_STEPS) if args.full else (
        qs.CPU_PRETRAIN, qs.CPU_DOWNSTREAM, qs.CPU_PRETRAIN_STEPS)
    arm, extra = "speed-change pretrained", {"preset": "full" if args.full else "cpu"}
    if args.method is not None:
        from vsslkit.experiments.methods import method

        if args.full:
            print("error: --method and --full: the methods' recipe is the CPU one; choose one of them", file=sys.stderr)
            return 2
        try:
            chosen = method(args.method)
        except ValueError as exc:
            print(f"error: --method: {exc}", file=sys.stderr)
            return 2
        pre, arm, extra = chosen.config, f"{chosen.name} pretrained", {**extra, "method": chosen.key}
    if args.finetune_steps is not None:
        down = replace(down, finetune_steps=args.finetune_steps)
    if args.label_fraction is not None:
        down = replace(down, label_fraction=args.label_fraction)
    plan = qs.QuickstartPlan(data_root=args.data, out_dir=args.out, seeds=tuple(range(args.seeds)), pretrain=pre,
                             pretrain_steps=args.pretrain_steps or steps, downstream=down,
                             videos_per_class=args.videos_per_class, version=args.synthetic_version,
                             device=args.device, progress=args.progress, arm=arm, extra=extra)
    qs.run_quickstart(plan)
    print(f"report: {args.out / 'report.md'} and {args.out / 'report.html'}")
    return 0
