"""The `vsslkit` command line.

Each area of the kit keeps its own sub-commands in `vsslkit/commands/<area>.py`, a module with a
`register(subparsers)` function that adds parsers whose `func` attribute runs the command. This
file only lists those modules, so `vsslkit --help` shows everything without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# (top-level command, help, [modules that add sub-commands]) -- an explicit list, not a registry.
GROUPS: list[tuple[str, str, list[str]]] = [
    ("data", "probe, check and build datasets (synthetic, UCF101, HMDB51, folders)",
     ["vsslkit.commands.data_io", "vsslkit.commands.datasets"]),
    ("bench", "benchmarks printed as ratios against a baseline measured in the same run",
     ["vsslkit.commands.bench_data", "vsslkit.commands.bench_train", "vsslkit.commands.bench_pipeline",
      "vsslkit.commands.bench_gpu", "vsslkit.commands.bench_labels"]),
]
# Top-level commands without a group: module -> registers its own top-level parsers.
TOP_LEVEL: list[str] = [
    "vsslkit.commands.train",
    "vsslkit.commands.evaluate",
    "vsslkit.commands.embed",
    "vsslkit.commands.quickstart",
    "vsslkit.commands.reproduce",
    "vsslkit.commands.from_scratch",
    "vsslkit.commands.presets",
]


def _optional_module(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:  # the module is not written yet; anything else is a real error
            return None
        raise


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (`vsslkit: <input>: <problem>`, exit 2).

    Sub-parsers inherit the class, so every command's bad flag reads the same way.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        self.exit(2, f"vsslkit: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vsslkit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in TOP_LEVEL:
        module = _optional_module(name)
        if module is not None:
            module.register(top)
    for group, help_text, modules in GROUPS:
        group_parser = top.add_parser(group, help=help_text, description=help_text)
        group_sub = group_parser.add_subparsers(dest=f"{group}_command", metavar="SUBCOMMAND")
        group_parser.set_defaults(func=lambda args, p=group_parser: p.print_help() or 2)
        for name in modules:
            module = _optional_module(name)
            if module is not None:
                module.register(group_sub)
    return parser


def user_error(exc: BaseException) -> str | None:
    """`<input>: <problem>` when `exc` is the user's or the machine's doing, None for a bug.

    User errors: `vsslkit.errors.UsageError` (bad data, checkpoints, settings, a full disk the
    kit already named), a `SystemExit` carrying a message, a full disk anywhere, and a file or
    folder the user named that is missing or not accessible.
    """
    from vsslkit.errors import UsageError, is_disk_full

    if isinstance(exc, UsageError):
        return str(exc)
    if isinstance(exc, SystemExit) and isinstance(exc.code, str):
        return exc.code
    if is_disk_full(exc):
        cause: BaseException | None = exc
        while cause is not None and not getattr(cause, "filename", None):
            cause = cause.__cause__ or cause.__context__
        where = os.fspath(cause.filename) if cause is not None else "disk"
        return f"{where}: no space left on device"
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        if exc.filename:
            return f"{os.fspath(exc.filename)}: {exc.strerror}"
        return str(exc) if ": " in str(exc) else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user error is one line `vsslkit: <input>: <problem>` and exit code 2."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (2, already printed as one line)
        return exc.code if isinstance(exc.code, int) else 2
    if args.version:
        from vsslkit import __version__

        print(__version__)
        return 0
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except (Exception, SystemExit) as exc:
        line = user_error(exc)
        if line is None:
            raise  # a bug: keep the traceback
        print(f"vsslkit: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
