"""``timetrial calibrate WORKLOAD --size S``: set targets and budgets for this machine."""

from __future__ import annotations

import argparse

NAME = 'calibrate'
HELP = 'set targets and budgets for this machine'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('workload')
    parser.add_argument('--size', help='workload size (default: the smallest)')
    parser.add_argument('--variant')
    parser.add_argument('--framework', default='jax', help='framework of the reference runs')
    parser.add_argument('--baselines', default='adamw,nadamw',
                        help='comma-separated reference submissions (default adamw,nadamw)')
    parser.add_argument('--trials', type=int, default=3, help='tuning trials per baseline')
    parser.add_argument('--reruns', type=int, default=3, help='reruns of the best configuration')
    parser.add_argument('--generous-factor', type=float, default=2.0,
                        help='tuning budget as a multiple of the current budget')
    parser.add_argument('--budget-factor', type=float, default=3.0,
                        help='new budget = this × median time to the new target')
    parser.add_argument('--results-dir', default='results')
    parser.add_argument('--data-dir')
    parser.add_argument('--max-steps', type=int, help='cap steps of every run (smoke tests)')


def run(args) -> int:
    from harness.calibration.calibrate import calibrate

    calibrate(args.workload, args.size, args.variant, args.framework,
              tuple(s for s in args.baselines.split(',') if s), args.trials, args.reruns,
              args.generous_factor, args.budget_factor, args.results_dir, args.data_dir,
              args.max_steps)
    return 0
