"""The ``timetrial`` command line. Thin: parse, hand over, turn bad input into exit status 2.

    timetrial prepare WORKLOAD [--data-dir DIR] [--variant V] [--source PATH]
    timetrial run                                   # the demo suite
    timetrial run SUITE.yaml [--executor debug|local|slurm] [--results-dir DIR] [--dry-run]
    timetrial run --workload W --size S --submission NAME_OR_PATH --framework jax|pytorch ...
    timetrial check NAME_OR_PATH
    timetrial status EXPERIMENT_DIR      timetrial cancel EXPERIMENT_DIR
    timetrial score RESULTS_DIR [--out DIR] [--reference NAME] [--time-col seconds|steps|examples]
    timetrial calibrate WORKLOAD --size S
    timetrial submit PATH [--suite demo|full|FILE] [--executor E] [--results-dir DIR] [--publish]
    timetrial leaderboard build SUITE      timetrial leaderboard show [--hardware-class C]
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from harness import __version__
from harness.spec import UserInputError

EXIT_BAD_INPUT = 2


def _cmd_prepare(args) -> int:
    from harness.prepare import prepare

    root = prepare(args.workload, args.data_dir, variant=args.variant, source=args.source,
                   size=args.size)
    print(f'prepared:{args.workload} data_dir:{root}')
    return 0


def _cmd_run(args) -> int:
    single = any(getattr(args, n) is not None for n in ('workload', 'submission', 'framework'))
    if single:
        if args.suite:
            raise UserInputError('Give either a suite file or --workload/--submission/--framework '
                                 'for one trial, not both.')
        from harness.cli.run_trial import run_single_trial

        return run_single_trial(args)
    from harness.cli.run import run_suite_command

    return run_suite_command(args)


def _cmd_check(args) -> int:
    from harness import registry
    from harness.submission.loader import check_submission, frameworks_of

    problems = check_submission(args.submission, args.framework and [args.framework],
                                args.tuning_search_space)
    if problems:
        print(f'{args.submission}: {len(problems)} problem(s)', file=sys.stderr)
        for p in problems:
            print(f'  - {p}', file=sys.stderr)
        return EXIT_BAD_INPUT
    path = registry.resolve_submission(args.submission)
    print(f'ok: {path} ({", ".join(frameworks_of(path))})')
    return 0


def _cmd_status(args) -> int:
    from harness.cli.run import status_command

    return status_command(args)


def _cmd_cancel(args) -> int:
    from harness.cli.run import cancel_command

    return cancel_command(args)


def _cmd_score(args) -> int:
    from scoring.cli import run

    return run(args)


def _cmd_submit(args) -> int:
    from harness.leaderboard.submit import submit_command

    return submit_command(args)


def _cmd_leaderboard(args) -> int:
    from harness.cli.leaderboard import leaderboard_command

    return leaderboard_command(args)


def _cmd_calibrate(args) -> int:
    from harness.calibration.calibrate import calibrate_command

    return calibrate_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='timetrial', description='Time-to-result benchmark for training algorithms.')
    parser.add_argument('--version', action='version', version=f'timetrial {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')

    p = sub.add_parser('prepare', help='fetch and build a workload\'s data')
    p.add_argument('workload')
    p.add_argument('--data-dir', help='data root (default $TIMETRIAL_DATA_DIR or ~/.cache/timetrial)')
    p.add_argument('--variant', help='prepare a variant\'s data')
    p.add_argument('--size', help='prepare the data a size needs (default: the smallest\'s)')
    p.add_argument('--source', help='your own data: a directory of .txt files or token shards, ...')
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser('run', help='run the demo suite, a suite file, or one trial')
    p.add_argument('suite', nargs='?', help='suite YAML file or shipped suite name (default: demo)')
    p.add_argument('--results-dir', help='where results land (default results/, or the suite\'s)')
    p.add_argument('--data-dir', help='data root (default $TIMETRIAL_DATA_DIR or ~/.cache/timetrial)')
    from harness.cli.run_trial import add_trial_arguments

    add_trial_arguments(p)
    try:
        from harness.cli.run import add_run_suite_arguments
    except ImportError:
        add_run_suite_arguments = None
    if add_run_suite_arguments is not None:
        add_run_suite_arguments(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser('check', help='validate a submission and report every problem')
    p.add_argument('submission', help='built-in submission name or path')
    p.add_argument('--framework', help='check one framework only')
    p.add_argument('--tuning-search-space', help='check this search space instead')
    p.set_defaults(func=_cmd_check)

    for name, func, helptext in (('status', _cmd_status, 'where every trial of an experiment stands'),
                                 ('cancel', _cmd_cancel, 'cancel an experiment\'s running jobs')):
        p = sub.add_parser(name, help=helptext)
        try:
            from harness.cli import run as suite_cli

            getattr(suite_cli, f'add_{name}_arguments')(p)
        except ImportError:
            p.add_argument('experiment_dir')
        p.set_defaults(func=func)

    p = sub.add_parser('score', help='performance profiles, scores and the HTML report')
    try:
        from scoring.cli import add_arguments as add_score_arguments

        add_score_arguments(p)
    except ImportError:
        p.add_argument('results_dir')
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser('submit', help='run a submission on a suite and rank it on the '
                                      'leaderboard of this hardware class')
    from harness.leaderboard.submit import add_submit_arguments

    add_submit_arguments(p)
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser('leaderboard', help='build or show the leaderboards (per hardware class)')
    from harness.cli.leaderboard import add_leaderboard_arguments

    add_leaderboard_arguments(p)
    p.set_defaults(func=_cmd_leaderboard)

    p = sub.add_parser('calibrate', help='set targets and budgets for this machine')
    try:
        from harness.calibration.calibrate import add_arguments as add_calibrate_arguments

        add_calibrate_arguments(p)
    except ImportError:
        p.add_argument('workload')
        p.add_argument('--size')
    p.set_defaults(func=_cmd_calibrate)
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
