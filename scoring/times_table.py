"""The time-to-target table: every (workload, entrant) pair with its time and why.

``note`` says what the time is: ``reached``; ``not reached``; ``failed`` (the time is
∞ because every trial failed: ``first_error`` holds the first line of the first
failure); ``not run``; ``over r_max`` or ``missed variant`` (penalised by the
rules). Failures among other trials are counted in ``n_trials_failed``; trials
whose clock other work disturbed in ``n_trials_disturbed``. The comparison with
the reference (``scoring.speedup``) adds ``ratio_to_reference`` and its interval,
``paired``, ``noise_floor_cv`` and ``vs_reference`` (``tie``, ``faster``, ...).
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from scoring.time_to_target import _cutoff, apply_rules, wide_times

COLUMNS = [
    'workload_id',
    'base_id',
    'is_variant',
    'scored',
    'entrant',
    'ruleset',
    'time',
    'time_ci_low',
    'time_ci_high',
    'time_scored',
    'ratio',
    'note',
    'vs_reference',
    'ratio_to_reference',
    'ratio_to_reference_ci_low',
    'ratio_to_reference_ci_high',
    'paired',
    'noise_floor_cv',
    'n_studies',
    'n_studies_reached',
    'n_trials',
    'n_trials_finished',
    'n_trials_reached',
    'n_trials_failed',
    'n_trials_disturbed',
    'first_error',
    'target_metric',
    'target_value',
    'target_mode',
    'time_col',
]


def _failures(trials: pd.DataFrame) -> pd.DataFrame:
    """Per (workload_id, entrant): failed and disturbed trials, the first failure's error."""
    frame = trials[['workload_id', 'entrant', 'experiment', 'study', 'trial', 'status',
                    'error', 'timing_disturbed']].copy()
    frame['failed'] = frame['status'] == 'failed'
    frame['disturbed'] = frame['timing_disturbed'].eq(True)
    grouped = frame.groupby(['workload_id', 'entrant'], sort=False)
    out = grouped.agg(n_trials_failed=('failed', 'sum'), n_trials_disturbed=('disturbed', 'sum'))
    failed = frame[frame['failed']].sort_values(['experiment', 'study', 'trial'])
    first = failed.drop_duplicates(['workload_id', 'entrant']).set_index(
        ['workload_id', 'entrant'])['error']
    out['first_error'] = first.reindex(out.index).fillna('(no error recorded)').where(
        out['n_trials_failed'] > 0, None)
    return out.reset_index()


def times_table(
    times: pd.DataFrame,
    entrants: List[str],
    workloads: List[str],
    trials: pd.DataFrame,
    variants: Dict[str, str],
    scored: List[str],
    r_max: float,
    ratios: pd.DataFrame,
    time_ci: Optional[pd.DataFrame],
    time_col: str,
    comparison: pd.DataFrame,
) -> pd.DataFrame:
    """Every (workload, entrant) pair with its time, interval, penalty, comparison, counts."""
    grid = pd.MultiIndex.from_product([workloads, entrants], names=['workload_id', 'entrant'])
    table = times.set_index(['workload_id', 'entrant']).reindex(grid).reset_index()
    table = table.merge(_failures(trials), on=['workload_id', 'entrant'], how='left')
    counts = ['n_studies', 'n_studies_reached', 'n_trials', 'n_trials_finished',
              'n_trials_reached', 'n_trials_failed', 'n_trials_disturbed']
    table[counts] = table[counts].fillna(0).astype(np.int64)
    not_run = table['n_studies'] == 0
    table['time'] = table['time'].fillna(np.inf)
    wide = wide_times(times, entrants, workloads)
    # The grid is workload-major over entrants: row i is (workloads[i // E], entrants[i % E]).
    def flat(frame: pd.DataFrame) -> np.ndarray:
        return frame.reindex(index=entrants, columns=workloads).to_numpy(np.float64).T.ravel()

    cut = flat(pd.DataFrame(_cutoff(wide.to_numpy(), r_max), index=wide.index,
                            columns=wide.columns))
    ruled = flat(apply_rules(wide, variants, r_max))
    table['time_scored'] = ruled
    table['ratio'] = flat(ratios)  # NaN for a workload that is not scored
    notes = []
    for t, run, n, failed, c, r in zip(table['time'].tolist(), (~not_run).tolist(),
                                       table['n_trials'].tolist(),
                                       table['n_trials_failed'].tolist(), cut, ruled):
        if not run:
            notes.append('not run')
        elif not np.isfinite(t):
            notes.append('failed' if failed and failed == n else 'not reached')
        elif not np.isfinite(c):
            notes.append('over r_max')
        elif not np.isfinite(r):
            notes.append('missed variant')
        else:
            notes.append('reached')
    table['note'] = notes
    if time_ci is not None:
        table = table.merge(time_ci, on=['entrant', 'workload_id'], how='left')
    else:
        table['time_ci_low'] = table['time_ci_high'] = np.nan
    versus = comparison.rename(columns={
        'time_ratio': 'ratio_to_reference',
        'ratio_ci_low': 'ratio_to_reference_ci_low',
        'ratio_ci_high': 'ratio_to_reference_ci_high',
    })[['workload_id', 'entrant', 'vs_reference', 'ratio_to_reference',
        'ratio_to_reference_ci_low', 'ratio_to_reference_ci_high', 'paired', 'noise_floor_cv']]
    table = table.merge(versus, on=['workload_id', 'entrant'], how='left')
    table['vs_reference'] = table['vs_reference'].fillna('not run')
    table['paired'] = table['paired'].eq(True)
    info = trials.drop_duplicates('workload_id').set_index('workload_id')
    table['base_id'] = table['workload_id'].map(info['base_id'])
    table['is_variant'] = table['workload_id'].map(info['variant'].map(
        lambda v: isinstance(v, str))).astype(bool)
    table['scored'] = table['workload_id'].isin(scored)
    for col in ('target_metric', 'target_value', 'target_mode'):
        table[col] = table['workload_id'].map(info[col])
    table['time_col'] = time_col
    table['ruleset'] = table['ruleset'].fillna('')
    return table[COLUMNS]
