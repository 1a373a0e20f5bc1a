"""`vsslkit reproduce methods` at a tiny budget: every method of the kit runs once under one recipe, is
scored on its own pretext held out, goes through the paired protocol (fine-tuning at 10 % and 25 %),
and the table re-renders from results.json; `vsslkit quickstart --method`; tracking as a pretext task
on R3D-10 (the deepest layer that keeps time, residual input)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vsslkit.cli import main
from vsslkit.experiments import ablation as ab
from vsslkit.experiments import methods as me
from vsslkit.models import build_backbone
from vsslkit.tasks import make_task
from vsslkit.tasks.timecycle import deepest_time_keeping_layer, probe_map_shape
from vsslkit.train.pretrain import build_task

pytestmark = pytest.mark.slow

TINY_DOWN = replace(me.DOWNSTREAM, finetune_steps=2, batch_size=8, clips_per_video=2)


def test_every_method_shares_one_recipe_and_differs_only_in_its_task():
    assert len(me.METHODS) == 10 and len(set(me.METHOD_KEYS)) == 10
    assert me.VARIANTS[0] == (me.RANDOM, None)
    for m in me.METHODS:
        same = replace(m.config, task=me.RECIPE.task, task_options=me.RECIPE.task_options, moco=me.RECIPE.moco)
        assert same == me.RECIPE, m.key
        assert m.paper and m.seed_doc
    assert me.method("speed-change-fine-moco").config.moco is not None
    assert sum(m.config.moco is not None for m in me.METHODS) == 1
    with pytest.raises(ValueError, match="unknown method 'pase'; choose one of pace, "):
        me.method("pase")


def test_ordering_against_the_papers_counts_pairs_in_the_papers_order():
    def runs(*accs):
        return [{"finetune": {"video_accuracy": a}} for a in accs]

    results = {me.RANDOM: runs(10, 12), "pace prediction": runs(20, 20), "coarse speed change": runs(15, 17),
               "speed prediction (baseline)": runs(30, 30), "playback-speed order (n = 3)": runs(25, 25)}
    # thesis: random < pace < coarse; here random 11 < coarse 16 < pace 20: 2 of 3 pairs agree
    assert me.ordering_against_papers(results, "finetune", "video_accuracy") == ["thesis T4.2 2/3 pairs",
                                                                                  "seed 002 T2 0/1 pairs"]
    assert me.ordering_against_papers({}, "finetune", "video_accuracy") == []


def test_summary_rows_take_arms_without_a_pretext_rate_over_several_seeds():
    run = {"retrieval": {"R@1": 10.0}, "heldout": {"what": "no head", "accuracy": math.nan, "chance": math.nan,
                                                   "majority": math.nan}}
    base = {"retrieval": {"R@1": 8.0}}
    variants = [(me.RANDOM, None), ("cycle-consistency tracking (TimeCycle)", None)]
    results = {me.RANDOM: [base, base, base], "cycle-consistency tracking (TimeCycle)": [run, run, run]}
    rows = me.summary_rows(variants, results)
    assert math.isnan(rows[1]["pretext"]["accuracy"]) and rows[1]["Δ R@1"][:1] == (2.0,)
    assert rows[1]["Δ R@1"][2:] == (3, 3)
    assert me.reading(variants, results)[0].startswith("- R@1: 1 of 1 methods beat random init on every seed (3 seeds)")


def test_tracking_task_picks_the_deepest_layer_that_keeps_time_and_reads_one_more_frame_for_differences():
    backbone = build_backbone("r3d_10", width=0.25)
    assert deepest_time_keeping_layer(backbone, 4, 56) == "pool2"  # R3D-10's layer3 strides time
    with pytest.raises(ValueError, match="time steps"):
        probe_map_shape(backbone, "pool4", 4, 56)
    task = make_task("tracking", clip_len=8, extra_frames=1, size=56)
    assert (task.input_frames, task.network_frames, task.layer) == (5, 4, "auto")
    assert task.make_module(backbone).layer == "pool2"
    joint = build_task(me.method("tracking").config)
    assert joint.tasks["pretext"].size == me.RECIPE.size
    with pytest.raises(ValueError, match="extra_frames"):
        make_task("tracking", extra_frames=2)


def test_tiny_run_of_every_method_renders_from_json(tiny_synthetic, tmp_path):
    variants = [(n, c and replace(c, size=32, batch_size=8)) for n, c in me.VARIANTS]
    plan = me.make_plan(data_root=tiny_synthetic, out_dir=tmp_path / "a", seeds=(0,), variants=variants,
                        pretrain_steps=2, downstream=TINY_DOWN, version=3, progress=False, device="cpu")
    out = ab.run_ablation(plan)
    table = (tmp_path / "a" / "table.md").read_text()
    for m in me.METHODS:
        assert f"| {m.name} | {m.seed_doc} |" in table and m.paper in table
    assert me.table_from_results(tmp_path / "a" / "results.json") + "\n" == table
    res = out["results"]
    assert "heldout" not in res[me.RANDOM][0]
    for name, _ in variants:  # the 25 % fine-tuning beside the 10 % one, for every arm
        run = res[name][0]
        assert 0 <= me.metric_value(run, "finetune_at.0.25", "video_accuracy") <= 100, name
        assert 0 <= me.metric_value(run, "finetune", "video_accuracy") <= 100, name
    held = {m.key: res[m.name][0]["heldout"] for m in me.METHODS}
    assert held["pace"]["chance"] == pytest.approx(25.0) and 0 <= held["pace"]["accuracy"] <= 100
    assert held["speed-prediction"]["chance"] == pytest.approx(100 / 3)
    assert held["arrow-of-time"]["chance"] == pytest.approx(50.0)
    assert held["playback-order"]["chance"] == pytest.approx(100 / 6)  # 3! orders
    assert held["ascnet"]["what"].startswith("speed probe on g_m") and held["ascnet"]["chance"] > 0
    assert held["statistics"]["majority"] > 0 and math.isnan(held["statistics"]["chance"])
    assert math.isnan(held["tracking"]["accuracy"])
    rows = me.summary_rows(plan.variants, res)
    assert [r["arm"] for r in rows] == [n for n, _ in variants]
    assert all("Δ R@1" in r for r in rows[1:]) and "Δ R@1" not in rows[0]
    lines = me.reading(plan.variants, res)
    assert len(lines) == 7 and lines[0].startswith("- R@1: ") and lines[4].startswith("- Ordering against the papers")
    assert "fine-tuning 2 steps on 10%, 25% of the labels" in table


def test_quickstart_method_and_reproduce_bad_input_are_one_line(tiny_synthetic, tmp_path, capsys):
    capsys.readouterr()
    assert main(["quickstart", "--method", "pase", "--data", str(tiny_synthetic), "--out", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --method: unknown method 'pase'") and "\n" not in err
    assert not (tmp_path / "q").exists()
    assert main(["reproduce", "methods", "--data", str(tiny_synthetic), "--out", str(tmp_path / "r"),
                 "--only", "nothing-like-this"]) == 2
    assert "no arm's name contains" in capsys.readouterr().err


def test_quickstart_help_names_every_method(capsys):
    assert main(["quickstart", "--help"]) == 0
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines (and at hyphens)
    for key in me.METHOD_KEYS:
        assert key in text, key


def test_quickstart_runs_any_method(tiny_synthetic, tmp_path, capsys):
    assert main(["quickstart", "--method", "arrow-of-time", "--data", str(tiny_synthetic), "--out", str(tmp_path / "q"),
                 "--pretrain-steps", "2", "--finetune-steps", "2", "--device", "cpu", "--no-progress"]) == 0
    raw = json.loads((tmp_path / "q" / "results.json").read_text())
    assert set(raw["runs"]) == {"random init", "arrow of time pretrained"}
    assert raw["protocol"]["method"] == "arrow-of-time" and raw["protocol"]["pretrain"]["task"] == "arrow-of-time"
    assert "does arrow of time pretraining beat random initialisation?" in (tmp_path / "q" / "report.html").read_text()
    assert "pretext.direction_acc" in json.dumps(raw["pretext_curves"]) or "direction" in json.dumps(raw["pretext_curves"])
    torch.manual_seed(0)


COMMITTED = Path(__file__).resolve().parents[1] / "docs" / "results"


@pytest.mark.skipif(not (COMMITTED / "methods.json").is_file(), reason="no committed methods table yet")
def test_committed_methods_table_is_its_json_rendered():
    table = me.table_from_results(COMMITTED / "methods.json")
    assert table in (COMMITTED / "methods.md").read_text()
    plan, results = me.load_results(COMMITTED / "methods.json")
    assert len(plan.seeds) == 3 and all(len(results[name]) == 3 for name, _ in me.VARIANTS)
