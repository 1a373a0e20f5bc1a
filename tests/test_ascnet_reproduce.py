"""`vsslkit reproduce ascnet` at a tiny budget: every arm runs, the table renders from the JSON, the
same seed gives the same numbers."""

from dataclasses import replace

import pytest

from vsslkit.experiments import ascnet as asc
from vsslkit.experiments.quickstart import CPU_DOWNSTREAM

pytestmark = pytest.mark.slow


def _tiny(cfg):
    if cfg is None:
        return None
    cfg = replace(cfg, clip_len=6, size=24, batch_size=8, moco=cfg.moco and replace(cfg.moco, queue_size=16))
    if cfg.task == "ascnet":
        cfg = replace(cfg, task_options={**cfg.task_options, "refresh_every": 1, "hidden": 16, "dim": 8})
    return cfg


def test_every_arm_runs_and_the_table_renders_from_the_json(tiny_synthetic, tmp_path):
    variants = [(n, _tiny(c)) for n, c in asc.VARIANTS]
    down = replace(CPU_DOWNSTREAM, finetune_steps=2, batch_size=8, clips_per_video=2)
    plan = asc.ascnet_plan(data_root=tiny_synthetic, out_dir=tmp_path / "a", seeds=(0,), variants=variants,
                           pretrain_steps=3, downstream=down)
    out = asc.run_ascnet(plan)
    table = (tmp_path / "a" / "table.md").read_text()
    for name, _ in asc.VARIANTS:
        assert f"| {name} |" in table
    assert "| 58.9 | 82.2 | 93.4 |" in table and "| 80.5 | 52.3 |" in table  # the poster's tables beside
    assert asc.ascnet_table_from_results(tmp_path / "a" / "results.json") + "\n" == table
    both = out["results"][asc.BOTH][0]
    assert 0 < both["pretext"]["pretext.spread_a"] < 2 and 0 < both["pretext"]["pretext.spread_m"] < 2
    # same seed, same numbers (two arms suffice: ASCNet's bank and table are in the loop)
    again = asc.run_ascnet(replace(plan, out_dir=tmp_path / "b", variants=[variants[0], variants[4]]))
    for name in (asc.RANDOM, asc.BOTH):
        for section in ("retrieval", "linear_probe"):
            assert again["results"][name][0][section] == out["results"][name][0][section]


def test_shared_arms_run_once_and_the_arms_differ_only_in_what_they_vary():
    names = [n for n, _ in asc.VARIANTS]
    assert len(names) == len(set(names)) == 8
    configs = [c for _, c in asc.VARIANTS if c is not None and c.task == "ascnet"]
    assert len({tuple(sorted(c.task_options.items())) for c in configs}) == len(configs)  # no arm twice
    base = dict(asc.VARIANTS)[asc.BOTH]
    for cfg in configs:
        assert replace(cfg, task_options=base.task_options) == base
    assert {c.task_options["gamma"] for c in configs} == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert dict(asc.VARIANTS)[asc.CHAPTER_4].moco is not None
