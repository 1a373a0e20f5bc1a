"""`vsslkit reproduce playback-order` at a tiny budget: every arm runs once per seed, the table renders
from results.json, the paper's numbers and the orderings are beside, the same seed gives the same numbers."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from vsslkit.cli import main
from vsslkit.experiments import ablation as ab
from vsslkit.experiments import playback_order as po

pytestmark = pytest.mark.slow

TINY_DOWN = replace(po.DOWNSTREAM, finetune_steps=2, batch_size=8, clips_per_video=2)


def _tiny(arms):
    return [(n, c and replace(c, size=32)) for n, c in arms]


def test_arms_are_shared_and_differ_only_in_what_the_tables_vary():
    names = [n for n, _ in po.ARMS]
    assert len(names) == len(set(names))  # a shared arm (n=3 {-3,1,3}, BN) is listed, so trained, once
    assert set(po.PAPER_ALL) <= set(names)
    assert sum(po.ORDER_N3 in arms for arms in po.PAPER_TABLES.values()) == 5  # T2-T6 share it
    configs = dict(po.ARMS)
    assert configs["order forward {1,3,5}"].task_options == {"clips": 3, "speeds": (1, 3, 5)}
    assert configs["speed prediction {-3,1,3}"].task == "playback-speed"
    assert (configs["order n=3, TGN g=1"].norm, configs["order n=3, TGN g=1"].tgn_group_frames) == ("tgn", 1)
    for name, cfg in configs.items():
        if cfg is not None:
            assert (cfg.backbone, cfg.clip_len, cfg.size, cfg.residual, cfg.moco, cfg.batch_size) == (
                "r3d_10", 8, 56, True, None, 8), name
    assert po.DOWNSTREAM.pooling == "max122"


def test_tiny_reproduction_renders_from_json_and_repeats(tiny_synthetic, tmp_path):
    plan = po.make_plan(data_root=tiny_synthetic, out_dir=tmp_path / "a", seeds=(0,), variants=_tiny(po.ARMS),
                        pretrain_steps=2, downstream=TINY_DOWN, version=3, progress=False)
    out = ab.run_ablation(plan)
    table = (tmp_path / "a" / "table.md").read_text()
    for name, _ in po.ARMS:
        assert f"| {name} |" in table
    assert "| 64.35 |" in table and "| 61.80 (T8) |" in table
    assert "T5 clips: pairs ordered as the paper" in table and "all tables" in table
    assert ab.table_from_results(tmp_path / "a" / "results.json", render=po.render_table) + "\n" == table
    raw = json.loads((tmp_path / "a" / "results.json").read_text())
    assert raw["protocol"]["variants"]["order n=3, TGN g=4"]["tgn_group_frames"] == 4
    assert raw["protocol"]["downstream"]["pooling"] == "max122"
    assert set(out["results"][po.ORDER_N3][0]["pretext"]) == {"pretext.order_acc"}
    assert set(out["results"]["speed prediction {-3,1,3}"][0]["pretext"]) == {"pretext.speed_acc"}


def _cli(root, out):
    return main(["reproduce", "playback-order", "--data", str(root), "--out", str(out), "--seeds", "1",
                 "--pretrain-steps", "2", "--finetune-steps", "2", "--clips-per-video", "2", "--only", "n=2",
                 "--device", "cpu"])


def test_cli_same_seed_same_numbers_and_bad_budget(tiny_synthetic, tmp_path, capsys):
    assert _cli(tiny_synthetic, tmp_path / "a") == 0 and _cli(tiny_synthetic, tmp_path / "b") == 0
    a, b = (json.loads((tmp_path / d / "results.json").read_text())["results"] for d in "ab")
    assert set(a) == {"random init", "order n=2 {-3,3}"}
    for arm in a:
        for section in ("retrieval", "linear_probe"):
            assert a[arm][0][section] == b[arm][0][section]
        assert a[arm][0]["finetune"]["video_accuracy"] == b[arm][0]["finetune"]["video_accuracy"]
        assert a[arm][0]["pretext"] == b[arm][0]["pretext"]
    assert "order n=2 {-3,3}" in (tmp_path / "a" / "table.md").read_text()
    capsys.readouterr()
    assert main(["reproduce", "playback-order", "--data", str(tiny_synthetic), "--out", str(tmp_path / "x"),
                 "--seeds", "0"]) == 2
    assert "--seeds: must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
