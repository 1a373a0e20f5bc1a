"""Seed 003's Tables 1, 3 and 4 in miniature on the synthetic set, under the kit's paired protocol.

Every arm is a `PretrainConfig` of the statistics task that differs from the joint arm (all 27
labels, classification targets, every training video in random order) only in what its table
varies: the label groups (T1: motion per pattern, global motion, all motion, appearance, joint),
the order or subset of the videos (T3: the curriculum, the easy / hard / a random half for the whole
run, at the same number of steps) or the targets (T4: 1D and 2D regression). The joint arm *is*
T1's "joint", T3's "100 %, random order" and T4's "classification": it is trained once.

Every arm then goes through `experiments.ablation.run_ablation` → `paired.downstream` (frozen
retrieval, a linear probe, low-label fine-tuning: the same labelled videos, crops and test clips for
every arm of a seed), and every pretrained arm is also scored on its own pretext task on held-out
clips (`heldout_scores`: mean accuracy over its motion / appearance labels against the mean
majority rate of those labels on the same clips, `eval.statistics`).

Differences from the paper, on purpose: T1's arms use the classification target (the paper's T1
uses 1D regression; the kit's label groups exist for the classification heads only); T3 is a
K-400 study in the paper (here the synthetic training split); T4's paper column is its R3D-18 row
(the miniature's backbone is a slim R3D-10). The paper's numbers are UCF101 accuracies of full-size
networks: the miniature compares *orderings* within each table, never levels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from vsslkit.experiments.ablation import AblationPlan, agreement_phrase, ordering_agreement
from vsslkit.experiments.quickstart import CPU_DOWNSTREAM, CPU_PRETRAIN
from vsslkit.experiments.report import fmt, markdown_table, mean_std
from vsslkit.tasks.statistics import StatisticsTask
from vsslkit.train.pretrain import PretrainConfig

RANDOM = "random init"
JOINT = "joint (27 labels, classification, all videos)"
CURRICULUM = "curriculum (easy half first)"


@dataclass(frozen=True)
class Recipe:
    """What every pretrained arm shares; the defaults are the kit's CPU recipe (SPECS §2.5: slim R3D-10,
    8 x 56² RGB clips, batch 32, SGD lr 0.05) and the statistics task's own defaults (pooled heads, the
    paper's unsmoothed flow). `switch`: the curriculum's switch point, a fraction of the run."""

    optimizer: str = CPU_PRETRAIN.optimizer
    lr: float = CPU_PRETRAIN.lr
    batch_size: int = CPU_PRETRAIN.batch_size
    head: str = StatisticsTask.head
    flow_sigma: float = StatisticsTask.flow_sigma
    switch: float = 0.5


def arms(recipe: Recipe = Recipe()) -> list[tuple[str, PretrainConfig | None]]:
    """Every arm of the three tables, each once, built on `recipe`."""
    options: dict[str, Any] = {"targets": "classification"}
    if recipe.head != StatisticsTask.head:
        options["head"] = recipe.head
    if recipe.flow_sigma != StatisticsTask.flow_sigma:
        options["flow_sigma"] = recipe.flow_sigma
    joint = replace(CPU_PRETRAIN, task="statistics", task_options=options, moco=None, residual=False, flip=True,
                    optimizer=recipe.optimizer, lr=recipe.lr, batch_size=recipe.batch_size)

    def groups(*names: str) -> PretrainConfig:
        return replace(joint, task_options={**options, "groups": names})

    return [
        (RANDOM, None),
        ("motion P1", groups("m1")),
        ("motion P2", groups("m2")),
        ("motion P3", groups("m3")),
        ("motion global", groups("mg")),
        ("motion all patterns", groups("m1", "m2", "m3")),
        ("motion all + global", groups("m1", "m2", "m3", "mg")),
        ("appearance", groups("a1", "a2", "a3", "ag")),
        (JOINT, joint),
        (CURRICULUM, replace(joint, curriculum=recipe.switch)),
        ("random half only", replace(joint, video_half="random")),
        ("easy half only", replace(joint, video_half="easy")),
        ("hard half only", replace(joint, video_half="hard")),
        ("1D regression", replace(joint, task_options={**options, "targets": "1d"})),
        ("2D regression", replace(joint, task_options={**options, "targets": "2d"})),
    ]


ARMS = arms()
# The paper's numbers (SPECS §2.6), UCF101 fine-tuned accuracy (%) per table: arm -> value. T1: C3D,
# clip accuracy, 1D regression, UCF pretraining; T3: K-400 pretraining (100 % random order = the joint
# arm); T4: R3D-18, classification vs 1D vs 2D targets.
PAPER_TABLES: dict[str, dict[str, float]] = {
    "T1 motion patterns": {RANDOM: 45.4, "motion P1": 53.8, "motion P2": 53.2, "motion P3": 54.2,
                           "motion global": 48.3, "motion all patterns": 55.4, "motion all + global": 57.8},
    "T1 appearance vs motion vs joint": {RANDOM: 45.4, "appearance": 48.6, "motion all + global": 57.8, JOINT: 58.8},
    "T3 curriculum": {JOINT: 76.5, "random half only": 73.6, "easy half only": 72.4, "hard half only": 72.8,
                      CURRICULUM: 77.8},
    "T4 targets": {"1D regression": 67.2, "2D regression": 67.1, JOINT: 70.4},
}
# T4's pretext accuracy (%, UCF101, R3D-18): the paper's mean exact-match accuracy over the 27 labels.
PAPER_T4_PRETEXT = {"1D regression": 18.2, "2D regression": 22.3, JOINT: 49.0}

# Default budget: 15 arms (14 pretrained) x 3 seeds, 200 steps of 32 clips per arm (about 15 epochs of the
# 420 training videos). Measured on the shared 2-core machine, one thread (docs/results/statistics.md,
# "vsslkit reproduce statistics"): a pretraining step costs 0.385 CPU-s and a 1-seed smoke of all 15 arms
# at 20 steps 414 CPU-s including the first build of the frame store and the flow cache, so the default
# command extrapolates to at most 3 x (414 + 14 x 180 x 0.385) s = 69 min on an idle 2-core CPU.
PRETRAIN_STEPS = 200
DOWNSTREAM = replace(CPU_DOWNSTREAM, finetune_steps=40, clips_per_video=3)
HELDOUT_CLIPS = 1  # held-out clips per test video for the pretext scores (182 test videos)
METRICS = (("finetune", "video_accuracy", "fine-tuned video acc."), ("finetune", "clip_accuracy", "fine-tuned clip acc."),
           ("linear_probe", "video_accuracy", "linear probe"), ("retrieval", "R@1", "R@1"))


def heldout_scores(model: Any, config: PretrainConfig, data: Any, seed: int, *,
                   clips_per_video: int = HELDOUT_CLIPS) -> dict[str, Any]:
    """The arm's own labels on `clips_per_video` seeded centre-cropped clips of every test video:
    per label the accuracy and the majority rate on the same clips, and their means per group.
    Videos whose flow cannot be computed are reported and left out."""
    import torch

    from vsslkit.data.flow_cache import FlowCache
    from vsslkit.eval.statistics import labelled_clips, score_labels
    from vsslkit.tasks.statistics_labels import MOTION_LABELS

    task = model.task.primary
    flow = FlowCache(data.store)
    built = flow.build(data.test.paths, progress=False)
    for path, reason in built.skipped:
        print(f"held-out pretext scores: skipped {path}: {reason}")
    bad = {str(p) for p, _ in built.skipped}
    keep = [i for i, (p, n) in enumerate(zip(data.test.paths, data.test.num_frames))
            if str(p) not in bad and n >= task.min_frames]
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    clips = labelled_clips(task, data.store, flow, [data.test.paths[i] for i in keep],
                           [data.test.num_frames[i] for i in keep], crop_size=config.size,
                           clips_per_video=clips_per_video, seed=seed, model=model, device=device,
                           residual=config.residual)
    rows = score_labels(clips, task)
    out: dict[str, Any] = {"clips": len(clips.video), "videos": len(keep),
                           "labels": {r.label: [100.0 * r.accuracy, 100.0 * r.majority] for r in rows}}
    for group, sel in (("all", rows), ("motion", [r for r in rows if r.label in MOTION_LABELS]),
                       ("appearance", [r for r in rows if r.label not in MOTION_LABELS])):
        if sel:
            out[group] = {"accuracy": 100.0 * float(np.mean([r.accuracy for r in sel])),
                          "majority": 100.0 * float(np.mean([r.majority for r in sel])),
                          "above_majority": sum(r.accuracy > r.majority for r in sel), "labels": len(sel)}
    return out


def make_plan(*, heldout_clips: int = HELDOUT_CLIPS, **kwargs: Any) -> AblationPlan:
    """The reproduction as an `AblationPlan` (every arm, 3 seeds, the default budget, this table)."""
    kwargs.setdefault("variants", ARMS)
    kwargs.setdefault("pretrain_steps", PRETRAIN_STEPS)
    kwargs.setdefault("downstream", DOWNSTREAM)
    return AblationPlan(**{**kwargs, "render": render_table,
                           "heldout": partial(heldout_scores, clips_per_video=heldout_clips)})


def _describe(cfg: PretrainConfig | None) -> str:
    if cfg is None:
        return "–"
    options = cfg.task_options
    parts = ["+".join(options["groups"]) if "groups" in options else "all 27", options.get("targets", "classification")]
    if cfg.curriculum is not None:
        parts.append(f"curriculum, switch at {cfg.curriculum:g}")
    if cfg.video_half is not None:
        parts.append(f"{cfg.video_half} half")
    return ", ".join(parts)


def _heldout(runs: list[dict], group: str) -> str:
    """"acc / majority (labels above majority)" over seeds, or "–" when the arm has no such labels."""
    scores = [r["heldout"][group] for r in runs if group in r.get("heldout", {})]
    if not scores:
        return "–"
    above = "/".join(str(s["above_majority"]) for s in scores)
    return (f"{fmt([s['accuracy'] for s in scores])} / {fmt([s['majority'] for s in scores])} "
            f"({above} of {scores[0]['labels']})")


def heldout_sentence(results: dict[str, list[dict]], arm: str, group: str = "motion") -> str | None:
    """Whether the arm's held-out `group` accuracy is above its majority rate, on how many seeds (from the numbers)."""
    scores = [r["heldout"][group] for r in results.get(arm, []) if group in r.get("heldout", {})]
    if not scores:
        return None
    diffs = [s["accuracy"] - s["majority"] for s in scores]
    m, _ = mean_std(diffs)
    wins = sum(d > 0 for d in diffs)
    where = ("above it on every seed" if wins == len(diffs) else "not above it on any seed" if wins == 0
             else "above it on some seeds only")
    return (f"{arm}: the held-out mean {group}-label accuracy against the mean majority rate of those labels is "
            f"{where} ({m:+.1f} points on average, above on {wins} of {len(diffs)} seeds).")


def render_table(plan: AblationPlan, results: dict[str, list[dict]]) -> str:
    """Markdown: one row per arm (mean ± std over seeds) with the paper's value, held-out pretext scores,
    then per table the ordering agreement of the miniature with the paper, per metric."""
    header = ["arm", "labels, target, videos", "held-out motion acc. / majority (%)",
              "held-out appearance acc. / majority (%)", "fine-tuned video acc. (%)", "fine-tuned clip acc. (%)",
              "linear probe (%)", "R@1 (%)", "paper UCF101 (%)", "in tables"]
    rows = []
    for name, cfg in plan.variants:
        runs = results.get(name) or []
        if not runs:
            continue
        tables = [t.split()[0] for t, table in PAPER_TABLES.items() if name in table]
        papers = sorted({f"{table[name]:.1f}" for table in PAPER_TABLES.values() if name in table})
        rows.append([name, _describe(cfg), _heldout(runs, "motion"), _heldout(runs, "appearance"),
                     *(fmt([r[s][k] for r in runs]) for s, k, _ in METRICS),
                     " / ".join(papers) or "–", ", ".join(dict.fromkeys(tables)) or "–"])
    down = plan.downstream
    recipe = sorted({f"{c.optimizer} lr {c.lr:g}, batch {c.batch_size}, head "
                     f"{c.task_options.get('head', StatisticsTask.head)}, flow sigma "
                     f"{c.task_options.get('flow_sigma', StatisticsTask.flow_sigma):g}"
                     for _, c in plan.variants if c is not None})
    heldout_clips = [r["heldout"]["clips"] for runs in results.values() for r in runs if "heldout" in r]
    note = (f"{len(plan.seeds)} seeds ({', '.join(map(str, plan.seeds))}), mean ± std; every arm pretrained "
            f"{plan.pretrain_steps} steps ({'; '.join(recipe)}); fine-tuning {down.finetune_steps} steps on "
            f"{down.label_fraction:.0%} of the labels; video accuracy over {down.clips_per_video} clips per test "
            f"video; linear probe = linear SVM on frozen {down.layer} features of the same labelled videos. Held-out: "
            f"the arm's own labels on {max(heldout_clips) if heldout_clips else 0} centre-cropped clips of the test "
            "videos, mean exact-match accuracy over its motion (appearance) labels / the mean majority rate of "
            "those labels on the same clips (in brackets: labels above their majority rate, per seed). The paper "
            "column: T1 C3D clip accuracy with 1D-regression targets, T3 K-400 pretraining, T4 R3D-18; the joint arm "
            "stands in T1 (58.8), T3 (76.5, all videos in random order) and T4 (70.4, classification).")
    lines = []
    for table, paper in {**PAPER_TABLES, "T4 pretext accuracy (held-out, all labels)": PAPER_T4_PRETEXT}.items():
        metrics = ((("heldout", "all", "held-out pretext acc."),) if "pretext" in table
                   else (METRICS[1:2] if table.startswith("T1") else ()) + METRICS[:1] + METRICS[2:])
        parts = []
        for section, key, title in metrics:
            usable = results if section != "heldout" else {
                n: [{"heldout": {"all": r["heldout"]["all"]["accuracy"]}} for r in runs if "all" in r.get("heldout", {})]
                for n, runs in results.items()}
            a = ordering_agreement(usable, paper, section, key if section != "heldout" else "all")
            phrase = agreement_phrase(title, a)
            if phrase:
                parts.append(phrase)
        if parts:
            lines.append(f"- {table}: pairs ordered as the paper — " + "; ".join(parts) + ".")
    sentences = [s for s in (heldout_sentence(results, n) for n, _ in plan.variants) if s]
    text = markdown_table(header, rows) + "\n\n" + note
    if lines:
        text += "\n\nOrdering against the paper (means over seeds):\n" + "\n".join(lines)
    if sentences:
        text += "\n\nHeld-out motion labels against their majority rate:\n" + "\n".join(f"- {s}" for s in sentences)
    return text
