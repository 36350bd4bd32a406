r"""The SALT section of the report: does small-teacher distillation pay for its teacher?

Reads the trials frame of ``scoring.load`` (and each trial's evals.jsonl) only.
Entrants that used a teacher (some trial logged ``teacher_time_s`` > 0, on
``lm_slm``) are compared with the best *baseline* of the same size: the
fastest of the entrants that never used one, on ``lm`` or on ``lm_slm`` (the
two share model, data and target, so their times compare directly). Each
teacher variant of ``lm_slm`` is its own row (its teacher differs).

Times follow the scoring definitions: per study the minimum over its trials,
per entrant the median over studies (∞ when not reached). Only trials of one
size and one validation target are compared (a recalibrated target makes rows
of its own). Three times for a
teacher entrant, each then divided by the best baseline's:

(a) ``on_clock``: time to target as measured, the teacher's forward passes
    included (the timing rules put them on the clock);
(b) ``teacher_excluded``: (a) minus the teacher time logged up to the
    evaluation that met the target (``teacher_time_s`` of that evals.jsonl line;
    result.json's when the line lacks it) -- what the method would cost with a
    free teacher;
(c) ``amortized``: (a) plus the teacher's one-off training time
    (``teacher_training_cost.time_s`` in meta.json), charged to a single run.

Also the ratio of steps to target (the paper's measure: it reports ~70 % of the
baseline's steps) and, for (a), the spread over studies: each study's time over
the best baseline's median time, min..max. A ratio below 1 means faster than
the best baseline.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from harness import results

BASE_WORKLOADS = ('lm', 'lm_slm')
TEACHER_WORKLOAD = 'lm_slm'
COLUMNS = (
    'size',
    'target',
    'workload',
    'entrant',
    'n_studies',
    'n_studies_reached',
    'baseline',
    'baseline_time_s',
    'on_clock_time_s',
    'on_clock_ratio',
    'on_clock_ratio_min',
    'on_clock_ratio_max',
    'teacher_excluded_time_s',
    'teacher_excluded_ratio',
    'teacher_training_time_s',
    'amortized_time_s',
    'amortized_ratio',
    'steps_ratio',
)


def _teacher_time_at_target(row: pd.Series, evals: Optional[pd.DataFrame]) -> float:
    """Teacher seconds logged at the first evaluation that met the target (NaN if unknown)."""
    target = results.Target(row['target_metric'], row['target_value'], row['target_mode'])
    if evals is not None and 'teacher_time_s' in evals.columns and target.metric in evals.columns:
        lines = evals[evals['trial_id'] == row['trial_id']].sort_values('eval_index')
        records = [(value, teacher) for value, teacher
                   in zip(lines[target.metric], lines['teacher_time_s'])]
    else:
        try:
            records = [(r.metrics.get(target.metric), r.teacher_time_s)
                       for r in results.read_evals(Path(str(row['trial_dir'])))]
        except ValueError:
            records = []  # a bad line: the loader reports it
    for value, teacher in records:
        if isinstance(value, (int, float)) and target.met_by(value):
            if isinstance(teacher, (int, float)) and math.isfinite(teacher):
                return float(teacher)
            break
    # The run stopped at the target: its final teacher time is the one at the target.
    if row.get('status') == 'reached' and np.isfinite(row.get('teacher_time_s', np.nan)):
        return float(row['teacher_time_s'])
    return np.nan


def _per_trial(trials: pd.DataFrame, evals: Optional[pd.DataFrame]) -> pd.DataFrame:
    frame = trials[trials['workload'].isin(BASE_WORKLOADS)].copy()
    if frame.empty:
        return frame
    if 'entrant' not in frame.columns:
        frame['entrant'] = frame['submission']
    teacher = frame['teacher_time_s'].fillna(0.0)
    users = set(frame.loc[teacher > 0, 'entrant'])
    frame['uses_teacher'] = frame['entrant'].isin(users)
    reached = frame['reached'].astype(bool).to_numpy()
    frame['time_a'] = np.where(reached, frame['time_to_target_s'], np.inf)
    frame['steps'] = np.where(reached, frame['steps_to_target'], np.inf)
    at_target = [
        (_teacher_time_at_target(row, evals) if ok and row['uses_teacher'] else 0.0)
        for ok, (_, row) in zip(reached, frame.iterrows())
    ]
    frame['time_b'] = np.where(reached, frame['time_to_target_s'] - np.asarray(at_target), np.inf)
    training = frame['teacher_training_time_s'].fillna(0.0).where(frame['uses_teacher'], 0.0)
    frame['time_c'] = frame['time_a'] + training
    frame['study_key'] = list(zip(frame['experiment'], frame['study']))
    frame['row_workload'] = [
        w if not isinstance(v, str) else f'{w}-{v}'
        for w, v in zip(frame['workload'], frame['variant'])
    ]
    return frame


def _median_of_study_minima(group: pd.DataFrame, column: str) -> float:
    minima = group.groupby('study_key')[column].min().to_numpy(dtype=np.float64)
    return float(np.median(minima)) if len(minima) else np.inf


def _ratio(time: float, base: float) -> float:
    if not np.isfinite(base) or base <= 0:
        return np.nan
    return float(time / base)  # ∞ stays ∞: not reached


def salt_table(
    trials: pd.DataFrame, evals: Optional[pd.DataFrame] = None
) -> Optional[pd.DataFrame]:
    """One row per (size, teacher workload or variant, teacher entrant); None if no such trial."""
    frame = _per_trial(trials, evals)
    if frame.empty or not frame['uses_teacher'].any():
        return None
    rows: List[Dict] = []
    # Only trials with one target compare: a re-calibrated target starts a new comparison.
    keys = ['size', 'target_metric', 'target_mode', 'target_value']
    for (size, metric, mode, value), by_size in frame.groupby(keys, sort=True):
        base = by_size[~by_size['uses_teacher'] & by_size['variant'].isna()]
        best_name, best_time, best_steps = None, np.inf, np.inf
        for (workload, entrant), group in base.groupby(['row_workload', 'entrant'], sort=True):
            t = _median_of_study_minima(group, 'time_a')
            if best_name is None or t < best_time:
                best_name, best_time = f'{entrant} ({workload})', t
                best_steps = _median_of_study_minima(group, 'steps')
        users = by_size[by_size['uses_teacher'] & (by_size['workload'] == TEACHER_WORKLOAD)]
        for (workload, entrant), group in users.groupby(['row_workload', 'entrant'], sort=True):
            study_a = group.groupby('study_key')['time_a'].min().to_numpy(dtype=np.float64)
            per_study = [_ratio(t, best_time) for t in study_a]
            time_a = _median_of_study_minima(group, 'time_a')
            time_b = _median_of_study_minima(group, 'time_b')
            time_c = _median_of_study_minima(group, 'time_c')
            rows.append(
                {
                    'size': size,
                    'target': f'{metric} {"<=" if mode == "min" else ">="} {value:g}',
                    'workload': workload,
                    'entrant': entrant,
                    'n_studies': len(study_a),
                    'n_studies_reached': int(np.isfinite(study_a).sum()),
                    'baseline': best_name,
                    'baseline_time_s': best_time,
                    'on_clock_time_s': time_a,
                    'on_clock_ratio': _ratio(time_a, best_time),
                    'on_clock_ratio_min': float(np.nanmin(per_study)) if per_study else np.nan,
                    'on_clock_ratio_max': float(np.nanmax(per_study)) if per_study else np.nan,
                    'teacher_excluded_time_s': time_b,
                    'teacher_excluded_ratio': _ratio(time_b, best_time),
                    'teacher_training_time_s': float(group['teacher_training_time_s'].median()),
                    'amortized_time_s': time_c,
                    'amortized_ratio': _ratio(time_c, best_time),
                    'steps_ratio': _ratio(_median_of_study_minima(group, 'steps'), best_steps),
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS)) if rows else None


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '—'
    if isinstance(value, float) and math.isinf(value):
        return '∞'
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f'{value:.3g}' if abs(value) < 100 else f'{value:.0f}'


_HEADERS = {
    'size': 'size',
    'target': 'target',
    'workload': 'workload',
    'entrant': 'entrant',
    'n_studies': 'studies',
    'n_studies_reached': 'reached',
    'baseline': 'best baseline',
    'baseline_time_s': 'baseline time (s)',
    'on_clock_ratio': '(a) on clock',
    'spread': '(a) spread over studies',
    'teacher_excluded_ratio': '(b) teacher excluded',
    'teacher_training_time_s': 'teacher training (s)',
    'amortized_ratio': '(c) amortized',
    'steps_ratio': 'steps ratio',
    'on_clock_time_s': '(a) time (s)',
}


def salt_section(
    trials_df: pd.DataFrame, out_dir=None, evals: Optional[pd.DataFrame] = None
) -> str:
    """The report's SALT section as an HTML fragment ('' when no trial used a teacher).

    With ``out_dir``, also writes ``salt.csv`` there (every column of ``salt_table``).
    """
    table = salt_table(trials_df, evals)
    if table is None:
        return ''
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / 'salt.csv', index=False)
    view = table.copy()
    view['spread'] = [
        f'{_fmt(lo)}..{_fmt(hi)}'
        for lo, hi in zip(view['on_clock_ratio_min'], view['on_clock_ratio_max'])
    ]
    shown = [
        'size',
        'target',
        'workload',
        'entrant',
        'n_studies',
        'n_studies_reached',
        'baseline',
        'baseline_time_s',
        'on_clock_time_s',
        'on_clock_ratio',
        'spread',
        'teacher_excluded_ratio',
        'teacher_training_time_s',
        'amortized_ratio',
        'steps_ratio',
    ]
    head = ''.join(f'<th>{html.escape(_HEADERS[c])}</th>' for c in shown)
    body = ''.join(
        '<tr>' + ''.join(f'<td>{html.escape(_fmt(row[c]))}</td>' for c in shown) + '</tr>'
        for _, row in view.iterrows()
    )
    return (
        '<h2 id="salt">Small-teacher distillation (SALT): time to target against the best '
        'baseline</h2>\n'
        '<p class="note">Ratios of time to target, teacher entrant over the fastest entrant '
        'that used no teacher, at the same size (below 1: faster). (a) as measured, teacher '
        'inference on the clock; (b) with the teacher time logged up to the target taken '
        'out; (c) with the teacher\'s one-off training time added to a single run. Times are '
        'medians over studies of the best trial per study; the spread is each study\'s (a) '
        'time over the baseline\'s median. Steps ratio: steps to target over the baseline\'s '
        '(the paper\'s measure). ∞: not reached.</p>\n'
        f'<div class="scroll"><table id="table-salt"><thead><tr>{head}</tr></thead>'
        f'<tbody>{body}</tbody></table></div>\n'
    )
