"""Shared fixtures: tiny generated videos, and the real fixture clips when present."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(min(2, os.cpu_count() or 1))

REAL_VIDEOS = Path(os.environ.get("VSSLKIT_REAL_VIDEOS", Path(__file__).resolve().parents[1] / ".." / "shared" / "real_videos"))


@pytest.fixture(scope="session")
def real_videos() -> Path:
    """The folder of real test videos (never copied into the project); skip when absent."""
    if not (REAL_VIDEOS / "manifest.csv").is_file():
        pytest.skip(f"real videos not found at {REAL_VIDEOS} (set VSSLKIT_REAL_VIDEOS)")
    return REAL_VIDEOS.resolve()


TORCHRUN_2_RANKS = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def run_as_script(script: str | Path, out: Path, launcher: list[str] | None = None) -> str:
    """Run a test module as a script (its `__main__` trains into `out`), alone or under a launcher
    such as `TORCHRUN_2_RANKS`; one CPU thread per process, the repo on PYTHONPATH. Returns stdout."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *(launcher or []), str(script), str(out)], env=env, capture_output=True,
                          text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A tiny synthetic set (7 videos per class, 32 px, 40-50 frames), one per test module: what
    the reproduce commands' tests run their arms on."""
    from vsslkit.data.synthetic import make_synthetic

    torch.set_num_threads(2)
    return make_synthetic(tmp_path_factory.mktemp("synthetic"), videos_per_class=7, size=32, length_range=(40, 50),
                          seed=1, progress=False)


def moving_square_frames(num_frames: int = 40, size: int = 48, seed: int = 0) -> np.ndarray:
    """A bright square moving right 1 px/frame on noise: frame t is recognisable by position."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 40, size=(num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        x = t % (size - 8)
        frames[t, 10:18, x : x + 8] = 250
    return frames


@pytest.fixture
def tiny_video(tmp_path: Path) -> Path:
    """A 40-frame 48x48 H.264 mp4 written with the kit's own writer."""
    from vsslkit.data.writer import write_video

    return write_video(tmp_path / "tiny.mp4", moving_square_frames(), fps=25)


class NotebookTimes:
    """Sums nbval's per-cell durations per notebook and prints them at the end (CI reports them).

    Registered as a global plugin (not a notebooks/conftest.py: a second module named `conftest`
    would shadow this one for the tests that import from it).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report) -> None:
        path = report.nodeid.split("::", 1)[0]
        if path.endswith(".ipynb"):
            self.seconds[path] = self.seconds.get(path, 0.0) + report.duration

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.seconds:
            terminalreporter.section("notebook runtimes")
            for path, seconds in sorted(self.seconds.items()):
                terminalreporter.write_line(f"{path}: {seconds:.0f} s")
            terminalreporter.write_line(f"all notebooks: {sum(self.seconds.values()) / 60:.1f} min")


def pytest_configure(config) -> None:
    config.pluginmanager.register(NotebookTimes(), "vsslkit-notebook-times")
