"""The federated section of the report: who the server heard from, and how sharp the time is.

Reads the trials frame of ``scoring.load`` and each federated trial's result.json
(``clock: simulated``, ``extra.federated``). Per entrant and workload (variant), over
studies (each study's selected trial: the fastest to target, else its last trial):

- ``time_to_target_s``: the scoring definition (median over studies of each study's
  minimum; ∞ when a study never reached the target), simulated seconds.
- ``straggler_share``: the share of the reports handed to ``server_update`` that came
  from clients of the ``stragglers`` latency group; ``straggler_share_on_time`` the
  same among reports delivered in their own round (a synchronous rule averages
  those into the weights); ``straggler_dispatch_share`` the share of dispatches
  (the sampling). Medians over studies.
- ``time_to_target_resolution_s``: simulated seconds between the last evaluation
  that missed the target and the first that met it (the runner bisects over the
  server models of the window that met it); ``extra_evals``; ``eval_wall_share``
  (evaluation's share of the trial's wall time). Medians over studies.

A *control* entrant (``CONTROLS``) is named beside the entrant it controls: it runs
the same policy with the method switched off, so the same clients report and the
same reports arrive; a difference in time to target between the two is the
method's, not a different sample of clients.

``timetrial score`` puts this section in report.html and the table in
federated.csv; ``python -m scoring.federated RESULTS_DIR`` prints it (and writes
``federated.csv`` to ``RESULTS_DIR/scoring`` unless ``--out``).
"""

from __future__ import annotations

import argparse
import html
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from harness import results

STRAGGLER_GROUP = 'stragglers'
OUT_SUBDIR = 'scoring'  # where `timetrial score` writes by default
#: control entrant -> (the entrant it controls, what it switches off)
CONTROLS: Dict[str, tuple] = {
    'fedavg_distill_control': (
        'fedavg_distill',
        'distill_weight 0: late reports delivered, teacher sent, never learned from',
    ),
}
COLUMNS = (
    'workload',
    'entrant',
    'control_of',
    'n_studies',
    'n_studies_reached',
    'time_to_target_s',
    'straggler_share',
    'straggler_share_on_time',
    'straggler_dispatch_share',
    'late_delivered',
    'time_to_target_resolution_s',
    'extra_evals',
    'eval_wall_share',
)


def _federated_result(trial_dir: str) -> Optional[dict]:
    try:
        data = results.read_json(Path(trial_dir) / results.RESULT_JSON)
    except (OSError, ValueError):  # unreadable: the loader lists it among skipped files
        return None
    if not data or data.get('clock') != 'simulated':
        return None
    fed = (data.get('extra') or {}).get('federated') or data.get('federated')
    return {**data, 'federated': fed} if isinstance(fed, dict) else None


def _median(values: List[Optional[float]]) -> float:
    finite = [float(v) for v in values if v is not None and not _isnan(v)]
    return float(np.median(finite)) if finite else float('nan')


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _study_time(group: pd.DataFrame) -> float:
    times = group.loc[group['reached'], 'time_to_target_s']
    return float(times.min()) if len(times) else math.inf


def federated_table(trials: pd.DataFrame) -> Optional[pd.DataFrame]:
    """One row per (workload, entrant) of federated trials; None when there are none."""
    if trials is None or trials.empty or 'trial_dir' not in trials.columns:
        return None
    loaded = {
        i: r for i, r in ((i, _federated_result(d)) for i, d in trials['trial_dir'].items()) if r
    }
    if not loaded:
        return None
    fed = trials.loc[list(loaded)]
    rows = []
    for (workload, entrant), group in fed.groupby(['workload_id', 'entrant'], sort=True):
        picked, times = [], []
        for _, study in group.groupby(['experiment', 'study'], sort=True):
            times.append(_study_time(study))
            reached = study[study['reached']]
            best = reached['time_to_target_s'].idxmin() if len(reached) else study.index[-1]
            picked.append(loaded[best])
        counts = [p['federated'] for p in picked]
        submission = str(group['submission'].iloc[0])
        rows.append(
            {
                'workload': workload,
                'entrant': entrant,
                'control_of': CONTROLS.get(submission, ('',))[0],
                'n_studies': len(times),
                'n_studies_reached': int(sum(math.isfinite(t) for t in times)),
                'time_to_target_s': float(np.median(times)),
                'straggler_share': _median(
                    [c.get(f'delivered_share_{STRAGGLER_GROUP}') for c in counts]
                ),
                'straggler_share_on_time': _median(
                    [c.get(f'delivered_on_time_share_{STRAGGLER_GROUP}') for c in counts]
                ),
                'straggler_dispatch_share': _median(
                    [c.get(f'dispatched_share_{STRAGGLER_GROUP}') for c in counts]
                ),
                'late_delivered': _median([c.get('late_delivered') for c in counts]),
                'time_to_target_resolution_s': _median(
                    [p.get('time_to_target_resolution_s') for p in picked]
                ),
                'extra_evals': _median([p.get('extra_evals') for p in picked]),
                'eval_wall_share': _median([p.get('eval_wall_share') for p in picked]),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _fmt(value) -> str:
    if isinstance(value, str):
        return value or '—'
    if value is None or _isnan(value):
        return '—'
    if value == math.inf:
        return '∞'
    if isinstance(value, (int, np.integer)) or float(value).is_integer():
        return f'{int(value)}'
    return f'{value:.3g}'


def _notes(table: pd.DataFrame) -> List[str]:
    present = set(table['entrant'])
    return [
        f'{control} is the control of {of} ({what}).'
        for control, (of, what) in CONTROLS.items()
        if control in present
    ]


def format_text(table: pd.DataFrame) -> str:
    """The table as aligned text, for a terminal."""
    view = table.copy()
    for c in view.columns:
        view[c] = [_fmt(v) for v in view[c]]
    return '\n'.join([view.to_string(index=False), *_notes(table)])


def federated_section(trials: pd.DataFrame, out_dir=None) -> str:
    """The report's federated section as an HTML fragment ('' without federated trials).

    With ``out_dir``, also writes ``federated.csv`` there."""
    table = federated_table(trials)
    if table is None:
        return ''
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(out_dir) / 'federated.csv', index=False)
    head = ''.join(f'<th>{html.escape(c)}</th>' for c in table.columns)
    body = ''.join(
        '<tr>' + ''.join(f'<td>{html.escape(_fmt(row[c]))}</td>' for c in table.columns) + '</tr>'
        for _, row in table.iterrows()
    )
    notes = ''.join(f'<li>{html.escape(n)}</li>' for n in _notes(table))
    return (
        '<h2 id="federated">Federated workloads: stragglers and time resolution</h2>\n'
        '<p class="note">Simulated seconds. straggler_share: share of the reports handed to '
        'the server that came from the stragglers group (on_time: delivered in their own '
        'round; dispatch: share of the clients sent work). resolution: simulated seconds '
        'between the last evaluation that missed the target and the first that met it. '
        'Medians over studies of each study\'s selected trial.</p>\n'
        + (f'<ul class="note">{notes}</ul>\n' if notes else '')
        + f'<div class="scroll"><table id="table-federated"><thead><tr>{head}</tr></thead>'
        f'<tbody>{body}</tbody></table></div>'
    )


def main(argv=None) -> int:
    from scoring.load import load_results

    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('results_dir', type=Path)
    parser.add_argument('--out', type=Path, default=None, help='where federated.csv goes')
    args = parser.parse_args(argv)
    loaded = load_results(args.results_dir)
    table = federated_table(loaded.trials)
    if table is None:
        print(f'No federated trials under {args.results_dir}.', file=sys.stderr)
        return 1
    out = args.out or args.results_dir / OUT_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / 'federated.csv', index=False)
    print(format_text(table))
    print(f'Written: {out / "federated.csv"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
