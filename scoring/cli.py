"""``timetrial score RESULTS_DIR [--out DIR] [--reference NAME] [--time-col ...] ...``

The lead's command line calls ``add_arguments`` on its ``score`` sub-parser and
``run(args)``; ``python -m scoring`` runs the same thing on its own. ``run`` returns
0 on success and 2 for bad input (the message goes to stderr).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from harness.errors import UserInputError

DEFAULT_OUT_SUBDIR = 'scoring'


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        'results_dir',
        metavar='RESULTS_DIR',
        help='a results root (several experiments, scored together), one '
        'experiment directory, or any directory below one',
    )
    parser.add_argument(
        '--out',
        metavar='DIR',
        default=None,
        help=f'output directory (default: RESULTS_DIR/{DEFAULT_OUT_SUBDIR})',
    )
    parser.add_argument(
        '--reference',
        metavar='NAME',
        default=None,
        help='submission to compute speed-ups against (default: the top-scoring one)',
    )
    parser.add_argument(
        '--time-col',
        default='seconds',
        metavar='seconds|steps|examples',
        help='what "time to target" counts (default: seconds)',
    )
    parser.add_argument(
        '--r-max',
        type=float,
        default=4.0,
        metavar='X',
        help='largest ratio to the fastest that still counts (default: 4, as AlgoPerf)',
    )
    parser.add_argument(
        '--allow-mixed-hardware',
        action='store_true',
        help='score trials from different hardware classes together',
    )
    parser.add_argument(
        '--bootstrap-samples',
        type=int,
        default=1000,
        metavar='N',
        help='bootstrap samples for the intervals; 0 turns them off (default: 1000)',
    )
    parser.add_argument('--seed', type=int, default=0, help='seed of the bootstrap (default: 0)')
    pairing = parser.add_mutually_exclusive_group()
    pairing.add_argument(
        '--paired',
        dest='paired',
        action='store_const',
        const=True,
        default=None,
        help='require every comparison with the reference to pair studies by seed; refuse '
        'if some cannot (default: pair where the seeds allow, else compare unpaired)',
    )
    pairing.add_argument(
        '--unpaired',
        dest='paired',
        action='store_const',
        const=False,
        help='compare with the reference without pairing studies',
    )
    parser.add_argument(
        '--noise-floor',
        metavar='FILE',
        default=None,
        help="noise-floor file (`timetrial noise`); default: this machine's for the "
        'hardware class, else the reference shipped with scoring',
    )
    parser.add_argument(
        '--workers',
        type=int,
        default=None,
        metavar='N',
        help='processes that read trials and draw figures (default: every usable core)',
    )
    return parser


def _print_summary(rep) -> None:
    hardware = ', '.join(rep.hardware_classes) or 'unknown hardware'
    print(
        f'Scored {len(rep.trials)} trials of {len(rep.scores)} entrants on '
        f'{len(rep.scored_workloads)} workloads ({hardware}).'
    )
    for row in rep.scores.itertuples():
        ci = (
            ''
            if math.isnan(row.score_ci_low)
            else f' [{row.score_ci_low:.3f}, {row.score_ci_high:.3f}]'
        )
        print(
            f'  {row.rank:>3}. {row.entrant:<30} score:{row.score:.3f}{ci} '
            f'workloads_reached:{row.n_workloads_reached}/{row.n_workloads_scored}'
        )
    print(rep.comparison_sentence)
    print(f'Noise floor: {rep.noise_floor_source}')
    if rep.problems:
        print(f'{len(rep.problems)} files skipped (listed in the report), e.g.:', file=sys.stderr)
        for p in rep.problems[:5]:
            print(f'  {p}', file=sys.stderr)
    if rep.paths:
        print(f'Report: {rep.paths["report.html"]}')
        print(f'All outputs: {rep.out_dir}')
    # Greppable, for benchmarks/scoring.py and anyone timing a large tree.
    print(' '.join(f'{phase}_s:{seconds:.2f}' for phase, seconds in rep.timings_s.items()))


def run(args: argparse.Namespace) -> int:
    from scoring.api import score

    if args.workers is not None and args.workers < 1:
        print(f'timetrial score: error: --workers must be 1 or more, got {args.workers}.',
              file=sys.stderr)
        return 2
    out = args.out if args.out is not None else Path(args.results_dir) / DEFAULT_OUT_SUBDIR
    try:
        rep = score(
            args.results_dir,
            out_dir=out,
            reference=args.reference,
            time_col=args.time_col,
            r_max=args.r_max,
            allow_mixed_hardware=args.allow_mixed_hardware,
            bootstrap_samples=args.bootstrap_samples,
            seed=args.seed,
            paired=args.paired,
            noise_floor=args.noise_floor,
            workers=args.workers,
        )
    except UserInputError as e:
        print(f'timetrial score: error: {e}', file=sys.stderr)
        return 2
    _print_summary(rep)
    return 0


def main(argv=None) -> int:
    parser = add_arguments(
        argparse.ArgumentParser(
            prog='python -m scoring', description='Score a TimeTrial results directory.'
        )
    )
    return run(parser.parse_args(argv))
