"""The main job: does speed-change pretraining beat random initialisation on the synthetic set?

One command (`vsslkit quickstart`) builds the built-in dataset if missing, pretrains the thesis'
chapter-4 method (fine-grained speed-change classification + localization + MoCo) on the
training videos *without labels*, then runs the same downstream protocol (frozen-feature
retrieval, fine-tuning on 10 % of the labels, 10-clip video accuracy) for the pretrained and for
a randomly initialised backbone with the same seed, and writes `report.md` + `report.html`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vsslkit.atomic import write_text_atomic
from vsslkit.data.synthetic import GENERATOR_VERSION
from vsslkit.experiments.paired import DownstreamConfig, downstream, ensure_synthetic, load_data
from vsslkit.experiments.presets import THESIS
from vsslkit.experiments.report import (
    comparison_rows,
    fmt,
    markdown_table,
    mean_std,
    paired_differences,
    verdict,
)
from vsslkit.models import build_backbone
from vsslkit.train.distributed import resolve_device
from vsslkit.train.pretrain import MoCoConfig, PretrainConfig, pretrain
from vsslkit.viz import plots
from vsslkit.viz.report_html import (
    PageFigure,
    ReportPage,
    Verdict,
    config_table,
    write_report_html,
)

# The CPU classroom recipe: slim R3D-10 (0.9 M parameters), 8 residual frames, 56 px crops.
CPU_PRETRAIN = PretrainConfig(task="speed-change-fine", moco=MoCoConfig(weight=0.5, queue_size=512, momentum=0.99),
                              backbone="r3d_10", width=0.25, clip_len=8, size=56, residual=True,
                              batch_size=32, lr=0.05)
CPU_DOWNSTREAM = DownstreamConfig(label_fraction=0.1, finetune_steps=150, batch_size=16, lr=0.05, stride=2)
CPU_PRETRAIN_STEPS = 250

# --full: the thesis-sized recipe for a GPU (R(2+1)D-10 at width 1, 16 frames, 112 px): the `thesis`
# preset's config (seed 000 §3.5.1, §4.5.1), run for a step budget instead of 400 epochs.
FULL_PRETRAIN = THESIS.pretrain
FULL_DOWNSTREAM = replace(CPU_DOWNSTREAM, finetune_steps=3000, batch_size=THESIS.finetune.batch_size,
                          lr=THESIS.finetune.lr)
FULL_PRETRAIN_STEPS = 20000

METRICS = (("finetune", "video_accuracy", "fine-tuned video acc. (%)"), ("finetune", "clip_accuracy", "clip acc. (%)"),
           ("linear_probe", "video_accuracy", "linear probe acc. (%)"),
           ("retrieval", "R@1", "R@1 (%)"), ("retrieval", "R@5", "R@5 (%)"), ("retrieval", "R@10", "R@10 (%)"))


@dataclass
class QuickstartPlan:
    data_root: Path = Path("data/synthetic")
    out_dir: Path = Path("runs/quickstart")
    seeds: tuple[int, ...] = (0,)
    pretrain: PretrainConfig = CPU_PRETRAIN
    pretrain_steps: int = CPU_PRETRAIN_STEPS
    downstream: DownstreamConfig = CPU_DOWNSTREAM
    videos_per_class: int = 43
    version: int = GENERATOR_VERSION  # synthetic generator version (2: time-symmetric, 3: + irreversible physics)
    device: str = "auto"
    progress: bool = True
    arm: str = "speed-change pretrained"  # the pretrained arm's name in the report (`quickstart --method` sets it)
    extra: dict[str, Any] = field(default_factory=dict)


def run_quickstart(plan: QuickstartPlan) -> dict[str, Any]:
    """Run the paired comparison for every seed and write the report; returns the results."""
    t0 = time.perf_counter()
    device = resolve_device(plan.device)
    out = Path(plan.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ensure_synthetic(plan.data_root, videos_per_class=plan.videos_per_class, progress=plan.progress,
                     version=plan.version)
    data = load_data(plan.data_root, progress=plan.progress, workers=2)
    if data.skipped:
        print(f"skipped {len(data.skipped)} unusable videos: " + "; ".join(f"{p}: {r}" for p, r in data.skipped))
    runs: dict[str, list[dict]] = {"random init": [], plan.arm: []}
    pretext_curves: dict[str, list[dict]] = {}
    for seed in plan.seeds:
        cfg = replace(plan.pretrain, seed=seed)
        print(f"[seed {seed}] pretraining {cfg.task}{' + MoCo' if cfg.contrastive else ''} on "
              f"{len(data.train)} unlabelled videos for {plan.pretrain_steps} steps")
        model, fit_result = pretrain(cfg, paths=data.train.paths, num_frames=data.train.num_frames, source=data.store,
                                     out_dir=out / f"seed{seed}" / "pretrain", max_steps=plan.pretrain_steps,
                                     device=device, resume=False, progress=plan.progress, log_every=10,
                                     checkpoint_every=None)
        pretext_curves[f"seed {seed}"] = fit_result.history
        torch.manual_seed(seed)
        random_backbone = build_backbone(cfg.backbone, width=cfg.width, norm=cfg.norm,
                                         in_frames=cfg.clip_len if cfg.norm == "tgn" else None,
                                         tgn_group_frames=cfg.tgn_group_frames)
        for name, backbone, ckpt in (("random init", random_backbone, None),
                                     (plan.arm, model.backbone, fit_result.checkpoint)):
            print(f"[seed {seed}] {name}: retrieval + fine-tuning on {plan.downstream.label_fraction:.0%} of the labels")
            result = downstream(name, backbone, data, input_cfg=cfg, down=plan.downstream, seed=seed,
                                out_dir=out / f"seed{seed}" / name.replace(" ", "_"), checkpoint=ckpt,
                                device=device, progress=plan.progress)
            result["pretext"] = _last_pretext(fit_result.history) if ckpt else {}
            runs[name].append(result)
    minutes = (time.perf_counter() - t0) / 60
    protocol = {"pretrain": plan.pretrain.to_json(), "pretrain_steps": plan.pretrain_steps,
                "downstream": asdict(plan.downstream), "seeds": list(plan.seeds), "dataset": str(plan.data_root),
                "synthetic_version": plan.version, "split": data.split, "train_videos": len(data.train), "test_videos": len(data.test),
                "classes": data.train.num_classes, **plan.extra}
    results = {"protocol": protocol, "runs": runs, "pretext_curves": pretext_curves, "minutes": minutes,
               "device": device.type}
    write_text_atomic(out / "results.json", json.dumps(results, indent=1, default=float))
    print(write_report(results, out))
    return {"runs": runs, "minutes": minutes}


def _last_pretext(history: list[dict]) -> dict[str, float]:
    rows = [r for r in history if "loss" in r]
    return {k: v for k, v in rows[-1].items() if k.endswith(("acc", "loss"))} if rows else {}


# (section, key, what the verdict calls it, the figure panel's name); the verdicts follow this order.
VERDICT_MEASURES = (("finetune", "video_accuracy", "fine-tuned video accuracy", "fine-tuned video acc."),
                    ("linear_probe", "video_accuracy", "linear-probe video accuracy", "linear probe acc."),
                    ("retrieval", "R@1", "R@1", "retrieval R@1"))

PROTOCOL_TEXT = (
    "Every seed pairs both initialisations: the same labelled subset, the same fine-tuning budget and crops, the "
    "same test clips. Fine-tuned video accuracy = the whole network fine-tuned on the labelled fraction, softmax "
    "averaged over 10 uniformly spaced centre-cropped clips per test video; linear probe = a linear SVM on the "
    "frozen, L2-normalised pool5 video features of the same labelled videos; retrieval = pool5 features (global "
    "average pooling, mean of 10 clips), standardised with training-set statistics, cosine similarity, test "
    "videos query the training videos; no test video is dropped.")


# What the report reads from every run of a results file.
REPORT_KEYS = ("finetune", "linear_probe", "retrieval", "curve", "confusion", "class_names")


def load_results(path: str | Path) -> dict[str, Any]:
    """A quickstart `results.json`; a file that is not one raises ValueError naming the file and the problem."""
    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from None
    runs = results.get("runs") if isinstance(results, dict) else None
    if not isinstance(runs, dict) or len(runs) != 2 or not isinstance(results.get("protocol"), dict):
        raise ValueError(f"{path}: not a quickstart results file (needs 'protocol' and two initialisations in 'runs')")
    counts = {len(r) for r in runs.values()} if all(isinstance(r, list) for r in runs.values()) else {0}
    if len(counts) != 1 or 0 in counts:
        raise ValueError(f"{path}: the two initialisations have different or no seeds ({sorted(counts)})")
    for name, per_seed in runs.items():
        for i, run in enumerate(per_seed):
            missing = [k for k in REPORT_KEYS if not isinstance(run, dict) or k not in run]
            if missing:
                raise ValueError(f"{path}: run '{name}' #{i} lacks {', '.join(missing)}")
    return results


def write_report(results: dict[str, Any], out_dir: str | Path) -> str:
    """Write `report.md` and `report.html` into `out_dir` from a quickstart results dict; returns the markdown."""
    out = Path(out_dir)
    markdown, page = build_report(results)
    write_text_atomic(out / "report.md", markdown)
    write_report_html(out / "report.html", page)
    return markdown


def build_report(results: dict[str, Any]) -> tuple[str, ReportPage]:
    """The markdown report and the HTML page of one quickstart results dict (no files touched)."""
    runs, protocol = results["runs"], results["protocol"]
    names = list(runs)
    seeds = protocol.get("seeds") or list(range(len(runs[names[0]])))
    verdicts = [verdict(paired_differences(runs, names[0], names[1], section, key), what)
                for section, key, what, _ in VERDICT_MEASURES]
    table = markdown_table(["initialisation"] + [title for *_, title in METRICS], comparison_rows(runs, METRICS))
    body = table + "\n\n" + _setup_note(results)
    markdown = "\n".join(["# vsslkit quickstart report", "", *(f"- {text}" for text, _ in verdicts), "", body, "",
                          "Protocol: " + PROTOCOL_TEXT, "", "```json", json.dumps(protocol, indent=1), "```", ""])
    first = seeds[0]
    measures = {panel: {n: [r[section][key] for r in runs[n]] for n in names}
                for section, key, _, panel in VERDICT_MEASURES}
    figures = [PageFigure(
        "each seed: random init → pretrained",
        plots.paired_figure(measures, seeds=seeds, yaxis="% of test videos",
                            title="paired results on the test split" if len(seeds) > 1 else "results on the test split"),
        "Each line is one seed: the same seed, labelled subset and test clips with each initialisation, so a line "
        "that rises to the right means pretraining helped on that seed; the black line joins the means."
        if len(seeds) > 1 else "One seed: the two points are its random-init and pretrained results (no spread to show; "
                               "`--seeds 3` gives the paired picture)."),
        PageFigure(
            "retrieval R@k",
            plots.recall_figure({n: {int(k[2:]): mean_std([r["retrieval"][k] for r in runs[n]])[0]
                                     for k in runs[n][0]["retrieval"]} for n in names},
                                title="retrieval R@k" + (f" (mean of {len(seeds)} seeds)" if len(seeds) > 1 else "")),
            "R@k = the share of test videos with a same-class video among their k nearest training videos "
            "(frozen pool5 features, cosine similarity).")]
    notes = []
    curves = results.get("pretext_curves")
    if curves:
        figures.append(PageFigure(
            "pretext training", plots.training_curves(curves, metrics=("loss", "pretext.speed_acc", "pretext.loc_acc", "moco.acc"),
                                                      title="pretext loss and training accuracy per seed"),
            "Training-batch accuracy of the pretext heads (speed class, change location, MoCo instance) and the "
            "summed loss; no labels are used."))
    else:
        notes.append("This results file holds no pretext training curves (it predates saving them), so that figure "
                     "is left out; the final pretext accuracies are quoted above.")
    figures.append(PageFigure(
        f"fine-tuning (seed {first})",
        plots.training_curves({n: runs[n][0]["curve"] for n in names}, metrics=("loss", "acc"),
                              title=f"fine-tuning loss and training accuracy, seed {first}"),
        "Training-batch loss and accuracy while fine-tuning on the labelled fraction."))
    for n in names:
        figures.append(PageFigure(
            f"confusion matrix — {n} (seed {first})",
            plots.confusion_figure(runs[n][0]["confusion"], runs[n][0]["class_names"], title=f"{n}, seed {first}")))
    method = names[1].removesuffix(" pretrained")
    page = ReportPage(
        title=f"vsslkit quickstart: does {method} pretraining beat random initialisation?",
        verdicts=[Verdict(text, tone) for text, tone in verdicts], body=body, figures=figures, notes=notes,
        details=[("Protocol", PROTOCOL_TEXT),
                 ("Configuration", config_table(protocol) + "\n\nRe-render this page from the run's numbers: "
                                   "`vsslkit quickstart --report-from results.json --out DIR`.")])
    return markdown, page


def _curve_metrics(curves: dict[str, list[dict]]) -> tuple[str, ...]:
    """The loss and every training accuracy the pretext run logged (each method logs its own heads)."""
    keys = dict.fromkeys(k for rows in curves.values() for row in rows for k in row
                         if k == "loss" or k.endswith("acc"))
    return tuple(keys) or ("loss",)


def _setup_note(results: dict[str, Any]) -> str:
    """One paragraph under the table: what was compared, on what, and how long it took."""
    runs, p = results["runs"], results["protocol"]
    seeds = p.get("seeds") or list(range(len(next(iter(runs.values())))))
    pretrained = list(runs.values())[1]
    pretext = pretrained[0].get("pretext") or {}
    accs = ", ".join(f"{k.removeprefix('pretext.')} {fmt([r['pretext'][k] for r in pretrained], 3)}"
                     for k in pretext if k.endswith("acc"))
    pre = p.get("pretrain", {})
    how = (f"Mean ± std over {len(seeds)} paired seeds ({', '.join(map(str, seeds))})" if len(seeds) > 1
           else f"One seed ({seeds[0]}; `--seeds 3` gives mean ± std)")
    text = (f"{how}, on the test split of the built-in synthetic motion set "
            f"(generator version {p.get('synthetic_version', 2)}, split {p.get('split', '?')}): "
            f"{p.get('train_videos', '?')} training videos (pretraining uses them **without labels**), "
            f"{p.get('test_videos', '?')} test videos, {p.get('classes', '?')} classes")
    if p.get("classes"):
        text += f" (chance {100.0 / p['classes']:.1f} %)"
    text += "."
    if pre:
        text += (f" Pretraining: {pre.get('task')}{' + MoCo' if pre.get('moco') or pre.get('contrastive') else ''}, "
                 f"{p.get('pretrain_steps')} steps × {pre.get('batch_size')} clips")
        text += f"; final pretext training accuracy {accs}." if accs else "."
    if results.get("minutes") is not None:
        text += f" Total time {results['minutes']:.1f} min on {results.get('device', 'an unrecorded device')}."
    return text
