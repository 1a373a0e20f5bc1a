"""`vsslkit bench pipeline` and `bench gpu --tiny` on the CPU: they run, print their ratios, and
bench gpu imports no PyAV (GPU hosts may lack it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest

from vsslkit.cli import main


def test_bench_pipeline_prints_supply_demand_and_bottleneck(capsys):
    assert main(["bench", "pipeline", "--width", "0.125", "--batch-size", "2", "--frames", "4", "--size", "32",
                 "--short-side", "40", "--videos", "2", "--batches", "2", "--steps", "2", "--workers", "0", "1"]) == 0
    out = capsys.readouterr().out
    model = float(re.search(r"model consumes +: +([\d.]+) clips/s", out).group(1))
    loaders = {int(w): (float(r), float(x)) for w, r, x in
               re.findall(r"loader, +(\d+) workers +: +([\d.]+) clips/s += +([\d.]+)x", out)}
    assert set(loaders) == {0, 1} and model > 0
    for rate, ratio in loaders.values():
        assert ratio == pytest.approx(rate / model, rel=0.02, abs=0.01)
    best = max(r for r, _ in loaders.values())
    assert f"bottleneck: {'loader' if best < model else 'model'}" in out
    assert "jpeg store" in out


def test_bench_gpu_tiny_runs_without_av_and_renders(tmp_path):
    out = tmp_path / "gpu.json"
    code = textwrap.dedent(f"""
        import sys
        sys.modules["av"] = None  # any `import av` now fails, as on a host without PyAV
        from vsslkit.commands.bench_gpu import main
        sys.exit(main(["--tiny", "--out", {str(out)!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert set(result["train_clips_per_s"]) == {"fp32", "fp32_channels_last", "amp", "amp_channels_last"}
    assert all(v > 0 for v in result["train_clips_per_s"].values())
    assert result["decode_frames_per_s"]["cpu_cv2_1core"] > 0 and result["decode_frames_per_s"]["cuda_batched"] is None
    assert set(result["loader_clips_per_s"]) == {"0", "1"} and result["jpeg_bytes_per_frame"] > 0
    assert "| fp32 | contiguous |" in done.stdout and "not measured (no GPU)" in done.stdout

    from vsslkit.commands.bench_gpu import render_markdown

    table = render_markdown(result)
    fp32 = result["train_clips_per_s"]["fp32"]
    amp = result["train_clips_per_s"]["amp"]
    assert f"| AMP (bf16) | contiguous | {amp:,.1f} | {amp / fp32:.2f}x |" in table
    assert main(["bench", "gpu", "--render", str(tmp_path / "missing.json")]) == 2
