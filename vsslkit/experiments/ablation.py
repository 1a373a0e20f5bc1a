"""The thesis' ablations (Tables 4.1 and 4.2) in miniature, on the synthetic dataset, one protocol.

Every variant is a `PretrainConfig` (or None for random initialisation) that differs from the
quickstart recipe only in what the table varies; every variant then goes through the same paired
downstream protocol (`experiments.paired.downstream`) for every seed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vsslkit.atomic import write_text_atomic
from vsslkit.data.synthetic import GENERATOR_VERSION
from vsslkit.experiments.paired import DownstreamConfig, downstream, ensure_synthetic, load_data
from vsslkit.experiments.quickstart import CPU_DOWNSTREAM, CPU_PRETRAIN
from vsslkit.experiments.report import fmt, markdown_table, mean_std
from vsslkit.models import build_backbone
from vsslkit.train.distributed import resolve_device
from vsslkit.train.pretrain import PretrainConfig, config_from_checkpoint, pretrain

# Table 4.2 rows: the pretext tasks alone and with the contrastive (CL) regulariser.
_CL = CPU_PRETRAIN.moco  # the quickstart's MoCo branch (lambda 0.5, queue 512, m 0.99)
_BASE = replace(CPU_PRETRAIN, moco=None)
_PACE = replace(_BASE, task="pace", task_options={"speeds": (1, 2, 3, 4)})
_COARSE = replace(_BASE, task="speed-change-coarse")
_FINE_CLS = replace(_BASE, task="speed-change-fine", task_options={"localize": False})
_FINE_LOC = replace(_BASE, task="speed-change-fine")
TABLE_4_2: list[tuple[str, PretrainConfig | None]] = [
    ("random init", None),
    ("pace baseline", _PACE),
    ("contrastive only (CL)", replace(_BASE, task="none", moco=_CL)),
    ("coarse speed change (SC, ch. 3)", _COARSE),
    ("fine-grained classification", _FINE_CLS),
    ("fine-grained + localization", _FINE_LOC),
    ("pace baseline + CL", replace(_PACE, moco=_CL)),
    ("coarse SC + CL", replace(_COARSE, moco=replace(_CL, weight=0.25))),  # ch. 3 uses lambda = 0.25
    ("fine-grained + localization + CL", replace(_FINE_LOC, moco=_CL)),
]
# Table 4.1: speed pool and sampling order of the fine-grained + localization + CL method.
_FULL = replace(_FINE_LOC, moco=_CL)
TABLE_4_1: list[tuple[str, PretrainConfig | None]] = [
    ("pool {1,2}, location-primary", replace(_FULL, task_options={"pool": (1, 2)})),
    ("pool {1,2,3}, class-primary", replace(_FULL, task_options={"primary": "class"})),
    ("pool {1,2,3,4}, location-primary", replace(_FULL, task_options={"pool": (1, 2, 3, 4)})),
]
# The thesis' UCF101 fine-tuning accuracies (%, R(2+1)D), only to compare orderings with. Table 4.1
# varies pool and sampling of fine-grained + localization (79.7 = its default setting, without CL);
# the miniature varies them on the full method, so its reference row is "fine-grained + localization + CL".
THESIS_TABLE_4_2 = {
    "random init": 57.9, "pace baseline": 75.1, "contrastive only (CL)": 75.6, "coarse speed change (SC, ch. 3)": 75.8,
    "fine-grained classification": 77.5, "fine-grained + localization": 79.7, "pace baseline + CL": 76.7,
    "coarse SC + CL": 77.2, "fine-grained + localization + CL": 81.6,
}
THESIS_TABLE_4_1 = {
    "fine-grained + localization + CL": 79.7, "pool {1,2}, location-primary": 79.3,
    "pool {1,2,3}, class-primary": 78.2, "pool {1,2,3,4}, location-primary": 78.9,
}
AGREEMENT_METRICS = (("finetune", "video_accuracy", "fine-tuned video accuracy"),
                     ("linear_probe", "video_accuracy", "linear-probe accuracy"), ("retrieval", "R@1", "R@1"))
# The reduced default budget keeps 12 variants x 3 seeds inside 90 minutes on 2 CPU cores.
ABLATION_PRETRAIN_STEPS = 120
ABLATION_DOWNSTREAM = replace(CPU_DOWNSTREAM, finetune_steps=100)


@dataclass
class AblationPlan:
    data_root: Path = Path("data/synthetic")
    out_dir: Path = Path("runs/ablation")
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: list[tuple[str, PretrainConfig | None]] = field(default_factory=lambda: TABLE_4_2 + TABLE_4_1)
    pretrain_steps: int = ABLATION_PRETRAIN_STEPS
    downstream: DownstreamConfig = ABLATION_DOWNSTREAM
    version: int = GENERATOR_VERSION  # synthetic generator version (2: time-symmetric, 3: + irreversible physics)
    device: str = "auto"
    progress: bool = False
    command: str = ""
    # How results.json becomes table.md; another seed's reproduction passes its own (same protocol).
    render: Callable[[AblationPlan, dict[str, list[dict]]], str] | None = None
    # Per pretrained arm: the pretext task scored on held-out clips, (model, config, data, seed) -> dict,
    # stored as the run's "heldout" (seed 003's per-label accuracy against the majority rate).
    heldout: Callable[[Any, PretrainConfig, Any, int], dict[str, Any]] | None = None


def _short(metric: str) -> str:
    """"pretext.speed_acc" -> "speed", "moco.acc" -> "moco" (and the older flat "speed_acc", "ctr_acc")."""
    return metric.removeprefix("pretext.").removesuffix("_acc").removesuffix(".acc")


class ResultsMismatch(ValueError):
    """The output folder's results.json belongs to a run under another protocol (so it cannot be resumed)."""


# What a finished run must share with the plan to be reused on resume (the arm's own config is compared too).
RESUME_KEYS = ("pretrain_steps", "downstream", "dataset", "synthetic_version", "split")


def finished_runs(path: Path, protocol: dict[str, Any]) -> tuple[dict[str, dict[int, dict]], dict[str, Any]]:
    """Runs already in `path` (an interrupted or smaller earlier invocation) under the same protocol:
    ({arm: {seed: result}}, {arm: its stored config}); ({}, {}) when there is no file yet.

    Raises `ResultsMismatch` (one line) when the file holds another protocol or cannot be read: the
    folder is the user's to choose, never silently overwritten. A stored arm whose config differs
    from the plan's arm of that name is not reused (it is run again)."""
    if not path.is_file():
        return {}, {}
    try:
        raw = json.loads(path.read_text())
        old, stored = raw["protocol"], raw["results"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultsMismatch(f"{path}: not a readable results file ({exc}); choose another --out or delete it") from exc
    for key in RESUME_KEYS:
        if old.get(key) != protocol[key]:
            raise ResultsMismatch(f"{path}: holds runs with {key} = {old.get(key)!r}, this run has {protocol[key]!r}; "
                                  "choose another --out or delete it")
    done: dict[str, dict[int, dict]] = {}
    for name, runs in stored.items():
        if name in protocol["variants"] and old["variants"].get(name) != protocol["variants"][name]:
            print(f"{path}: arm {name!r} ran there with another configuration: running it again "
                  f"(its {len(runs)} earlier runs will be replaced)")
            continue
        for run in runs:
            if "seed" in run:
                done.setdefault(name, {})[int(run["seed"])] = run
    return done, old["variants"]


def run_ablation(plan: AblationPlan) -> dict[str, Any]:
    """Pretrain + downstream for every (variant, seed); write `table.md` + `results.json`; return them.

    `plan.render(plan, results)` draws the table (default `ablation_table`; the other seeds' reproductions
    bring their own). results.json is rewritten (atomically) after every run, so a run that is
    interrupted resumes where it stopped when started again with the same out_dir and protocol:
    finished (arm, seed) runs are read back, not repeated. Runs of arms or seeds the file holds and
    this plan does not ask for are kept in it (and in the table).
    """
    t0 = time.perf_counter()
    device = resolve_device(plan.device)
    out = Path(plan.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ensure_synthetic(plan.data_root, progress=plan.progress, version=plan.version)
    data = load_data(plan.data_root, progress=plan.progress, workers=2)
    protocol = json.loads(json.dumps({
        "command": plan.command, "seeds": list(plan.seeds), "pretrain_steps": plan.pretrain_steps,
        "downstream": asdict(plan.downstream), "dataset": str(plan.data_root), "synthetic_version": plan.version,
        "split": data.split, "variants": {name: (cfg.to_json() if cfg else None) for name, cfg in plan.variants},
        "minutes": 0.0, "device": device.type}))
    done, stored_variants = finished_runs(out / "results.json", protocol)
    names = [name for name, _ in plan.variants]
    variants = list(plan.variants) + [(name, None if raw is None else config_from_checkpoint({"config": {"pretrain": raw}}))
                                      for name, raw in stored_variants.items() if name not in names and name in done]
    seeds = list(plan.seeds) + sorted({s for runs in done.values() for s in runs} - set(plan.seeds))
    protocol["seeds"] = seeds
    protocol["variants"].update({name: stored_variants[name] for name, _ in variants[len(plan.variants):]})
    results: dict[str, list[dict]] = {}

    def collect() -> None:  # every run so far, per arm in seed order
        for name, _ in variants:
            results[name] = [done[name][s] for s in seeds if s in done.get(name, {})]

    def save(final: bool) -> None:
        collect()
        protocol["minutes"] = round((time.perf_counter() - t0) / 60, 1)
        write_text_atomic(out / "results.json", json.dumps({"protocol": protocol, "results": results,
                                                            "complete": final}, indent=1))

    for seed in plan.seeds:
        for v, (name, cfg) in enumerate(plan.variants):
            if seed in done.get(name, {}):
                print(f"[seed {seed}] {name}: finished earlier, read from {out / 'results.json'}", flush=True)
                continue
            run_dir = out / f"seed{seed}" / f"v{v:02d}"
            input_cfg = replace(cfg or CPU_PRETRAIN, seed=seed)
            pretext: dict[str, float] = {}
            heldout = None
            if cfg is None:
                torch.manual_seed(seed)
                backbone, ckpt = build_backbone(input_cfg.backbone, width=input_cfg.width, norm=input_cfg.norm,
                                                in_frames=input_cfg.clip_len if input_cfg.norm == "tgn" else None,
                                                tgn_group_frames=input_cfg.tgn_group_frames), None
            else:
                model, fit_result = pretrain(input_cfg, paths=data.train.paths, num_frames=data.train.num_frames,
                                             source=data.store, out_dir=run_dir / "pretrain",
                                             max_steps=plan.pretrain_steps, device=device, resume=False,
                                             progress=plan.progress, log_every=10, checkpoint_every=None,
                                             groups=data.train.groups)
                backbone, ckpt = model.backbone, fit_result.checkpoint
                last = [r for r in fit_result.history if "loss" in r][-1]
                pretext = {k: 100.0 * val for k, val in last.items() if k.endswith("acc")}
                pretext.update({k: float(val) for k, val in last.items() if "spread" in k})  # collapse monitors
                if plan.heldout is not None:
                    heldout = plan.heldout(model, input_cfg, data, seed)
            result = downstream(name, backbone, data, input_cfg=input_cfg, down=plan.downstream, seed=seed,
                                out_dir=run_dir, checkpoint=ckpt, device=device, progress=plan.progress)
            result.pop("curve", None)
            result.pop("confusion", None)
            result["pretext"] = pretext
            if heldout is not None:
                result["heldout"] = heldout
            result["seed"] = seed
            done.setdefault(name, {})[seed] = result
            save(final=False)
            print(f"[seed {seed}] {name}: video acc {result['finetune']['video_accuracy']:.1f} %, linear probe "
                  f"{result['linear_probe']['video_accuracy']:.1f} %, R@1 {result['retrieval']['R@1']:.1f} % "
                  f"({(time.perf_counter() - t0) / 60:.1f} min)", flush=True)
    save(final=True)
    table = (plan.render or ablation_table)(replace(plan, seeds=tuple(seeds), variants=variants), results)
    write_text_atomic(out / "table.md", table + "\n")
    print(table)
    return {"table": table, "results": results, "protocol": protocol}


def ablation_table(plan: AblationPlan, results: dict[str, list[dict]]) -> str:
    """Markdown: one row per variant, mean ± std over seeds, the Table 4.1 rows after a separator."""
    header = ["variant", "task", "CL", "pretext acc. (%)", "fine-tuned video acc. (%)", "linear probe acc. (%)",
              "R@1 (%)", "R@5 (%)", "thesis UCF101 (%)"]
    rows = []
    table_4_1 = {name for name, _ in TABLE_4_1}
    for name, cfg in plan.variants:
        runs = results[name]
        if name in table_4_1 and not any(row[0] == "*Table 4.1 variants*" for row in rows):
            rows.append(["*Table 4.1 variants*"] + [""] * (len(header) - 1))
        heads = sorted({k for r in runs for k in r["pretext"]})
        pretext = ", ".join(f"{_short(k)} {fmt([r['pretext'][k] for r in runs])}" for k in heads) or "–"
        rows.append([name, cfg.task if cfg else "–", "yes" if cfg and cfg.moco else "no", pretext,
                     fmt([r["finetune"]["video_accuracy"] for r in runs]),
                     fmt([r["linear_probe"]["video_accuracy"] for r in runs]), fmt([r["retrieval"]["R@1"] for r in runs]),
                     fmt([r["retrieval"]["R@5"] for r in runs]), _thesis(name)])
    note = (f"{len(plan.seeds)} seeds ({', '.join(map(str, plan.seeds))}), mean ± std; pretraining "
            f"{plan.pretrain_steps} steps; fine-tuning {plan.downstream.finetune_steps} steps on "
            f"{plan.downstream.label_fraction:.0%} of the labels; video accuracy over 10 clips per test video; "
            "linear probe = linear SVM on the frozen pool5 features of the same labelled videos.")
    agreement = []
    for table, thesis in (("Table 4.2", THESIS_TABLE_4_2), ("Table 4.1", THESIS_TABLE_4_1)):
        for section, key, title in AGREEMENT_METRICS:
            a = ordering_agreement(results, thesis, section, key)
            if a["pairs"]:
                agreement.append(f"- {table}, {title}: the miniature orders {a['agree']} of {a['pairs']} pairs of "
                                 f"variants as the thesis does (Spearman rank correlation {a['spearman']:+.2f}, "
                                 f"{a['rows']} rows).")
    text = markdown_table(header, rows) + "\n\n" + note
    return text + ("\n\nOrdering against the thesis (means over seeds):\n" + "\n".join(agreement) if agreement else "")


def _thesis(name: str) -> str:
    value = THESIS_TABLE_4_2.get(name, THESIS_TABLE_4_1.get(name))
    return "–" if value is None else f"{value:.1f}"


def ordering_agreement(results: dict[str, list[dict]], thesis: dict[str, float], section: str,
                       key: str, *, value: Callable[[dict], float] | None = None) -> dict[str, Any]:
    """How many pairs of variants (both run, both in `thesis`) the miniature's seed means order as the
    thesis does (pairs the thesis ties are skipped), and the Spearman correlation of the two orderings.
    `value` reads one run's number when `run[section][key]` does not (a nested section)."""
    from scipy.stats import spearmanr

    read = value or (lambda r: r[section][key])
    names = [n for n in thesis if results.get(n)]
    ours = {n: mean_std([read(r) for r in results[n]])[0] for n in names}
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if thesis[a] != thesis[b]]
    agree = sum((ours[a] - ours[b]) * (thesis[a] - thesis[b]) > 0 for a, b in pairs)
    defined = len(names) > 2 and len(set(ours.values())) > 1  # a constant column has no rank correlation
    rho = float(spearmanr([ours[n] for n in names], [thesis[n] for n in names]).statistic) if defined else math.nan
    return {"agree": agree, "pairs": len(pairs), "spearman": rho, "rows": len(names)}


def agreement_phrase(title: str, agreement: dict[str, Any]) -> str | None:
    """"<title> k/n[, Spearman ρ]" for an `ordering_agreement`, or None when it has no pair to compare."""
    if not agreement["pairs"]:
        return None
    rho = ("" if agreement["rows"] < 3 else ", Spearman undefined (a constant column)"
           if math.isnan(agreement["spearman"]) else f", Spearman {agreement['spearman']:+.2f}")
    return f"{title} {agreement['agree']}/{agreement['pairs']}{rho}"


def table_from_results(path: str | Path, render: Callable[[AblationPlan, dict[str, list[dict]]], str] | None = None) -> str:
    """Re-render `table.md` from a run's `results.json` (e.g. one that ran on a GPU elsewhere)."""
    raw = json.loads(Path(path).read_text())
    protocol, results = raw["protocol"], raw["results"]
    variants = [(name, None if cfg is None else config_from_checkpoint({"config": {"pretrain": cfg}}))
                for name, cfg in protocol["variants"].items()]
    plan = AblationPlan(seeds=tuple(protocol["seeds"]), variants=variants, pretrain_steps=protocol["pretrain_steps"],
                        downstream=DownstreamConfig(**protocol["downstream"]))
    return (render or ablation_table)(plan, results)


def best_minus_random(results: dict[str, list[dict]], name: str, key: tuple[str, str]) -> tuple[float, float]:
    """Paired gain of a variant over random init (mean, std over seeds)."""
    base = results["random init"]
    return mean_std([r[key[0]][key[1]] - b[key[0]][key[1]] for r, b in zip(results[name], base)])
