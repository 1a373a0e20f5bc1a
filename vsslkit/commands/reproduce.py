"""`vsslkit reproduce ablation`: the thesis' Tables 4.1/4.2 in miniature (vsslkit.experiments.ablation);
`vsslkit reproduce playback-order`: seed 002's Tables 2-7 in miniature (vsslkit.experiments.playback_order)."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from vsslkit.commands.arguments import device, int_at_least
from vsslkit.commands.datasets import SYNTHETIC_DEFAULT_VERSION, SYNTHETIC_VERSIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("reproduce", help="reproduce a seed document's experiment in miniature")
    sub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    a = sub.add_parser("ablation", help="thesis Tables 4.1 + 4.2 on the synthetic dataset (several seeds)",
                       description="Pretrain every variant of Tables 4.2 and 4.1 (reduced budget), fine-tune and "
                                   "retrieve under one protocol, print and write a markdown table.")
    a.add_argument("--data", type=Path, default=Path("data/synthetic"))
    a.add_argument("--out", type=Path, default=Path("runs/ablation"))
    a.add_argument("--seeds", type=int, default=3)
    a.add_argument("--pretrain-steps", type=int, default=None)
    a.add_argument("--finetune-steps", type=int, default=None)
    a.add_argument("--synthetic-version", type=int, choices=SYNTHETIC_VERSIONS, default=SYNTHETIC_DEFAULT_VERSION,
                   help=f"generator version of the synthetic set built when --data is missing (default "
                   f"{SYNTHETIC_DEFAULT_VERSION}; 3 adds irreversible physics); a folder of another version is refused")
    a.add_argument("--only", nargs="*", default=None, help="run only the variants whose names contain these words")
    a.add_argument("--device", type=device, default="auto")
    a.add_argument("--progress", action="store_true")
    a.add_argument("--table-from", type=Path, default=None, metavar="RESULTS_JSON",
                   help="do not run: re-render the table (and the ordering against the thesis) from a results.json")
    a.set_defaults(func=run)
    _register_playback_order(sub)


def _register_playback_order(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("playback-order", help="seed 002 Tables 2-7 (playback-speed order prediction) in miniature",
                       description="Speed vs order prediction, playback direction, speed sets, clips n = 2..5 and BN "
                                   "vs temporal group norm: every arm pretrained once (shared arms once), then the "
                                   "paired downstream protocol per seed; the paper's numbers beside, with how many "
                                   "pairs of arms the miniature orders as the paper does.")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"))
    p.add_argument("--out", type=Path, default=Path("runs/playback_order"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--pretrain-steps", type=int, default=None, help="default: the committed budget (<= 25 min)")
    p.add_argument("--finetune-steps", type=int, default=None)
    p.add_argument("--clips-per-video", type=int, default=None, help="test clips per video (retrieval, evaluation)")
    p.add_argument("--synthetic-version", type=int, choices=SYNTHETIC_VERSIONS, default=SYNTHETIC_DEFAULT_VERSION,
                   help="generator version of the synthetic set (default 3: the direction of time is visible)")
    p.add_argument("--only", nargs="*", default=None, help="run only the arms whose names contain these words")
    p.add_argument("--device", type=device, default="auto")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--table-from", type=Path, default=None, metavar="RESULTS_JSON",
                   help="do not run: re-render the table (and the ordering against the paper) from a results.json")
    p.set_defaults(func=run_playback_order)

    c = sub.add_parser("ascnet", help="seed 004 (ASCNet): ACP, SCP, gamma, group exclusion vs random init and ch. 4",
                       description="Pretrain every ASCNet arm (ACP only, SCP only, both, gamma 0.25/0.5/0.75, "
                                   "same-group partners excluded or not) beside random init and the chapter-4 method, "
                                   "3 seeds in the paired protocol; the poster's Tables 1-2 beside. The default budget "
                                   "takes about 25 minutes on an idle 2-core machine.")
    c.add_argument("--data", type=Path, default=Path("data/synthetic"))
    c.add_argument("--out", type=Path, default=Path("runs/ascnet"))
    c.add_argument("--seeds", type=int_at_least(1), default=3)
    c.add_argument("--pretrain-steps", type=int_at_least(1), default=None)
    c.add_argument("--finetune-steps", type=int_at_least(1), default=None)
    c.add_argument("--synthetic-version", type=int, choices=SYNTHETIC_VERSIONS, default=SYNTHETIC_DEFAULT_VERSION,
                   help="generator version of the synthetic set built when --data is missing")
    c.add_argument("--only", nargs="*", default=None, help="run only the arms whose names contain these words "
                   "(random init always runs: every gain is paired against it)")
    c.add_argument("--device", type=device, default="auto")
    c.add_argument("--progress", action="store_true")
    c.add_argument("--table-from", type=Path, default=None, metavar="RESULTS_JSON",
                   help="do not run: re-render the table from a results.json")
    c.set_defaults(func=run_ascnet)


def run_ascnet(args: argparse.Namespace) -> int:
    from vsslkit.experiments import ascnet as asc
    from vsslkit.experiments.paired import synthetic_version_problem

    if args.table_from is not None:
        print(asc.ascnet_table_from_results(args.table_from))
        return 0
    problem = synthetic_version_problem(args.data, args.synthetic_version)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    variants = asc.VARIANTS
    if args.only:
        variants = [(n, c) for n, c in variants if n == asc.RANDOM or any(w in n for w in args.only)]
    down = asc.ASCNET_DOWNSTREAM
    if args.finetune_steps is not None:
        down = replace(down, finetune_steps=args.finetune_steps)
    plan = asc.ascnet_plan(data_root=args.data, out_dir=args.out, seeds=tuple(range(args.seeds)), variants=variants,
                           pretrain_steps=args.pretrain_steps or asc.ASCNET_PRETRAIN_STEPS, downstream=down,
                           version=args.synthetic_version, device=args.device, progress=args.progress,
                           command="vsslkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    asc.run_ascnet(plan)
    print(f"table: {args.out / 'table.md'}; all numbers with their protocol: {args.out / 'results.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    from vsslkit.experiments import ablation as ab
    from vsslkit.experiments.paired import synthetic_version_problem

    if args.table_from is not None:
        print(ab.table_from_results(args.table_from))
        return 0
    problem = synthetic_version_problem(args.data, args.synthetic_version)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    variants = ab.TABLE_4_2 + ab.TABLE_4_1
    if args.only:
        variants = [(n, c) for n, c in variants if n == "random init" or any(w in n for w in args.only)]
    down = ab.ABLATION_DOWNSTREAM
    if args.finetune_steps is not None:
        down = replace(down, finetune_steps=args.finetune_steps)
    plan = ab.AblationPlan(data_root=args.data, out_dir=args.out, seeds=tuple(range(args.seeds)), variants=variants,
                           pretrain_steps=args.pretrain_steps or ab.ABLATION_PRETRAIN_STEPS, downstream=down,
                           version=args.synthetic_version,
                           device=args.device, progress=args.progress,
                           command="vsslkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    ab.run_ablation(plan)
    print(f"table: {args.out / 'table.md'}; all numbers with their protocol: {args.out / 'results.json'}")
    return 0


def run_playback_order(args: argparse.Namespace) -> int:
    from vsslkit.experiments import ablation as ab
    from vsslkit.experiments import playback_order as po
    from vsslkit.experiments.paired import synthetic_version_problem

    if args.table_from is not None:
        print(ab.table_from_results(args.table_from, render=po.render_table))
        return 0
    problem = synthetic_version_problem(args.data, args.synthetic_version)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    for flag in ("seeds", "pretrain_steps", "finetune_steps", "clips_per_video"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            print(f"vsslkit: --{flag.replace('_', '-')}: must be >= 1, got {value}", file=sys.stderr)
            return 2
    arms = po.ARMS
    if args.only:
        arms = [(n, c) for n, c in arms if n == "random init" or any(w in n for w in args.only)]
    down = po.DOWNSTREAM
    if args.finetune_steps is not None:
        down = replace(down, finetune_steps=args.finetune_steps)
    if args.clips_per_video is not None:
        down = replace(down, clips_per_video=args.clips_per_video)
    plan = po.make_plan(data_root=args.data, out_dir=args.out, seeds=tuple(range(args.seeds)), variants=arms,
                        pretrain_steps=args.pretrain_steps or po.PRETRAIN_STEPS, downstream=down,
                        version=args.synthetic_version, device=args.device, progress=args.progress,
                        command="vsslkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    ab.run_ablation(plan)
    print(f"table: {args.out / 'table.md'}; all numbers with their protocol: {args.out / 'results.json'}")
    return 0
