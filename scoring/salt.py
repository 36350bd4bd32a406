r"""The report's SALT section: does a small teacher speed up the student, study by study?

SALT ("A Little Help Goes a Long Way", arXiv:2410.18779) asks whether a small LM,
*weaker* than the student's target, speeds up the pre-training of a larger one. Every
entrant that called lm_slm's teacher (some trial logged ``teacher_time_s`` > 0: salt,
salt_ds, kd_only) is compared with its own **base optimizer**: the plain submission
named by the entrant's ``optimizer`` hyperparameter (trial.json ``hparams``, e.g.
``nadamw``), same framework, size and target, on ``lm_slm`` (preferred) or ``lm`` (the
same model, data and target). One row per (size and target, workload or teacher
variant, entrant, base optimizer).

**Paired per study.** Study *s* of the entrant and of its base optimizer must share
their seeds (``scoring.pairing.match_studies``; the salt suite runs its teacher
variants on the base workload's seeds), so both saw the same initialization and data
order. A study's value of each measure is the minimum over its trials; per study the
ratio entrant / base optimizer; the row's ratio is the median over studies, with a
95% bootstrap interval that redraws studies for both at once (``scoring.speedup``;
the same draws for every measure and row). A study only the entrant reached gives 0,
one only the base optimizer reached ∞, one neither reached is left out. Ties as
everywhere in scoring (``scoring.speedup.is_tie``): the interval holds 1, or
|ratio − 1| is within the noise floor (the larger CV of the two). When the studies
cannot be paired (different seeds, no study in common, no ``optimizer``
hyperparameter, no trial of the base optimizer) the row says why and has no ratios:
a ratio of medians over unpaired studies would compare different data orders.

Measures (a ratio below 1: the teacher helped):

(a) ``on_clock``: time to target as measured, the teacher's forward passes on the clock;
(b) ``teacher_out``: (a) minus the harness-measured ``teacher_time_s`` at the point
    that met the target (the first line of evals.jsonl, in file order, that meets it:
    the runner writes its probes between evaluations as lines too, in training
    order) -- the method with a free teacher;
(c) ``training_charged``: (a) plus the teacher's one-off training time (meta.json
    ``teacher_training_cost.time_s``), charged to this one run;
``steps``: steps to target (the paper's measure);
``examples``: examples to target (tokens are examples times the sequence length, the
    same for both, so their ratio is the same): SALT_DS draws a pool of candidates
    per step and pays for every example of it.

The base optimizer uses no teacher: its (b) and (c) are its (a). Also per row: the
teacher (meta.json ``teacher_training_cost``: name, role, margin over the target in
nats) and, per study, the SALT stage when its fastest trial met the target
(result.json ``reported_at_target.kd_stage``: 0 distilling, 1 decaying, 2 plain).
"""

from __future__ import annotations

import collections
import html
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from harness import results
from scoring.evals_file import number
from scoring.noise_floor import NoiseFloors
from scoring.pairing import Pairs, match_studies
from scoring.speedup import is_tie, percentile_interval, ratio_and_samples

TEACHER_WORKLOAD = 'lm_slm'
#: Where the base optimizer's trials may come from, preferred first (same model, data
#: and target; lm_slm's trials share the entrant's seeds, lm's do not in a suite).
BASELINE_WORKLOADS = ('lm_slm', 'lm')
#: measure -> the noise floor's time column (examples use the steps' CV, as in scoring).
MEASURES = {
    'on_clock': 'seconds',
    'teacher_out': 'seconds',
    'training_charged': 'seconds',
    'steps': 'steps',
    'examples': 'steps',
}
#: ``kd_stage`` 0, 1, 2 (submissions/_lib/kd.py).
STAGES = ('distilling', 'decaying', 'plain')
#: Verdicts as the section words them (scoring's vocabulary -> what it means here).
READING = {
    'faster': 'helped',
    'slower': 'did not help',
    'tie': 'not distinguishable',
    'untested': 'untested',
    'neither reached': 'neither reached',
    'unknown': 'unknown',
}
_TARGET = ['size', 'target_metric', 'target_mode', 'target_value']
_STUDY = ['experiment', 'study']


def _measure_columns(measure: str) -> List[str]:
    return [f'{measure}_{c}' for c in ('ratio', 'ci_low', 'ci_high', 'noise_floor_cv', 'tie',
                                       'verdict')]


COLUMNS = tuple(
    ['size', 'target', 'workload', 'entrant', 'optimizer', 'teacher', 'teacher_role',
     'teacher_margin_nats', 'teacher_training_time_s', 'baseline', 'paired', 'why_unpaired',
     'n_studies', 'n_studies_reached', 'n_pairs', 'baseline_n_reached', 'on_clock_time_s',
     'baseline_time_s']
    + [c for m in MEASURES for c in _measure_columns(m)]
    + ['on_clock_per_study'] + [f'stage_{s}' for s in STAGES] + ['stage_unknown']
)


def _trial_extras(trial_dir: str) -> Tuple[float, Dict]:
    """(kd_stage at the target or NaN, meta.json's teacher_training_cost or {})."""
    stage, cost = math.nan, {}
    try:
        result = results.read_json(Path(trial_dir) / results.RESULT_JSON)
        meta = results.read_json(Path(trial_dir) / results.META_JSON)
    except (OSError, ValueError):
        return stage, cost  # the loader reported the file
    if isinstance(result, dict) and isinstance(result.get('reported_at_target'), dict):
        stage = number(result['reported_at_target'].get('kd_stage'))
    if isinstance(meta, dict) and isinstance(meta.get('teacher_training_cost'), dict):
        cost = meta['teacher_training_cost']
    return stage, cost


def _teacher_time_at_hit(frame: pd.DataFrame, evals: pd.DataFrame) -> np.ndarray:
    """Per trial: ``teacher_time_s`` of its first evals.jsonl line meeting the target."""
    out = np.full(len(frame), np.nan)
    wanted = frame['reached'] & frame['uses_teacher']
    if 'teacher_time_s' in evals.columns and wanted.any():
        ids = set(frame.loc[wanted, 'trial_id'])
        lines = evals[evals['trial_id'].isin(ids)].sort_values(['trial_id', 'eval_index'])
        by_trial = dict(iter(lines.groupby('trial_id', sort=False)))
        for i, row in enumerate(frame.itertuples(index=False)):
            group = by_trial.get(row.trial_id)
            if not wanted.iloc[i] or group is None or row.target_metric not in group:
                continue
            target = results.Target(row.target_metric, row.target_value, row.target_mode)
            met = [target.met_by(v) for v in group[row.target_metric].tolist()]
            if any(met):
                out[i] = group['teacher_time_s'].to_numpy()[met.index(True)]
    # Lines of older runners lack it: such a run stopped at the evaluation that met the
    # target (they had no probes), so its final teacher time is the one at the target.
    older = np.isnan(out) & wanted.to_numpy() & (frame['status'] == 'reached').to_numpy()
    out[older] = frame['teacher_time_s'].to_numpy()[older]
    return out


def _per_trial(trials: pd.DataFrame, evals: pd.DataFrame) -> pd.DataFrame:
    """lm and lm_slm trials with each measure's value (∞ not reached, NaN unknown)."""
    frame = trials[trials['workload'].isin(BASELINE_WORKLOADS)].reset_index(drop=True)
    if frame.empty:
        return frame
    on_slm = frame['workload'] == TEACHER_WORKLOAD
    users = set(frame.loc[on_slm & (frame['teacher_time_s'].fillna(0.0) > 0), 'entrant'])
    frame['uses_teacher'] = frame['entrant'].isin(users) & on_slm
    frame['row_workload'] = [w if not isinstance(v, str) else f'{w}-{v}'
                             for w, v in zip(frame['workload'], frame['variant'])]
    frame['optimizer'] = [h.get('optimizer') if isinstance(h, dict) else None
                          for h in frame['hparams']]
    reached = frame['reached'].astype(bool).to_numpy()
    a = np.where(reached, frame['time_to_target_s'], np.inf)
    teacher = np.where(frame['uses_teacher'], _teacher_time_at_hit(frame, evals), 0.0)
    training = np.where(frame['uses_teacher'], frame['teacher_training_time_s'], 0.0)
    frame['on_clock'] = a
    frame['teacher_out'] = np.where(reached, a - teacher, np.inf)
    frame['training_charged'] = np.where(reached, a + training, np.inf)
    frame['steps'] = np.where(reached, frame['steps_to_target'], np.inf)
    frame['examples'] = np.where(reached, frame['examples_to_target'], np.inf)
    extras = [_trial_extras(d) if u else (math.nan, {})
              for d, u in zip(frame['trial_dir'], frame['uses_teacher'])]
    frame['kd_stage'] = [stage for stage, _ in extras]
    frame['teacher_cost'] = [cost for _, cost in extras]
    return frame


def _study_minima(group: pd.DataFrame) -> pd.DataFrame:
    """(experiment, study) -> each measure's minimum over the study's trials."""
    return group.groupby(_STUDY)[list(MEASURES)].min()


def _unknown(group: pd.DataFrame) -> Dict[str, bool]:
    """Measures some trial that reached the target has no value of (e.g. no training time)."""
    reached = group[np.isfinite(group['on_clock'])]
    return {m: bool(reached[m].isna().any()) for m in MEASURES}


def _seeds(group: pd.DataFrame) -> Dict[Tuple[str, int, int], int]:
    return {(x, s, t): seed for x, s, t, seed in zip(
        group['experiment'], group['study'], group['trial'], group['seed'])}


def _find_baseline(group: pd.DataFrame, pool: pd.DataFrame, entrant: str, optimizer):
    """(baseline name, its trials, matched study keys) or (None, None, why not)."""
    if not isinstance(optimizer, str):
        return None, None, ('no `optimizer` hyperparameter in trial.json: the base optimizer '
                            'is unknown')
    framework = group['framework'].iloc[0]
    mine = dict.fromkeys(zip(group['experiment'], group['study']))
    reasons = []
    for workload in BASELINE_WORKLOADS:
        base = pool[(pool['submission'] == optimizer) & (pool['framework'] == framework)
                    & (pool['row_workload'] == workload) & ~pool['uses_teacher']]
        if base.empty:
            continue
        name = f'{base["entrant"].iloc[0]} ({workload})'
        theirs = dict.fromkeys(zip(base['experiment'], base['study']))
        keys, why = match_studies(mine, theirs, _seeds(group), _seeds(base), entrant, name)
        if not why:
            return name, base, keys
        reasons.append(why)
    if not reasons:
        return None, None, (f'no trial of {optimizer} ({framework}) on '
                            f'{" or ".join(BASELINE_WORKLOADS)} with this size and target')
    return None, None, '; '.join(reasons)


def _floor(floors: Optional[NoiseFloors], entries, time_col: str) -> Optional[float]:
    """The noise floor of a paired ratio of the two (None: neither measured)."""
    if floors is None:
        return None
    (workload, size, variant, fw_a), (_, _, _, fw_b) = entries
    return floors.ratio_floor(workload, size, variant, [fw_a, fw_b], time_col, paired=True)


def _compare(mine: np.ndarray, theirs: np.ndarray, unknown: bool, floor: Optional[float],
             n_samples: int, seed: int) -> Dict:
    """Paired ratio, interval, noise floor, tie and verdict of one measure."""
    out = dict(ratio=math.nan, ci_low=math.nan, ci_high=math.nan,
               noise_floor_cv=math.nan if floor is None else floor, tie=None)
    if unknown:
        return {**out, 'verdict': 'unknown'}
    # A fresh generator per measure: every measure (and row) redraws the same studies.
    ratio, samples = ratio_and_samples(Pairs(mine, theirs, paired=True), n_samples,
                                       np.random.default_rng([seed, 2]))
    if math.isnan(ratio):
        return {**out, 'verdict': 'neither reached'}
    lo, hi = percentile_interval(samples) if samples is not None else (math.nan, math.nan)
    tie = is_tie(ratio, lo, hi, floor)
    verdict = ('untested' if tie is None else 'tie' if tie
               else 'faster' if ratio < 1.0 else 'slower')
    return {**out, 'ratio': ratio, 'ci_low': lo, 'ci_high': hi, 'tie': tie, 'verdict': verdict}


def _teacher_info(group: pd.DataFrame) -> Dict:
    costs = [c for c in group['teacher_cost'] if c]
    names = collections.Counter(str(c['name']) for c in costs if c.get('name') is not None)
    roles = collections.Counter(str(c['role']) for c in costs if c.get('role') is not None)
    margins = [m for m in (number(c.get('margin_nats')) for c in costs) if not math.isnan(m)]
    training = group['teacher_training_time_s'].dropna()
    return {
        'teacher': names.most_common(1)[0][0] if names else None,
        'teacher_role': roles.most_common(1)[0][0] if roles else None,
        'teacher_margin_nats': float(np.median(margins)) if margins else math.nan,
        'teacher_training_time_s': float(training.median()) if len(training) else math.nan,
    }


def _stages(group: pd.DataFrame) -> Dict:
    """Studies by the stage their fastest trial was in when it met the target."""
    reached = group[np.isfinite(group['on_clock'])]
    counts = dict.fromkeys([f'stage_{s}' for s in STAGES] + ['stage_unknown'], 0)
    if reached.empty:
        return counts
    fastest = reached.loc[reached.groupby(_STUDY)['on_clock'].idxmin()]
    for stage in fastest['kd_stage']:
        known = not math.isnan(stage) and int(stage) == stage and 0 <= stage < len(STAGES)
        counts[f'stage_{STAGES[int(stage)]}' if known else 'stage_unknown'] += 1
    return counts


def _row(group: pd.DataFrame, pool: pd.DataFrame, keys: Tuple, floors, n_samples, seed) -> Dict:
    workload, entrant, optimizer = keys
    first = group.iloc[0]
    mine = _study_minima(group)
    row = {c: math.nan for c in COLUMNS}
    row.update(
        size=first['size'],
        target=(f'{first["target_metric"]} {"<=" if first["target_mode"] == "min" else ">="} '
                f'{first["target_value"]:g}'),
        workload=workload, entrant=entrant, optimizer=optimizer,
        n_studies=len(mine), n_studies_reached=int(np.isfinite(mine['on_clock']).sum()),
        n_pairs=0, baseline_n_reached=0, paired=False, why_unpaired=None, baseline=None,
        on_clock_per_study=None, **_teacher_info(group), **_stages(group),
    )
    for measure in MEASURES:
        row[f'{measure}_tie'], row[f'{measure}_verdict'] = None, None
    baseline, base, matched = _find_baseline(group, pool, entrant, optimizer)
    if baseline is None:
        row['why_unpaired'] = matched
        return row
    theirs = _study_minima(base)
    mine = mine.loc[[a for a, _ in matched]]
    theirs = theirs.loc[[b for _, b in matched]]
    variant = first['variant'] if isinstance(first['variant'], str) else None
    entries = [(TEACHER_WORKLOAD, first['size'], variant, first['framework']),
               (base['workload'].iloc[0], first['size'], None, first['framework'])]
    row.update(baseline=baseline, paired=True, n_pairs=len(matched),
               baseline_n_reached=int(np.isfinite(theirs['on_clock']).sum()),
               on_clock_time_s=float(np.median(mine['on_clock'])),
               baseline_time_s=float(np.median(theirs['on_clock'])))
    with np.errstate(divide='ignore', invalid='ignore'):
        per_study = mine['on_clock'].to_numpy() / theirs['on_clock'].to_numpy()
    row['on_clock_per_study'] = ' '.join(_fmt(r) for r in per_study)
    unknown = {m: u or v for (m, u), v in zip(_unknown(group).items(),
                                               _unknown(base).values())}
    for measure, time_col in MEASURES.items():
        result = _compare(mine[measure].to_numpy(dtype=np.float64),
                          theirs[measure].to_numpy(dtype=np.float64), unknown[measure],
                          _floor(floors, entries, time_col), n_samples, seed)
        row.update({f'{measure}_{k}': v for k, v in result.items()})
    return row


def salt_table(
    trials: pd.DataFrame,
    evals: pd.DataFrame,
    floors: Optional[NoiseFloors] = None,
    n_samples: int = 1000,
    seed: int = 0,
) -> Optional[pd.DataFrame]:
    """One row per (size and target, workload or variant, teacher entrant, base optimizer);
    None when no trial called the teacher. ``n_samples=0``: no intervals."""
    frame = _per_trial(trials, evals)
    if frame.empty or not frame['uses_teacher'].any():
        return None
    rows = []
    # Only trials of one target compare: a recalibrated target starts a comparison of its own.
    for _, pool in frame.groupby(_TARGET, sort=True):
        users = pool[pool['uses_teacher']].copy()
        users['optimizer_key'] = users['optimizer'].fillna('')
        users['is_variant'] = users['variant'].notna()
        order = ['is_variant', 'row_workload', 'entrant', 'optimizer_key']
        for (_, workload, entrant, _), group in users.groupby(order, sort=True):
            keys = (workload, entrant, group['optimizer'].iloc[0])
            rows.append(_row(group, pool, keys, floors, n_samples, seed))
    return pd.DataFrame(rows, columns=list(COLUMNS)) if rows else None


# ---- display ------------------------------------------------------------------------------

def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '—'
    if isinstance(value, float) and math.isinf(value):
        return '∞'
    return f'{value:.2f}'


def ratio_cell(row: pd.Series, measure: str) -> str:
    """'0.83 [0.71–0.95] helped' ('—' when the row is not paired)."""
    verdict = row[f'{measure}_verdict']
    if not isinstance(verdict, str):
        return '—'
    if verdict in ('unknown', 'neither reached'):
        return READING[verdict]
    lo, hi = row[f'{measure}_ci_low'], row[f'{measure}_ci_high']
    interval = '' if math.isnan(lo) else f' [{_fmt(lo)}–{_fmt(hi)}]'
    return f'{_fmt(row[f"{measure}_ratio"])}{interval} {READING[verdict]}'


def _teacher_cell(row: pd.Series) -> str:
    name = row['teacher'] if isinstance(row['teacher'], str) else '?'
    margin = row['teacher_margin_nats']
    role = f', {row["teacher_role"]}' if isinstance(row['teacher_role'], str) else ''
    return name + (f' ({margin:+.2f} nats{role})' if not math.isnan(margin) else role)


def _baseline_cell(row: pd.Series) -> str:
    if not isinstance(row['baseline'], str):
        return f'not paired: {row["why_unpaired"]}'
    return (f'{row["baseline"]}, {int(row["n_pairs"])} studies '
            f'({int(row["baseline_n_reached"])} reached)')


def _stage_cell(row: pd.Series) -> str:
    text = ' / '.join(str(int(row[f'stage_{s}'])) for s in STAGES)
    unknown = int(row['stage_unknown'])
    return text + (f' (+{unknown} unknown)' if unknown else '')


#: (header, how a row shows it) for the HTML section and the Markdown table.
DISPLAY = (
    ('workload', lambda r: str(r['workload'])),
    ('entrant', lambda r: str(r['entrant'])),
    ('teacher (margin over target)', _teacher_cell),
    ('base optimizer, paired studies', _baseline_cell),
    ('reached', lambda r: f'{int(r["n_studies_reached"])}/{int(r["n_studies"])}'),
    ('(a) teacher on the clock', lambda r: ratio_cell(r, 'on_clock')),
    ('(b) teacher time out', lambda r: ratio_cell(r, 'teacher_out')),
    ('(c) teacher training charged', lambda r: ratio_cell(r, 'training_charged')),
    ('steps', lambda r: ratio_cell(r, 'steps')),
    ('examples', lambda r: ratio_cell(r, 'examples')),
    ('met target: distilling / decaying / plain', _stage_cell),
)

EXPLANATION = (
    'Each teacher entrant against its own base optimizer (its `optimizer` hyperparameter, '
    'run plainly), paired by study (same seeds: same initialization and data order): the '
    'median over studies of the per-study ratio entrant ÷ base optimizer, with a 95% '
    'bootstrap interval over studies. Below 1: faster. (a) time to target as measured, '
    'teacher forward passes on the clock; (b) minus the teacher time the harness measured '
    'up to the point that met the target; (c) plus the teacher\'s one-off training time; '
    'steps and examples to target (SALT_DS pays for its pool of candidates). Helped / did '
    'not help: distinguishable (the interval excludes 1 and the ratio is outside the noise '
    'floor); not distinguishable: a tie. Last column: studies by the stage in which their '
    'fastest trial met the target. ∞: only the base optimizer reached it.'
)


def display_rows(table: pd.DataFrame, display=DISPLAY) -> List[List[str]]:
    return [[show(row) for _, show in display] for _, row in table.iterrows()]


_WORDS = (('on_clock', 'teacher on the clock'), ('teacher_out', 'teacher time out'),
          ('training_charged', 'teacher training charged'), ('steps', 'steps'),
          ('examples', 'examples'))


def in_words(table: pd.DataFrame) -> List[str]:
    """One sentence per row: did the teacher help, measure by measure?"""
    lines = []
    for _, row in table.iterrows():
        lead = f'{row["entrant"]} on {row["workload"]}, teacher {_teacher_cell(row)},'
        if not isinstance(row['baseline'], str):
            lines.append(f'{lead} is not paired with its base optimizer '
                         f'({row["why_unpaired"]}), so no ratio is given.')
            continue
        reached = int(row['n_studies_reached'])
        if not reached and not int(row['baseline_n_reached']):
            lines.append(f'{lead} and {row["baseline"]} reached the target in none of the '
                         f'{int(row["n_pairs"])} paired studies: nothing to compare.')
            continue
        parts = []
        for measure, label in _WORDS:
            verdict = row[f'{measure}_verdict']
            ratio = '' if math.isnan(row[f'{measure}_ratio']) else \
                f' ({_fmt(row[f"{measure}_ratio"])})'
            parts.append(f'{label} {READING.get(verdict, "unknown")}{ratio}')
        stage = (f'; met the target while distilling in {int(row["stage_distilling"])} of '
                 f'the {reached} studies that reached it' if reached else '')
        lines.append(f'{lead} against {row["baseline"]}: {"; ".join(parts)}{stage}.')
    return lines


def salt_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub Markdown, one row per line (the lm_slm README's table)."""
    lines = ['| ' + ' | '.join(h for h, _ in DISPLAY) + ' |',
             '|' + ' --- |' * len(DISPLAY)]
    for cells in display_rows(table):
        lines.append('| ' + ' | '.join(c.replace('|', '\\|') for c in cells) + ' |')
    return '\n'.join(lines) + '\n'


def salt_section(table: Optional[pd.DataFrame]) -> str:
    """The report's SALT section as an HTML fragment ('' without a table)."""
    if table is None:
        return ''
    display = list(DISPLAY)
    if len(table.drop_duplicates(['size', 'target'])) > 1:  # a recalibrated target, a size
        display = [('size', lambda r: str(r['size'])), ('target', lambda r: str(r['target']))
                   ] + display
    head = ''.join(f'<th>{html.escape(h)}</th>' for h, _ in display)
    body = ''.join('<tr>' + ''.join(f'<td>{html.escape(c)}</td>' for c in cells) + '</tr>'
                   for cells in display_rows(table, display))
    sizes = '; '.join(f'size {size}, target {target}' for size, target
                      in table[['size', 'target']].drop_duplicates().itertuples(index=False))
    return ('<h2 id="salt">Small-teacher distillation (SALT): paired with the base '
            'optimizer</h2>\n'
            f'<p class="note">{html.escape(EXPLANATION)} ({html.escape(sizes)}.) All columns, '
            'the per-study ratios and the noise floors are in salt.csv.</p>\n'
            f'<div class="scroll"><table id="table-salt"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>\n<ul>'
            + ''.join(f'<li>{html.escape(line)}</li>' for line in in_words(table)) + '</ul>\n')
