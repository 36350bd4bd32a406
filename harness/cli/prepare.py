"""``timetrial prepare WORKLOAD``: fetch and build a workload's data (and lm_slm's teachers)."""

from __future__ import annotations

import argparse

NAME = 'prepare'
HELP = "fetch and build a workload's data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('workload')
    parser.add_argument('--data-dir',
                        help='data root (default $TIMETRIAL_DATA_DIR or ~/.cache/timetrial)')
    parser.add_argument('--variant', help="prepare a variant's data")
    parser.add_argument('--size', help="prepare the data a size needs (default: the smallest's)")
    parser.add_argument('--source',
                        help='your own data: a directory of .txt files or token shards, ...')


def run(args) -> int:
    from harness.prepare import prepare

    root = prepare(args.workload, args.data_dir, variant=args.variant, source=args.source,
                   size=args.size)
    print(f'prepared:{args.workload} data_dir:{root}')
    return 0
