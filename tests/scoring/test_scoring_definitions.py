"""AlgoPerf's definitions on hand-computed fixtures (docs/architecture.md, "Scoring").

With r_max = 4 an entrant's share of a workload is (4 - r) / 3 for r in [1, 4]
and B_s is the mean of the shares over the scored workloads.
"""

import math

import numpy as np
import pytest

from scoring.api import score
from scoring_fixtures import study_table, trial


def _score(root, **kwargs):
    kwargs.setdefault('bootstrap_samples', 0)
    return score(root, **kwargs)


def _b(rep):
    return dict(zip(rep.scores['entrant'], rep.scores['score']))


def _time(rep, entrant, workload, col='time'):
    t = rep.times
    return t.loc[(t['entrant'] == entrant) & (t['workload_id'] == workload), col].iloc[0]


def test_ties_give_ratio_one_to_both(tmp_path):
    study_table(
        tmp_path, {('a', 'w1'): [10], ('b', 'w1'): [10], ('a', 'w2'): [20], ('b', 'w2'): [20]}
    )
    rep = _score(tmp_path)
    assert _b(rep) == {'a': 1.0, 'b': 1.0}
    assert (rep.ratios.to_numpy() == 1.0).all()
    assert list(rep.scores['rank']) == [1, 1]


def test_workload_no_one_reaches_counts_in_the_denominator(tmp_path):
    study_table(
        tmp_path, {('a', 'w1'): [10], ('b', 'w1'): [20], ('a', 'w2'): [None], ('b', 'w2'): [None]}
    )
    rep = _score(tmp_path)
    assert rep.scored_workloads == ['w1', 'w2']
    assert _b(rep)['a'] == pytest.approx(0.5)  # (3/3 + 0) / 2
    assert _b(rep)['b'] == pytest.approx(1 / 3)  # ((4-2)/3 + 0) / 2
    assert np.isinf(rep.ratios.loc['a', 'w2']) and np.isinf(rep.ratios.loc['b', 'w2'])
    assert _time(rep, 'a', 'w2', 'note') == 'not reached'


def test_single_submission_scores_the_fraction_reached(tmp_path):
    study_table(tmp_path, {('a', 'w1'): [10], ('a', 'w2'): [None], ('a', 'w3'): [30]})
    rep = _score(tmp_path)
    assert _b(rep) == {'a': pytest.approx(2 / 3)}
    assert rep.scores['n_workloads_reached'].iloc[0] == 2


def test_submission_missing_a_workload_gets_infinity_there(tmp_path):
    study_table(tmp_path, {('a', 'w1'): [10], ('a', 'w2'): [10], ('b', 'w1'): [20]})
    rep = _score(tmp_path)
    assert _b(rep)['a'] == 1.0
    assert _b(rep)['b'] == pytest.approx(1 / 3)  # ((4-2)/3 + 0) / 2
    assert _time(rep, 'b', 'w2', 'note') == 'not run'
    assert _time(rep, 'b', 'w2', 'n_studies') == 0


def test_missed_variant_makes_the_base_workload_infinite(tmp_path):
    study_table(
        tmp_path,
        {('a', 'w1'): [10], ('a', 'w1-wide'): [None], ('b', 'w1'): [20], ('b', 'w1-wide'): [20]},
    )
    rep = _score(tmp_path)
    assert rep.scored_workloads == ['w1']  # variants are not scored themselves
    assert rep.variants == {'w1-wide': 'w1'}
    # a's w1 time (10) becomes ∞, so b is now the fastest on w1.
    assert _b(rep) == {'a': 0.0, 'b': 1.0}
    assert _time(rep, 'a', 'w1', 'note') == 'missed variant'
    assert _time(rep, 'a', 'w1', 'time') == 10.0  # the raw time stays visible


def test_variant_beyond_r_max_also_counts_as_missed(tmp_path):
    # AlgoPerf applies the 4x cut-off to the variant first: b is 5x slower there.
    study_table(
        tmp_path,
        {('a', 'w1'): [10], ('a', 'w1-wide'): [10], ('b', 'w1'): [20], ('b', 'w1-wide'): [50]},
    )
    rep = _score(tmp_path)
    assert _b(rep) == {'a': 1.0, 'b': 0.0}
    assert _time(rep, 'b', 'w1-wide', 'note') == 'over r_max'


def test_variant_without_its_base_is_scored_on_its_own(tmp_path):
    study_table(tmp_path, {('a', 'w1-wide'): [10], ('b', 'w1-wide'): [20]})
    rep = _score(tmp_path)
    assert rep.scored_workloads == ['w1-wide']
    assert any('scored as workloads of their own' in n for n in rep.notes)
    assert _b(rep)['b'] == pytest.approx(2 / 3)


def test_ratios_above_r_max_become_infinite(tmp_path):
    study_table(
        tmp_path,
        {('a', 'w1'): [10], ('b', 'w1'): [25], ('c', 'w1'): [40], ('d', 'w1'): [50]},
        eval_period_s=5.0,
    )
    rep = _score(tmp_path)
    assert rep.ratios.loc['b', 'w1'] == 2.5
    assert rep.ratios.loc['c', 'w1'] == 4.0  # exactly r_max: kept, worth 0
    assert np.isinf(rep.ratios.loc['d', 'w1'])
    assert _b(rep) == {'a': 1.0, 'b': pytest.approx(0.5), 'c': 0.0, 'd': 0.0}
    assert _time(rep, 'd', 'w1', 'note') == 'over r_max'
    steps = rep.profile[rep.profile['entrant'] == 'b']
    assert list(zip(steps['tau'], steps['rho'])) == [(1.0, 0.0), (2.5, 1.0), (4.0, 1.0)]
    # r_max is a parameter: with 8, d's ratio 5 counts (8 - 5) / 7.
    assert _b(_score(tmp_path, r_max=8.0))['d'] == pytest.approx(3 / 7)


def test_external_tuning_is_median_over_studies_of_min_over_trials(tmp_path):
    a_studies = [[30, 10, None], [20, 40], [None, None]]  # mins 10, 20, ∞ -> median 20
    for study, times in enumerate(a_studies):
        for index, reach in enumerate(times):
            trial(
                tmp_path,
                submission='a',
                workload='w1',
                study=study,
                trial_index=index,
                reach_at_s=reach,
            )
    for study in range(3):
        trial(tmp_path, submission='b', workload='w1', study=study, reach_at_s=40)
    rep = _score(tmp_path)
    assert _time(rep, 'a', 'w1') == 20.0
    assert _time(rep, 'a', 'w1', 'n_studies') == 3
    assert _time(rep, 'a', 'w1', 'n_studies_reached') == 2
    assert _time(rep, 'a', 'w1', 'n_trials') == 7
    assert _time(rep, 'b', 'w1') == 40.0
    assert _b(rep) == {'a': 1.0, 'b': pytest.approx(2 / 3)}
    chosen = rep.studies[(rep.studies['entrant'] == 'a') & (rep.studies['study'] == 0)]
    chosen_trial = rep.trials.set_index('trial_id').loc[chosen['selected_trial_id'].iloc[0]]
    assert chosen_trial['trial'] == 1


def test_self_tuning_is_median_over_studies(tmp_path):
    study_table(tmp_path, {('a', 'w1'): [10, 30, 20, None, 50]})
    rep = _score(tmp_path)
    assert _time(rep, 'a', 'w1') == 30.0  # median of 10, 20, 30, 50, ∞


def test_even_number_of_studies_takes_the_middle_mean(tmp_path):
    study_table(tmp_path, {('a', 'w1'): [10, 20], ('b', 'w1'): [10, None]})
    rep = _score(tmp_path)
    assert _time(rep, 'a', 'w1') == 15.0
    assert math.isinf(_time(rep, 'b', 'w1'))


@pytest.mark.parametrize('status', ['failed', 'diverged'])
def test_failed_and_diverged_trials_never_reach(tmp_path, status):
    trial(tmp_path, submission='a', reach_at_s=10, status=status)
    trial(tmp_path, submission='b', reach_at_s=20)
    rep = _score(tmp_path)
    assert not rep.trials.set_index('submission').loc['a', 'reached']
    assert _b(rep) == {'a': 0.0, 'b': 1.0}


def test_unfinished_trials_never_reach_but_are_counted(tmp_path):
    trial(tmp_path, submission='a', study=0, reach_at_s=10, finished=False)
    trial(tmp_path, submission='a', study=1, reach_at_s=10)
    trial(tmp_path, submission='a', study=2, reach_at_s=10)
    rep = _score(tmp_path)
    assert rep.trials['status'].tolist().count('unfinished') == 1
    assert _time(rep, 'a', 'mnist') == 10.0  # median of ∞, 10, 10
    assert _time(rep, 'a', 'mnist', 'n_trials_finished') == 2


@pytest.mark.parametrize('time_col,scale', [('seconds', 1), ('steps', 10), ('examples', 320)])
def test_time_columns(tmp_path, time_col, scale):
    study_table(tmp_path, {('a', 'w1'): [10], ('b', 'w1'): [20]})
    rep = _score(tmp_path, time_col=time_col)
    assert _time(rep, 'a', 'w1') == 10 * scale
    assert _time(rep, 'b', 'w1') == 20 * scale
    assert _b(rep)['b'] == pytest.approx(2 / 3)


def test_counts_come_from_the_data(tmp_path):
    study_table(
        tmp_path,
        {
            (s, w): [10, 20, 30, 40, 50, 60, 70]
            for s in ('a', 'b')
            for w in ('w1', 'w2', 'w3', 'w4', 'w5')
        },
    )
    rep = _score(tmp_path)
    assert len(rep.scored_workloads) == 5
    assert set(rep.scores['n_studies']) == {35}
    assert set(rep.times['n_studies']) == {7}
