"""The report's tables as formatted frames (strings), and trials.csv's frame.

The HTML page (``scoring.report``) shows these; the CSV files keep the raw numbers.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import pandas as pd

from scoring import tables
from scoring.score_report import ScoreReport
from scoring.speedup import ONLY_ENTRANT, ONLY_REFERENCE

#: trials.csv: every trial, with the measurement-fidelity fields where the runner wrote them.
TRIALS_CSV_COLUMNS = [
    'experiment', 'entrant', 'submission', 'framework', 'workload_id', 'study', 'trial',
    'seed', 'selected', 'status', 'reached', 'time_to_target_s', 'time_to_target_resolution_s',
    'extra_evals', 'steps_to_target', 'examples_to_target', 'eval_wall_share', 'cpu_share',
    'load_average', 'timing_disturbed', 'error', 'trial_dir',
]


def _with_selected(rep: ScoreReport) -> pd.DataFrame:
    trials = rep.trials.copy()
    trials['selected'] = trials['trial_id'].isin(rep.studies['selected_trial_id'])
    return trials


def trials_csv(rep: ScoreReport) -> pd.DataFrame:
    trials = _with_selected(rep)
    trials = trials.sort_values(['workload_id', 'entrant', 'experiment', 'study', 'trial'])
    return trials[TRIALS_CSV_COLUMNS]


def status_text(status: str, error: Optional[str]) -> str:
    """'failed: ValueError: lr must be > 0' for a failure; the status otherwise."""
    if status == 'failed':
        return f'failed: {error}' if error else 'failed (no error recorded)'
    return status


def _share(value: float) -> str:
    return tables.DASH if not np.isfinite(value) else f'{100.0 * value:.0f}%'


def trials_view(rep: ScoreReport) -> Tuple[pd.DataFrame, int]:
    """The trials the report lists, formatted, and how many trials there are in all.

    Listed: each study's selected trial (the one that gives the study its time),
    and every failed, unfinished or disturbed trial. trials.csv has them all.
    """
    trials = _with_selected(rep)
    shown = trials[trials['selected'] | trials['status'].isin(['failed', 'unfinished'])
                   | trials['timing_disturbed'].eq(True)]
    shown = shown.sort_values(['workload_id', 'entrant', 'experiment', 'study', 'trial'])
    rows = []
    for t in shown.itertuples(index=False):
        if t.reached:
            time = tables.fmt_time(t.time_to_target_s, 'seconds')
            if np.isfinite(t.time_to_target_resolution_s):
                time += f' ± {tables.fmt_time(t.time_to_target_resolution_s, "seconds")}'
            steps = tables.fmt_time(t.steps_to_target, 'steps')
        else:
            time = steps = tables.DASH
        disturbed = {True: '⚠ disturbed', False: 'no'}.get(t.timing_disturbed, tables.DASH)
        rows.append({
            'workload': t.workload_id,
            'entrant': t.entrant,
            'study': f'{t.experiment}/{t.study}' if len(rep.experiments) > 1 else t.study,
            'trial': t.trial,
            'status': status_text(t.status, t.error),
            'time to target ± resolution': time,
            'steps to target': steps,
            'extra evals': tables.fmt_num(t.extra_evals, 0) if np.isfinite(t.extra_evals)
            else tables.DASH,
            'eval share of wall time': _share(t.eval_wall_share),
            'CPU share': _share(t.cpu_share),
            'timing': disturbed,
            'selected': 'yes' if t.selected else '',
        })
    return pd.DataFrame(rows), len(trials)


def scores_view(rep: ScoreReport) -> pd.DataFrame:
    view = rep.scores.copy()
    view['95% interval'] = [
        f'[{lo:.3f}, {hi:.3f}]' if np.isfinite(lo) else tables.DASH
        for lo, hi in zip(view['score_ci_low'], view['score_ci_high'])
    ]
    view['score'] = [f'{v:.3f}' for v in view['score']]
    view['workloads reached'] = [
        f'{r} / {n} ({w} counted)'
        for r, n, w in zip(
            view['n_workloads_reached'], view['n_workloads_scored'], view['n_workloads_counted']
        )
    ]
    view['trials (finished, reached)'] = [
        f'{t} ({f}, {r})'
        for t, f, r in zip(view['n_trials'], view['n_trials_finished'], view['n_trials_reached'])
    ]
    view[f'vs {rep.reference}'] = view['vs_reference']
    return view[
        [
            'rank',
            'entrant',
            'score',
            '95% interval',
            f'vs {rep.reference}',
            'workloads reached',
            'n_studies',
            'trials (finished, reached)',
        ]
    ]


def ratio_text(ratio: float, lo: float, hi: float) -> str:
    """'1.18× slower [1.09–1.31]', '1.25× faster [1.10–1.40]', '1.00× [0.95–1.05]'."""
    if not np.isfinite(ratio) or ratio <= 0:
        return tables.DASH
    has_ci = not (math.isnan(lo) or math.isnan(hi))
    if ratio > 1.0:
        text, a, b = f'{ratio:.2f}× slower', lo, hi
    elif ratio < 1.0:
        text, a, b = f'{1.0 / ratio:.2f}× faster', tables.inverse(hi), tables.inverse(lo)
    else:
        text, a, b = '1.00×', lo, hi
    if has_ci:
        text += f' [{tables.fmt_ratio(a)}–{tables.fmt_ratio(b)}]'
    return text


def versus_cell(row) -> str:
    """One cell of the speed-up grid: the ratio, its interval, and the verdict."""
    verdict = row['vs_reference']
    fixed = {
        'reference': 'reference',
        'not run': f'{tables.DASH} (not run)',
        'neither reached': f'{tables.DASH} (neither reached)',
        'not comparable': f'{tables.DASH} (no study either reached)',
        ONLY_ENTRANT: 'reached; reference missed',
        ONLY_REFERENCE: 'missed; reference reached',
    }
    if verdict in fixed:
        return fixed[verdict]
    text = ratio_text(row['time_ratio'], row['ratio_ci_low'], row['ratio_ci_high'])
    if verdict == 'tie':
        text = f'tie: {text}'
    elif verdict == 'untested':
        text += ' (untested)'
    return text + ('' if row['paired'] else ' · unpaired')


def speedup_views(rep: ScoreReport) -> Tuple[pd.DataFrame, pd.DataFrame]:
    summary = rep.speedup_summary.copy()
    summary['time ratio (geometric mean) [95% CI]'] = [
        'reference' if v == 'reference' else ratio_text(r, lo, hi)
        for v, r, lo, hi in zip(summary['vs_reference'], summary['geomean_ratio'],
                                summary['geomean_ci_low'], summary['geomean_ci_high'])
    ]
    summary['noise floor (CV)'] = [tables.fmt_num(v) for v in summary['noise_floor_cv']]
    order = {e: i for i, e in enumerate(rep.scores['entrant'])}
    summary = summary.sort_values('entrant', key=lambda s: s.map(order))
    summary = summary[
        [
            'entrant',
            'vs_reference',
            'time ratio (geometric mean) [95% CI]',
            'noise floor (CV)',
            'n_both_reached',
            'n_ties',
            'n_only_entrant',
            'n_only_reference',
            'n_not_comparable',
            'n_paired',
        ]
    ].rename(
        columns={
            'vs_reference': f'vs {rep.reference}',
            'n_both_reached': 'both reached (in the mean)',
            'n_ties': 'ties',
            'n_only_entrant': 'only entrant reached',
            'n_only_reference': 'only reference reached',
            'n_not_comparable': 'neither / not run',
            'n_paired': 'paired by study',
        }
    )
    cells = rep.speedups.assign(cell=[versus_cell(r) for _, r in rep.speedups.iterrows()])
    wide = cells.pivot(index='workload_id', columns='entrant', values='cell')
    wide = wide[[e for e in rep.scores['entrant'] if e in wide.columns]]
    wide.index.name = 'workload'
    return summary, wide


def hardware_view(rep: ScoreReport) -> Optional[pd.DataFrame]:
    rows = []
    for cls in rep.hardware_classes:
        fingerprint = rep.hardware.get(cls) or {}
        for key, value in fingerprint.items():
            if isinstance(value, dict):
                value = ', '.join(f'{k} {v}' for k, v in value.items() if v is not None)
            rows.append((cls, key, value))
    return pd.DataFrame(rows, columns=['class', 'field', 'value']) if rows else None


def summary_line(rep: ScoreReport) -> str:
    t = rep.trials
    n_variants = len(set(t['workload_id'])) - len(rep.scored_workloads)
    studies = rep.studies.drop_duplicates(['entrant', 'workload_id', 'experiment', 'study'])
    n_failed = int((t['status'] == 'failed').sum())
    return (
        f'{len(rep.scores)} entrants · {len(rep.scored_workloads)} scored workloads'
        + (f' (+{n_variants} held-out variants)' if n_variants else '')
        + f' · {len(studies)} studies · {len(t)} trials ({int(t["finished"].sum())} '
        f'finished, {int(t["reached"].sum())} reached the target'
        + (f', {n_failed} failed' if n_failed else '')
        + f') · rulesets: {", ".join(sorted(set(t["ruleset"])))}'
    )
