"""`vsslkit reproduce from-scratch`: seed 001's Tables 4.1/4.2 in miniature (SPECS §4).

Classification from scratch alone, with the cycle-consistency tracking branch, with the arrow-of-time
branch, with both, and the (w1, w2) grid of Table 4.2. Every arm is `train_from_scratch` from the
same `FromScratchConfig` defaults except its two loss weights: same optimiser, learning rate,
budget and seed (the thesis' baseline used SGD where its method used Adam, SPECS §4.2 D4; here one
optimiser serves every arm). The thesis picked its best epoch on the test set (D5); here a
validation subset of the training videos (whole groups, the same for every arm and seed) picks
the step, and the test set is read at that step and at the last step only.

Each finished run is appended to `results.json` atomically, so a killed reproduction resumes by
skipping the runs already there (an unfinished run starts over). `table.md` is rendered from the
JSON alone (`table_from_results`), so `--table-from` redraws it anywhere.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vsslkit.atomic import write_text_atomic
from vsslkit.errors import UsageError
from vsslkit.experiments.report import fmt, markdown_table, mean_std


@dataclass(frozen=True)
class Arm:
    """One arm: a CLI name, the table's label and the two loss weights (w1 tracking, w2 direction)."""

    name: str
    label: str
    track_weight: float
    direction_weight: float


BASELINE = "cls"
ARMS: list[Arm] = [
    Arm("cls", "classification only", 0.0, 0.0),
    Arm("track", "+ tracking", 25.0, 0.0),
    Arm("dir", "+ direction", 0.0, 2.0),
    Arm("both", "+ tracking + direction (25, 2)", 25.0, 2.0),
    Arm("w50-8", "(w1, w2) = (50, 8)", 50.0, 8.0),
    Arm("w100-8", "(w1, w2) = (100, 8)", 100.0, 8.0),
]
ARM_NAMES = tuple(a.name for a in ARMS)
# The thesis (SPECS §4.5), HMDB51 split 1, top-1 %, best epoch on the test set (optimistic, D5).
# T4.1's baseline is a 3D-ResNet-50 from scratch trained with SGD lr 0.1; the method with Adam 2e-4.
THESIS_T41 = {"cls": 18.0, "both": 24.1}
THESIS_T42 = {"both": 24.1, "w50-8": 25.4, "w100-8": 19.2}
THESIS_ALL = {**THESIS_T41, **THESIS_T42}
# Fig. 4.6 gives one more ordering, without numbers: removing tracking lowers the test curve (both > + direction).
THESIS_FIG_4_6 = {"both": 1.0, "dir": 0.0}

# Default budget (the command's). Measured 2026-12-01 with every arm at 20 steps, 1 seed, twice, on the
# 2-core CPU loaded by other jobs (load 5 and 6; FromScratchConfig's defaults then: width 0.125, batch 8,
# 64 px): training 0.32-0.5 (cls) to 0.73-0.75 (both) s per step, 3.2-3.7 s per step summed over the six
# arms; a validation pass (84 videos x 4 clips) 2.3-2.9 s; test scoring 170-240 s per seed for the six
# arms (2,808 clips once, twice when the best validation step is not the last, + direction + tracking).
# At 300 steps with validation every 50: 1,240-1,450 s per seed, so 3 seeds x 6 arms ~ 62-73 min on that
# loaded machine, an upper bound for the idle one (limit 80 min). docs/results/from_scratch_reproduce_smoke.md.
# The full 3-seed run measured 73.4 min at a load average of 4-9 (docs/results/from_scratch_reproduce.md).
STEPS = 300
VAL_EVERY = 50
VAL_FRACTION = 1 / 6
VAL_SPLIT_SEED = 0  # the validation groups do not depend on the training seed: same videos for every run
TEST_CLIPS = None  # None: every non-overlapping clip of each test video (§4.2)
VAL_CLIPS = 4
BUDGET_NOTE = (f"The default budget ({STEPS} steps per run, validation every {VAL_EVERY} steps) extrapolates to "
               "62-73 minutes for 3 seeds x 6 arms on a 2-core CPU loaded by other jobs (every arm timed at 20 "
               "steps with its evaluation) and measured 73.4 minutes at a load average of 4-9, so it stays under "
               "80 minutes on an idle one.")


@dataclass
class FromScratchPlan:
    """What one reproduction runs: arms x seeds at one budget, with the config overrides given."""

    data_root: Path = Path("data/synthetic")
    out_dir: Path = Path("runs/from_scratch")
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: list[Arm] = field(default_factory=lambda: list(ARMS))
    steps: int = STEPS
    val_every: int = VAL_EVERY
    val_fraction: float = VAL_FRACTION
    val_clips: int | None = VAL_CLIPS  # non-overlapping clips per validation video (None: all)
    test_clips: int | None = TEST_CLIPS  # non-overlapping clips per test video (None: all)
    overrides: dict[str, Any] = field(default_factory=dict)  # FromScratchConfig fields set on the command line
    split: int = 1
    device: str = "auto"
    progress: bool = False
    command: str = ""

    def protocol(self) -> dict[str, Any]:
        """Everything a run's numbers depend on besides arm and seed (a resume must match it)."""
        return {"steps": self.steps, "val_every": self.val_every, "val_fraction": self.val_fraction,
                "val_split_seed": VAL_SPLIT_SEED, "val_clips": self.val_clips, "test_clips": self.test_clips,
                "overrides": dict(sorted(self.overrides.items())), "dataset": str(self.data_root),
                "split": self.split}


def best_validation(history: Sequence[dict[str, Any]], key: str = "val_hit_at_1") -> dict[str, Any]:
    """The validation row with the highest `key` (the earliest of tied rows): the step whose model
    the test set is read at. Rows without `key` (training logs) are ignored."""
    rows = [r for r in history if key in r]
    if not rows:
        raise ValueError(f"no validation row ({key}) in the history")
    return max(rows, key=lambda r: (r[key], -r["step"]))


def arm_config(arm: Arm, seed: int, num_classes: int, overrides: dict[str, Any]) -> Any:
    """The arm's `FromScratchConfig`: the dataclass defaults, the command line's overrides, the
    arm's two weights and the seed; nothing else differs between arms."""
    from vsslkit.train.from_scratch import FromScratchConfig

    return FromScratchConfig(num_classes=num_classes, **overrides, track_weight=arm.track_weight,
                             direction_weight=arm.direction_weight, seed=seed)


def run_one(arm: Arm, seed: int, plan: FromScratchPlan, data: Any, train: Any, val: Any, device: Any) -> dict[str, Any]:
    """Train one arm for one seed, keep the weights of the best validation step, score the test set
    at the last step (classification, direction, tracking) and at the best validation step."""
    import torch

    from vsslkit.eval.video_level_clips import video_scores
    from vsslkit.train.from_scratch import (
        BranchPredictor,
        build_model,
        evaluate_from_scratch,
        train_from_scratch,
    )

    config = arm_config(arm, seed, train.num_classes, plan.overrides)
    num_classes = len(data.test.class_names)
    best: dict[str, Any] = {"hit_at_1": -1.0, "state": None}  # the weights of the best validation so far
    t_val = [0.0]

    def validate(model: torch.nn.Module) -> dict[str, float]:
        t = time.perf_counter()
        scores = video_scores(BranchPredictor(model, "cls"), val.paths, val.labels, val.num_frames, data.store,
                              clip_len=config.clip_len, size=config.size, num_classes=num_classes, device=device,
                              max_clips=plan.val_clips)
        if scores["hit_at_1"] > best["hit_at_1"]:  # strictly better: ties keep the earlier step
            best.update(hit_at_1=scores["hit_at_1"], state=copy.deepcopy(model.state_dict()))
        t_val[0] += time.perf_counter() - t
        return {"hit_at_1": 100.0 * scores["hit_at_1"], "hit_at_5": 100.0 * scores["hit_at_5"]}

    run_dir = Path(plan.out_dir) / f"seed{seed}" / arm.name
    model, result = train_from_scratch(config, paths=train.paths, labels=train.labels, num_frames=train.num_frames,
                                       source=data.store, out_dir=run_dir, steps=plan.steps, device=device,
                                       resume=False, progress=plan.progress, log_every=10, checkpoint_every=None,
                                       eval_fn=validate, eval_every=plan.val_every)
    t_test = time.perf_counter()
    synthetic = Path(plan.data_root) / "synthetic.json"
    last = evaluate_from_scratch(model, config, data.test, data.store, device=device, seed=seed,
                                 synthetic_root=plan.data_root if synthetic.is_file() else None,
                                 max_clips=plan.test_clips)
    chosen = best_validation(result.history)
    if chosen["step"] == result.steps:  # the last step is the best: the same model, the same scores
        at_best = last["classification"]
    else:
        best_model = build_model(config)
        best_model.load_state_dict(best["state"])
        at_best = video_scores(BranchPredictor(best_model, "cls"), data.test.paths, data.test.labels,
                               data.test.num_frames, data.store, clip_len=config.clip_len, size=config.size,
                               num_classes=num_classes, device=device, max_clips=plan.test_clips)
    cls = last["classification"]
    train_rows = [r for r in result.history if "loss" in r]
    record: dict[str, Any] = {
        "arm": arm.name, "seed": seed, "config": config.to_json(), "steps": result.steps,
        "last": {"hit_at_1": 100.0 * cls["hit_at_1"], "hit_at_5": 100.0 * cls["hit_at_5"], "videos": cls["videos"],
                 "clips": cls["clips"]},
        "best_val": {"step": int(chosen["step"]), "val_hit_at_1": chosen["val_hit_at_1"],
                     "hit_at_1": 100.0 * at_best["hit_at_1"], "hit_at_5": 100.0 * at_best["hit_at_5"]},
        "val_curve": [{"step": int(r["step"]), "hit_at_1": r["val_hit_at_1"], "hit_at_5": r["val_hit_at_5"]}
                      for r in result.history if "val_hit_at_1" in r],
        "train_last": {k: float(v) for k, v in (train_rows[-1] if train_rows else {}).items()
                       if isinstance(v, (int, float)) and k not in ("step", "epoch")},
        "seconds": {"train": round(result.seconds - t_val[0], 1), "validation": round(t_val[0], 1),
                    "test": round(time.perf_counter() - t_test, 1)},
    }
    if "direction" in last:
        record["direction"] = {"accuracy": 100.0 * last["direction"]["direction_accuracy"],
                               "clips": last["direction"]["direction_clips"]}
    if "tracking" in last:
        t, u = last["tracking"], last["tracking_untrained"]
        record["tracking"] = {"centre_error_px": t["centre_error_px"], "localiser_error_px": t["localiser_error_px"],
                              "constant_baseline_px": t["constant_baseline_px"],
                              "untrained_error_px": u["centre_error_px"], "windows": t["windows"]}
    if "tracking_not_scored" in last:
        record["tracking_not_scored"] = last["tracking_not_scored"]
    return record


def _load_results(path: Path, protocol: dict[str, Any]) -> list[dict[str, Any]]:
    """The finished runs of an earlier, interrupted reproduction with the same protocol."""
    if not path.is_file():
        return []
    try:
        raw = json.loads(path.read_text())
        stored, runs = raw["protocol"], raw["runs"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UsageError(path, f"not a from-scratch results file ({exc}); use another --out or delete it") from None
    mine = {k: stored.get(k) for k in protocol}
    if json.loads(json.dumps(mine)) != json.loads(json.dumps(protocol)):
        differ = ", ".join(f"{k} {json.dumps(mine[k])} -> {json.dumps(v)}" for k, v in protocol.items()
                           if json.dumps(mine[k]) != json.dumps(v))
        raise UsageError(path, f"holds runs of other settings ({differ}); use another --out or delete it")
    return list(runs)


def run_reproduction(plan: FromScratchPlan) -> dict[str, Any]:
    """Every (seed, arm) not already in `out_dir/results.json`; the JSON is rewritten after each run
    and `table.md` after the last. Returns the JSON's content."""
    from vsslkit.data.datasets import group_val_split
    from vsslkit.experiments.paired import load_data
    from vsslkit.train.distributed import resolve_device

    t0 = time.perf_counter()
    out = Path(plan.out_dir)
    path = out / "results.json"
    protocol = plan.protocol()
    runs = _load_results(path, protocol)
    device = resolve_device(plan.device)
    data = load_data(plan.data_root, split=plan.split, progress=plan.progress, workers=1)
    for p, reason in data.skipped:
        print(f"  skipped unreadable video {p}: {reason}")
    train, val = group_val_split(data.train, plan.val_fraction, VAL_SPLIT_SEED)
    done = set()
    for r in runs:  # a finished run is kept only if this plan would train exactly the same config
        arm = next((a for a in plan.arms if a.name == r["arm"]), None)
        if arm is not None and r["config"] != arm_config(arm, r["seed"], train.num_classes, plan.overrides).to_json():
            raise UsageError(path, f"run {r['arm']} seed {r['seed']} was trained with another config "
                             "(FromScratchConfig's defaults changed?); use another --out or delete it")
        done.add((r["arm"], r["seed"]))
    if done:
        print(f"resuming: {len(done)} finished runs in {path} are kept")
    print(f"{len(train)} training videos, {len(val)} validation videos ({len(set(val.groups))} whole groups), "
          f"{len(data.test)} test videos")
    # the table shows every arm and seed in the file: this session's and those an earlier one finished
    names = {a.name for a in plan.arms} | {r["arm"] for r in runs}
    arms = [a for a in ARMS if a.name in names] + [a for a in plan.arms if a not in ARMS]
    header = {**protocol, "command": plan.command, "device": device.type, "arms": [asdict(a) for a in arms],
              "seeds": sorted(set(plan.seeds) | {r["seed"] for r in runs}), "videos": {"train": len(train), "val": len(val), "test": len(data.test)}}
    out.mkdir(parents=True, exist_ok=True)
    for seed in plan.seeds:
        for arm in plan.arms:
            if (arm.name, seed) in done:
                continue
            t = time.perf_counter()
            record = run_one(arm, seed, plan, data, train, val, device)
            runs.append(record)
            write_text_atomic(path, json.dumps({"protocol": header, "runs": runs}, indent=1))
            print(f"[seed {seed}] {arm.label}: test Hit@1 {record['last']['hit_at_1']:.1f} % (last step), "
                  f"{record['best_val']['hit_at_1']:.1f} % (best validation, step {record['best_val']['step']}) "
                  f"in {(time.perf_counter() - t) / 60:.1f} min ({(time.perf_counter() - t0) / 60:.1f} min so far)",
                  flush=True)
    header["minutes_this_session"] = round((time.perf_counter() - t0) / 60, 1)
    content = {"protocol": header, "runs": runs}
    write_text_atomic(path, json.dumps(content, indent=1))
    table = render_table(content)
    write_text_atomic(out / "table.md", table + "\n")
    print(table)
    return content


# ----------------------------------------------------------------------------- the table


def _by_arm(content: dict[str, Any]) -> tuple[list[Arm], dict[str, dict[int, dict]]]:
    arms = [Arm(**a) for a in content["protocol"]["arms"]]
    runs: dict[str, dict[int, dict]] = {a.name: {} for a in arms}
    for r in content["runs"]:
        runs.setdefault(r["arm"], {})[r["seed"]] = r
    return arms, runs


def paired(runs: dict[str, dict[int, dict]], arm: str, section: str, key: str,
           base: str = BASELINE) -> list[float]:
    """Per-seed differences arm - base on the seeds both ran (same videos, budget and seed)."""
    seeds = sorted(set(runs.get(arm, {})) & set(runs.get(base, {})))
    return [runs[arm][s][section][key] - runs[base][s][section][key] for s in seeds]


def _delta(diffs: list[float]) -> str:
    if not diffs:
        return "–"
    m, s = mean_std(diffs)
    spread = f" ± {s:.1f}" if len(diffs) > 1 else ""
    return f"{m:+.1f}{spread} ({sum(d > 0 for d in diffs)}/{len(diffs)})"


def joint_verdict(arms: list[Arm], runs: dict[str, dict[int, dict]], section: str) -> str:
    """The sentence on whether the joint arms beat classification only, from the paired Hit@1 differences.
    An arm beats the baseline when it is ahead on every paired seed."""
    joint = [a for a in arms if a.name != BASELINE and paired(runs, a.name, section, "hit_at_1")]
    if not joint:
        return "No joint arm was run beside classification only, so there is nothing to compare."
    beat = [a for a in joint if all(d > 0 for d in paired(runs, a.name, section, "hit_at_1"))]
    n = len(paired(runs, joint[0].name, section, "hit_at_1"))
    what = "last-step" if section == "last" else "best-validation"
    if len(beat) == len(joint):
        head = "the joint arms beat classification only at this budget"
    elif not beat:
        head = "the joint arms do not beat classification only at this budget"
    else:
        head = (f"only {len(beat)} of {len(joint)} joint arms beat classification only at this budget "
                f"({', '.join(a.label for a in beat)})")
    return f"On {what} test Hit@1, {head} (an arm beats it when it is ahead on every one of the {n} paired seeds)."


def render_table(content: dict[str, Any]) -> str:
    """Markdown from a results.json's content alone: one row per arm, the thesis beside, paired
    differences against classification only, the orderings against the thesis and the verdict."""
    from vsslkit.experiments.ablation import ordering_agreement

    p = content["protocol"]
    arms, runs = _by_arm(content)
    header = ["arm", "(w1, w2)", "seeds", "test Hit@1 last (%)", "test Hit@5 last (%)",
              "test Hit@1 best-val (%)", "test Hit@5 best-val (%)", "best-val step",
              "Δ Hit@1 vs cls, last (wins)", "Δ Hit@1 vs cls, best-val (wins)", "direction acc. (%)",
              "tracking error / constant (px)", "thesis HMDB51 s1 (%)"]
    rows = []
    for a in arms:
        rs = [runs[a.name][s] for s in sorted(runs.get(a.name, {}))]
        if not rs:
            continue
        direction = fmt([r["direction"]["accuracy"] for r in rs]) if all("direction" in r for r in rs) else "–"
        tracking = "–"
        if all("tracking" in r for r in rs):
            tracking = (f"{fmt([r['tracking']['centre_error_px'] for r in rs], 2)} / "
                        f"{fmt([r['tracking']['constant_baseline_px'] for r in rs], 2)}")
        thesis = THESIS_ALL.get(a.name)
        rows.append([a.label, f"({a.track_weight:g}, {a.direction_weight:g})", str(len(rs)),
                     fmt([r["last"]["hit_at_1"] for r in rs]), fmt([r["last"]["hit_at_5"] for r in rs]),
                     fmt([r["best_val"]["hit_at_1"] for r in rs]), fmt([r["best_val"]["hit_at_5"] for r in rs]),
                     ", ".join(str(r["best_val"]["step"]) for r in rs),
                     "–" if a.name == BASELINE else _delta(paired(runs, a.name, "last", "hit_at_1")),
                     "–" if a.name == BASELINE else _delta(paired(runs, a.name, "best_val", "hit_at_1")),
                     direction, tracking, "–" if thesis is None else f"{thesis:.1f}"])
    first = content["runs"][0]["config"] if content["runs"] else {}
    shown = ", ".join(f"{k} {first[k]:g}" for k in ("lr", "sim_weight", "cycle_weight", "width") if k in first)
    v = p["videos"]
    n = len(p["seeds"])
    note = (f"{n} seed{'s' if n != 1 else ''} ({', '.join(map(str, p['seeds']))}), mean ± std; every arm {p['steps']} steps "
            f"of batch {first.get('batch_size', '?')} from scratch with the same Adam ({shown}), differing only in "
            f"(w1, w2). Training on {v['train']} videos; validation on {v['val']} held-out training videos (whole "
            f"groups, the same for every arm and seed) every {p['val_every']} steps "
            f"({p['val_clips'] or 'all'} non-overlapping clips per video); test on {v['test']} videos "
            f"({p['test_clips'] or 'all'} non-overlapping clips per video). \"best-val\": the test score at the "
            "step with the highest validation Hit@1, never the best test score. Δ: paired difference per seed "
            "against classification only (same videos, budget and seed), mean ± std and the seeds where the arm "
            "is ahead. Direction and tracking are scored at the last step; tracking error is the mean centre error "
            "of the box carried by the affinity, against predicting that the object stays put. The thesis column "
            "is HMDB51 split 1, top-1 at the best test epoch (T4.1 baseline 18.0 with SGD; T4.2 for the grid).")
    lines = []
    for title, thesis in (("T4.1 (classification only vs both)", THESIS_T41), ("T4.2 (the (w1, w2) grid)", THESIS_T42),
                          ("every arm the thesis scores", THESIS_ALL),
                          ("Fig. 4.6, qualitative (both above + direction: tracking helps)", THESIS_FIG_4_6)):
        parts = []
        for section, what in (("last", "last step"), ("best_val", "best-val")):
            a = ordering_agreement(runs_as_lists(runs), thesis, section, "hit_at_1")
            if a["pairs"]:
                parts.append(f"{what} {a['agree']}/{a['pairs']}")
        if parts:
            lines.append(f"- {title}: pairs of arms ordered as the thesis orders them on Hit@1 — " + "; ".join(parts))
    text = markdown_table(header, rows) + "\n\n" + note
    if lines:
        text += "\n\nOrdering against the thesis (means over seeds):\n" + "\n".join(lines)
    verdicts = [joint_verdict(arms, runs, s) for s in ("last", "best_val")]
    return text + "\n\n" + "\n".join(f"**{v}**" for v in verdicts)


def runs_as_lists(runs: dict[str, dict[int, dict]]) -> dict[str, list[dict]]:
    """{arm: [runs by seed]}: the shape `ordering_agreement` reads."""
    return {name: [by_seed[s] for s in sorted(by_seed)] for name, by_seed in runs.items()}


def table_from_results(path: str | Path) -> str:
    """Re-render `table.md` from a reproduction's `results.json` (`--table-from`)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
        return render_table(content)
    except FileNotFoundError:
        raise UsageError(path, "no such file") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UsageError(path, f"not a from-scratch results file ({type(exc).__name__}: {exc})") from None
