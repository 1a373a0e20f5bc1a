"""`vsslkit reproduce methods`: every pretext method of the kit under one budget and one protocol.

Each paper used its own backbone, input, dataset, epochs and evaluation, so their numbers cannot be
set side by side. Here every method is pretrained with the same recipe (`RECIPE`: slim R3D-10,
8 frame differences at 56 px, batch 16, AdamW lr 1e-3, the same number of steps) on the built-in
synthetic set and goes through the same paired downstream protocol as the other reproductions
(`experiments.ablation.run_ablation` → `experiments.paired.downstream`): frozen retrieval (R@1,
R@5), a linear probe and fine-tuning at 10 % and 25 % of the labels, per seed against random init.
Each pretrained arm is also scored on its own pretext on held-out videos against chance
(`heldout_pretext`).

Why this recipe: frame differences and AdamW are what the kit's speed, order, statistics and
ASCNet miniatures needed to learn at a CPU budget (docs/results/playback_order.md,
statistics.md, ascnet.md); SGD at lr 0.05 left the order and statistics heads at chance. One
recipe for all is the point of the table, so no method gets its own optimiser or input.
Method-specific options are each task's own defaults, except where the kit's miniature found the
paper's default unusable on frame differences (statistics: motion labels only, the 4 x 4 grid
head, flow smoothed by σ = 2 px; issue 16's measured recipe) or the backbone needs it (tracking
reads the deepest R3D-10 layer that keeps time, "pool2").
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vsslkit.experiments import ablation as ab
from vsslkit.experiments.paired import DownstreamConfig
from vsslkit.experiments.quickstart import CPU_DOWNSTREAM, CPU_PRETRAIN
from vsslkit.experiments.report import fmt, markdown_table, mean_std
from vsslkit.train.pretrain import PretrainConfig, config_from_checkpoint

RANDOM = "random init"
RECIPE = replace(CPU_PRETRAIN, moco=None, residual=True, batch_size=16, optimizer="adamw", lr=1e-3)
_CL = CPU_PRETRAIN.moco  # the quickstart's MoCo branch (lambda 0.5, queue 512, m 0.99)


@dataclass(frozen=True)
class Method:
    """One row of the table: the CLI key (`quickstart --method`), its name, its seed and its config."""

    key: str
    name: str
    seed_doc: str  # which source document the method comes from
    config: PretrainConfig
    paper: str  # the paper's own headline number, with its backbone and dataset named


def _task(task: str, moco: Any = None, **options: Any) -> PretrainConfig:
    return replace(RECIPE, task=task, task_options=options, moco=moco)


METHODS: tuple[Method, ...] = (
    Method("pace", "pace prediction", "000 (baseline)", _task("pace", speeds=(1, 2, 3, 4)),
           "75.1 fine-tuned (thesis T4.2 pace baseline; R(2+1)D-10, UCF101)"),
    Method("speed-change-coarse", "coarse speed change", "000 ch. 3", _task("speed-change-coarse"),
           "75.8 fine-tuned (thesis T4.2; R(2+1)D-10, UCF101)"),
    Method("speed-change-fine", "fine speed change + localization", "000 ch. 4", _task("speed-change-fine"),
           "79.7 fine-tuned (thesis T4.2; R(2+1)D-10, UCF101)"),
    Method("speed-change-fine-moco", "fine speed change + localization + MoCo", "000 ch. 4",
           _task("speed-change-fine", moco=_CL), "81.6 fine-tuned (thesis T4.2; R(2+1)D-10, UCF101)"),
    Method("playback-order", "playback-speed order (n = 3)", "002", _task("playback-order", clips=3, speeds=(-3, 1, 3)),
           "69.5 fine-tuned (T2; C3D, UCF101 split 1)"),
    Method("speed-prediction", "speed prediction (baseline)", "002 (baseline)", _task("playback-speed", speeds=(-3, 1, 3)),
           "64.4 fine-tuned (T2; C3D, UCF101 split 1)"),
    Method("statistics", "spatio-temporal statistics (motion)", "003",
           _task("statistics", targets="classification", groups=("m1", "m2", "m3", "mg"), head="grid", flow_sigma=2.0),
           "57.8 clip acc. fine-tuned (T1 motion all + global; C3D, UCF101)"),
    Method("ascnet", "ASCNet (ACP + SCP)", "004", _task("ascnet", gamma=0.5, refresh_every=10, exclude_same_group=True),
           "80.5 fine-tuned, R@1 58.9 (Tables 1-2; 3D R18, UCF101)"),
    Method("arrow-of-time", "arrow of time", "001 (auxiliary)", _task("arrow-of-time"),
           "24.2 HMDB51 top-1 with tracking, from scratch (T4.1; inflated ResNet-50; no pretext-only number)"),
    Method("tracking", "cycle-consistency tracking (TimeCycle)", "001 (auxiliary)", _task("tracking"),
           "24.2 HMDB51 top-1 with direction, from scratch (T4.1; inflated ResNet-50; no pretext-only number)"),
)
METHOD_KEYS: tuple[str, ...] = tuple(m.key for m in METHODS)
VARIANTS: list[tuple[str, PretrainConfig | None]] = [(RANDOM, None)] + [(m.name, m.config) for m in METHODS]
PAPER_RANDOM = "57.9 fine-tuned (thesis T4.2; R(2+1)D-10, UCF101)"

# Default budget (3 seeds x 11 arms): see docs/results/methods.md for the measured wall time.
PRETRAIN_STEPS = 250
DOWNSTREAM = replace(CPU_DOWNSTREAM, finetune_steps=100, clips_per_video=3, extra_label_fractions=(0.25,))
HELDOUT_CLIPS = 1  # held-out clips per test video for the pretext scores
# --fast: one seed, a third of the pretraining and half the fine-tuning steps, the same protocol otherwise (a preview, not the table).
FAST_SEEDS = 1
FAST_PRETRAIN_STEPS = 80
FAST_DOWNSTREAM = replace(DOWNSTREAM, finetune_steps=50, clips_per_video=2)

METRICS: tuple[tuple[str, str, str], ...] = (
    ("retrieval", "R@1", "R@1"), ("retrieval", "R@5", "R@5"), ("linear_probe", "video_accuracy", "linear probe"),
    ("finetune", "video_accuracy", "fine-tuned 10 %"), ("finetune_at.0.25", "video_accuracy", "fine-tuned 25 %"))


def method(key: str) -> Method:
    """The method of a CLI key; ValueError (one line) naming the choices for an unknown one."""
    for m in METHODS:
        if m.key == key:
            return m
    raise ValueError(f"unknown method {key!r}; choose one of {', '.join(METHOD_KEYS)}")


def metric_value(run: dict[str, Any], section: str, key: str) -> float:
    """A run's metric; `section` may name a nested one ("finetune_at.0.25"). NaN when the run lacks it."""
    node: Any = run
    head, _, rest = section.partition(".")
    node = node.get(head, {})
    if rest:
        node = node.get(rest, {})
    value = node.get(key) if isinstance(node, dict) else None
    return math.nan if value is None else float(value)


def heldout_pretext(model: Any, config: PretrainConfig, data: Any, seed: int, *,
                    clips_per_video: int = HELDOUT_CLIPS) -> dict[str, Any]:
    """The arm's own pretext on held-out (test) videos against chance, as one comparable triple
    {"what", "accuracy", "chance", "majority"} (%), with per-head details.

    Classification heads (pace, speed change, order, speed, arrow of time): the model's own task
    sampler on seeded centre-cropped clips, mean over heads. Statistics: the motion labels'
    mean accuracy against their majority rate (chance is per label; the majority is the bar).
    ASCNet (no head): the linear speed probe on frozen g_m features, held-out groups. Tracking
    (no head, no class): the held-out long-cycle error is not a rate, so it is reported as
    "what" only with accuracy NaN (its centre error is measured in docs/results/from_scratch.md)."""
    from vsslkit.eval.pretext import localization_summary, predict_pretext_clips
    from vsslkit.tasks import primary_task

    task = primary_task(model.task)
    test = data.test
    if config.task == "statistics":
        from vsslkit.experiments.statistics import heldout_scores

        scores = heldout_scores(model, config, data, seed, clips_per_video=clips_per_video)
        motion = scores["motion"]
        return {"what": f"motion labels ({motion['labels']}), mean", "accuracy": motion["accuracy"],
                "chance": math.nan, "majority": motion["majority"], "detail": scores}
    if config.task == "ascnet":
        from vsslkit.eval.ascnet import ascnet_diagnostics

        diag = ascnet_diagnostics(model, data.store, test.paths, test.num_frames, test.labels, test.groups,
                                  crop_size=config.size, seed=seed)
        return {"what": "speed probe on g_m (g_a beside)", "accuracy": 100.0 * diag.speed_probe_m,
                "chance": 100.0 * diag.speed_chance, "majority": math.nan,
                "detail": {k: (100.0 * v if "probe" in k or "partner" in k or "chance" in k else v)
                           for k, v in diag.as_dict().items()}}
    if not task.heads:
        return {"what": f"{task.name}: no classification head", "accuracy": math.nan, "chance": math.nan,
                "majority": math.nan}
    clips = predict_pretext_clips(model, data.store, test.paths, test.num_frames, crop_size=config.size,
                                  clips_per_video=clips_per_video, seed=seed)
    summary = localization_summary(clips, model.task)
    heads = {h: {"accuracy": 100.0 * s.accuracy, "chance": 100.0 * s.chance, "majority": 100.0 * s.majority}
             for h, s in summary.items()}
    return {"what": " + ".join(heads), "clips": len(clips),
            **{k: float(np.mean([v[k] for v in heads.values()])) for k in ("accuracy", "chance", "majority")},
            "detail": heads}


@dataclass
class PretrainedArm:
    """One arm of `pretrain_methods`: its frozen backbone, the checkpoint (None for random init), steps, seconds."""

    name: str
    backbone: Any
    checkpoint: Path | None
    steps: int
    seconds: float
    last: dict[str, float]  # the last logged training row (loss, pretext accuracies, collapse monitors)


def pretrain_methods(data: Any, *, steps: int, out_dir: str | Path, seed: int = 0, keys: Sequence[str] = METHOD_KEYS,
                     batch_size: int | None = None, progress: bool = True,
                     report: Callable[[str], None] = print) -> dict[str, PretrainedArm]:
    """Random init and every method in `keys`, each pretrained `steps` steps with the table's recipe on
    `data` (`.train`, `.store`): the closing notebook's arms, the same calls `reproduce methods` makes.

    `batch_size` overrides the recipe's batch (the notebook's fast mode); everything else stays the
    recipe, so a method never gets its own optimiser or input."""
    import torch

    from vsslkit.models import build_backbone
    from vsslkit.train.pretrain import pretrain

    torch.manual_seed(seed)
    arms = {RANDOM: PretrainedArm(RANDOM, build_backbone(RECIPE.backbone, width=RECIPE.width, norm=RECIPE.norm).eval(),
                                  None, 0, 0.0, {})}
    out = Path(out_dir)
    for key in keys:
        m = method(key)
        cfg = replace(m.config, seed=seed, batch_size=batch_size or m.config.batch_size)
        model, fit = pretrain(cfg, paths=data.train.paths, num_frames=data.train.num_frames, source=data.store,
                              out_dir=out / key, max_steps=steps, resume=False, progress=progress,
                              log_every=max(1, min(10, steps // 2)), checkpoint_every=None, groups=data.train.groups,
                              report=report)
        rows = [r for r in fit.history if "loss" in r]
        arms[m.name] = PretrainedArm(m.name, model.backbone.eval(), fit.checkpoint, fit.steps, fit.seconds,
                                     dict(rows[-1]) if rows else {})
        report(f"{m.name}: {fit.steps} steps in {fit.seconds:.0f} s")
    return arms


def make_plan(**kwargs: Any) -> ab.AblationPlan:
    """The reproduction as an `AblationPlan`: every method and random init, 3 seeds, this table."""
    kwargs.setdefault("variants", VARIANTS)
    kwargs.setdefault("pretrain_steps", PRETRAIN_STEPS)
    kwargs.setdefault("downstream", DOWNSTREAM)
    kwargs.setdefault("out_dir", Path("runs/methods"))
    return ab.AblationPlan(**{**kwargs, "render": render_table, "heldout": heldout_pretext})


def _pretext_cell(runs: list[dict]) -> str:
    held = [r["heldout"] for r in runs if "heldout" in r]
    if not held or all(math.isnan(h["accuracy"]) for h in held):
        return held[0]["what"] if held else "–"
    acc = fmt([h["accuracy"] for h in held])
    bars = []
    for key, word in (("chance", "chance"), ("majority", "majority")):
        values = [h[key] for h in held if not math.isnan(h[key])]
        if values:
            bars.append(f"{word} {mean_std(values)[0]:.1f}")
    return f"{acc} ({', '.join(bars)}; {held[0]['what']})"


def _gain(results: dict[str, list[dict]], name: str, section: str, key: str) -> str:
    base = results.get(RANDOM) or []
    diffs = [metric_value(r, section, key) - metric_value(b, section, key) for r, b in zip(results[name], base)]
    diffs = [d for d in diffs if not math.isnan(d)]
    if not diffs or name == RANDOM:
        return "–"
    return f"{mean_std(diffs)[0]:+.1f} ({sum(d > 0 for d in diffs)}/{len(diffs)})"


def _paper(name: str) -> str:
    if name == RANDOM:
        return PAPER_RANDOM
    return next((m.paper for m in METHODS if m.name == name), "–")


def summary_rows(plan_variants: list[tuple[str, Any]], results: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """Per arm: mean and std of every metric over seeds, the paired gains over random init and the
    number of seeds it wins: the numbers behind the table and the closing notebook's figure."""
    rows = []
    for name, _cfg in plan_variants:
        runs = results.get(name) or []
        if not runs:
            continue
        row: dict[str, Any] = {"arm": name, "seeds": len(runs)}
        for section, key, title in METRICS:
            values = [v for v in (metric_value(r, section, key) for r in runs) if not math.isnan(v)]
            row[title] = mean_std(values)
            if name != RANDOM and results.get(RANDOM):
                diffs = [metric_value(r, section, key) - metric_value(b, section, key)
                         for r, b in zip(runs, results[RANDOM])]
                diffs = [d for d in diffs if not math.isnan(d)]
                row[f"Δ {title}"] = (*mean_std(diffs), sum(d > 0 for d in diffs), len(diffs))
        held = [r["heldout"] for r in runs if "heldout" in r]
        if held:
            row["pretext"] = {k: mean_std([h[k] for h in held])[0] for k in ("accuracy", "chance", "majority")}
            row["pretext"]["what"] = held[0]["what"]
        rows.append(row)
    return rows


# The papers' own fine-tuned numbers for the rows that share a paper (full labels, their backbone and
# dataset): the orderings the miniature is compared with, never the values.
PAPER_ORDERINGS: dict[str, dict[str, float]] = {
    "thesis T4.2": {RANDOM: 57.9, "pace prediction": 75.1, "coarse speed change": 75.8,
                    "fine speed change + localization": 79.7, "fine speed change + localization + MoCo": 81.6},
    "seed 002 T2": {"speed prediction (baseline)": 64.4, "playback-speed order (n = 3)": 69.5},
}


def ordering_against_papers(results: dict[str, list[dict]], section: str, key: str) -> list[str]:
    """Per paper: how many pairs of its rows the miniature's seed means order as the paper does."""
    out = []
    for paper, numbers in PAPER_ORDERINGS.items():
        agreement = ab.ordering_agreement(results, numbers, section, key,
                                          value=lambda run: metric_value(run, section, key))
        if agreement["pairs"]:
            out.append(f"{paper} {agreement['agree']}/{agreement['pairs']} pairs")
    return out


def reading(plan_variants: list[tuple[str, Any]], results: dict[str, list[dict]]) -> list[str]:
    """Sentences computed from the numbers (what the table says, never typed by hand)."""
    rows = summary_rows(plan_variants, results)
    arms = [r for r in rows if r["arm"] != RANDOM]
    if not arms:
        return []
    counts = sorted({r["seeds"] for r in rows})
    seeds = f"{counts[0]} seeds" if len(counts) == 1 else f"{counts[0]}-{counts[-1]} seeds per arm: an unfinished run"
    out = []
    for title in ("R@1", "linear probe", "fine-tuned 10 %", "fine-tuned 25 %"):
        every = [r["arm"] for r in arms if f"Δ {title}" in r and r[f"Δ {title}"][2] == r[f"Δ {title}"][3] > 0]
        best = max(arms, key=lambda r: r[title][0])
        base = next((r for r in rows if r["arm"] == RANDOM), None)
        base_txt = f"; random init {base[title][0]:.1f}" if base else ""
        out.append(f"- {title}: {len(every)} of {len(arms)} methods beat random init on every seed "
                   f"({seeds}){': ' + ', '.join(every) if every else ''}; highest mean: {best['arm']} "
                   f"{best[title][0]:.1f}{base_txt}.")
    learned = [r["arm"] for r in arms if "pretext" in r and not math.isnan(r["pretext"]["accuracy"])
               and r["pretext"]["accuracy"] > max(v for v in (r["pretext"]["chance"], r["pretext"]["majority"])
                                                  if not math.isnan(v)) + 5]
    scored = [r for r in arms if "pretext" in r and not math.isnan(r["pretext"]["accuracy"])]
    for section, title in (("finetune", "10 %"), ("finetune_at.0.25", "25 %")):
        phrases = ordering_against_papers(results, section, "video_accuracy")
        if phrases:
            out.append(f"- Ordering against the papers (fine-tuned here with {title} of the labels; the papers "
                       f"fine-tuned with all of them on their own backbone and dataset): {'; '.join(phrases)} "
                       "ordered as the paper orders them.")
    out.append(f"- Pretext held out: {len(learned)} of {len(scored)} scored methods are more than 5 points above "
               f"their chance / majority bar{': ' + ', '.join(learned) if learned else ''}.")
    return out


def render_table(plan: ab.AblationPlan, results: dict[str, list[dict]]) -> str:
    """Markdown: one row per arm (mean ± std over seeds), paired gains over random init with the
    number of winning seeds, the held-out pretext against chance, each paper's headline beside."""
    header = ["method", "seed", "pretext held out (%)", *(t for _, _, t in METRICS),
              *(f"Δ {t} (wins)" for _, _, t in METRICS if t != "R@5"), "the paper's own headline (not like-for-like)"]
    seed_doc = {m.name: m.seed_doc for m in METHODS}
    rows = []
    for name, _cfg in plan.variants:
        runs = results.get(name) or []
        if not runs:
            continue
        values = []
        for section, key, _ in METRICS:
            got = [v for v in (metric_value(r, section, key) for r in runs) if not math.isnan(v)]
            values.append(fmt(got) if got else "–")
        gains = [_gain(results, name, section, key) for section, key, t in METRICS if t != "R@5"]
        rows.append([name, seed_doc.get(name, "–"), _pretext_cell(runs) if name != RANDOM else "–", *values, *gains,
                     _paper(name)])
    d = plan.downstream
    fractions = ", ".join(f"{f:.0%}" for f in (d.label_fraction, *d.extra_label_fractions))
    cfg = next((c for _, c in plan.variants if c is not None), RECIPE)
    note = (f"{len(plan.seeds)} seed(s) ({', '.join(map(str, plan.seeds))}), mean ± std. Every method pretrained "
            f"{plan.pretrain_steps} steps with one recipe: {cfg.backbone} x {cfg.width}, {cfg.clip_len} "
            f"{'frame differences' if cfg.residual else 'RGB frames'} at {cfg.size} px, batch {cfg.batch_size}, "
            f"{cfg.optimizer} lr {cfg.lr:g}. Downstream, the same for every arm and seed: frozen {d.layer} features of "
            f"{d.clips_per_video} clips per video (retrieval: test videos query the training videos; linear probe: a "
            f"linear SVM on {d.label_fraction:.0%} of the training labels), fine-tuning {d.finetune_steps} steps on "
            f"{fractions} of the labels. Δ: paired difference against random init per seed (same seed, same labelled "
            "videos, same clips), mean and the number of seeds where the method is ahead. Pretext held out: the "
            "method's own pretext on test videos, against chance and the majority label (statistics: the motion "
            "labels against their majority rate; ASCNet: a linear speed probe on g_m). The last column is each paper's "
            "own number on its own backbone and dataset, beside the row so nobody mistakes it for like-for-like.")
    lines = reading(plan.variants, results)
    return markdown_table(header, rows) + "\n\n" + note + ("\n\nWhat the numbers say:\n" + "\n".join(lines)
                                                            if lines else "")


def load_results(path: str | Path) -> tuple[ab.AblationPlan, dict[str, list[dict]]]:
    """(plan, results) of a run's results.json, for re-rendering and the closing notebook."""
    raw = json.loads(Path(path).read_text())
    protocol, results = raw["protocol"], raw["results"]
    variants = [(name, None if cfg is None else config_from_checkpoint({"config": {"pretrain": cfg}}))
                for name, cfg in protocol["variants"].items()]
    down = dict(protocol["downstream"])
    down["extra_label_fractions"] = tuple(down.get("extra_label_fractions", ()))
    plan = ab.AblationPlan(seeds=tuple(protocol["seeds"]), variants=variants, pretrain_steps=protocol["pretrain_steps"],
                           downstream=DownstreamConfig(**down))
    return plan, results


def table_from_results(path: str | Path) -> str:
    """Re-render the table from a run's `results.json` (`--table-from`)."""
    plan, results = load_results(path)
    return render_table(plan, results)


__all__ = [
    "DOWNSTREAM",
    "METHODS",
    "METHOD_KEYS",
    "PAPER_ORDERINGS",
    "PRETRAIN_STEPS",
    "RECIPE",
    "VARIANTS",
    "Method",
    "PretrainedArm",
    "heldout_pretext",
    "load_results",
    "make_plan",
    "method",
    "metric_value",
    "ordering_against_papers",
    "pretrain_methods",
    "reading",
    "render_table",
    "summary_rows",
    "table_from_results",
]
