"""The ``timetrial`` command line: parse, hand over, turn bad input into exit status 2.

Every command is one module of ``harness.cli`` with the same four names:
``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; it is
registered by being listed in ``COMMANDS``. A command module imports what is
heavy (frameworks, pandas) inside ``run``, so ``timetrial --help`` stays fast.

    timetrial prepare WORKLOAD [--data-dir DIR] [--variant V] [--source PATH]
    timetrial run                                   # the demo suite
    timetrial run SUITE.yaml [--executor debug|local|slurm] [--results-dir DIR] [--dry-run]
    timetrial run --workload W --size S --submission NAME_OR_PATH --framework jax|pytorch ...
    timetrial check NAME_OR_PATH [--framework F]
    timetrial status EXPERIMENT_DIR      timetrial cancel EXPERIMENT_DIR
    timetrial score RESULTS_DIR [--out DIR] [--reference NAME] [--time-col seconds|steps|examples]
    timetrial submit PATH [--suite demo|full|FILE] [--executor E] [--results-dir DIR] [--publish]
    timetrial leaderboard build SUITE      timetrial leaderboard show [--hardware-class C]
    timetrial calibrate WORKLOAD --size S
    timetrial noise WORKLOAD --submission NAME [--size S] [--repeats K] [--framework F]
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from harness import __version__
from harness.cli import (
    calibrate,
    cancel,
    check,
    leaderboard,
    noise,
    prepare,
    run,
    score,
    status,
    submit,
)
from harness.errors import UserInputError

EXIT_BAD_INPUT = 2

#: The commands, in the order ``timetrial --help`` lists them.
COMMANDS = (prepare, run, check, status, cancel, score, submit, leaderboard, calibrate,
            noise)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='timetrial', description='Time-to-result benchmark for training algorithms.')
    parser.add_argument('--version', action='version', version=f'timetrial {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.__doc__)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except UserInputError as e:
        print(f'timetrial {args.command}: error: {e}', file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
