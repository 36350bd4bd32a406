"""CTR extras: final AUC and calibration, and the replica prediction difference (RPD).

Shown for workloads whose evaluations carry both ``validation/auc`` and
``validation/calibration`` (calibration = Σ predictions / Σ clicks). Per entrant and
workload, the values are the median over studies of the final evaluation of each
study's selected trial (the fastest to target; the best on the target metric when
none reached), so they describe the model each study would hand over.

RPD (arXiv:2209.05310) measures how reproducible training is: for two replicas'
predictions p1, p2 on the same validation examples (same order),
RPD = mean over examples of |p1 − p2| / ((p1 + p2) / 2), with 0 where both are 0.
It is computed for self-tuned entrants (their studies are replicas of one recipe)
from ``validation_predictions.npy`` (float32 probabilities) in each selected trial's
directory, and reported as the mean over all pairs of studies.
"""

from __future__ import annotations

import itertools
import os
from typing import List, Optional

import numpy as np
import pandas as pd

from harness import results
from scoring.problems import Problem

AUC = 'validation/auc'
CALIBRATION = 'validation/calibration'
PREDICTIONS_FILE = results.PREDICTIONS_NPY


def replica_prediction_difference(p1: np.ndarray, p2: np.ndarray) -> float:
    p1 = np.asarray(p1, dtype=np.float64)
    p2 = np.asarray(p2, dtype=np.float64)
    total = p1 + p2
    with np.errstate(invalid='ignore', divide='ignore'):
        terms = np.where(total > 0, np.abs(p1 - p2) / (total / 2.0), 0.0)
    return float(terms.mean())


def _final_values(evals: pd.DataFrame, trial_ids: np.ndarray, column: str) -> pd.Series:
    rows = evals.loc[evals['trial_id'].isin(trial_ids), ['trial_id', column]].dropna()
    return rows.groupby('trial_id')[column].last()


def _load_predictions(trial_dir: str, problems: List[Problem]) -> Optional[np.ndarray]:
    path = os.path.join(trial_dir, PREDICTIONS_FILE)
    if not os.path.exists(path):
        return None
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        problems.append(Problem(path, f'unreadable ({e}); left out of the RPD'))
        return None
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.floating):
        problems.append(
            Problem(
                path,
                f'expected a 1-D float array, found shape '
                f'{values.shape} dtype {values.dtype}; left out of '
                'the RPD',
            )
        )
        return None
    return values


def _mean_rpd(trial_dirs: List[str], problems: List[Problem]) -> tuple:
    predictions = [(d, p) for d in trial_dirs if (p := _load_predictions(d, problems)) is not None]
    values = []
    for (d1, p1), (d2, p2) in itertools.combinations(predictions, 2):
        if p1.shape != p2.shape:
            problems.append(
                Problem(
                    os.path.join(d2, PREDICTIONS_FILE),
                    f'{p2.shape[0]} predictions but {p1.shape[0]} in '
                    f'{os.path.join(d1, PREDICTIONS_FILE)}; pair left out '
                    'of the RPD',
                )
            )
            continue
        values.append(replica_prediction_difference(p1, p2))
    return (float(np.mean(values)) if values else np.nan), len(values)


def ctr_table(
    trials: pd.DataFrame, evals: pd.DataFrame, studies: pd.DataFrame, problems: List[Problem]
) -> Optional[pd.DataFrame]:
    """One row per (workload_id, entrant) of the CTR workloads; None when there are none."""
    if AUC not in evals.columns or CALIBRATION not in evals.columns:
        return None
    has_both = evals[[AUC, CALIBRATION]].notna().all(axis=1)
    ctr_trials = set(evals.loc[has_both, 'trial_id'])
    workloads = sorted(set(trials.loc[trials['trial_id'].isin(ctr_trials), 'workload_id']))
    if not workloads:
        return None
    chosen = studies[studies['workload_id'].isin(workloads)]
    ids = chosen['selected_trial_id'].to_numpy()
    auc = _final_values(evals, ids, AUC)
    calibration = _final_values(evals, ids, CALIBRATION)
    by_id = trials.set_index('trial_id')
    rows = []
    for (workload, entrant), group in chosen.groupby(['workload_id', 'entrant'], sort=True):
        sel = group['selected_trial_id'].to_numpy()
        row = {
            'workload_id': workload,
            'entrant': entrant,
            'n_studies': len(sel),
            'final_auc': float(np.median(auc.reindex(sel).dropna()))
            if auc.reindex(sel).notna().any()
            else np.nan,
            'final_calibration': float(np.median(calibration.reindex(sel).dropna()))
            if calibration.reindex(sel).notna().any()
            else np.nan,
            'rpd': np.nan,
            'rpd_pairs': 0,
        }
        if (by_id.loc[sel, 'ruleset'] == 'self').all():
            row['rpd'], row['rpd_pairs'] = _mean_rpd(list(by_id.loc[sel, 'trial_dir']), problems)
        rows.append(row)
    return pd.DataFrame(rows)
