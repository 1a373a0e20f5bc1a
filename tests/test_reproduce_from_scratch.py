"""`vsslkit reproduce from-scratch` at a tiny budget: the runs write results.json after each run, the
table renders from the JSON alone, a rerun skips finished runs, the same seed gives the same numbers,
best validation is the validation maximum (never the test's), and bad input is one line with exit 2."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from test_clips import MemorySource
from test_faults import one_line_error

from vsslkit.cli import main
from vsslkit.data.synthetic import make_synthetic
from vsslkit.experiments import from_scratch as fs


def test_best_validation_is_the_validation_maximum_earliest_on_ties():
    history = [{"step": 10, "loss": 3.0}, {"step": 10, "val_hit_at_1": 20.0, "hit_at_1_test": 99.0},
               {"step": 20, "loss": 2.0}, {"step": 20, "val_hit_at_1": 35.0},
               {"step": 30, "val_hit_at_1": 35.0}, {"step": 40, "val_hit_at_1": 30.0}]
    assert fs.best_validation(history)["step"] == 20  # the maximum; of two tied rows the earlier
    assert fs.best_validation(history[:2])["step"] == 10
    with pytest.raises(ValueError, match="no validation row"):
        fs.best_validation([{"step": 10, "loss": 1.0}])


class _Uniform(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"class": torch.zeros(len(x), 3)}


def test_max_clips_keeps_evenly_spread_non_overlapping_clips():
    from vsslkit.eval.video_level_clips import video_scores

    counts = {"/v/0.mp4": 40, "/v/1.mp4": 9}  # 10 and 2 clips of 4 frames
    source = MemorySource(counts, size=(8, 8))
    kwargs = {"clip_len": 4, "size": 8, "num_classes": 3}
    assert video_scores(_Uniform(), sorted(counts), [0, 1], [40, 9], source, **kwargs)["clips"] == 12
    source.reads.clear()
    out = video_scores(_Uniform(), sorted(counts), [0, 1], [40, 9], source, max_clips=3, **kwargs)
    assert out["clips"] == 3 + 2 and out["videos"] == 2
    starts = [idx[0] for path, idx in source.reads if path == "/v/0.mp4"]
    assert starts == [0, 16, 36]  # the first, a middle and the last of the 10 clips
    with pytest.raises(ValueError, match="max_clips"):
        video_scores(_Uniform(), sorted(counts), [0, 1], [40, 9], source, max_clips=0, **kwargs)


def test_arms_differ_only_in_their_two_weights():
    names = [a.name for a in fs.ARMS]
    assert len(set(names)) == len(names) == 6 and names[0] == fs.BASELINE
    assert {(a.track_weight, a.direction_weight) for a in fs.ARMS} == {(0, 0), (25, 0), (0, 2), (25, 2), (50, 8),
                                                                       (100, 8)}
    assert set(fs.THESIS_ALL) <= set(names)
    configs = [fs.arm_config(a, 1, 14, {"lr": 1e-3}) for a in fs.ARMS]
    base = configs[0]
    for arm, cfg in zip(fs.ARMS, configs):
        assert (cfg.track_weight, cfg.direction_weight, cfg.lr, cfg.seed) == (arm.track_weight, arm.direction_weight,
                                                                               1e-3, 1)
        assert replace(cfg, track_weight=0.0, direction_weight=0.0) == base


def _runs(*rows):
    return {"protocol": {"arms": [vars(a) for a in fs.ARMS[:4]], "seeds": [0, 1], "steps": 5, "val_every": 1,
                         "val_clips": 2, "test_clips": None, "videos": {"train": 1, "val": 1, "test": 1}},
            "runs": [{"arm": arm, "seed": seed, "config": {"lr": 1e-3, "batch_size": 8},
                      "last": {"hit_at_1": h, "hit_at_5": 50.0}, "best_val": {"step": 5, "hit_at_1": h, "hit_at_5": 50.0}}
                     for arm, seed, h in rows]}


def test_the_verdict_is_computed_from_the_paired_numbers():
    ahead = _runs(("cls", 0, 10.0), ("cls", 1, 20.0), ("both", 0, 11.0), ("both", 1, 21.0))
    assert "the joint arms beat classification only at this budget" in fs.render_table(ahead)
    assert "| +1.0 ± 0.0 (2/2) |" in fs.render_table(ahead)
    mixed = _runs(("cls", 0, 10.0), ("cls", 1, 20.0), ("both", 0, 11.0), ("both", 1, 21.0), ("dir", 0, 9.0),
                  ("dir", 1, 25.0))
    assert "only 1 of 2 joint arms beat classification only at this budget" in fs.render_table(mixed)
    behind = _runs(("cls", 0, 10.0), ("cls", 1, 20.0), ("both", 0, 10.0), ("both", 1, 19.0))
    text = fs.render_table(behind)
    assert "the joint arms do not beat classification only at this budget" in text
    assert "T4.1 (classification only vs both): pairs of arms ordered as the thesis orders them on Hit@1 — " \
           "last step 0/1" in text  # the thesis: both 24.1 > classification only 18.0
    assert "Fig. 4.6" in fs.render_table(mixed) and "Fig. 4.6" not in text  # only when + direction ran
    assert "- Fig. 4.6, qualitative (both above + direction: tracking helps): pairs of arms ordered as the thesis " \
           "orders them on Hit@1 — last step 0/1; best-val 0/1" in fs.render_table(mixed)  # dir 17 > both 16


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory):
    torch.set_num_threads(2)
    return make_synthetic(tmp_path_factory.mktemp("synthetic"), videos_per_class=7, size=64, length_range=(40, 48),
                          seed=1, progress=False)


def _cli(root, out, *more):
    return main(["reproduce", "from-scratch", "--data", str(root), "--out", str(out), "--seeds", "1", "--steps", "2",
                 "--val-every", "1", "--val-clips", "1", "--test-clips", "2", "--device", "cpu", *more])


@pytest.mark.slow
def test_tiny_reproduction_resumes_renders_from_json_and_repeats(tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "a"
    assert _cli(tiny_synthetic, out, "--arms", "both") == 0
    raw = json.loads((out / "results.json").read_text())
    assert [(r["arm"], r["seed"]) for r in raw["runs"]] == [("cls", 0), ("both", 0)]  # the baseline always runs
    for r in raw["runs"]:
        assert [row["step"] for row in r["val_curve"]] == [1, 2]
        assert r["best_val"]["step"] == fs.best_validation(
            [{"step": c["step"], "val_hit_at_1": c["hit_at_1"]} for c in r["val_curve"]])["step"]
        if r["best_val"]["step"] == r["steps"]:
            assert r["best_val"]["hit_at_1"] == r["last"]["hit_at_1"]
    both = raw["runs"][1]
    assert (both["config"]["track_weight"], both["config"]["direction_weight"]) == (25.0, 2.0)
    assert 0 <= both["direction"]["accuracy"] <= 100
    assert ("tracking" in both) != ("tracking_not_scored" in both)
    table = (out / "table.md").read_text()
    assert "| classification only | (0, 0) | 1 |" in table and "| 24.1 |" in table and "| 18.0 |" in table
    assert "classification only at this budget" in table
    capsys.readouterr()
    assert main(["reproduce", "from-scratch", "--table-from", str(out / "results.json")]) == 0
    assert capsys.readouterr().out == table

    # resume: the finished runs are kept, only the new seed's runs train
    assert _cli(tiny_synthetic, out, "--arms", "both", "--seeds", "2") == 0
    printed = capsys.readouterr().out
    assert "resuming: 2 finished runs" in printed and "[seed 0]" not in printed and "[seed 1]" in printed
    again = json.loads((out / "results.json").read_text())
    assert again["runs"][:2] == raw["runs"] and [(r["arm"], r["seed"]) for r in again["runs"][2:]] == [
        ("cls", 1), ("both", 1)]

    # same seed, same numbers (another folder)
    assert _cli(tiny_synthetic, tmp_path / "b", "--arms", "cls") == 0
    other = json.loads((tmp_path / "b" / "results.json").read_text())["runs"][0]
    for key in ("last", "best_val", "val_curve", "config"):
        assert other[key] == raw["runs"][0][key]

    # other settings in the same folder: refused, nothing overwritten
    capsys.readouterr()
    assert _cli(tiny_synthetic, out, "--lr", "0.5") == 2
    one_line_error(capsys, "results.json", "overrides")
    assert json.loads((out / "results.json").read_text()) == again


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    capsys.readouterr()
    assert _cli(tmp_path, tmp_path / "o", "--arms", "nope") == 2
    one_line_error(capsys, "--arms", "nope")
    assert _cli(tmp_path / "missing", tmp_path / "o") == 2
    one_line_error(capsys, str(tmp_path / "missing"), "no such dataset folder")
    assert main(["reproduce", "from-scratch", "--table-from", str(tmp_path / "none.json")]) == 2
    one_line_error(capsys, "none.json")
    (tmp_path / "bad.json").write_text('{"runs": []}')
    assert main(["reproduce", "from-scratch", "--table-from", str(tmp_path / "bad.json")]) == 2
    one_line_error(capsys, "bad.json", "not a from-scratch results file")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_best_validation_scores_are_the_weights_of_that_step(tiny_synthetic, tmp_path, monkeypatch):
    """Validation made best at step 1 of 2: the best-validation test scores are those of the step-1
    weights (a 1-step run of the same seed has the same weights: same data order, constant lr)."""
    from vsslkit.eval import video_level_clips

    real = video_level_clips.video_scores
    calls = []

    def scripted(predictor, paths, *args, **kwargs):
        out = real(predictor, paths, *args, **kwargs)
        if kwargs.get("max_clips") == 1:  # the validation passes (--val-clips 1; the test uses 2)
            calls.append(len(calls))
            out = {**out, "hit_at_1": 0.9 if len(calls) == 1 else 0.1}
        return out

    monkeypatch.setattr(video_level_clips, "video_scores", scripted)
    plan = fs.FromScratchPlan(data_root=tiny_synthetic, out_dir=tmp_path / "two", seeds=(0,), arms=fs.ARMS[:1],
                              steps=2, val_every=1, val_clips=1, test_clips=2, device="cpu")
    two = fs.run_reproduction(plan)["runs"][0]
    assert len(calls) == 2 and two["best_val"]["step"] == 1 and two["val_curve"][0]["hit_at_1"] == 90.0
    one = fs.run_reproduction(replace(plan, out_dir=tmp_path / "one", steps=1))["runs"][0]
    assert two["best_val"]["hit_at_1"] == one["last"]["hit_at_1"]
    assert two["best_val"]["hit_at_5"] == one["last"]["hit_at_5"]


@pytest.mark.parametrize(("trunk", "inputs"), [("stem3", "rgb"), ("temporal", "residual-dir"), ("r3d", "residual-both")])
def test_the_direction_diagnostics_script_trains_and_scores_each_change(tiny_synthetic, tmp_path, trunk, inputs):
    """data_scripts/direction_diagnostics.py (the runs behind docs/results/from_scratch.md's direction
    table) at 2 steps: it trains the changed model and prints both held-out scores."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "data_scripts" / "direction_diagnostics.py"
    result = subprocess.run([sys.executable, str(script), "--data", str(tiny_synthetic), "--store", str(tmp_path / "s"),
                             "--out", str(tmp_path / "o"), "--trunk", trunk, "--input", inputs, "--steps", "2",
                             "--batch-size", "4", "--batch-stats"], capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "trained 2 steps" in result.stdout
    held_out = [line for line in result.stdout.splitlines() if line.startswith("held-out direction accuracy")]
    assert len(held_out) == 2 and "of 112 clips" in held_out[0]  # 28 test videos x 4 clips
