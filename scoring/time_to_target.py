"""Time to target per trial, per study and per workload (AlgoPerf's definitions).

- Trial: the time column at the first evaluation that met the target; ∞ when the
  trial did not reach it (unfinished, failed, diverged and budget-exhausted trials).
- Study: the minimum over the study's trials. A study is one ``study_<s>`` of one
  experiment: studies of the same number in two experiments are two studies.
  Under self-tuning a study has one trial, so the minimum is that trial's time.
  AlgoPerf's code picks the trial whose *evaluation index* of the first hit is
  smallest and takes that trial's time; we take the smallest *time*. The two agree
  whenever the trials of a study evaluate on the same schedule (equal eval periods,
  as AlgoPerf's rules make them); with unequal schedules ours is the one that
  matches the definition "time to target" (tests/scoring show both).
- Workload: the median over the entrant's studies of that workload (``np.median``:
  with an even count the mean of the middle two, so one ∞ in the middle gives ∞).
- Rules (``apply_rules``), in AlgoPerf's order: a time above ``r_max`` times the
  fastest entrant's time on that workload becomes ∞ (variants included); then the
  held-out rule: an entrant whose time on any variant of a base workload is ∞
  (missed, over r_max, or never run) gets ∞ on the base workload.

The scored workloads are the base workloads found in the data; a variant whose base
workload is absent is scored as a workload of its own (and said so in the report).
"""

from __future__ import annotations

from typing import Optional, Dict, List

import numpy as np
import pandas as pd

from harness.errors import unknown_name_error

#: --time-col value -> the trials column that holds it.
TIME_COLUMNS = {
    'seconds': 'time_to_target_s',
    'steps': 'steps_to_target',
    'examples': 'examples_to_target',
}
TIME_UNITS = {'seconds': 's', 'steps': 'steps', 'examples': 'examples'}


def check_time_col(time_col: str) -> str:
    if time_col not in TIME_COLUMNS:
        raise unknown_name_error(
            'time column', str(time_col), TIME_COLUMNS, hint='Choose with --time-col.'
        )
    return TIME_COLUMNS[time_col]


def trial_times(trials: pd.DataFrame, time_col: str = 'seconds') -> np.ndarray:
    """Per trial: the time column where the trial reached the target, else ∞."""
    values = trials[check_time_col(time_col)].to_numpy(dtype=np.float64)
    return np.where(trials['reached'].to_numpy() & ~np.isnan(values), values, np.inf)


def study_times(trials: pd.DataFrame, time_col: str = 'seconds') -> pd.DataFrame:
    """One row per (entrant, workload_id, experiment, study).

    Columns: entrant, workload_id, experiment, study, time (min over trials, ∞ if
    none reached), selected_trial_id (the trial that gives the time; if none
    reached, the trial with the best value of the target metric, so that curves
    and CTR tables have a representative), n_trials, n_finished, n_reached, ruleset.
    Ties in time go to the lowest trial number.
    """
    frame = trials[
        [
            'trial_id',
            'entrant',
            'workload_id',
            'experiment',
            'study',
            'trial',
            'finished',
            'reached',
            'ruleset',
            'best_metric',
            'target_mode',
        ]
    ].copy()
    frame['time'] = trial_times(trials, time_col)
    # Sort key for "best metric" that is smaller-is-better in both modes; NaN last.
    sign = np.where(frame['target_mode'].to_numpy() == 'max', -1.0, 1.0)
    frame['metric_key'] = np.nan_to_num(sign * frame['best_metric'].to_numpy(), nan=np.inf)
    keys = ['entrant', 'workload_id', 'experiment', 'study']
    ordered = frame.sort_values(keys + ['time', 'metric_key', 'trial'], kind='stable')
    first = ordered.drop_duplicates(keys, keep='first')
    grouped = frame.groupby(keys, sort=False)
    counts = grouped.agg(
        n_trials=('trial_id', 'size'), n_finished=('finished', 'sum'), n_reached=('reached', 'sum')
    )
    out = first.set_index(keys)[['time', 'trial_id', 'ruleset']].rename(
        columns={'trial_id': 'selected_trial_id'}
    )
    out = out.join(counts).reset_index()
    out = out.sort_values(keys, kind='stable').reset_index(drop=True)
    return out[
        keys + ['time', 'selected_trial_id', 'n_trials', 'n_finished', 'n_reached', 'ruleset']
    ]


def workload_times(studies: pd.DataFrame) -> pd.DataFrame:
    """One row per (entrant, workload_id): median over studies, with counts."""
    grouped = studies.groupby(['entrant', 'workload_id'], sort=True)
    out = grouped.agg(
        n_studies=('time', 'size'),
        n_studies_reached=('time', lambda t: int(np.isfinite(t).sum())),
        n_trials=('n_trials', 'sum'),
        n_trials_finished=('n_finished', 'sum'),
        n_trials_reached=('n_reached', 'sum'),
        ruleset=('ruleset', lambda r: '+'.join(sorted(set(r)))),
    )
    out.insert(0, 'time', grouped['time'].agg(lambda t: float(np.median(t.to_numpy()))))
    return out.reset_index()


def variant_map(trials: pd.DataFrame) -> Dict[str, str]:
    """variant workload_id -> base workload_id, for variants whose base is in the data."""
    ids = set(trials['workload_id'])
    pairs = trials.loc[trials['variant'].notna(), ['workload_id', 'base_id']].drop_duplicates()
    return {v: b for v, b in zip(pairs['workload_id'], pairs['base_id']) if b in ids}


def scored_workloads(trials: pd.DataFrame) -> List[str]:
    """Base workloads plus variants whose base is absent (scored on their own)."""
    with_base = variant_map(trials)
    return sorted(w for w in set(trials['workload_id']) if w not in with_base)


def wide_times(times: pd.DataFrame, entrants: List[str], workloads: List[str],
               applicable: Optional[np.ndarray] = None) -> pd.DataFrame:
    """entrants x workloads of the median times; a workload an entrant never ran is ∞, one
    of another track (``applicable`` False: another contract) is NaN."""
    wide = times.pivot(index='entrant', columns='workload_id', values='time')
    wide = wide.reindex(index=entrants, columns=workloads).fillna(np.inf).astype(np.float64)
    if applicable is not None:
        wide = wide.where(applicable, np.nan)
    return wide


def applicability(trials: pd.DataFrame, entrants: List[str], workloads: List[str]) -> np.ndarray:
    """entrants x workloads: True where the entrant and the workload share a contract and
    the workload offers every attribute the entrant's submission needs (``requires``).

    A suite may hold federated and centralized workloads and submissions; each submission
    trains the workloads of its own contract, so the two form separate tracks, scored side
    by side (a federated entrant's profile counts the federated workloads only).
    """
    entrant_kind = trials.groupby('entrant')['kind'].first()
    workload_kind = trials.groupby('workload_id')['kind'].first()
    same_track = (entrant_kind.reindex(entrants).to_numpy()[:, None]
                  == workload_kind.reindex(workloads).to_numpy()[None, :])
    # A submission that needs a workload attribute (SALT: a teacher) cannot run where it is
    # missing: not applicable there, like another track's workload, rather than "not reached".
    requires = trials.groupby('entrant')['requires'].first().reindex(entrants).fillna('')
    offers = trials.groupby('workload_id')['offers'].agg(
        lambda o: set().union(*(set(filter(None, v.split(','))) for v in o)))
    offers = offers.reindex(workloads)
    can_run = np.array([[set(filter(None, r.split(','))) <= (o if isinstance(o, set) else set())
                         for o in offers] for r in requires], dtype=bool).reshape(
                             len(entrants), len(workloads))
    return same_track & can_run


def apply_rules(wide: pd.DataFrame, variants: Dict[str, str], r_max: float) -> pd.DataFrame:
    """The r_max cut-off then the held-out rule, on every column (select the scored ones)."""
    values = wide.to_numpy(dtype=np.float64).copy()
    values = _cutoff(values, r_max)
    cols = {w: i for i, w in enumerate(wide.columns)}
    for variant, base in variants.items():
        if variant in cols and base in cols:
            missed = np.isinf(values[:, cols[variant]])
            values[missed, cols[base]] = np.inf
    return pd.DataFrame(values, index=wide.index, columns=wide.columns)


def _cutoff(values: np.ndarray, r_max: float) -> np.ndarray:
    """Times above r_max x the column's minimum become ∞ (works on [..., entrant, wl])."""
    with np.errstate(invalid='ignore'):
        best = _nanmin(values, axis=-2)
        return np.where(values > r_max * best, np.inf, values)


def _nanmin(values: np.ndarray, axis: int) -> np.ndarray:
    """The minimum over ``axis`` ignoring NaN (not applicable); NaN where all are NaN."""
    filled = np.where(np.isnan(values), np.inf, values)
    best = filled.min(axis=axis, keepdims=True)
    all_nan = np.isnan(values).all(axis=axis, keepdims=True)
    return np.where(all_nan, np.nan, best)
