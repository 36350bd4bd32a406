"""``timetrial score RESULTS_DIR``: performance profiles, scores, and the HTML report.

The same command runs as ``python -m scoring`` without the rest of TimeTrial's
command line; both use ``scoring.cli``.
"""

from __future__ import annotations

import argparse

from scoring import cli as scoring_cli

NAME = 'score'
HELP = 'performance profiles, scores and the HTML report'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    scoring_cli.add_arguments(parser)


def run(args) -> int:
    return scoring_cli.run(args)
