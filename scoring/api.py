"""The entry point the rest of the project calls: ``score(results_dir, ...) -> ScoreReport``.

``results_dir`` may be a results root holding several experiments (their trials are
scored together: a study is identified by experiment and study number), one
experiment directory, or any directory below one (a submission, a workload); the
trial directories are found by their ``study_<s>/trial_<t>`` shape.

With ``out_dir=None`` nothing is written: the report holds the frames only.
The command line's default output directory is ``RESULTS_DIR/scoring``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from harness import results
from harness.errors import UserInputError
from scoring import ctr as ctr_mod
from scoring import salt as salt_mod
from scoring import teacher as teacher_mod
from scoring.bootstrap import bootstrap
from scoring.load import LoadedResults, load_results
from scoring.profiles import exact_scores, performance_ratios, profile_steps
from scoring.noise_floor import find_noise_floors
from scoring.score_report import ScoreReport
from scoring.speedup import Comparison, compare, resolve_reference, summary_sentence
from scoring.time_to_target import (
    applicability,
    apply_rules,
    check_time_col,
    scored_workloads,
    study_times,
    variant_map,
    wide_times,
    workload_times,
)
from scoring.times_table import times_table


def _check_options(time_col: str, r_max: float, bootstrap_samples: int) -> None:
    check_time_col(time_col)
    if (
        isinstance(r_max, bool)
        or not isinstance(r_max, (int, float))
        or not math.isfinite(r_max)
        or r_max <= 1.0
    ):
        raise UserInputError(f'r_max must be a number above 1 (AlgoPerf uses 4), got {r_max!r}.')
    if (
        isinstance(bootstrap_samples, bool)
        or not isinstance(bootstrap_samples, int)
        or bootstrap_samples < 0
    ):
        raise UserInputError(
            'bootstrap_samples must be a whole number >= 0 (0 turns the '
            f'intervals off), got {bootstrap_samples!r}.'
        )


def _check_targets(trials: pd.DataFrame) -> None:
    """All trials of one workload (name, variant, size) must share one target."""
    keys = ['workload', 'variant', 'size']
    target = ['target_metric', 'target_value', 'target_mode']
    frame = trials[keys + target + ['trial_dir']].fillna({'variant': ''})
    errors = []
    for key, group in frame.groupby(keys, sort=True):
        distinct = group.drop_duplicates(target)
        if len(distinct) > 1:
            name = f'{key[0]}-{key[1]}' if key[1] else key[0]
            lines = []
            for _, row in distinct.iterrows():
                count = (
                    (group['target_metric'] == row['target_metric'])
                    & (group['target_value'] == row['target_value'])
                    & (group['target_mode'] == row['target_mode'])
                ).sum()
                lines.append(
                    f'    {row["target_metric"]} {row["target_mode"]} '
                    f'{row["target_value"]!r}: {count} trials, e.g. '
                    f'{row["trial_dir"]}/{results.TRIAL_JSON}'
                )
            errors.append(
                f'  workload {name} (size {key[2]}) has {len(distinct)} '
                'different targets:\n' + '\n'.join(lines)
            )
    if errors:
        raise UserInputError(
            'Trials of one workload must share one target to be compared:\n'
            + '\n'.join(errors)
            + '\nScore the runs of each target separately (point '
            'RESULTS_DIR at one experiment) or rerun with the current targets.'
        )


def _check_hardware(trials: pd.DataFrame, allow_mixed: bool) -> List[str]:
    known = trials['hardware_class'].dropna()
    classes = sorted(set(known))
    if len(classes) > 1 and not allow_mixed:
        lines = []
        for cls in classes:
            rows = trials[trials['hardware_class'] == cls]
            lines.append(f'  {cls}: {len(rows)} trials, e.g. {rows["trial_dir"].iloc[0]}')
        raise UserInputError(
            f'Found trials from {len(classes)} hardware classes:\n'
            + '\n'.join(lines)
            + '\nTimes from different machines are not comparable. Score one class at a '
            'time (point RESULTS_DIR at the runs of one machine) or pass '
            '--allow-mixed-hardware (allow_mixed_hardware=True) to compare anyway.'
        )
    return classes


def _notes(
    trials: pd.DataFrame,
    studies: pd.DataFrame,
    scored: List[str],
    variants: Dict[str, str],
    classes: List[str],
) -> List[str]:
    notes = []
    orphans = sorted(set(trials.loc[trials['variant'].notna(), 'workload_id']) - set(variants))
    if orphans:
        notes.append(
            'Variants without their base workload in the data are scored as '
            f'workloads of their own: {", ".join(orphans)}.'
        )
    kinds = trials.groupby('kind')['workload_id'].agg(lambda w: sorted(set(w)))
    if len(kinds) > 1:
        notes.append(
            'Two tracks: ' + '; '.join(f'{kind} ({", ".join(wls)})' for kind, wls in kinds.items())
            + '. A submission trains the workloads of its own contract, so each entrant\'s '
            'ratios, profile and score count its own track\'s workloads; entrants of '
            'different tracks are not compared.'
        )
    rulesets = sorted(set(trials['ruleset']))
    if len(rulesets) > 1:
        notes.append(
            'Both rulesets are present (external and self tuning); AlgoPerf ranks '
            'them on separate leaderboards. Each entrant is timed under its own.'
        )
    multi = studies[(studies['ruleset'] == 'self') & (studies['n_trials'] > 1)]
    if len(multi):
        notes.append(
            f'{len(multi)} self-tuning studies hold more than one trial; their '
            'fastest trial was used.'
        )
    if len(classes) > 1:
        notes.append(
            f'Mixed hardware allowed by the user: {", ".join(classes)}. Times '
            'from different machines are compared as if equal.'
        )
    unknown = int(trials['hardware_class'].isna().sum())
    if unknown:
        notes.append(
            f'{unknown} trials have no hardware class (meta.json missing or '
            'incomplete); they are scored with the rest.'
        )
    return notes


def _disturbed_note(trials: pd.DataFrame) -> List[str]:
    disturbed = trials[trials['timing_disturbed'].eq(True)]
    if not len(disturbed):
        return []
    return [
        f'{len(disturbed)} trials were flagged as disturbed by other work on the machine '
        '(timing_disturbed in result.json; marked ⚠ in the trials table): their times may be '
        f'too long. E.g. {disturbed["trial_dir"].iloc[0]}.'
    ]


def compute(
    loaded: LoadedResults,
    reference: Optional[str] = None,
    time_col: str = 'seconds',
    r_max: float = 4.0,
    allow_mixed_hardware: bool = False,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    paired: Optional[bool] = None,
    noise_floor: Optional[Path] = None,
) -> ScoreReport:
    """Score already-loaded results (``score`` = ``load_results`` + this + outputs).

    ``paired``: None pairs each comparison with the reference by study where the
    seeds allow; True refuses (UserInputError) where they do not; False never pairs.
    ``noise_floor``: a noise-floor file (default: this machine's, else the shipped one).
    """
    _check_options(time_col, r_max, bootstrap_samples)
    r_max = float(r_max)
    trials = loaded.trials
    root = loaded.root
    if trials.empty:
        shown = '\n'.join(f'  {p}' for p in loaded.problems[:20])
        raise UserInputError(
            f'No readable trials under {str(root)!r}; every trial directory was skipped:\n{shown}'
        )
    if not trials['finished'].any():
        raise UserInputError(
            f'No finished trials under {str(root)!r}: {len(trials)} trials found, none has a '
            'result.json yet. Wait for the runs to end (`timetrial status EXPERIMENT_DIR` '
            'shows where they stand), then score again.'
        )
    _check_targets(trials)
    classes = _check_hardware(trials, allow_mixed_hardware)
    reference = resolve_reference(reference, trials)
    floors = find_noise_floors(classes, noise_floor)

    entrants = sorted(set(trials['entrant']))
    workloads = sorted(set(trials['workload_id']))
    variants = variant_map(trials)
    scored = scored_workloads(trials)
    studies = study_times(trials, time_col)
    times = workload_times(studies)
    applicable = applicability(trials, entrants, workloads)
    wide = wide_times(times, entrants, workloads, applicable)
    ruled = apply_rules(wide, variants, r_max)[scored]
    ratios = performance_ratios(ruled, r_max)
    score = exact_scores(ratios, r_max)

    score_ci = time_ci = None
    if bootstrap_samples:
        score_ci, time_ci = bootstrap(
            studies, entrants, workloads, variants, scored, r_max, bootstrap_samples, seed,
            applicable=applicable,
        )
    scores = pd.DataFrame({'entrant': entrants, 'score': score.reindex(entrants).to_numpy()})
    if score_ci is not None:
        scores = scores.merge(score_ci, on='entrant')
    else:
        scores['score_ci_low'] = scores['score_ci_high'] = np.nan
    per_entrant = trials.groupby('entrant').agg(
        n_trials=('trial_id', 'size'),
        n_trials_finished=('finished', 'sum'),
        n_trials_reached=('reached', 'sum'),
    )
    scores = scores.join(per_entrant, on='entrant')
    # An entrant's workloads are those of its track (its contract's).
    scores['n_workloads_scored'] = [int(wide.loc[e, scored].notna().sum())
                                    for e in scores['entrant']]
    scores['n_workloads_reached'] = [
        int(np.isfinite(wide.loc[e, scored]).sum()) for e in scores['entrant']
    ]
    scores['n_workloads_counted'] = [
        int(np.isfinite(ratios.loc[e]).sum()) for e in scores['entrant']
    ]
    scores['n_studies'] = [int((studies['entrant'] == e).sum()) for e in scores['entrant']]
    scores['rank'] = scores['score'].rank(ascending=False, method='min').astype(np.int64)
    scores = scores.sort_values(['rank', 'entrant'], kind='stable').reset_index(drop=True)
    scores.insert(0, 'rank', scores.pop('rank'))

    # Per track (contract), against its reference: the one named if it is of that track,
    # else the track's top-scoring entrant (said in the report).
    versus, track_references = _compare_by_track(
        times, studies, trials, list(scores['entrant']), reference, floors, time_col, paired,
        bootstrap_samples, seed)
    chosen_reference = ', '.join(track_references.values())
    summary = versus.summary.rename(columns={
        'geomean_ratio': 'time_ratio_to_reference',
        'geomean_ci_low': 'time_ratio_ci_low',
        'geomean_ci_high': 'time_ratio_ci_high',
    })[['entrant', 'vs_reference', 'time_ratio_to_reference', 'time_ratio_ci_low',
        'time_ratio_ci_high']]
    scores = scores.merge(summary, on='entrant', how='left')
    table = times_table(times, entrants, workloads, trials, variants, scored, r_max, ratios,
                        time_ci, time_col, versus.table)
    problems = list(loaded.problems)
    notes = _notes(trials, studies, scored, variants, classes) + _disturbed_note(trials)
    if len(track_references) > 1:
        notes.append('Speed-ups are per track, each against its own reference: '
                     + '; '.join(f'{kind}: {ref}' for kind, ref in track_references.items())
                     + ('' if reference is None else f' (--reference {reference} where it '
                        'belongs, else the track\'s top-scoring entrant)') + '.')
    elif reference is None:
        notes.append(f'No --reference given: speed-ups are against the top-scoring entrant, '
                     f'{chosen_reference}.')
    if paired is False:
        notes.append(f'Pairing turned off (--unpaired): comparisons with {chosen_reference} '
                     'use the ratio of median times, each entrant\'s studies redrawn on their '
                     'own.')
    elif versus.unpaired:
        notes.append(
            f'{len(versus.unpaired)} comparisons with {chosen_reference} are unpaired (ratio of '
            f'median times, studies redrawn on their own): {"; ".join(versus.unpaired[:3])}'
            + (' …' if len(versus.unpaired) > 3 else '.'))
    return ScoreReport(
        results_dir=root,
        out_dir=None,
        time_col=time_col,
        r_max=r_max,
        trials=trials,
        evals=loaded.evals,
        studies=studies,
        times=table,
        ratios=ratios,
        scores=scores,
        profile=profile_steps(ratios, r_max),
        reference=chosen_reference,
        speedups=versus.table,
        speedup_summary=versus.summary,
        comparison_sentence=' '.join(
            (f'{kind.capitalize()} track: ' if len(track_references) > 1 else '')
            + summary_sentence(versus.summary[versus.summary['reference'] == ref], ref,
                               list(scores['entrant']))
            for kind, ref in track_references.items()),
        noise_floor_source=floors.source,
        ctr=ctr_mod.ctr_table(trials, loaded.evals, studies, problems),
        teacher=teacher_mod.teacher_table(trials, studies),
        salt=salt_mod.salt_table(trials, loaded.evals, floors, bootstrap_samples, seed),
        hardware_classes=classes,
        hardware=loaded.hardware,
        experiments=sorted(set(trials['experiment'])),
        scored_workloads=scored,
        variants=variants,
        problems=problems,
        notes=notes,
    )


def _compare_by_track(times, studies, trials, order, reference, floors, time_col, paired,
                      bootstrap_samples, seed):
    """``compare`` within each track (entrants and workloads of one contract): a
    comparison across contracts means nothing. Returns the tables (with a ``reference``
    column) and {track: its reference}."""
    tables, summaries, unpaired, references = [], [], [], {}
    for kind in sorted(set(trials['kind'])):
        mine = trials[trials['kind'] == kind]
        entrants = [e for e in order if e in set(mine['entrant'])]
        ref = reference if reference in entrants else entrants[0]
        references[kind] = ref
        wids = set(mine['workload_id'])
        in_track = times['entrant'].isin(entrants) & times['workload_id'].isin(wids)
        in_studies = studies['entrant'].isin(entrants) & studies['workload_id'].isin(wids)
        one = compare(times[in_track], studies[in_studies], mine, ref, floors, time_col,
                      paired, bootstrap_samples, seed)
        tables.append(one.table.assign(reference=ref))
        summaries.append(one.summary.assign(reference=ref))
        unpaired += one.unpaired
    if reference is not None and reference not in references.values():
        raise UserInputError(f'--reference {reference} is not an entrant of any track.')
    table = pd.concat(tables, ignore_index=True)
    summary = pd.concat(summaries, ignore_index=True)
    return Comparison(table=table, summary=summary, unpaired=unpaired), references


def _import_outputs() -> None:
    import scoring.outputs  # noqa: F401  (matplotlib)


def score(
    results_dir,
    out_dir=None,
    reference: Optional[str] = None,
    time_col: str = 'seconds',
    r_max: float = 4.0,
    allow_mixed_hardware: bool = False,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    paired: Optional[bool] = None,
    noise_floor: Optional[Path] = None,
    workers: Optional[int] = None,
) -> ScoreReport:
    """Load, score and (when ``out_dir`` is given) write every output; see the module doc.

    ``workers``: processes that read trials and draw figures (default: every usable
    core on large trees); the outputs are the same with any number.
    Raises UserInputError for bad input: a missing or empty directory, no finished
    trials, one workload with several targets, mixed hardware classes (unless
    allowed), an unknown reference or time column, r_max <= 1, studies that cannot
    be paired under ``paired=True``, a noise-floor file that is not valid.
    Nothing is written then.
    """
    _check_options(time_col, r_max, bootstrap_samples)
    started = time.perf_counter()
    # matplotlib takes ~0.3 s to import: import it while the workers read the trials.
    loaded = load_results(Path(results_dir), workers=workers,
                          while_waiting=None if out_dir is None else _import_outputs)
    loaded_at = time.perf_counter()
    report = compute(
        loaded,
        reference=reference,
        time_col=time_col,
        r_max=r_max,
        allow_mixed_hardware=allow_mixed_hardware,
        bootstrap_samples=bootstrap_samples,
        seed=seed,
        paired=paired,
        noise_floor=noise_floor,
    )
    scored_at = time.perf_counter()
    report.timings_s = {'load': loaded_at - started, 'score': scored_at - loaded_at}
    if out_dir is not None:
        from scoring.outputs import write_outputs  # matplotlib only when writing (above)

        write_outputs(report, Path(out_dir), workers=workers)
        report.timings_s['outputs'] = time.perf_counter() - scored_at
    return report
