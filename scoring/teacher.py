"""Teacher cost: what a small auxiliary model (e.g. SALT's teacher) cost an entrant.

Two optional sources: ``teacher_time_s`` in result.json (the teacher's forward time,
already inside the submission time: timing rules put it on the clock) and
``teacher_training_cost: {time_s, flops}`` in meta.json (training the teacher, off the
clock, reported so comparisons can charge it). Per (workload, entrant), over each
study's selected trial: the median teacher time, its median share of the trial's
submission time, and the median teacher training time and FLOPs. Shown only when
some trial carries one of these values.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

COLUMNS = ('teacher_time_s', 'teacher_training_time_s', 'teacher_training_flops')


def _median(values: pd.Series) -> float:
    values = values.dropna()
    return float(np.median(values)) if len(values) else np.nan


def teacher_table(trials: pd.DataFrame, studies: pd.DataFrame) -> Optional[pd.DataFrame]:
    if not trials[list(COLUMNS)].notna().any().any():
        return None
    by_id = trials.set_index('trial_id')
    rows = []
    for (workload, entrant), group in studies.groupby(['workload_id', 'entrant'], sort=True):
        sel = by_id.loc[group['selected_trial_id'].to_numpy()]
        if not sel[list(COLUMNS)].notna().any().any():
            continue
        with np.errstate(invalid='ignore', divide='ignore'):
            share = sel['teacher_time_s'] / sel['submission_time_s']
        rows.append(
            {
                'workload_id': workload,
                'entrant': entrant,
                'n_studies': len(sel),
                'teacher_time_s': _median(sel['teacher_time_s']),
                'teacher_share_of_submission_time': _median(share.replace(np.inf, np.nan)),
                'teacher_training_time_s': _median(sel['teacher_training_time_s']),
                'teacher_training_flops': _median(sel['teacher_training_flops']),
            }
        )
    return pd.DataFrame(rows) if rows else None
