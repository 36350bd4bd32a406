"""``timetrial check NAME_OR_PATH``: validate a submission and report every problem at once.

A folder is checked for each framework it has a file for; a single ``.py`` file
for the one framework its imports say (``--framework`` decides a file that
imports both or neither, and is refused where the file says otherwise). Then
``get_batch_size`` is called for every workload name, as a trial would: what
would fail a trial is printed as a warning.
"""

from __future__ import annotations

import argparse
import sys

from harness.spec import FRAMEWORKS

NAME = 'check'
HELP = 'validate a submission and report every problem'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('submission', help='built-in submission name or path (folder or .py file)')
    parser.add_argument('--framework', choices=FRAMEWORKS,
                        help='check this framework only; for a single file, the framework it '
                             'is for (needed when its imports do not tell)')
    parser.add_argument('--tuning-search-space', help='check this search space instead')


def run(args) -> int:
    from harness import registry
    from harness.submission.framework import file_framework
    from harness.submission.loader import batch_size_warnings, check_submission, frameworks_of

    problems = check_submission(args.submission, args.framework and [args.framework],
                                args.tuning_search_space)
    if problems:
        print(f'{args.submission}: {len(problems)} problem(s)', file=sys.stderr)
        for p in problems:
            print(f'  - {p}', file=sys.stderr)
        return 2
    path = registry.resolve_submission(args.submission)
    if path.is_file():
        framework, how = file_framework(path, args.framework)
        frameworks = [framework]
        print(f'ok: {path} ({framework}; {how})')
    else:
        frameworks = [args.framework] if args.framework else frameworks_of(path)
        print(f'ok: {path} ({", ".join(frameworks)})')
    if registry.submission_kind(path) == 'centralized':
        names = sorted(n for n, info in registry.workload_infos().items()
                       if info.kind == 'centralized')
        for warning in batch_size_warnings(str(path), frameworks, names):
            print(f'warning: {warning}')
    return 0
