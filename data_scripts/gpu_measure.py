"""Measure the GPU figures of docs/scaling.md: `python data_scripts/gpu_measure.py --out gpu.json`.

A thin wrapper of `vsslkit.commands.bench_gpu` (no PyAV needed; see its docstring).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vsslkit.commands.bench_gpu import main

if __name__ == "__main__":
    sys.exit(main())
