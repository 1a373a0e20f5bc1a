"""Prepare UCF101 from its official archives (same as `vsslkit data prepare ucf101`).

    python data_scripts/prepare_ucf101.py --out data/ucf101 --videos UCF101.rar --splits UCF101TrainTestSplits-RecognitionTask.zip

Verifies checksums (pass --videos-md5/--splits-md5; the computed MD5 is always printed),
extracts, and builds the frame store. Rar needs the 'rarfile' package and one of unrar, unar,
7z or bsdtar (Debian: apt-get install unar).
"""

from __future__ import annotations

import argparse
import sys

from vsslkit.commands.datasets import add_prepare_arguments, run_prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_prepare_arguments(parser, dataset="ucf101")
    return run_prepare(parser.parse_args(argv), dataset="ucf101")


if __name__ == "__main__":  # the guard matters: frame-store workers are spawned processes
    sys.exit(main())
