"""``timetrial leaderboard build SUITE`` and ``timetrial leaderboard show``.

``harness.leaderboard.board`` holds the layout, the build, publishing and the
standings; this module parses and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Optional

from harness.errors import UserInputError
from harness.launch.suite import EXECUTORS
from harness.leaderboard.board import (
    LEADERBOARD_DIR,
    build,
    find_leaderboards,
    load_suite_with,
    read_manifest,
    resolve_hardware_class,
    standings,
    this_hardware_class,
)

NAME = 'leaderboard'
HELP = 'build or show the leaderboards (per hardware class)'


def show(
    results_dir: Path,
    hardware_class: Optional[str] = None,
    suite_key: Optional[str] = None,
    out: Callable[[str], None] = print,
) -> int:
    dirs = find_leaderboards(results_dir, hardware_class, suite_key)
    here = this_hardware_class()
    if not dirs:
        which = ''.join(
            [
                f' of suite {suite_key}' if suite_key else '',
                f' for {hardware_class}' if hardware_class else '',
            ]
        )
        raise UserInputError(
            f'No leaderboard{which} under {Path(results_dir) / LEADERBOARD_DIR}. '
            'Build one with `timetrial leaderboard build SUITE` (e.g. demo).'
        )
    for lb_dir in dirs:
        m = read_manifest(lb_dir) or {}
        mark = ' (this machine)' if m.get('hardware_class') == here else ''
        out(
            f'leaderboard:{m.get("suite")} hardware_class:{m.get("hardware_class")}{mark} '
            f'complete:{str(bool(m.get("complete"))).lower()} '
            f'trials:{m.get("n_finished", 0)}/{m.get("n_trials", "?")} '
            f'built:{m.get("built_at")} timetrial:{m.get("timetrial_version")} dir:{lb_dir}'
        )
        scores = standings(lb_dir)
        if scores is None or scores.empty:
            out('  (no finished trials yet)')
            continue
        width = max(len('entrant'), *(len(e) for e in scores['entrant']))
        out(f'  {"rank":>4}  {"entrant":<{width}}  {"score":>6}  {"reached":>7}  kind')
        for row in scores.itertuples():
            out(
                f'  {row.rank:>4}  {row.entrant:<{width}}  {row.score:>6.3f}  '
                f'{row.n_workloads_reached:>3}/{row.n_workloads_scored:<3}  {row.kind}'
            )
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='leaderboard_command', metavar='ACTION')
    b = sub.add_parser(
        'build', help='run a suite\'s own submissions into the leaderboard of this hardware class'
    )
    b.add_argument('suite', help='shipped suite name (demo, full) or suite YAML file')
    b.add_argument('--executor', choices=EXECUTORS, help='default: the suite\'s executor.default')
    b.add_argument('--partition', help='slurm partition (overrides the suite\'s)')
    b.add_argument('--parallelism', type=int, help='local executor: trials at a time')
    b.add_argument('--results-dir', help='results root (default: the suite\'s results_dir)')
    b.add_argument('--data-dir', help='data root (default $TIMETRIAL_DATA_DIR or the cache)')
    b.add_argument(
        '--hardware-class',
        help='class of the machines the trials run on '
        '(default: this machine\'s; required for slurm)',
    )
    s = sub.add_parser('show', help='list leaderboards and their rankings')
    s.add_argument('--hardware-class', help='only this hardware class (default: all)')
    s.add_argument('--suite', help='only this suite (its experiment name, e.g. demo)')
    s.add_argument('--results-dir', default='results', help='results root (default results/)')
    parser.set_defaults(leaderboard_parser=parser)


def run(args) -> int:
    action = getattr(args, 'leaderboard_command', None)
    if action == 'build':
        suite = load_suite_with(args.suite, args.results_dir, args.data_dir, args.partition)
        executor = args.executor or suite.executor
        if args.parallelism is not None and args.parallelism < 1:
            raise UserInputError(f'--parallelism must be at least 1, got {args.parallelism}.')
        hw = resolve_hardware_class(args.hardware_class, executor, 'Building a leaderboard')
        build(suite, executor, hw, parallelism=args.parallelism)
        return 0
    if action == 'show':
        suite_key = args.suite
        if suite_key and (suite_key.endswith(('.yaml', '.yml')) or '/' in suite_key):
            suite_key = load_suite_with(suite_key).experiment
        return show(Path(args.results_dir), args.hardware_class, suite_key)
    args.leaderboard_parser.print_help()
    return 2
