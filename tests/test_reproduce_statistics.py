"""`vsslkit reproduce statistics` at a tiny budget: every arm runs once per seed and is scored on its own
labels on held-out clips, the table renders from results.json with the paper's numbers and orderings beside,
an interrupted run resumes without repeating finished runs, bad input is one line and exit code 2.
Also the T3 controls' sampler (`PretrainConfig.video_half`)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from vsslkit.cli import main
from vsslkit.data.clips import EpochSampler
from vsslkit.experiments import ablation as ab
from vsslkit.experiments import statistics as st
from vsslkit.train.distributed import DistInfo
from vsslkit.train.pretrain import _curriculum_sampler, build_task

pytestmark = pytest.mark.slow

TINY_DOWN = replace(st.DOWNSTREAM, finetune_steps=2, batch_size=8, clips_per_video=2)


def _tiny(arms):
    return [(n, c and replace(c, size=32, batch_size=8)) for n, c in arms]


def test_arms_are_shared_and_differ_only_in_what_the_tables_vary():
    names = [n for n, _ in st.ARMS]
    assert len(names) == len(set(names)) == 15
    for table in st.PAPER_TABLES.values():
        assert set(table) <= set(names)
    assert sum(st.JOINT in t for t in st.PAPER_TABLES.values()) == 3  # T1 (c), T3 and T4: one run
    configs = dict(st.ARMS)
    joint = configs[st.JOINT]
    assert (joint.task, joint.residual, joint.moco, joint.clip_len, joint.size) == ("statistics", False, None, 8, 56)
    for name, cfg in configs.items():
        if cfg is None or name == st.JOINT:
            continue
        assert replace(cfg, task_options=joint.task_options, curriculum=None, video_half=None) == joint, name
    assert configs["motion all patterns"].task_options["groups"] == ("m1", "m2", "m3")
    assert configs["2D regression"].task_options == {"targets": "2d"}
    assert configs[st.CURRICULUM].curriculum == 0.5 and configs["hard half only"].video_half == "hard"
    recipe = dict(st.arms(st.Recipe(optimizer="adamw", lr=1e-3, head="grid", flow_sigma=2.0, switch=0.25)))
    assert recipe[st.JOINT].task_options == {"targets": "classification", "head": "grid", "flow_sigma": 2.0}
    assert (recipe["motion P2"].optimizer, recipe["motion P2"].lr, recipe[st.CURRICULUM].curriculum) == ("adamw", 1e-3, 0.25)


class _Videos:
    def __init__(self, n):
        self.videos, self.num_frames = [f"v{i}" for i in range(n)], [20] * n

    def __len__(self):
        return len(self.videos)


@pytest.mark.parametrize("half", ["easy", "hard", "random"])
def test_video_half_draws_every_epoch_from_its_half(half, monkeypatch):
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.2, 0.8, 0.3, 0.6])  # easy half: 1, 3, 5, 7
    monkeypatch.setattr("vsslkit.tasks.statistics.video_difficulty", lambda *a, **k: scores)
    config = replace(dict(st.ARMS)[st.JOINT], video_half=half, seed=3)
    lines = []
    sampler = _curriculum_sampler(config, build_task(config), _Videos(8), None, EpochSampler(8, seed=3), 2, 1, 40,
                                  DistInfo(device=torch.device("cpu")), lines.append)
    seen = [set(sampler.indices(e).tolist()) for e in range(25)]
    expect = {"easy": {1, 3, 5, 7}, "hard": {0, 2, 4, 6}}.get(half)
    if expect is None:
        expect = seen[0]
        assert len(expect) == 4
    assert all(s == expect for s in seen) and len(sampler.indices(0)) == 8  # whole epochs, the half only
    assert lines and lines[0].startswith("video half:")
    with pytest.raises(ValueError, match="video_half"):
        _curriculum_sampler(replace(config, curriculum=0.5), build_task(config), _Videos(8), None,
                            EpochSampler(8, seed=3), 2, 1, 40, DistInfo(device=torch.device("cpu")), print)


def test_tiny_reproduction_renders_from_json_with_heldout_scores(tiny_synthetic, tmp_path):
    plan = st.make_plan(data_root=tiny_synthetic, out_dir=tmp_path / "a", seeds=(0,), variants=_tiny(st.ARMS),
                        pretrain_steps=2, downstream=TINY_DOWN, version=3, progress=False)
    out = ab.run_ablation(plan)
    table = (tmp_path / "a" / "table.md").read_text()
    for name, _ in st.ARMS:
        assert f"| {name} |" in table
    assert "| 58.8 / 70.4 / 76.5 |" in table and "| 45.4 |" in table
    assert "T3 curriculum: pairs ordered as the paper" in table and "T4 pretext accuracy" in table
    assert ab.table_from_results(tmp_path / "a" / "results.json", render=st.render_table) + "\n" == table
    raw = json.loads((tmp_path / "a" / "results.json").read_text())
    assert raw["complete"] is True and raw["protocol"]["variants"]["easy half only"]["video_half"] == "easy"
    res = out["results"]
    assert "heldout" not in res[st.RANDOM][0]
    motion_only = res["motion P1"][0]["heldout"]
    assert set(motion_only["labels"]) == {"m1_pu", "m1_ou", "m1_pv", "m1_ov"} and "appearance" not in motion_only
    joint = res[st.JOINT][0]["heldout"]
    assert len(joint["labels"]) == 27 and joint["clips"] == joint["videos"] > 0
    for group in ("motion", "appearance", "all"):
        assert 0 <= joint[group]["accuracy"] <= 100 and 0 < joint[group]["majority"] <= 100
    acc, maj = zip(*joint["labels"].values())
    assert joint["all"]["accuracy"] == pytest.approx(np.mean(acc)) and joint["all"]["majority"] == pytest.approx(np.mean(maj))
    # the majority rate is a property of the clips, not of the arm: same seed, same clips
    assert res["1D regression"][0]["heldout"]["labels"]["m1_pu"][1] == joint["labels"]["m1_pu"][1]
    assert "Held-out motion labels against their majority rate:" in table
    assert f"- {st.JOINT}: the held-out mean motion-label accuracy" in table


def _cli(root, out, *extra):
    return main(["reproduce", "statistics", "--data", str(root), "--out", str(out), "--seeds", "1",
                 "--pretrain-steps", "2", "--finetune-steps", "2", "--clips-per-video", "2", "--batch-size", "8",
                 "--only", "motion P1", "--device", "cpu", *extra])


def test_cli_resumes_an_interrupted_run_and_repeats(tiny_synthetic, tmp_path, capsys):
    assert _cli(tiny_synthetic, tmp_path / "a") == 0 and _cli(tiny_synthetic, tmp_path / "b") == 0
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert set(a["results"]) == {st.RANDOM, "motion P1"}
    for arm in a["results"]:  # same seed, same numbers
        for key in ("retrieval", "linear_probe", "pretext", "heldout"):
            assert a["results"][arm][0].get(key) == b["results"][arm][0].get(key)
    # "interrupt" b after its first run: drop the second, mark the first (a finished run is read, not re-run)
    b["results"]["motion P1"] = []
    b["results"][st.RANDOM][0]["retrieval"]["R@1"] = 123.0
    b["complete"] = False
    (tmp_path / "b" / "results.json").write_text(json.dumps(b))
    capsys.readouterr()
    assert _cli(tiny_synthetic, tmp_path / "b") == 0
    out = capsys.readouterr().out
    assert f"[seed 0] {st.RANDOM}: finished earlier" in out and "[seed 0] motion P1: video acc" in out
    again = json.loads((tmp_path / "b" / "results.json").read_text())
    assert again["complete"] is True and again["results"][st.RANDOM][0]["retrieval"]["R@1"] == 123.0
    assert again["results"]["motion P1"][0]["heldout"] == a["results"]["motion P1"][0]["heldout"]
    assert "| 123.0 |" in (tmp_path / "b" / "table.md").read_text()
    capsys.readouterr()
    assert main(["reproduce", "statistics", "--table-from", str(tmp_path / "b" / "results.json")]) == 0
    assert "| 123.0 |" in capsys.readouterr().out


def test_cli_bad_input_is_one_line(tiny_synthetic, tmp_path, capsys):
    capsys.readouterr()
    assert _cli(tiny_synthetic, tmp_path / "x", "--only", "motoin") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --only: no arm's name contains 'motoin'") and "\n" not in err
    assert not (tmp_path / "x").exists()
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "results.json").write_text(json.dumps({"protocol": {"pretrain_steps": 999}, "results": {}}))
    assert _cli(tiny_synthetic, tmp_path / "y") == 2
    err = capsys.readouterr().err.strip()
    assert "results.json: holds runs with pretrain_steps = 999, this run has 2" in err and "\n" not in err
    assert main(["reproduce", "statistics", "--data", str(tiny_synthetic), "--flow-sigma", "-1"]) == 2
    assert main(["pretrain", "--task", "statistics", "--data", str(tiny_synthetic), "--video-half", "easy",
                 "--curriculum", "0.5", "--out", str(tmp_path / "z")]) == 2
    assert "--video-half" in capsys.readouterr().err


def test_finished_runs_reuses_only_runs_of_the_same_protocol_and_config(tmp_path, capsys):
    protocol = {"pretrain_steps": 2, "downstream": {"lr": 0.05}, "dataset": "d", "synthetic_version": 3, "split": 1,
                "variants": {"x": {"task": "statistics"}, "y": {"task": "statistics", "lr": 1}}}
    stored = {**protocol, "variants": {**protocol["variants"], "y": {"task": "statistics", "lr": 2}, "z": None}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"protocol": stored, "results": {"x": [{"seed": 0, "v": 1}, {"v": 2}],
                                                                "y": [{"seed": 0}], "z": [{"seed": 1}]}}))
    done, variants = ab.finished_runs(path, protocol)
    assert done == {"x": {0: {"seed": 0, "v": 1}}, "z": {1: {"seed": 1}}} and variants["z"] is None
    assert "arm 'y' ran there with another configuration: running it again (its 1 earlier runs" in capsys.readouterr().out
    assert ab.finished_runs(tmp_path / "none.json", protocol) == ({}, {})
    with pytest.raises(ab.ResultsMismatch, match="holds runs with downstream"):
        ab.finished_runs(path, {**protocol, "downstream": {"lr": 0.01}})
    path.write_text("{")
    with pytest.raises(ab.ResultsMismatch, match="not a readable results file"):
        ab.finished_runs(path, protocol)
