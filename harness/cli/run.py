"""``timetrial run``: the demo suite, a suite file, or one trial given by flags.

    timetrial run                                   # the shipped demo suite, locally
    timetrial run SUITE.yaml [--executor debug|local|slurm] [--dry-run] ...
    timetrial run --workload W --size S --submission NAME_OR_PATH --framework jax|pytorch ...

Giving ``--workload``, ``--submission`` or ``--framework`` asks for one trial
(``harness.cli.run_trial``); otherwise a suite runs (``harness.cli.run_suite``).
"""

from __future__ import annotations

import argparse

from harness.errors import UserInputError
from harness.launch.suite import EXECUTORS

NAME = 'run'
HELP = 'run the demo suite, a suite file, or one trial'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('suite', nargs='?',
                        help='suite YAML file or shipped suite name (default: demo)')
    both = parser.add_argument_group('suites and single trials')
    both.add_argument('--results-dir',
                      help="where results land (default: the suite's results_dir, or results/)")
    both.add_argument('--data-dir',
                      help='data root (default $TIMETRIAL_DATA_DIR or ~/.cache/timetrial)')
    both.add_argument('--experiment', help="experiment name (default: the suite's, or default)")
    both.add_argument('--max-steps', type=int, help='cap every trial at this many steps')
    both.add_argument('--threads', type=int,
                      help='CPU cores per trial, claimed so that no other trial shares them '
                           '(default: all the process may use; local suites: cores ÷ '
                           'parallelism)')
    both.add_argument('--checkpoint-every-s', type=float,
                      help='wall seconds between checkpoints besides those at evaluations '
                           '(default 60): a killed trial loses at most this much work')

    g = parser.add_argument_group('one trial (instead of a suite)')
    g.add_argument('--workload', help='workload name, e.g. lm')
    g.add_argument('--size', help='workload size, e.g. tiny (default: the smallest)')
    g.add_argument('--variant', help='workload variant (default: none)')
    g.add_argument('--submission', help='built-in submission name or path to a submission')
    g.add_argument('--framework', help='jax or pytorch')
    g.add_argument('--ruleset', default='external', help='external (default) or self')
    g.add_argument('--tuning-search-space', help="search space file (default: the submission's)")
    g.add_argument('--trial-index', type=int, default=0,
                   help='which quasi-random point of the search space (default 0)')
    g.add_argument('--hparams', help='YAML/JSON file of fixed hyperparameters (skips the search)')
    g.add_argument('--seed', type=int, default=0, help='trial seed (default 0)')
    g.add_argument('--resume', action='store_true',
                   help='continue an unfinished trial from its checkpoint')
    g.add_argument('--no-stop-at-target', action='store_true',
                   help='keep training to the budget after the target is met')
    g.add_argument('--devices', type=int,
                   help='devices per trial (default: all visible; PyTorch runs one DDP process '
                        'per device, on a CPU-only machine N gloo processes)')

    s = parser.add_argument_group('suites')
    s.add_argument('--executor', choices=EXECUTORS,
                   help="debug (in this process), local (subprocesses) or slurm (job arrays); "
                        "default: the suite's executor.default")
    s.add_argument('--dry-run', action='store_true',
                   help='print what would be launched (sbatch parameters, trials); launch nothing')
    s.add_argument('--parallelism', type=int, help='local executor: trials at a time')
    s.add_argument('--no-wait', action='store_true',
                   help='slurm: return after submitting (follow with `timetrial status`)')


def run(args) -> int:
    single = any(getattr(args, n) is not None for n in ('workload', 'submission', 'framework'))
    if single:
        if args.suite:
            raise UserInputError('Give either a suite file or --workload/--submission/--framework '
                                 'for one trial, not both.')
        from harness.cli.run_trial import run_single_trial

        return run_single_trial(args)
    from harness.cli.run_suite import run_suite_command

    return run_suite_command(args)
