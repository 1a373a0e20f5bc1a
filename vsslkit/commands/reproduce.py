"""`vsslkit reproduce ablation`: the thesis' Tables 4.1/4.2 in miniature (vsslkit.experiments.ablation);
`vsslkit reproduce playback-order`: seed 002's Tables 2-7 (vsslkit.experiments.playback_order);
`vsslkit reproduce ascnet`: seed 004's arms (vsslkit.experiments.ascnet);
`vsslkit reproduce statistics`: seed 003's Tables 1, 3, 4 (vsslkit.experiments.statistics);
`vsslkit reproduce methods`: every method at one budget (vsslkit.experiments.methods). One set of flags, one runner.
`vsslkit reproduce from-scratch`: seed 001's arms (vsslkit.experiments.from_scratch), its own flags: it
trains classifiers from scratch, so it has no pretrain / fine-tune split."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from vsslkit.commands.arguments import device, int_at_least, non_negative_float, positive_float, unit_interval
from vsslkit.commands.datasets import SYNTHETIC_DEFAULT_VERSION, SYNTHETIC_VERSIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("reproduce", help="reproduce a seed document's experiment in miniature")
    sub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    a = sub.add_parser("ablation", help="thesis Tables 4.1 + 4.2 on the synthetic dataset (several seeds)",
                       description="Pretrain every variant of Tables 4.2 and 4.1 (reduced budget), fine-tune and "
                                   "retrieve under one protocol, print and write a markdown table.")
    _add_common(a, out="runs/ablation", what="variants", paper="the thesis")
    a.set_defaults(func=run)

    p = sub.add_parser("playback-order", help="seed 002 Tables 2-7 (playback-speed order prediction) in miniature",
                       description="Speed vs order prediction, playback direction, speed sets, clips n = 2..5 and BN "
                                   "vs temporal group norm: every arm pretrained once (shared arms once), then the "
                                   "paired downstream protocol per seed; the paper's numbers beside, with how many "
                                   "pairs of arms the miniature orders as the paper does.")
    _add_common(p, out="runs/playback_order", what="arms", paper="the paper")
    p.add_argument("--clips-per-video", type=int_at_least(1), default=None,
                   help="test clips per video (retrieval, evaluation)")
    p.set_defaults(func=run_playback_order)

    c = sub.add_parser("ascnet", help="seed 004 (ASCNet): ACP, SCP, gamma, group exclusion vs random init and ch. 4",
                       description="Pretrain every ASCNet arm (ACP only, SCP only, both, gamma 0.25/0.5/0.75, "
                                   "same-group partners excluded or not) beside random init and the chapter-4 method, "
                                   "3 seeds in the paired protocol; the poster's Tables 1-2 beside. The default budget "
                                   "takes about 25 minutes on an idle 2-core machine.")
    _add_common(c, out="runs/ascnet", what="arms", paper="the poster")
    c.set_defaults(func=run_ascnet)
    st = sub.add_parser("statistics", help="seed 003 Tables 1, 3, 4 (spatio-temporal statistics) in miniature",
                        description="Motion per pattern, global motion, appearance vs motion vs joint (T1); the "
                                    "curriculum vs all videos in random order vs the easy / hard / a random half "
                                    "(T3); classification vs 1D vs 2D regression targets (T4): every arm pretrained "
                                    "once (the joint arm stands in all three tables), scored on its own labels on "
                                    "held-out clips against their majority rate, then the paired downstream protocol "
                                    "per seed; the paper's numbers beside, with how many pairs of arms the miniature "
                                    "orders as the paper does. results.json is written after every run: the same "
                                    "command again resumes an interrupted run. The default budget (3 seeds, 200 steps per arm) was "
                                    "extrapolated from a measured 1-seed smoke to take about 70 minutes (under 90) on an idle "
                                    "2-core CPU (docs/results/statistics.md).")
    _add_common(st, out="runs/statistics", what="arms", paper="the paper")
    st.add_argument("--clips-per-video", type=int_at_least(1), default=None,
                    help="test clips per video (retrieval, evaluation)")
    st.add_argument("--heldout-clips", type=int_at_least(1), default=None,
                    help="held-out clips per test video for the pretext-label scores (default 1)")
    recipe = st.add_argument_group("recipe of every pretrained arm (default: the kit's CPU recipe and the task's "
                                   "defaults)")
    recipe.add_argument("--optimizer", choices=("sgd", "adamw"), default=None, help="default sgd")
    recipe.add_argument("--lr", type=positive_float, default=None, help="default 0.05")
    recipe.add_argument("--batch-size", type=int_at_least(1), default=None, help="default 32")
    recipe.add_argument("--stat-head", choices=("pooled", "grid"), default=None,
                        help="the heads read the pooled features (default) or the last map pooled to a 4 x 4 grid")
    recipe.add_argument("--flow-sigma", type=non_negative_float, default=None,
                        help="blur each flow by a Gaussian of this many px before the motion labels (default 0: "
                             "the paper's labels)")
    recipe.add_argument("--curriculum-switch", type=unit_interval, default=None,
                        help="the curriculum arm's switch from the easy half to all videos, a fraction of the run "
                             "(default 0.5)")
    st.set_defaults(func=run_statistics)
    m = sub.add_parser("methods", help="every pretext method of the kit at one budget, one paired protocol",
                       description="Pretrain every method (pace, coarse and fine speed change, + MoCo, playback-speed "
                                   "order n = 3, the speed-prediction baseline, spatio-temporal statistics, ASCNet, "
                                   "arrow of time, tracking) with one recipe (same backbone, input, steps, optimiser), "
                                   "score each on its own pretext held out against chance, then the paired downstream "
                                   "protocol per seed (frozen R@1/R@5, linear probe, fine-tuning at 10 % and 25 % "
                                   "labels) against random init; each paper's own headline beside its row. "
                                   "results.json is written after every run: the same command again resumes. "
                                   "--fast: one seed at a third of the steps, a preview in well under 30 minutes. Measured wall times: "
                                   "docs/results/methods.md.")
    _add_common(m, out="runs/methods", what="methods", paper="the papers")
    m.add_argument("--fast", action="store_true",
                   help="one seed, 80 pretraining steps, 50 fine-tuning steps, 2 clips per video (a preview)")
    m.add_argument("--clips-per-video", type=int_at_least(1), default=None,
                   help="test clips per video (retrieval, evaluation)")
    m.set_defaults(func=run_methods, seeds=None)  # 3, or 1 with --fast
    _add_from_scratch(sub)


def _add_from_scratch(sub: argparse._SubParsersAction) -> None:
    """Flags of `reproduce from-scratch`. --lr / --sim-weight / --cycle-weight default to FromScratchConfig's
    (not read here: that would import torch for `vsslkit --help`); results.json records the values used."""
    from vsslkit.commands.arguments import non_negative_float, positive_float
    from vsslkit.experiments import from_scratch as fs

    arms = ", ".join(f"{a.name} = {a.label}" for a in fs.ARMS)
    p = sub.add_parser(
        "from-scratch", help="seed 001 Tables 4.1/4.2: classification from scratch +/- tracking +/- direction",
        description="Train every arm from scratch (classification only, + tracking, + direction, + both, and the "
                    "(w1, w2) grid of Table 4.2) with the same FromScratchConfig except the two loss weights, "
                    "seeds x arms; report the test Hit@1/Hit@5 at the last step and at the best validation step "
                    "(a held-out part of the training videos, never the test set), paired differences against "
                    "classification only, direction accuracy, tracking error, the thesis' numbers beside. "
                    f"Results are saved after every run; rerunning skips finished runs. {fs.BUDGET_NOTE}")
    p.add_argument("--data", type=Path, default=Path("data/synthetic"),
                   help="dataset root (the synthetic set: `vsslkit data synthetic`; or UCF101/HMDB51)")
    p.add_argument("--split", type=int, choices=(1, 2, 3), default=1)
    p.add_argument("--out", type=Path, default=Path("runs/from_scratch"))
    p.add_argument("--seeds", type=int_at_least(1), default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--arms", nargs="+", choices=fs.ARM_NAMES, default=list(fs.ARM_NAMES), metavar="ARM",
                   help=f"arms to run (default all; classification only always runs: every gain is paired "
                        f"against it): {arms}")
    p.add_argument("--steps", type=int_at_least(1), default=fs.STEPS, help=f"optimiser steps per run (default {fs.STEPS})")
    p.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate (default: FromScratchConfig's)")
    p.add_argument("--sim-weight", type=non_negative_float, default=None,
                   help="factor of l_sim in l_track (default: FromScratchConfig's)")
    p.add_argument("--cycle-weight", type=non_negative_float, default=None,
                   help="λ of the long and skip cycles in l_track (default: FromScratchConfig's)")
    p.add_argument("--localiser", choices=("learned", "soft-argmax"), default=None,
                   help="the tracking localiser (default: FromScratchConfig's, the thesis' learned one)")
    p.add_argument("--padding", choices=("zeros", "circular"), default=None,
                   help="the trunk's spatial padding (default: FromScratchConfig's, zeros)")
    p.add_argument("--direction-stride", type=int_at_least(1), default=None,
                   help="frames between the direction clip's frames (default: FromScratchConfig's, 1)")
    p.add_argument("--val-every", type=int_at_least(1), default=fs.VAL_EVERY,
                   help=f"steps between validation scores (default {fs.VAL_EVERY})")
    p.add_argument("--val-clips", type=int_at_least(1), default=fs.VAL_CLIPS,
                   help=f"non-overlapping clips per validation video (default {fs.VAL_CLIPS})")
    p.add_argument("--test-clips", type=int_at_least(1), default=fs.TEST_CLIPS,
                   help="non-overlapping clips per test video (default: all of them, as the thesis scores)")
    p.add_argument("--device", type=device, default="auto")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--table-from", type=Path, default=None, metavar="RESULTS_JSON",
                   help="do not run: re-render the table (and the ordering against the thesis) from a results.json")
    p.set_defaults(func=run_from_scratch)


def _add_common(p: argparse.ArgumentParser, *, out: str, what: str, paper: str) -> None:
    """The flags every reproduction shares (same data, seeds, budget overrides and table re-rendering)."""
    p.add_argument("--data", type=Path, default=Path("data/synthetic"))
    p.add_argument("--out", type=Path, default=Path(out))
    p.add_argument("--seeds", type=int_at_least(1), default=3)
    p.add_argument("--pretrain-steps", type=int_at_least(1), default=None, help="default: the committed budget")
    p.add_argument("--finetune-steps", type=int_at_least(1), default=None)
    p.add_argument("--synthetic-version", type=int, choices=SYNTHETIC_VERSIONS, default=SYNTHETIC_DEFAULT_VERSION,
                   help=f"generator version of the synthetic set built when --data is missing (default "
                   f"{SYNTHETIC_DEFAULT_VERSION}; 3 adds irreversible physics); a folder of another version is refused")
    p.add_argument("--only", nargs="*", default=None, help=f"run only the {what} whose names contain these words "
                   "(random init always runs: every gain is paired against it)")
    p.add_argument("--device", type=device, default="auto")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--table-from", type=Path, default=None, metavar="RESULTS_JSON",
                   help=f"do not run: re-render the table (and the ordering against {paper}) from a results.json")


def _reproduce(args: argparse.Namespace, *, table_from: Callable[[Path], str], variants: list, pretrain_steps: int,
               downstream: Any, make_plan: Callable[..., Any], run_plan: Callable[[Any], Any]) -> int:
    """What every reproduction does with its flags: re-render, or check the data, pick arms, run, say where."""
    from vsslkit.experiments.paired import synthetic_version_problem

    if args.table_from is not None:
        print(table_from(args.table_from))
        return 0
    problem = synthetic_version_problem(args.data, args.synthetic_version)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.only:
        unknown = [w for w in args.only if not any(w in n for n, _ in variants)]
        if unknown:
            print(f"error: --only: no arm's name contains {unknown[0]!r} (arms: {'; '.join(n for n, _ in variants)})",
                  file=sys.stderr)
            return 2
        variants = [(n, c) for n, c in variants if n == "random init" or any(w in n for w in args.only)]
    if args.finetune_steps is not None:
        downstream = replace(downstream, finetune_steps=args.finetune_steps)
    if getattr(args, "clips_per_video", None) is not None:
        downstream = replace(downstream, clips_per_video=args.clips_per_video)
    plan = make_plan(data_root=args.data, out_dir=args.out, seeds=tuple(range(args.seeds)), variants=variants,
                     pretrain_steps=args.pretrain_steps or pretrain_steps, downstream=downstream,
                     version=args.synthetic_version, device=args.device, progress=args.progress,
                     command="vsslkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    from vsslkit.experiments.ablation import ResultsMismatch

    try:
        run_plan(plan)
    except ResultsMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"table: {args.out / 'table.md'}; all numbers with their protocol: {args.out / 'results.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    from vsslkit.experiments import ablation as ab

    return _reproduce(args, table_from=ab.table_from_results, variants=ab.TABLE_4_2 + ab.TABLE_4_1,
                      pretrain_steps=ab.ABLATION_PRETRAIN_STEPS, downstream=ab.ABLATION_DOWNSTREAM,
                      make_plan=ab.AblationPlan, run_plan=ab.run_ablation)


def run_playback_order(args: argparse.Namespace) -> int:
    from vsslkit.experiments import ablation as ab
    from vsslkit.experiments import playback_order as po

    return _reproduce(args, table_from=lambda path: ab.table_from_results(path, render=po.render_table),
                      variants=po.ARMS, pretrain_steps=po.PRETRAIN_STEPS, downstream=po.DOWNSTREAM,
                      make_plan=po.make_plan, run_plan=ab.run_ablation)


def run_ascnet(args: argparse.Namespace) -> int:
    from vsslkit.experiments import ascnet as asc

    return _reproduce(args, table_from=asc.ascnet_table_from_results, variants=asc.VARIANTS,
                      pretrain_steps=asc.ASCNET_PRETRAIN_STEPS, downstream=asc.ASCNET_DOWNSTREAM,
                      make_plan=asc.ascnet_plan, run_plan=asc.run_ascnet)


def run_from_scratch(args: argparse.Namespace) -> int:
    from vsslkit.errors import UsageError
    from vsslkit.experiments import from_scratch as fs

    if args.table_from is not None:
        print(fs.table_from_results(args.table_from))
        return 0
    if not args.data.is_dir():
        raise UsageError(args.data, "no such dataset folder (build the synthetic set with "
                         f"`vsslkit data synthetic --out {args.data}`)")
    names = {fs.BASELINE, *args.arms}
    overrides = {k: v for k, v in (("lr", args.lr), ("sim_weight", args.sim_weight),
                                   ("cycle_weight", args.cycle_weight), ("localiser", args.localiser),
                                   ("padding", args.padding), ("direction_stride", args.direction_stride))
                 if v is not None}
    plan = fs.FromScratchPlan(data_root=args.data, out_dir=args.out, seeds=tuple(range(args.seeds)),
                              arms=[a for a in fs.ARMS if a.name in names], steps=args.steps,
                              val_every=args.val_every, val_clips=args.val_clips, test_clips=args.test_clips,
                              overrides=overrides, split=args.split, device=args.device, progress=args.progress,
                              command="vsslkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    fs.run_reproduction(plan)
    print(f"table: {args.out / 'table.md'}; every run with its config: {args.out / 'results.json'}")
    return 0


def run_statistics(args: argparse.Namespace) -> int:
    from functools import partial

    from vsslkit.experiments import ablation as ab
    from vsslkit.experiments import statistics as st

    given = {"optimizer": args.optimizer, "lr": args.lr, "batch_size": args.batch_size, "head": args.stat_head,
             "flow_sigma": args.flow_sigma, "switch": args.curriculum_switch}
    recipe = replace(st.Recipe(), **{k: v for k, v in given.items() if v is not None})
    make_plan = partial(st.make_plan, heldout_clips=args.heldout_clips or st.HELDOUT_CLIPS)
    return _reproduce(args, table_from=lambda path: ab.table_from_results(path, render=st.render_table),
                      variants=st.arms(recipe), pretrain_steps=st.PRETRAIN_STEPS, downstream=st.DOWNSTREAM,
                      make_plan=make_plan, run_plan=ab.run_ablation)


def run_methods(args: argparse.Namespace) -> int:
    from vsslkit.experiments import ablation as ab
    from vsslkit.experiments import methods as me

    down, steps = (me.FAST_DOWNSTREAM, me.FAST_PRETRAIN_STEPS) if args.fast else (me.DOWNSTREAM, me.PRETRAIN_STEPS)
    if args.seeds is None:
        args.seeds = me.FAST_SEEDS if args.fast else 3
    return _reproduce(args, table_from=me.table_from_results, variants=me.VARIANTS, pretrain_steps=steps,
                      downstream=down, make_plan=me.make_plan, run_plan=ab.run_ablation)
