"""``timetrial status EXPERIMENT_DIR``: where every trial of an experiment stands."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Dict, List

from harness.launch.records import holder_alive, read_holder
from harness.launch.status import TrialStatus, collect, resolve_experiment_dir

NAME = 'status'
HELP = 'where every trial of an experiment stands'
STYLES = {'reached': 'green', 'budget_exhausted': 'yellow', 'training_complete': 'green',
          'diverged': 'red', 'failed': 'bold red', 'running': 'cyan', 'resumed': 'magenta',
          'pending': 'dim', 'stopped': 'yellow', 'unknown': 'bold yellow'}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('experiment_dir', help='results/<experiment> (or the experiment name)')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def run(args) -> int:
    exp_dir = resolve_experiment_dir(args.experiment_dir)
    statuses = collect(exp_dir)
    if args.json:
        print(json.dumps([dataclasses.asdict(s) for s in statuses], indent=2))
    else:
        render(statuses, exp_dir)
    return 0


def render(statuses: List[TrialStatus], exp_dir: Path, console=None) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    # Piped output (logs, CI) gets a wide table rather than truncated trial ids.
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    metrics = {s.metric for s in statuses if s.metric}
    metric_header = metrics.pop() if len(metrics) == 1 else 'target metric'
    table = Table(title=f'{exp_dir}', title_justify='left')
    for col, kw in (('trial', {}), ('state', {}), ('job', {}), ('preempt.', {'justify': 'right'}),
                    ('step', {'justify': 'right'}), ('sub. time', {'justify': 'right'}),
                    (metric_header, {'justify': 'right'}), ('note', {'overflow': 'fold'})):
        table.add_column(col, **kw)
    for s in statuses:
        table.add_row(
            s.trial, f'[{STYLES.get(s.state, "")}]{s.state}[/]', s.job_id or '',
            str(s.preemptions) if s.preemptions else '',
            '' if s.step is None else str(s.step),
            '' if s.submission_time_s is None else f'{s.submission_time_s:.1f}s',
            '' if s.metric_value is None else f'{s.metric_value:.4g}', s.note)
    console.print(table)
    counts: Dict[str, int] = {}
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    console.print('  '.join(f'{k}:{v}' for k, v in sorted(counts.items())))
    holder = read_holder(exp_dir)
    alive = holder_alive(holder)
    if holder and alive is not False:
        console.print(f'driver: host {holder.get("host")} pid {holder.get("pid")} '
                      f'since {holder.get("started_at")}'
                      + (' (another host: cannot tell if alive)' if alive is None else ''))
