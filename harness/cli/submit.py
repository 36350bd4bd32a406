"""``timetrial submit PATH``: run a submission on a suite and rank it on this hardware class's leaderboard."""

from __future__ import annotations

import argparse
import sys

from harness.errors import UserInputError
from harness.launch.suite import EXECUTORS
from harness.spec import FRAMEWORKS

NAME = 'submit'
HELP = 'run a submission on a suite and rank it on the leaderboard of this hardware class'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        'path',
        help='the submission: a folder (jax_submission.py and/or '
        'pytorch_submission.py, search_space.yaml) or a .py file',
    )
    parser.add_argument(
        '--suite',
        default='demo',
        help='shipped suite (demo, full) or suite YAML file (default: demo)',
    )
    parser.add_argument(
        '--executor',
        choices=EXECUTORS,
        help='debug, local or slurm (default: the suite\'s executor.default)',
    )
    parser.add_argument('--partition', help='slurm partition (overrides the suite\'s)')
    parser.add_argument('--parallelism', type=int, help='local executor: trials at a time')
    parser.add_argument(
        '--results-dir',
        help='results root holding the leaderboards (default: the suite\'s results_dir, results/)',
    )
    parser.add_argument('--data-dir', help='data root (default $TIMETRIAL_DATA_DIR or the cache)')
    parser.add_argument(
        '--hardware-class',
        help='class of the machines the trials run on '
        '(default: this machine\'s; required for slurm)',
    )
    parser.add_argument(
        '--framework',
        choices=FRAMEWORKS,
        help='run this framework only; a single .py file runs the one its imports say, '
        'so this is needed only when it imports both or neither',
    )
    parser.add_argument(
        '--name',
        help='name of the entry (default: the folder\'s name, or the file\'s without .py); '
        'the entry is NAME-<first 8 hex digits of the content hash>',
    )
    parser.add_argument(
        '--publish',
        action='store_true',
        help='add the results to the leaderboard (never done otherwise)',
    )


def run(args) -> int:
    from harness.leaderboard.submit import submit

    if args.parallelism is not None and args.parallelism < 1:
        raise UserInputError(f'--parallelism must be at least 1, got {args.parallelism}.')
    outcome = submit(
        args.path,
        args.suite,
        executor=args.executor,
        partition=args.partition,
        results_dir=args.results_dir,
        data_dir=args.data_dir,
        hardware_class=args.hardware_class,
        publish=args.publish,
        parallelism=args.parallelism,
        framework=args.framework,
        name=args.name,
    )
    print()
    for line in outcome.summary_head:
        print(line)
    print()
    print(f'report: {outcome.summary_path}')
    print(f'report_html: {outcome.html_path}')
    for note in outcome.notes:
        print(f'note: {note}')
    if outcome.published is not None:
        print(
            f'published: {"added to" if outcome.published else "already on"} '
            f'{outcome.leaderboard_dir}'
        )
    if outcome.job_failures:
        print(
            f'{outcome.job_failures} trial(s) ended without a result and count as not '
            'reached; run the same command again to resume them.',
            file=sys.stderr,
        )
        return 1
    return 0
