"""``timetrial cancel EXPERIMENT_DIR``: stop an experiment's driver and its jobs."""

from __future__ import annotations

import argparse

from harness.launch.cancel import cancel
from harness.launch.status import resolve_experiment_dir

NAME = 'cancel'
HELP = "cancel an experiment's running jobs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('experiment_dir', help='results/<experiment> (or the experiment name)')


def run(args) -> int:
    cancel(resolve_experiment_dir(args.experiment_dir))
    return 0
