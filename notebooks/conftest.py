"""Print each notebook's total runtime at the end of a pytest/nbval run (CI reports it)."""

from __future__ import annotations

from collections import defaultdict

_seconds: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _seconds[path] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if _seconds:
        terminalreporter.section("notebook runtimes")
        for path, seconds in sorted(_seconds.items()):
            terminalreporter.write_line(f"{path}: {seconds:.0f} s")
        terminalreporter.write_line(f"all notebooks: {sum(_seconds.values()) / 60:.1f} min")
