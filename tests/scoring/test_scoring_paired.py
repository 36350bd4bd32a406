"""Comparisons with the reference: paired studies, the seed check, ties and the summary."""

import math

import numpy as np
import pandas as pd
import pytest
from scoring_fixtures import trial

from harness import results
from harness.cli.main import main as timetrial
from harness.errors import UserInputError
from scoring.api import score
from scoring.speedup import is_tie


def _studies(root, submission, times, **kwargs):
    """One self-tuning trial per study, reaching the target at each given second."""
    for study, reach in enumerate(times):
        trial(root, submission=submission, study=study, reach_at_s=reach, eval_period_s=1.0,
              ruleset='self', **kwargs)


# Study s is hard or easy for everyone (its seed's data order and initialization):
# the reference's times spread 5x across studies, nadamw is 10% slower in every one.
REFERENCE = [20, 40, 60, 80, 100]
TEN_PERCENT_SLOWER = [22, 44, 66, 88, 110]


def _row(rep, entrant, workload='mnist'):
    table = rep.speedups
    return table[(table['entrant'] == entrant) & (table['workload_id'] == workload)].iloc[0]


def test_paired_interval_excludes_1_where_the_unpaired_one_does_not(tmp_path):
    _studies(tmp_path, 'adamw', REFERENCE)
    _studies(tmp_path, 'nadamw', TEN_PERCENT_SLOWER)
    paired = score(tmp_path, reference='adamw', bootstrap_samples=500)
    row = _row(paired, 'nadamw')
    assert row['paired'] and row['n_pairs'] == 5
    assert row['time_ratio'] == pytest.approx(1.1)
    # Every resample of the pairs has ratio 1.1: resampled jointly, not one side at a time.
    assert (row['ratio_ci_low'], row['ratio_ci_high']) == pytest.approx((1.1, 1.1))
    assert row['tie'] is False and row['vs_reference'] == 'slower'

    unpaired = score(tmp_path, reference='adamw', bootstrap_samples=500, paired=False)
    row = _row(unpaired, 'nadamw')
    assert not row['paired'] and row['ratio_ci_low'] < 1.0 < row['ratio_ci_high']
    assert row['tie'] is True and row['vs_reference'] == 'tie'
    assert any('--unpaired' in note for note in unpaired.notes)


def test_paired_ratio_is_the_median_of_per_study_ratios(tmp_path):
    _studies(tmp_path, 'adamw', [10, 20, 40])
    _studies(tmp_path, 'nadamw', [12, 30, 40])  # per study 1.2, 1.5, 1.0
    rep = score(tmp_path, reference='adamw', bootstrap_samples=0)
    assert _row(rep, 'nadamw')['time_ratio'] == pytest.approx(1.2)
    assert _row(rep, 'nadamw')['speedup'] == pytest.approx(1 / 1.2)
    # Unpaired: the ratio of the median times, 30 / 20.
    rep = score(tmp_path, reference='adamw', bootstrap_samples=0, paired=False)
    assert _row(rep, 'nadamw')['time_ratio'] == pytest.approx(1.5)


def test_a_study_only_one_of_them_reached_is_infinite_or_zero(tmp_path):
    _studies(tmp_path, 'adamw', [10, 20, 30, None])
    _studies(tmp_path, 'nadamw', [11, 22, None, 40])  # 1.1, 1.1, ∞, 0
    rep = score(tmp_path, reference='adamw', bootstrap_samples=200)
    row = _row(rep, 'nadamw')
    assert row['paired'] and row['time_ratio'] == pytest.approx(1.1)
    assert row['ratio_ci_low'] == 0.0 and math.isinf(row['ratio_ci_high'])


def test_tie_rules():
    assert is_tie(1.2, 0.9, 1.5, None) is True           # the interval holds 1
    assert is_tie(1.2, 1.1, 1.3, None) is False
    assert is_tie(1.2, 1.1, 1.3, 0.25) is True           # within the noise floor
    assert is_tie(0.85, 0.8, 0.9, 0.1) is False          # |0.85 - 1| > 0.1
    assert is_tie(1.05, math.nan, math.nan, 0.1) is True  # no interval, within the floor
    assert is_tie(1.5, math.nan, math.nan, 0.1) is False
    assert is_tie(1.5, math.nan, math.nan, None) is None  # nothing to tell by


def test_mismatched_seeds_are_compared_unpaired_with_a_note(tmp_path):
    _studies(tmp_path, 'adamw', REFERENCE)
    for study, reach in enumerate(TEN_PERCENT_SLOWER):
        trial(tmp_path, submission='nadamw', study=study, reach_at_s=reach, eval_period_s=1.0,
              ruleset='self', seed=7 + study)
    rep = score(tmp_path, reference='adamw', bootstrap_samples=100)
    assert not _row(rep, 'nadamw')['paired']
    note = next(n for n in rep.notes if 'unpaired' in n)
    assert 'study 0 of experiment exp, trial 0: seed 7 for nadamw but 0 for adamw' in note


def test_paired_refuses_mismatched_seeds_and_writes_nothing(tmp_path, capsys):
    _studies(tmp_path / 'r', 'adamw', REFERENCE)
    for study, reach in enumerate(TEN_PERCENT_SLOWER):
        trial(tmp_path / 'r', submission='nadamw', study=study, reach_at_s=reach,
              eval_period_s=1.0, ruleset='self', seed=1000 * study + (study == 2))
    with pytest.raises(UserInputError, match='study 2 of experiment exp, trial 0: seed 2001'):
        score(tmp_path / 'r', reference='adamw', paired=True)
    out = tmp_path / 'out'
    assert timetrial(['score', str(tmp_path / 'r'), '--reference', 'adamw', '--paired',
                      '--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert '--paired' in err and 'study 2 of experiment exp' in err and 'without' in err
    assert not out.exists()


def test_studies_of_two_experiments_pair_by_study_number(tmp_path):
    # A submission scored against a leaderboard's baselines: same suite seed, two experiments.
    _studies(tmp_path, 'adamw', REFERENCE, experiment='leaderboard')
    _studies(tmp_path, 'nadamw', TEN_PERCENT_SLOWER, experiment='submit')
    rep = score(tmp_path, reference='adamw', bootstrap_samples=100, paired=True)
    row = _row(rep, 'nadamw')
    assert row['paired'] and row['n_pairs'] == 5 and row['vs_reference'] == 'slower'


def test_only_one_reached_is_counted_apart_and_distinguishable(tmp_path):
    trial(tmp_path, submission='adamw', workload='mnist', reach_at_s=10)
    trial(tmp_path, submission='adamw', workload='lm', reach_at_s=None)
    trial(tmp_path, submission='sgd', workload='mnist', reach_at_s=None)
    trial(tmp_path, submission='sgd', workload='lm', reach_at_s=None)
    rep = score(tmp_path, reference='adamw', bootstrap_samples=0)
    assert _row(rep, 'sgd')['vs_reference'] == 'only reference reached'
    assert _row(rep, 'sgd', 'lm')['vs_reference'] == 'neither reached'
    assert rep.comparison_sentence == (
        'Distinguishable from adamw: sgd (missed 1 workload adamw reached).')


def test_one_sentence_summary(tmp_path):
    _studies(tmp_path, 'adamw', REFERENCE)
    _studies(tmp_path, 'nadamw', TEN_PERCENT_SLOWER)
    _studies(tmp_path, 'lion', [r * 0.8 for r in REFERENCE])
    _studies(tmp_path, 'sgd', [r + (1 if s % 2 else -1) for s, r in enumerate(REFERENCE)])
    rep = score(tmp_path, reference='adamw', bootstrap_samples=200, out_dir=tmp_path / 'out')
    sentence = rep.comparison_sentence
    assert sentence == ('Distinguishable from adamw: lion (1.25× faster, 95 % CI 1.25–1.25), '
                        'nadamw (1.10× slower, 95 % CI 1.10–1.10); ties: sgd.')
    assert sentence.endswith('.') and '. ' not in sentence  # one sentence
    html = (tmp_path / 'out' / 'report.html').read_text()
    assert f'<p id="comparison" class="verdict">{sentence}</p>' in html
    assert html.index('id="comparison"') < html.index('id="scores"')  # at the top
    scores = pd.read_csv(tmp_path / 'out' / 'scores.csv').set_index('entrant')
    assert scores.loc['sgd', 'vs_reference'] == 'tie'
    assert scores.loc['adamw', 'vs_reference'] == 'reference'
    times = pd.read_csv(tmp_path / 'out' / 'time_to_target.csv').set_index('entrant')
    assert times.loc['sgd', 'vs_reference'] == 'tie' and times.loc['sgd', 'paired']
    assert times.loc['nadamw', 'ratio_to_reference'] == pytest.approx(1.1)
    assert '· tie' in (tmp_path / 'out' / 'time_to_target.md').read_text()


def test_without_interval_or_noise_floor_differences_are_untested(tmp_path):
    _studies(tmp_path, 'adamw', REFERENCE)
    _studies(tmp_path, 'nadamw', TEN_PERCENT_SLOWER)
    rep = score(tmp_path, reference='adamw', bootstrap_samples=0)
    assert _row(rep, 'nadamw')['vs_reference'] == 'untested'
    assert rep.comparison_sentence == (
        'No entrant is distinguishable from adamw; '
        'not tested (no interval and no noise floor): nadamw.')


def test_geometric_mean_over_workloads_with_its_interval(tmp_path):
    for workload, factor in (('mnist', 1.1), ('lm', 1.3)):
        _studies(tmp_path, 'adamw', REFERENCE, workload=workload)
        _studies(tmp_path, 'nadamw', [r * factor for r in REFERENCE], workload=workload)
    rep = score(tmp_path, reference='adamw', bootstrap_samples=100)
    summary = rep.speedup_summary.set_index('entrant').loc['nadamw']
    assert summary['geomean_ratio'] == pytest.approx(np.sqrt(1.1 * 1.3), rel=1e-3)
    assert summary['geomean_ci_low'] == pytest.approx(summary['geomean_ratio'], rel=1e-2)
    assert summary['n_both_reached'] == 2 and summary['vs_reference'] == 'slower'
    assert 'over 2 workloads' in rep.comparison_sentence


def test_results_file_names_and_keys_come_from_harness_results():
    from scoring import trial_files

    result_fields = {f for f in results.TrialResult.__dataclass_fields__}
    assert set(trial_files.RESULT_KEYS) <= result_fields
    assert set(trial_files.META_KEYS) <= set(results.TrialMeta.__dataclass_fields__)
    assert trial_files.REQUIRED_TRIAL_KEYS == results.required_keys(results.TrialIdentity)
    for name in ('time_to_target_resolution_s', 'extra_evals', 'eval_wall_share', 'cpu_share',
                 'load_average', 'timing_disturbed'):
        assert results.TrialResult.__dataclass_fields__[name].default is None
