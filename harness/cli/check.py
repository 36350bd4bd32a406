"""``timetrial check NAME_OR_PATH``: validate a submission and report every problem at once."""

from __future__ import annotations

import argparse
import sys

NAME = 'check'
HELP = 'validate a submission and report every problem'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('submission', help='built-in submission name or path')
    parser.add_argument('--framework', help='check one framework only')
    parser.add_argument('--tuning-search-space', help='check this search space instead')


def run(args) -> int:
    from harness import registry
    from harness.submission.loader import check_submission, frameworks_of

    problems = check_submission(args.submission, args.framework and [args.framework],
                                args.tuning_search_space)
    if problems:
        print(f'{args.submission}: {len(problems)} problem(s)', file=sys.stderr)
        for p in problems:
            print(f'  - {p}', file=sys.stderr)
        return 2
    path = registry.resolve_submission(args.submission)
    print(f'ok: {path} ({", ".join(frameworks_of(path))})')
    return 0
