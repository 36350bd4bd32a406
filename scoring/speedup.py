"""Every entrant against a reference entrant: paired time ratios, intervals and ties.

Per workload (variants are rows of their own), from the study times *before* the
r_max cut-off and the held-out rule (the score applies the penalties; this table
shows how much slower or faster an entrant was):

- **Paired ratio.** Study *s* of both entrants shares its seeds (``scoring.pairing``),
  so ratio_s = t(entrant, s) / t(reference, s), and the workload's ratio is the
  median over studies. Its bootstrap interval redraws study indices with
  replacement, the same for both entrants (that is the pairing). A study that
  neither reached gives no ratio and is left out; one only the entrant missed
  gives ∞, one only the reference missed 0.
- **Unpaired** (the seeds differ, no study matches, or ``paired=False``): the ratio
  of the two median times, each entrant's studies redrawn on their own.
- ``speedup`` = 1 / ratio (above 1: faster than the reference).
- **Ties.** A difference is a tie when the 95% interval contains 1, or when
  |ratio − 1| is within the noise floor (``scoring.noise_floor``): for a paired
  ratio sqrt(CV_a² + CV_b²) of the two configurations' same-seed repeats, for an
  unpaired one the larger of their different-seed CVs. With one study there is no interval; with neither an
  interval nor a noise floor the difference is ``untested``.
- Workloads only one of the two reached are counted apart: ``only entrant reached``
  (ratio 0, speed-up ∞) and ``only reference reached`` (ratio ∞, speed-up 0).

Per entrant (``speedup_summary``): the geometric mean of the ratios over the
workloads both reached, with an interval from the same bootstrap samples and the
mean of those workloads' noise floors (if each ratio is within its floor, the
geometric mean is within their mean, to first order); the same tie rule gives
``vs_reference``: ``reference``, ``faster``, ``slower``, ``tie``, ``untested`` or
``not comparable``. ``summary_sentence`` says it in one sentence.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from harness.errors import UserInputError, unknown_name_error
from scoring.noise_floor import NoiseFloors
from scoring.pairing import Pairs, StudyIndex
from scoring.tables import inverse

CONFIDENCE = 0.95
ONLY_ENTRANT, ONLY_REFERENCE = 'only entrant reached', 'only reference reached'
TABLE_COLUMNS = (
    'workload_id', 'entrant', 'reference_time', 'time', 'time_ratio', 'ratio_ci_low',
    'ratio_ci_high', 'speedup', 'paired', 'n_pairs', 'noise_floor_cv', 'tie', 'vs_reference',
)


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


@dataclasses.dataclass
class Comparison:
    table: pd.DataFrame
    summary: pd.DataFrame
    #: Why some comparisons are unpaired, one line each (for the report's notes).
    unpaired: List[str]


def _study_ratios(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """t / t_ref per pair: ∞ only the reference reached, 0 only the entrant, NaN neither."""
    with np.errstate(divide='ignore', invalid='ignore'):
        ratios = mine / theirs
    ratios[np.isinf(mine) & np.isinf(theirs)] = np.nan
    return ratios


def percentile_interval(samples: np.ndarray) -> tuple:
    """The 95% percentile interval of bootstrap samples (NaN samples left out)."""
    samples = samples[~np.isnan(samples)]
    if not len(samples):
        return math.nan, math.nan
    alpha = (1.0 - CONFIDENCE) / 2.0
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha], method='inverted_cdf')
    return float(lo), float(hi)


def ratio_and_samples(pairs: Pairs, n_samples: int, rng: np.random.Generator) -> tuple:
    """(ratio, bootstrap samples of it or None); paired: the median of per-study ratios,
    its samples from study indices redrawn for both entrants at once."""
    mine, theirs = pairs.entrant_times, pairs.reference_times
    if pairs.paired:
        ratios = _study_ratios(mine, theirs)
        if np.isnan(ratios).all():
            return math.nan, None
        point = float(np.nanmedian(ratios))
        if n_samples == 0 or len(ratios) < 2:
            return point, None
        draws = rng.integers(0, len(ratios), size=(n_samples, len(ratios)))
        if not np.isnan(ratios).any():
            return point, np.median(ratios[draws], axis=1)  # ~10x faster than nanmedian
        with warnings.catch_warnings():  # an all-NaN resample: every study missed by both
            warnings.simplefilter('ignore', RuntimeWarning)
            return point, np.nanmedian(ratios[draws], axis=1)
    point = float(_study_ratios(np.array([np.median(mine)]), np.array([np.median(theirs)]))[0])
    if n_samples == 0 or min(len(mine), len(theirs)) < 2:
        return point, None
    boot_mine = np.median(mine[rng.integers(0, len(mine), (n_samples, len(mine)))], axis=1)
    boot_theirs = np.median(
        theirs[rng.integers(0, len(theirs), (n_samples, len(theirs)))], axis=1)
    return point, _study_ratios(boot_mine, boot_theirs)


def is_tie(ratio: float, lo: float, hi: float, floor: Optional[float]) -> Optional[bool]:
    """True: the interval holds 1 or |ratio − 1| is within the floor; None: cannot tell."""
    has_ci = not (math.isnan(lo) or math.isnan(hi))
    if has_ci and lo <= 1.0 <= hi:
        return True
    if floor is not None and abs(ratio - 1.0) <= floor:
        return True
    if has_ci or floor is not None:
        return False
    return None


def _verdict(ratio: float, tie: Optional[bool]) -> str:
    if tie is None:
        return 'untested'
    return 'tie' if tie else ('slower' if ratio > 1.0 else 'faster')


def _pair_floor(floors: NoiseFloors, info: Dict, workload_id: str, entrants: List[str],
                time_col: str, paired: bool) -> Optional[float]:
    workload, size, variant = info['workloads'][workload_id]
    return floors.ratio_floor(workload, size, variant, [info['frameworks'][e] for e in entrants],
                              time_col, paired)


def compare(
    times: pd.DataFrame,
    studies: pd.DataFrame,
    trials: pd.DataFrame,
    reference: str,
    floors: NoiseFloors,
    time_col: str = 'seconds',
    paired: Optional[bool] = None,
    n_samples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """The per-workload table and the per-entrant summary against ``reference``.

    ``paired``: None pairs where the seeds allow (else unpaired, said in
    ``unpaired``); True refuses (UserInputError) when any comparison cannot be
    paired, naming the first mismatching study; False never pairs.
    """
    index = StudyIndex(studies, trials)
    first = trials.drop_duplicates('workload_id').set_index('workload_id')
    info = {
        'workloads': {w: (workload, size, variant if isinstance(variant, str) else None)
                      for w, workload, size, variant in zip(
                          first.index, first['workload'], first['size'], first['variant'])},
        'frameworks': dict(zip(trials['entrant'], trials['framework'])),
    }
    wide = times.pivot(index='workload_id', columns='entrant', values='time')
    # Own stream: the score and time intervals stay what they were without this table.
    rng = np.random.default_rng([seed, 1])
    rows, boots, unpaired = [], {}, []
    for workload in wide.index:
        for entrant in wide.columns:
            t, t_ref = wide.at[workload, entrant], wide.at[workload, reference]
            row = dict(workload_id=workload, entrant=entrant, reference_time=t_ref, time=t,
                       time_ratio=math.nan, ratio_ci_low=math.nan, ratio_ci_high=math.nan,
                       paired=False, n_pairs=0, noise_floor_cv=math.nan, tie=None)
            rows.append(row)
            if entrant == reference:
                row.update(time_ratio=1.0 if np.isfinite(t) else math.nan,
                           vs_reference='reference')
                continue
            if np.isnan(t) or np.isnan(t_ref):
                row['vs_reference'] = 'not run'
                continue
            pairs = index.pairs(workload, entrant, reference)
            if paired and not pairs.paired:  # checked wherever both ran, as asked
                raise UserInputError(
                    f'--paired: the studies of {entrant} and {reference} on {workload} '
                    f'cannot be paired: {pairs.why_unpaired}. Pairing needs studies run '
                    'with the same suite seed (the same suite file); score without '
                    '--paired to compare them unpaired.')
            if not (np.isfinite(t) or np.isfinite(t_ref)):
                row['vs_reference'] = 'neither reached'
                continue
            if paired is False:
                pairs = Pairs(*(np.array(list(index.times[(workload, e)].values()))
                                for e in (entrant, reference)), paired=False,
                              why_unpaired='pairing turned off')
            elif not pairs.paired:
                unpaired.append(f'{workload}, {entrant}: {pairs.why_unpaired}')
            row.update(paired=pairs.paired,
                       n_pairs=len(pairs.entrant_times) if pairs.paired else 0)
            if not np.isfinite(t_ref) or not np.isfinite(t):
                row.update(time_ratio=0.0 if np.isfinite(t) else math.inf,
                           vs_reference=ONLY_ENTRANT if np.isfinite(t) else ONLY_REFERENCE)
                continue
            ratio, samples = ratio_and_samples(pairs, n_samples, rng)
            if math.isnan(ratio):  # no matched study that either of them reached
                row['vs_reference'] = 'not comparable'
                continue
            lo, hi = (percentile_interval(samples) if samples is not None
                      else (math.nan, math.nan))
            floor = _pair_floor(floors, info, workload, [entrant, reference], time_col,
                                pairs.paired)
            tie = is_tie(ratio, lo, hi, floor)
            row.update(time_ratio=ratio, ratio_ci_low=lo, ratio_ci_high=hi, tie=tie,
                       noise_floor_cv=math.nan if floor is None else floor,
                       vs_reference=_verdict(ratio, tie))
            if samples is not None:
                boots[(workload, entrant)] = samples
    table = pd.DataFrame(rows)
    with np.errstate(divide='ignore'):
        table['speedup'] = 1.0 / table['time_ratio']
    table = table[list(TABLE_COLUMNS)]
    return Comparison(table, _summary(table, boots, reference, n_samples), unpaired)


def _summary(table: pd.DataFrame, boots: Dict, reference: str, n_samples: int) -> pd.DataFrame:
    rows = []
    for entrant, group in table.groupby('entrant', sort=True):
        verdicts = group['vs_reference']
        both = group[np.isfinite(group['time_ratio']) & (group['time_ratio'] > 0)
                     & ~verdicts.isin(['reference'])]
        row = {
            'entrant': entrant,
            'geomean_ratio': math.nan,
            'geomean_ci_low': math.nan,
            'geomean_ci_high': math.nan,
            'noise_floor_cv': math.nan,
            'n_both_reached': len(both),
            'n_only_entrant': int((verdicts == ONLY_ENTRANT).sum()),
            'n_only_reference': int((verdicts == ONLY_REFERENCE).sum()),
            'n_not_comparable': int(
                verdicts.isin(['not run', 'neither reached', 'not comparable']).sum()),
            'n_ties': int((verdicts == 'tie').sum()),
            'n_paired': int(group['paired'].sum()),
        }
        if entrant == reference:
            row.update(geomean_ratio=1.0, vs_reference='reference')
            rows.append(row)
            continue
        if not len(both):
            row['vs_reference'] = 'not comparable'
            rows.append(row)
            continue
        ratio = float(np.exp(np.log(both['time_ratio'].to_numpy()).mean()))
        lo = hi = math.nan
        samples = [boots.get((w, entrant)) for w in both['workload_id']]
        if n_samples and all(s is not None for s in samples):
            with np.errstate(divide='ignore', invalid='ignore'), warnings.catch_warnings():
                warnings.simplefilter('ignore', RuntimeWarning)
                logs = np.log(np.stack(samples))  # (workloads, samples)
                lo, hi = percentile_interval(np.exp(np.nanmean(logs, axis=0)))
        floors = both['noise_floor_cv'].dropna()
        floor = float(floors.mean()) if len(floors) else None
        tie = is_tie(ratio, lo, hi, floor)
        row.update(geomean_ratio=ratio, geomean_ci_low=lo, geomean_ci_high=hi,
                   noise_floor_cv=math.nan if floor is None else floor,
                   vs_reference=_verdict(ratio, tie))
        rows.append(row)
    summary = pd.DataFrame(rows)
    with np.errstate(divide='ignore'):
        summary['geomean_speedup'] = 1.0 / summary['geomean_ratio']
    return summary


def _times(ratio: float, lo: float, hi: float, over: str = '') -> str:
    """'1.18× slower, 95 % CI 1.09–1.31' or '1.25× faster over 3 workloads, 95 % CI 1.10–1.40'."""
    if ratio >= 1.0:
        text, a, b = f'{ratio:.2f}× slower', lo, hi
    else:
        text, a, b = f'{1.0 / ratio:.2f}× faster', inverse(hi), inverse(lo)
    text += over
    if not (math.isnan(lo) or math.isnan(hi)):
        text += f', 95 % CI {a:.2f}–{b:.2f}'
    return text.replace('inf', '∞')


def _plural(n: int, noun: str) -> str:
    return f'{n} {noun}' if n == 1 else f'{n} {noun}s'


def summary_sentence(summary: pd.DataFrame, reference: str, order: List[str]) -> str:
    """One sentence: which entrants are distinguishable from the reference, which tie."""
    by_entrant = summary.set_index('entrant')
    distinct, ties, untested, incomparable = [], [], [], []
    for entrant in order:
        if entrant == reference or entrant not in by_entrant.index:
            continue
        row = by_entrant.loc[entrant]
        verdict = row['vs_reference']
        missed = []
        if row['n_only_reference']:
            missed.append(f'missed {_plural(row["n_only_reference"], "workload")} '
                          f'{reference} reached')
        if row['n_only_entrant']:
            missed.append(f'reached {_plural(row["n_only_entrant"], "workload")} '
                          f'{reference} missed')
        if verdict in ('faster', 'slower'):
            over = f' over {row["n_both_reached"]} workloads' if row['n_both_reached'] > 1 else ''
            parts = [_times(row['geomean_ratio'], row['geomean_ci_low'], row['geomean_ci_high'],
                            over)]
            distinct.append(f'{entrant} ({"; ".join(parts + missed)})')
        elif missed:
            lead = {'tie': ['tie where both reached'], 'untested': ['untested where both reached']}
            distinct.append(f'{entrant} ({"; ".join(lead.get(verdict, []) + missed)})')
        elif verdict == 'tie':
            ties.append(entrant)
        elif verdict == 'untested':
            untested.append(entrant)
        else:
            incomparable.append(entrant)
    if not (distinct or ties or untested or incomparable):
        return f'Only {reference} was scored: there is nothing to compare it with.'
    parts = [f'Distinguishable from {reference}: {", ".join(distinct)}' if distinct
             else f'No entrant is distinguishable from {reference}']
    if ties:
        parts.append(f'ties: {", ".join(ties)}')
    if untested:
        parts.append('not tested (no interval and no noise floor): ' + ', '.join(untested))
    if incomparable:
        parts.append('not comparable (no workload both reached): ' + ', '.join(incomparable))
    return '; '.join(parts) + '.'
