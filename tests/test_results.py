"""Result JSON round trip, checkpoint digest, markdown table with seed aggregation."""

import hashlib
import json

import numpy as np
import pytest

from vsslkit.eval.results import Protocol, checkpoint_fields, load_results, results_to_markdown, write_result


def test_round_trip_converts_numpy(tmp_path):
    proto = Protocol(task="retrieval", dataset="synthetic", split=1, layer="pool5", seed=3, extra={"k": (1, 5)})
    metrics = {"recall": {1: np.float32(0.25), 5: 0.5}, "neighbours": np.arange(3)}
    path = write_result(tmp_path / "sub" / "r.json", metrics, proto)
    (res,) = load_results([path])
    assert res["metrics"] == {"recall": {"1": 0.25, "5": 0.5}, "neighbours": [0, 1, 2]}
    assert res["protocol"]["layer"] == "pool5" and res["protocol"]["extra"] == {"k": [1, 5]}
    assert res["protocol"]["vsslkit_version"] and res["path"] == str(path)
    assert not list(path.parent.glob(".*tmp"))  # atomic write left no temp file


def test_checkpoint_digest(tmp_path):
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"weights")
    f = checkpoint_fields(ckpt)
    assert f["checkpoint_sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert checkpoint_fields("random") == {"checkpoint": "random", "checkpoint_sha256": None}
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        checkpoint_fields(tmp_path / "nope.pt")


def test_load_names_bad_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"metrics": 1}))
    with pytest.raises(TypeError, match="bad.json"):
        load_results([bad])


def test_markdown_aggregates_seeds(tmp_path):
    paths = []
    for seed, r1 in [(0, 0.2), (1, 0.4)]:
        proto = Protocol(task="retrieval", dataset="ucf101", layer="pool5", seed=seed)
        paths.append(write_result(tmp_path / f"s{seed}.json", {"recall": {"1": r1}}, proto))
    other = Protocol(task="retrieval", dataset="ucf101", layer="pool4", seed=0)
    paths.append(write_result(tmp_path / "p4.json", {"recall": {"1": 0.1}}, other))
    table = results_to_markdown(load_results(paths), digits=2)
    lines = table.strip().splitlines()
    assert lines[0] == "| task | dataset | layer | recall.1 | runs |"
    assert lines[2] == "| retrieval | ucf101 | pool5 | 0.30 ± 0.14 | 2 |"
    assert lines[3] == "| retrieval | ucf101 | pool4 | 0.10 | 1 |"
    flat = results_to_markdown(load_results(paths), aggregate_seeds=False).strip().splitlines()
    assert len(flat) == 5 and "seed" in flat[0]


def test_report_command_writes_table(tmp_path, capsys):
    from vsslkit.cli import main

    proto = Protocol(task="svm_loo", dataset="toy", layer="pool4", seed=0)
    path = write_result(tmp_path / "a.json", {"accuracy": 0.5}, proto)
    out = tmp_path / "table.md"
    assert main(["report", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text() and "| svm_loo | toy | 0.500 | 1 |" in printed  # constant columns hidden
