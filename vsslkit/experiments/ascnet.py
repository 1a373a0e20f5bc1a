"""`vsslkit reproduce ascnet`: seed 004's ASCNet in miniature, in the paired protocol.

Arms: random init; the chapter-4 method (fine-grained speed change + localization + MoCo, the
ablation's "fine-grained + localization + CL"); ACP only (gamma 0), SCP only (gamma 1), both
(gamma 0.5, same-group partners excluded), gamma 0.25 and 0.75, and gamma 0.5 with same-group
partners allowed. Shared arms run once: "both" *is* the gamma = 0.5 arm and the exclusion-on arm.
Every arm goes through `experiments.ablation.run_ablation` (the same pretraining call, the same
`paired.downstream` protocol per seed), only the table differs: the poster's Tables 1-2 beside and
the paired differences against random init and the chapter-4 method.

ASCNet arms read RGB clips as the poster does; the chapter-4 arm keeps its residual-frame input
(thesis ch. 4). Both use the same backbone, clip length, crop, batch and number of steps.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from vsslkit.experiments import ablation as ab
from vsslkit.experiments.paired import DownstreamConfig
from vsslkit.experiments.quickstart import CPU_DOWNSTREAM, CPU_PRETRAIN
from vsslkit.experiments.report import fmt, markdown_table, mean_std, paired_differences
from vsslkit.train.pretrain import PretrainConfig, config_from_checkpoint

# The miniature's ASCNet (SPECS §3.4): refresh the neighbour table every 10 steps, about once per
# epoch of the synthetic training split at batch 32, so the loader gets a fresh table every epoch.
ASC_OPTIONS = {"gamma": 0.5, "refresh_every": 10, "exclude_same_group": True}
_ASC = replace(CPU_PRETRAIN, task="ascnet", moco=None, residual=False, task_options=ASC_OPTIONS)
RANDOM = "random init"
CHAPTER_4 = "fine-grained + localization + CL"  # the ablation's name for the chapter-4 method
BOTH = "ACP + SCP (gamma 0.5)"


def _asc(**options: Any) -> PretrainConfig:
    return replace(_ASC, task_options={**ASC_OPTIONS, **options})


VARIANTS: list[tuple[str, PretrainConfig | None]] = [
    (RANDOM, None),
    (CHAPTER_4, ab._FULL),
    ("ACP only (gamma 0)", _asc(gamma=0.0)),
    ("SCP only (gamma 1)", _asc(gamma=1.0)),
    (BOTH, _asc()),
    ("gamma 0.25", _asc(gamma=0.25)),
    ("gamma 0.75", _asc(gamma=0.75)),
    ("gamma 0.5, same-group partners allowed", _asc(exclude_same_group=False)),
]
# The poster (seed 004) reports only its full method: Table 1 fine-tuned accuracy (UCF101 / HMDB51,
# 3D R18 and S3D-G), Table 2 UCF101 retrieval with 3D R18. No ablation of gamma, ACP or SCP.
POSTER_TABLE_1 = {"ASCNet 3D R18": (80.5, 52.3), "ASCNet S3D-G": (90.8, 60.5), "Supervised K400 3D R18": (84.4, 56.4)}
POSTER_TABLE_2 = {"ASCNet 3D R18": (58.9, 82.2, 93.4), "RSPNet 3D R18": (41.1, 68.4, 88.7),
                  "Pace 3D R18": (23.8, 46.4, 69.8)}
# Default budget: 3 seeds x 8 arms took 9.6 min on the idle 2-core machine (docs/results/ascnet_reproduce.md).
ASCNET_PRETRAIN_STEPS = 40
ASCNET_DOWNSTREAM = replace(CPU_DOWNSTREAM, finetune_steps=30, clips_per_video=4)
METRICS = (("linear_probe", "video_accuracy", "linear probe"), ("retrieval", "R@1", "R@1"),
           ("finetune", "video_accuracy", "fine-tuned"))


def ascnet_plan(**kwargs: Any) -> ab.AblationPlan:
    """The ablation machinery's plan with ASCNet's arms and budget (keywords override)."""
    defaults = {"variants": VARIANTS, "pretrain_steps": ASCNET_PRETRAIN_STEPS, "downstream": ASCNET_DOWNSTREAM,
                "out_dir": Path("runs/ascnet")}
    return ab.AblationPlan(**{**defaults, **kwargs})


def run_ascnet(plan: ab.AblationPlan) -> dict[str, Any]:
    """Every arm, every seed, through `run_ablation`; the table is `ascnet_table`."""
    return ab.run_ablation(replace(plan, render=plan.render or ascnet_table))


def _option(cfg: PretrainConfig | None, key: str) -> str:
    if cfg is None or cfg.task != "ascnet":
        return "–"
    value = cfg.task_options.get(key)
    return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}"


def _wins(results: dict[str, list[dict]], base: str, name: str, section: str, key: str) -> str:
    diffs = paired_differences(results, base, name, section, key)
    m, _ = mean_std(diffs)
    return f"{m:+.1f} ({sum(d > 0 for d in diffs)}/{len(diffs)})"


def ascnet_table(plan: ab.AblationPlan, results: dict[str, list[dict]]) -> str:
    """Markdown: one row per arm (mean ± std over seeds), paired gains, the poster's tables, a note."""
    header = ["arm", "gamma", "exclude same group", "spread g_a / g_m (end)", "linear probe (%)", "R@1 (%)",
              "R@5 (%)", "fine-tuned (%)", "Δ linear probe vs random (wins)", "Δ R@1 vs random (wins)",
              "Δ linear probe vs ch. 4 (wins)", "Δ R@1 vs ch. 4 (wins)"]
    rows = []
    names = [n for n, _ in plan.variants]
    for name, cfg in plan.variants:
        runs = results[name]
        spreads = "–"
        if cfg is not None and cfg.task == "ascnet":
            spreads = (f"{fmt([r['pretext'].get('pretext.spread_a', float('nan')) for r in runs], 2)} / "
                       f"{fmt([r['pretext'].get('pretext.spread_m', float('nan')) for r in runs], 2)}")
        gains = []
        for base in (RANDOM, CHAPTER_4):
            for section, key in (("linear_probe", "video_accuracy"), ("retrieval", "R@1")):
                ok = base in names and name != base and results.get(base)
                gains.append(_wins(results, base, name, section, key) if ok else "–")
        rows.append([name, _option(cfg, "gamma"), _option(cfg, "exclude_same_group"), spreads,
                     fmt([r["linear_probe"]["video_accuracy"] for r in runs]),
                     fmt([r["retrieval"]["R@1"] for r in runs]), fmt([r["retrieval"]["R@5"] for r in runs]),
                     fmt([r["finetune"]["video_accuracy"] for r in runs]), *gains])
    d = plan.downstream
    note = (f"{len(plan.seeds)} seeds ({', '.join(map(str, plan.seeds))}), mean ± std; every arm pretrained "
            f"{plan.pretrain_steps} steps (batch {CPU_PRETRAIN.batch_size}); downstream: frozen pool5 features of "
            f"{d.clips_per_video} clips per video (retrieval: test queries the training videos; linear probe: a "
            f"linear SVM on {d.label_fraction:.0%} of the training labels), fine-tuning {d.finetune_steps} steps on "
            "the same labels. Δ: paired difference per seed (same seed, same labelled subset, same clips), mean "
            "and the number of seeds where the arm is ahead. Spread: the collapse monitor, mean over the last 10 "
            "pretraining steps (about 1 = spread over the sphere, 0 = collapsed).")
    poster_1 = markdown_table(["poster Table 1 (fine-tuned)", "UCF101 (%)", "HMDB51 (%)"],
                              [[k, f"{a:.1f}", f"{b:.1f}"] for k, (a, b) in POSTER_TABLE_1.items()])
    poster_2 = markdown_table(["poster Table 2 (UCF101 retrieval)", "R@1 (%)", "R@10 (%)", "R@50 (%)"],
                              [[k, *(f"{v:.1f}" for v in vals)] for k, vals in POSTER_TABLE_2.items()])
    return (markdown_table(header, rows) + "\n\n" + note + "\n\nThe poster's numbers (full-size networks, UCF101 / "
            "HMDB51; it has no ablation of gamma, ACP or SCP, so only its full method has a paper column):\n\n"
            + poster_1 + "\n\n" + poster_2)


def ascnet_table_from_results(path: str | Path) -> str:
    """Re-render the table from a run's `results.json` (`--table-from`)."""
    raw = json.loads(Path(path).read_text())
    protocol, results = raw["protocol"], raw["results"]
    variants = [(name, None if cfg is None else config_from_checkpoint({"config": {"pretrain": cfg}}))
                for name, cfg in protocol["variants"].items()]
    plan = ab.AblationPlan(seeds=tuple(protocol["seeds"]), variants=variants, pretrain_steps=protocol["pretrain_steps"],
                           downstream=DownstreamConfig(**protocol["downstream"]))
    return ascnet_table(plan, results)
