"""The quickstart and the ablation end to end on a tiny synthetic set (seconds, not minutes)."""

from dataclasses import replace

import pytest

from vsslkit.experiments import ablation as ab
from vsslkit.experiments import quickstart as qs
from vsslkit.experiments.report import fmt, paired_differences, verdict

pytestmark = pytest.mark.slow


TINY_PRE = replace(qs.CPU_PRETRAIN, clip_len=6, size=24, batch_size=8, moco=replace(qs.CPU_PRETRAIN.moco, queue_size=16))
TINY_DOWN = replace(qs.CPU_DOWNSTREAM, finetune_steps=3, batch_size=8, clips_per_video=2)


@pytest.fixture(scope="module")
def quick_run(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    plan = qs.QuickstartPlan(data_root=tiny_synthetic, out_dir=out, seeds=(0, 1), pretrain=TINY_PRE,
                             pretrain_steps=3, downstream=TINY_DOWN, progress=False)
    return plan, qs.run_quickstart(plan)


def test_quickstart_writes_a_paired_report(quick_run):
    plan, result = quick_run
    tmp_path = plan.out_dir
    runs = result["runs"]
    assert set(runs) == {"random init", "speed-change pretrained"} and all(len(r) == 2 for r in runs.values())
    for per_seed in runs.values():
        for r in per_seed:
            assert 0 <= r["finetune"]["video_accuracy"] <= 100 and 0 <= r["retrieval"]["R@1"] <= r["retrieval"]["R@5"]
            assert r["finetune"]["labelled_videos"] == 14  # 10 % of 5 training videos per class, >= 1 per class
            assert r["linear_probe"]["labelled_videos"] == 14 and 0 <= r["linear_probe"]["video_accuracy"] <= 100
    report = (tmp_path / "report.md").read_text()
    assert "| random init |" in report and "| speed-change pretrained |" in report
    acc = paired_differences(runs, "random init", "speed-change pretrained", "finetune", "video_accuracy")
    assert f"{sum(acc) / 2:+.1f}" in report  # the verdict quotes the measured paired difference
    probe = paired_differences(runs, "random init", "speed-change pretrained", "linear_probe", "video_accuracy")
    assert f"linear-probe video accuracy: {sum(probe) / 2:+.1f}" in report
    html = (tmp_path / "report.html").read_text()
    assert html.count("plotly-graph-div") >= 5 and 'src="https://cdn.plot.ly' not in html  # opens offline
    assert (tmp_path / "seed1" / "random_init" / "finetune.json").is_file()


def test_same_seed_gives_the_same_numbers(quick_run, tmp_path):
    plan, result = quick_run
    first = result["runs"]
    second = qs.run_quickstart(replace(plan, out_dir=tmp_path, seeds=(0,)))["runs"]
    for name in first:
        assert first[name][0]["finetune"] == {**second[name][0]["finetune"],
                                              "finetune_seconds": first[name][0]["finetune"]["finetune_seconds"]}
        assert first[name][0]["retrieval"] == second[name][0]["retrieval"]
        assert first[name][0]["linear_probe"] == second[name][0]["linear_probe"]


def test_ablation_table_has_every_variant(tiny_synthetic, tmp_path):
    variants = [(n, c and replace(c, clip_len=6, size=24, batch_size=8, moco=c.moco and replace(c.moco, queue_size=16)))
                for n, c in ab.TABLE_4_2[:3] + ab.TABLE_4_1[:2]]
    plan = ab.AblationPlan(data_root=tiny_synthetic, out_dir=tmp_path, seeds=(0,), variants=variants,
                           pretrain_steps=2, downstream=TINY_DOWN)
    out = ab.run_ablation(plan)
    table = (tmp_path / "table.md").read_text()
    for name, _ in variants:
        assert f"| {name} |" in table
    assert table.count("*Table 4.1 variants*") == 1 and out["protocol"]["variants"]["random init"] is None
    assert "| 57.9 |" in table and "Ordering against the thesis" in table  # the thesis column and the comparison
    # the table re-rendered from results.json (`--table-from`) is the one the run wrote
    assert ab.table_from_results(tmp_path / "results.json") + "\n" == table
    assert fmt([1.0, 3.0]) == "2.0 ± 1.4" and fmt([2.0]) == "2.0"


def test_ablation_variants_differ_only_in_what_the_tables_vary():
    configs = dict(ab.TABLE_4_2 + ab.TABLE_4_1)
    fine = configs["fine-grained + localization + CL"]
    assert (fine.task, fine.contrastive, fine.moco.weight) == ("speed-change-fine", True, 0.5)
    assert configs["coarse SC + CL"].moco.weight == 0.25  # lambda of chapter 3
    assert configs["fine-grained classification"].task_options == {"localize": False}
    assert configs["pool {1,2,3}, class-primary"].task_options == {"primary": "class"}
    for name, cfg in configs.items():
        if cfg is not None:
            assert (cfg.backbone, cfg.clip_len, cfg.size, cfg.residual) == ("r3d_10", 8, 56, True), name


def test_verdict_says_beats_only_when_every_seed_agrees():
    text, tone = verdict([1.0, 2.0, 3.0], "R@1")
    assert text.startswith("Pretraining beats random initialisation on R@1: +2.0 ± 1.0") and tone == "better"
    text, tone = verdict([-1.0, 0.0], "R@1")
    assert text.startswith("Pretraining does not beat random initialisation on R@1: -0.5") and tone == "worse"
    mixed, tone = verdict([-1.0, 1.6, 0.0], "video accuracy")
    assert mixed.startswith("No clear difference on video accuracy: +0.2") and "better on 1 of 3 seeds" in mixed
    assert tone == "mixed"
    assert verdict([0.0], "R@1")[1] == "mixed"  # a tie is not "worse"
    one = "Pretraining beats random initialisation on R@1: +2.5 points (paired, better on 1 of 1 seed)."
    assert verdict([2.5], "R@1") == (one, "better")


def test_ordering_agreement_counts_pairs_ordered_as_the_thesis():
    def runs(values):
        return [{"retrieval": {"R@1": v}} for v in values]

    thesis = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 3.0}
    same = ab.ordering_agreement({"a": runs([1, 3]), "b": runs([5]), "c": runs([9]), "d": runs([0])}, thesis,
                                 "retrieval", "R@1")
    # pairs (a,b) (a,c) (b,c) agree; (a,d) (b,d) disagree; (c,d) is a thesis tie and is skipped
    assert (same["agree"], same["pairs"], same["rows"]) == (3, 5, 4)
    reversed_ = ab.ordering_agreement({"a": runs([3]), "b": runs([2]), "c": runs([1])}, thesis, "retrieval", "R@1")
    assert reversed_["agree"] == 0 and reversed_["spearman"] == pytest.approx(-1.0)
    assert ab.ordering_agreement({}, thesis, "retrieval", "R@1")["pairs"] == 0
    assert set(ab.THESIS_TABLE_4_2) == {n for n, _ in ab.TABLE_4_2}
    assert set(ab.THESIS_TABLE_4_1) - {n for n, _ in ab.TABLE_4_1} == {"fine-grained + localization + CL"}


def test_a_folder_of_another_synthetic_version_is_refused(tiny_synthetic, tmp_path, capsys):
    from vsslkit.cli import main
    from vsslkit.experiments.paired import ensure_synthetic, synthetic_version_problem

    # tiny_synthetic is a default (version 3) set
    assert synthetic_version_problem(tiny_synthetic, 3) is None and synthetic_version_problem(tmp_path / "none", 2) is None
    with pytest.raises(ValueError, match="holds synthetic generator version 3, asked for version 2"):
        ensure_synthetic(tiny_synthetic, version=2)
    for command in (["quickstart"], ["reproduce", "ablation"]):
        assert main([*command, "--data", str(tiny_synthetic), "--out", str(tmp_path / "out"),
                     "--synthetic-version", "2"]) == 2
    assert capsys.readouterr().err.count("asked for version 2; choose another data folder") == 2
    assert not (tmp_path / "out").exists()
