"""``timetrial noise WORKLOAD --submission NAME``: measure the noise floor of a time to target.

K repeats with the same seed and K with different seeds, per framework, each a
trial of its own; the coefficients of variation land in this hardware class's
noise-floor record, which ``timetrial score`` reads to call ties.
"""

from __future__ import annotations

import argparse

NAME = 'noise'
HELP = 'measure the noise floor (CV of time and steps to target) on this machine'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('workload')
    parser.add_argument('--submission', required=True, help='built-in name or path')
    parser.add_argument('--size', help='workload size (default: the smallest)')
    parser.add_argument('--variant')
    parser.add_argument('--framework', action='append', dest='frameworks',
                        help='repeat under this framework (repeatable; default: every one the '
                             'submission and the workload support)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='K: repeats per seed mode and framework (default 5, at least 2)')
    parser.add_argument('--seed', type=int, default=0,
                        help='the seed of the same-seed repeats, and the root of the others')
    parser.add_argument('--hparams', help='YAML/JSON file of the hyperparameters (default: '
                                          'point 0 of the submission\'s search space)')
    parser.add_argument('--results-dir', default='results')
    parser.add_argument('--experiment', help='default: noise-WORKLOAD[-VARIANT]-SIZE')
    parser.add_argument('--data-dir')
    parser.add_argument('--executor', choices=('local', 'debug', 'slurm'), default='local',
                        help='local (default): each repeat in a fresh process')
    parser.add_argument('--threads', type=int, help='CPU cores per repeat (default: all)')
    parser.add_argument('--max-steps', type=int, help='cap every repeat (smoke tests)')


def run(args) -> int:
    from harness.calibration.noise import measure_noise
    from harness.cli.run_trial import load_hparams

    measure_noise(args.workload, args.submission, size=args.size, variant=args.variant,
                  frameworks=args.frameworks or (), repeats=args.repeats, seed=args.seed,
                  hparams=load_hparams(args.hparams) if args.hparams else None,
                  results_dir=args.results_dir, experiment=args.experiment,
                  data_dir=args.data_dir, executor=args.executor, threads=args.threads,
                  max_steps=args.max_steps)
    return 0
