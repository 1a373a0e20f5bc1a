"""The `vsslkit` command line.

Each area of the kit keeps its own sub-commands in `vsslkit/commands/<area>.py`, a module with a
`register(subparsers)` function that adds parsers whose `func` attribute runs the command. This
file only lists those modules, so `vsslkit --help` shows everything without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (top-level command, help, [modules that add sub-commands]) -- an explicit list, not a registry.
GROUPS: list[tuple[str, str, list[str]]] = [
    ("data", "probe, check and build datasets (synthetic, UCF101, HMDB51, folders)",
     ["vsslkit.commands.data_io", "vsslkit.commands.datasets"]),
    ("bench", "benchmarks printed as ratios against a baseline measured in the same run",
     ["vsslkit.commands.bench_data", "vsslkit.commands.bench_train", "vsslkit.commands.bench_pipeline",
      "vsslkit.commands.bench_gpu"]),
]
# Top-level commands without a group: module -> registers its own top-level parsers.
TOP_LEVEL: list[str] = [
    "vsslkit.commands.train",
    "vsslkit.commands.evaluate",
    "vsslkit.commands.quickstart",
    "vsslkit.commands.reproduce",
]


def _optional_module(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:  # the module is not written yet; anything else is a real error
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vsslkit", description=__doc__.splitlines()[0])
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from vsslkit import __version__

        print(__version__)
        return 0
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
