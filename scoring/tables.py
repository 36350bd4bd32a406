"""Number formatting and the CSV / Markdown tables written to the output directory.

CSV files keep full precision and write ∞ as ``inf`` (pandas reads it back as
float infinity) and missing values as empty cells. Markdown and HTML use the
formatting below: times to 3-4 significant digits, ∞ for "never reached".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

INF = '∞'
DASH = '—'


def fmt_time(value: float, time_col: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if math.isinf(value):
        return INF
    if time_col == 'seconds':
        return f'{value:.4g} s' if value < 1e4 else f'{value:,.0f} s'
    if float(value).is_integer():
        return f'{int(value):,}'
    return f'{value:,.1f}'


def fmt_num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, (bool, np.bool_)):
        return 'yes' if value else 'no'
    if isinstance(value, (int, np.integer)):
        return f'{int(value):,}'
    if math.isinf(value):
        return INF if value > 0 else '-' + INF
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f'{value:.{digits}e}'
    return f'{value:.{digits}f}'


def inverse(value: float) -> float:
    """1/x with 1/0 = ∞ and 1/∞ = 0 (a ratio interval turned into a speed-up interval)."""
    return math.inf if value == 0 else 1.0 / value


def fmt_ratio(value: float) -> str:
    if math.isnan(value):
        return DASH
    if math.isinf(value):
        return INF
    return f'{value:.2f}'


def time_cell(row, time_col: str, with_ci: bool = True) -> str:
    """'123 s [110 s, 140 s] r=1.23', '∞ (not reached)', '57 s → ∞ (over r_max)', 'failed: …'.

    Then the comparison with the reference where it is a tie (' · tie'), and the
    trials that failed or whose clock was disturbed (' · 2 failed', ' · ⚠ 1 disturbed').
    """
    note = row['note']
    if note == 'not run':
        return f'{DASH} (not run)'
    if note == 'failed':
        return f'failed: {row["first_error"]}'
    if note == 'not reached':
        text = f'{INF} (not reached)'
    else:
        text = fmt_time(row['time'], time_col)
        if (
            with_ci
            and np.isfinite(row.get('time_ci_low', np.nan))
            and row['time_ci_low'] != row['time_ci_high']
        ):
            text += (
                f' [{fmt_time(row["time_ci_low"], time_col)}, '
                f'{fmt_time(row["time_ci_high"], time_col)}]'
            )
        elif with_ci and np.isinf(row.get('time_ci_high', np.nan)):
            text += f' [{fmt_time(row["time_ci_low"], time_col)}, {INF}]'
        if note in ('over r_max', 'missed variant'):
            text = f'{text} → {INF} ({note})'
        elif np.isfinite(row.get('ratio', np.nan)):
            text += f' r={row["ratio"]:.2f}'
    if row.get('vs_reference') == 'tie':
        text += ' · tie'
    if row.get('n_trials_failed', 0):
        text += f' · {row["n_trials_failed"]} failed'
    if row.get('n_trials_disturbed', 0):
        text += f' · ⚠ {row["n_trials_disturbed"]} disturbed'
    return text


def time_pivot(times: pd.DataFrame, time_col: str, with_ci: bool = True) -> pd.DataFrame:
    """Workloads (rows; each variant after its base) x entrants of formatted cells."""
    cells = times.assign(cell=[time_cell(r, time_col, with_ci) for _, r in times.iterrows()])
    wide = cells.pivot(index='workload_id', columns='entrant', values='cell')
    order = sorted(
        wide.index, key=lambda w: (times.loc[times['workload_id'] == w, 'base_id'].iloc[0], w)
    )
    wide = wide.loc[order]
    wide.index.name = 'workload'
    return wide


def markdown_table(df: pd.DataFrame, index: bool = True) -> str:
    frame = df.reset_index() if index else df
    header = [str(c) for c in frame.columns]
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    for row in frame.itertuples(index=False):
        lines.append('| ' + ' | '.join(str(v).replace('|', '\\|') for v in row) + ' |')
    return '\n'.join(lines) + '\n'


def formatted(df: pd.DataFrame, formats: Dict[str, Callable]) -> pd.DataFrame:
    out = df.copy()
    for col, fn in formats.items():
        if col in out.columns:
            out[col] = [fn(v) for v in out[col]]
    return out


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def write_time_to_target(
    times: pd.DataFrame, time_col: str, out_dir: Path, header: Optional[Sequence[str]] = None
) -> List[Path]:
    csv_path = write_csv(times, out_dir / 'time_to_target.csv')
    md_path = out_dir / 'time_to_target.md'
    unit = {'seconds': 'seconds of submission time', 'steps': 'steps', 'examples': 'examples'}[
        time_col
    ]
    text = [f'# Time to target ({unit})', '']
    text += list(header or [])
    text += [
        'Median over studies of the best trial per study, [95% bootstrap interval '
        'over studies], r = ratio to the fastest entrant. ∞: never reached; '
        '→ ∞: penalised by the r_max cut-off or a missed held-out variant; '
        'failed: every trial failed (first error shown). · tie: not distinguishable '
        'from the reference (speedups.csv); · k failed / ⚠ k disturbed: trials that '
        'failed, or whose clock other work disturbed.',
        '',
        markdown_table(time_pivot(times, time_col)),
    ]
    md_path.write_text('\n'.join(text), encoding='utf-8')
    return [csv_path, md_path]
