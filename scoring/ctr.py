"""CTR extras: final AUC and calibration, and the replica prediction difference (RPD).

Shown for workloads whose evaluations carry both ``validation/auc`` and
``validation/calibration`` (calibration = Σ predictions / Σ clicks). Per entrant and
workload, the values are the median over studies of the final evaluation of each
study's selected trial (the fastest to target; the best on the target metric when
none reached), so they describe the model each study would hand over.

RPD (Anil et al., arXiv:2209.05310) measures how reproducible training is: two
replicas, trained with identical configuration and different seeds, predict the
same validation examples (same order) with probabilities p1, p2;
RPD = mean over examples of |p1 − p2| / ((p1 + p2) / 2), with 0 where both are 0.

Replicas here are the selected trials of an entrant's studies when they share
their hyperparameters (self-tuning, or external tuning whose studies drew the same
point, e.g. a one-point search space); their predictions are
``validation_predictions.npy`` (float32 probabilities) in each trial directory,
saved at the trial's final step. The RPD is defined at a fixed point of training,
so it is given only when every replica stopped at the same step (``final_step``):
run them with ``stop_at_target: false`` and ``max_steps`` (the shipped
``ctr_replicas`` suite). Replicas that stopped at different steps (at their target,
say) get no RPD and a problem line saying so. Reported: the mean over all pairs of
replicas, with its range (``rpd_min``, ``rpd_max``), the number of pairs and the
common step (``rpd_step``).
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any, Dict, List, Optional

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


def _hparams_key(hparams) -> str:
    return json.dumps(hparams, sort_keys=True, default=str)


def _no_rpd() -> Dict[str, Any]:
    return {'rpd': np.nan, 'rpd_min': np.nan, 'rpd_max': np.nan, 'rpd_pairs': 0,
            'rpd_step': np.nan}


def replica_rpd(replicas: pd.DataFrame, problems: List[Problem]) -> Dict[str, Any]:
    """RPD over all pairs of ``replicas`` (rows of the trials frame), or NaN with a reason.

    Rows that are not replicas (different hyperparameters) give NaN silently;
    replicas stopped at different steps give NaN and a problem.
    """
    if len(replicas) < 2 or replicas['hparams'].map(_hparams_key).nunique() > 1:
        return _no_rpd()
    predictions = [
        (row, p)
        for row in replicas.itertuples()
        if (p := _load_predictions(row.trial_dir, problems)) is not None
    ]
    if len(predictions) < 2:
        return _no_rpd()
    steps = {int(row.study): row.final_step for row, _ in predictions}
    if len(set(steps.values())) > 1 or any(pd.isna(v) for v in steps.values()):
        listed = ', '.join(f'study {s}: {v:.0f}' for s, v in sorted(steps.items()))
        problems.append(
            Problem(
                os.path.dirname(os.path.dirname(predictions[0][0].trial_dir)),
                f'replicas stopped at different steps ({listed}); the replica prediction '
                'difference compares predictions at one step, so none is given. Run the '
                'replicas to a fixed step with stop_at_target: false and max_steps (see the '
                'ctr_replicas suite)',
            )
        )
        return _no_rpd()
    values = []
    for (r1, p1), (r2, p2) in itertools.combinations(predictions, 2):
        if p1.shape != p2.shape:
            problems.append(
                Problem(
                    os.path.join(r2.trial_dir, PREDICTIONS_FILE),
                    f'{p2.shape[0]} predictions but {p1.shape[0]} in '
                    f'{os.path.join(r1.trial_dir, PREDICTIONS_FILE)}; pair left out '
                    'of the RPD',
                )
            )
            continue
        values.append(replica_prediction_difference(p1, p2))
    if not values:
        return _no_rpd()
    return {
        'rpd': float(np.mean(values)),
        'rpd_min': float(np.min(values)),
        'rpd_max': float(np.max(values)),
        'rpd_pairs': len(values),
        'rpd_step': int(next(iter(steps.values()))),
    }


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
            **replica_rpd(by_id.loc[sel], problems),
        }
        rows.append(row)
    return pd.DataFrame(rows)
