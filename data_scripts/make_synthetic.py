"""Write the built-in synthetic dataset (same as `vsslkit data synthetic`).

    python data_scripts/make_synthetic.py --out data/synthetic
"""

from __future__ import annotations

import argparse
import sys

from vsslkit.commands.datasets import add_synthetic_arguments, run_synthetic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_synthetic_arguments(parser)
    return run_synthetic(parser.parse_args(argv))


if __name__ == "__main__":  # the guard matters: rendering workers are spawned processes
    sys.exit(main())
