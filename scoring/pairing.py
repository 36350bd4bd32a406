"""Pair an entrant's studies with the reference's, and check that the pairs share seeds.

Study *s* of every entrant of a suite runs with the same seeds: a trial's seed
derives from (suite seed, workload[-variant], study, trial) only, and the
workload's initialization and data order depend on the seed alone. So the
reference's study *s* and an entrant's study *s* saw the same data order and the
same initial weights, and the ratio of their times measures the algorithms, not
the luck of the draw.

Studies are matched by (experiment, study). When the two entrants ran a workload
in different experiments (a submission scored against a leaderboard's baselines),
each in one experiment, they are matched by study number. Either way every
matched pair must show its seeds: trial *t* of the two studies must have the same
``seed`` in trial.json (the trial numbers both ran are compared; at least one).
Otherwise the comparison is unpaired, and ``Pairs.why_unpaired`` says why.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

#: (experiment, study) -> time of that study
StudyTimes = Dict[Tuple[str, int], float]
#: (experiment, study, trial) -> seed
TrialSeeds = Dict[Tuple[str, int, int], int]


@dataclasses.dataclass
class Pairs:
    """The study times of an entrant and of the reference on one workload."""

    entrant_times: np.ndarray
    reference_times: np.ndarray
    #: True: entrant_times[i] and reference_times[i] are the same study (same seeds).
    paired: bool
    #: Why the studies could not be paired (None when paired).
    why_unpaired: Optional[str] = None


class StudyIndex:
    """Study times and trial seeds per (workload_id, entrant), built once."""

    def __init__(self, studies: pd.DataFrame, trials: pd.DataFrame) -> None:
        # Plain lists: iterating pandas string columns directly is ~10x slower.
        self.times: Dict[Tuple[str, str], StudyTimes] = {}
        for w, e, x, s, t in zip(*(studies[c].tolist() for c in (
                'workload_id', 'entrant', 'experiment', 'study', 'time'))):
            self.times.setdefault((w, e), {})[(x, s)] = t
        self.seeds: Dict[Tuple[str, str], TrialSeeds] = {}
        for w, e, x, s, t, seed in zip(*(trials[c].tolist() for c in (
                'workload_id', 'entrant', 'experiment', 'study', 'trial', 'seed'))):
            self.seeds.setdefault((w, e), {})[(x, s, t)] = seed

    def ran(self, workload_id: str, entrant: str) -> bool:
        return (workload_id, entrant) in self.times

    def pairs(self, workload_id: str, entrant: str, reference: str) -> Pairs:
        mine = self.times[(workload_id, entrant)]
        theirs = self.times[(workload_id, reference)]
        unpaired = np.array(list(mine.values())), np.array(list(theirs.values()))
        keys, why = match_studies(mine, theirs, self.seeds[(workload_id, entrant)],
                                  self.seeds[(workload_id, reference)], entrant, reference)
        if why:
            return Pairs(*unpaired, paired=False, why_unpaired=why)
        return Pairs(np.array([mine[a] for a, _ in keys]),
                     np.array([theirs[b] for _, b in keys]), paired=True)


def match_studies(
    mine: StudyTimes, theirs: StudyTimes, my_seeds: TrialSeeds, their_seeds: TrialSeeds,
    entrant: str, reference: str,
) -> Tuple[List[Tuple[Tuple, Tuple]], Optional[str]]:
    """The matched study keys (entrant's, reference's), or ``([], why)`` when they cannot pair.

    ``mine``/``theirs`` are keyed by (experiment, study) (only the keys are used), so
    the two may come from different workloads: lm_slm's teacher variants run on their
    base workload's seeds.
    """
    keys = _match(mine, theirs)
    if not keys:
        return [], (f'no study of {entrant} matches one of {reference} '
                    f'(studies {_names(mine)} against {_names(theirs)})')
    why = _seed_mismatch(keys, my_seeds, their_seeds, entrant, reference)
    return ([], why) if why else (keys, None)


def _names(times: StudyTimes) -> str:
    return ', '.join(f'{x}/study_{s}' for x, s in sorted(times))


def _match(mine: StudyTimes, theirs: StudyTimes) -> List[Tuple[Tuple, Tuple]]:
    """Matched study keys (entrant's, reference's), sorted."""
    common = sorted(set(mine) & set(theirs))
    if common:
        return [(k, k) for k in common]
    my_exps = {x for x, _ in mine}
    their_exps = {x for x, _ in theirs}
    if len(my_exps) == 1 and len(their_exps) == 1:
        (mx,), (tx,) = my_exps, their_exps
        numbers = sorted({s for _, s in mine} & {s for _, s in theirs})
        return [((mx, s), (tx, s)) for s in numbers]
    return []


def _seed_mismatch(
    keys: List[Tuple[Tuple, Tuple]], mine: TrialSeeds, theirs: TrialSeeds,
    entrant: str, reference: str,
) -> Optional[str]:
    """The first pair of studies whose seeds differ, in words (None: all agree)."""
    for (mx, ms), (tx, ts) in keys:
        my_trials = {t: seed for (x, s, t), seed in mine.items() if (x, s) == (mx, ms)}
        their_trials = {t: seed for (x, s, t), seed in theirs.items() if (x, s) == (tx, ts)}
        where = f'study {ms} of experiment {mx}' + (f' (and of {tx})' if tx != mx else '')
        common = sorted(set(my_trials) & set(their_trials))
        if not common:
            return f'{where}: {entrant} and {reference} have no trial number in common'
        for t in common:
            if my_trials[t] != their_trials[t]:
                return (f'{where}, trial {t}: seed {my_trials[t]} for {entrant} but '
                        f'{their_trials[t]} for {reference}')
    return None
