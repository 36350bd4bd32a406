"""Speed-up of every entrant against a reference entrant.

speed-up(s, w) = t(reference, w) / t(s, w), from the per-workload times (median over
studies) *before* the r_max cut-off and the held-out rule: the table shows how much
faster or slower an entrant was, while the score applies the penalties. Variants are
rows of their own.

- both reached: a finite speed-up; the geometric mean runs over these workloads;
- only the entrant reached: ∞ (counted in ``n_only_entrant``);
- only the reference reached: 0 (counted in ``n_only_reference``);
- neither, or the entrant never ran the workload: NaN (not comparable).
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np
import pandas as pd

from harness.errors import UserInputError, unknown_name_error


def resolve_reference(reference: Optional[str], trials: pd.DataFrame) -> Optional[str]:
    """The entrant name for ``--reference``: an entrant, or a submission with one entrant."""
    if reference is None:
        return None
    entrants = sorted(set(trials['entrant']))
    if reference in entrants:
        return reference
    matching = sorted(set(trials.loc[trials['submission'] == reference, 'entrant']))
    if len(matching) == 1:
        return matching[0]
    if len(matching) > 1:
        raise UserInputError(
            f'Reference submission {reference!r} ran under several '
            f'frameworks: name one of {", ".join(matching)} with --reference.'
        )
    raise unknown_name_error(
        'reference submission', reference, entrants, hint='Pass one of them with --reference.'
    )


def speedups(times: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Long frame: workload_id, entrant, reference_time, time, speedup."""
    wide = times.pivot(index='workload_id', columns='entrant', values='time')
    ref = wide[reference]
    rows = []
    for entrant in wide.columns:
        for workload in wide.index:
            t, r = wide.at[workload, entrant], ref.at[workload]
            rows.append((workload, entrant, r, t, _ratio(r, t)))
    return pd.DataFrame(
        rows, columns=['workload_id', 'entrant', 'reference_time', 'time', 'speedup']
    )


def _ratio(reference_time: float, time: float) -> float:
    if np.isnan(time) or np.isnan(reference_time):
        return np.nan
    finite_t, finite_r = np.isfinite(time), np.isfinite(reference_time)
    if finite_t and finite_r:
        return reference_time / time if time > 0 else np.inf
    if finite_t:
        return np.inf
    if finite_r:
        return 0.0
    return np.nan


def speedup_summary(table: pd.DataFrame, entrants: List[str]) -> pd.DataFrame:
    """Per entrant: geometric-mean speed-up over workloads both reached, and the counts."""
    rows = []
    for entrant in entrants:
        s = table.loc[table['entrant'] == entrant, 'speedup'].to_numpy(dtype=np.float64)
        both = s[np.isfinite(s) & (s > 0)]
        rows.append(
            {
                'entrant': entrant,
                'geomean_speedup': float(np.exp(np.log(both).mean())) if len(both) else np.nan,
                'n_both_reached': int(len(both)),
                'n_only_entrant': int(np.isinf(s).sum()),
                'n_only_reference': int((s == 0).sum()),
                'n_not_comparable': int(np.isnan(s).sum()),
            }
        )
    return pd.DataFrame(rows)
