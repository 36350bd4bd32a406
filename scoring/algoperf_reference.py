"""AlgoPerf's published scoring procedure, re-implemented as a reference for tests.

Written from the procedure as AlgoPerf describes and runs it (not copied):

1. per study, among trials whose logged evaluations ever meet the target, take the
   trial whose *first hit has the smallest evaluation index*; the study's time is
   that trial's time column at that index (∞ if no trial hits);
2. per workload, the median over studies;
3. a time above r_max (AlgoPerf: 4) times the fastest on that workload becomes ∞;
4. held-out rule: ∞ on a variant makes the base workload ∞; keep base workloads;
5. divide by the per-workload minimum; ρ(τ) = #{w: r ≤ τ}/|W| at ``num_points``
   evenly spaced τ in [1, r_max]; the score is the trapezoid integral / (r_max − 1).

Differences from AlgoPerf's code, each deliberate: r_max is a parameter (AlgoPerf
hard-codes 4 in step 3); |W| is the number of scored workloads in the data (AlgoPerf
hard-codes its workload count); a workload an entrant never ran is ∞ (AlgoPerf's
runs always cover every workload). Statuses (failed, diverged) are ours; like
AlgoPerf, this reference looks only at the logged evaluations.

``scoring.profiles`` computes the same score exactly; ``tests/scoring`` checks that
the two agree within the grid error.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import pandas as pd

from scoring.time_to_target import _cutoff

#: --time-col value -> the evals column AlgoPerf-style selection reads.
EVAL_TIME_COLUMNS = {'seconds': 'submission_time_s', 'steps': 'step', 'examples': 'examples_seen'}


def first_hits(trials: pd.DataFrame, evals: pd.DataFrame, time_col: str) -> pd.DataFrame:
    """Per trial that ever meets its target: eval index and time of the first hit."""
    merged = evals.merge(
        trials[['trial_id', 'target_metric', 'target_value', 'target_mode']], on='trial_id'
    )
    hits = []
    for metric, group in merged.groupby('target_metric'):
        if metric not in group.columns:
            continue
        values = group[metric].to_numpy()
        target = group['target_value'].to_numpy()
        is_min = group['target_mode'].to_numpy() == 'min'
        meets = np.where(is_min, values <= target, values >= target)
        hits.append(group.loc[meets, ['trial_id', 'eval_index', EVAL_TIME_COLUMNS[time_col]]])
    if not hits:
        return pd.DataFrame(columns=['trial_id', 'eval_index', 'time'])
    hit = pd.concat(hits).sort_values(['trial_id', 'eval_index'])
    hit = hit.drop_duplicates('trial_id', keep='first')
    return hit.rename(columns={EVAL_TIME_COLUMNS[time_col]: 'time'}).reset_index(drop=True)


def algoperf_workload_times(
    trials: pd.DataFrame, evals: pd.DataFrame, time_col: str = 'seconds'
) -> pd.DataFrame:
    """(entrant, workload_id, time): median over studies of the earliest-index trial."""
    hits = first_hits(trials, evals, time_col)
    frame = trials[['trial_id', 'entrant', 'workload_id', 'experiment', 'study', 'trial']]
    frame = frame.merge(hits, on='trial_id', how='left')
    frame['eval_index'] = frame['eval_index'].fillna(np.inf)
    frame['time'] = frame['time'].astype(np.float64).fillna(np.inf)
    keys = ['entrant', 'workload_id', 'experiment', 'study']
    best = frame.sort_values(keys + ['eval_index', 'trial']).drop_duplicates(keys)
    per_study = best[keys + ['time']]
    out = per_study.groupby(['entrant', 'workload_id'])['time'].agg(
        lambda t: float(np.median(t.to_numpy()))
    )
    return out.reset_index()


def algoperf_grid_scores(
    wide: pd.DataFrame,
    variants: Dict[str, str],
    scored: List[str],
    r_max: float = 4.0,
    num_points: int = 100,
) -> pd.Series:
    """Steps 3-5 on an entrants x workloads table of times (∞ = not reached)."""
    values = _cutoff(wide.to_numpy(dtype=np.float64), r_max)
    df = pd.DataFrame(values, index=wide.index, columns=wide.columns)
    for variant, base in variants.items():
        if variant in df.columns and base in df.columns:
            df.loc[np.isinf(df[variant]), base] = np.inf
    df = df[scored]
    with np.errstate(invalid='ignore', divide='ignore'):
        ratios = df / df.min(axis=0)
    taus = np.linspace(1.0, r_max, num=num_points)
    n_workloads = max(len(scored), 1)
    rho = np.stack([(ratios.to_numpy() <= tau).sum(axis=1) / n_workloads for tau in taus], axis=1)
    area = np.trapezoid(rho, x=taus, axis=1)
    return pd.Series(area / (r_max - 1.0), index=wide.index, name='grid_score')


def grid_error_bound(ratios: pd.DataFrame, r_max: float, num_points: int = 100) -> pd.Series:
    """Largest possible |grid − exact| per entrant: h/(2|W|(r_max−1)) per inner ratio."""
    h = (r_max - 1.0) / (num_points - 1)
    r = ratios.to_numpy(dtype=np.float64)
    inner = (np.isfinite(r) & (r > 1.0) & (r <= r_max)).sum(axis=1)
    n_workloads = max(r.shape[1], 1)
    return pd.Series(inner * h / (2 * n_workloads * (r_max - 1.0)), index=ratios.index)
