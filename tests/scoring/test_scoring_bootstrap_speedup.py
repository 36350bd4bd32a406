"""Bootstrap intervals over studies and the speed-up table against a reference."""

import numpy as np
import pytest
from scoring_fixtures import study_table, trial

from harness.errors import UserInputError
from scoring.api import score


def _tree(root):
    study_table(
        root,
        {
            ('a', 'w1'): [10, 20, 30, 40, 50],
            ('b', 'w1'): [30, 30, 40, 60, 90],
            ('a', 'w2'): [20, 20, 20, 30, 90],
            ('b', 'w2'): [10, 20, None, 20, 30],
            ('c', 'w1'): [40],
        },
    )


def test_bootstrap_is_seeded_and_brackets_the_estimates(tmp_path):
    _tree(tmp_path)
    one = score(tmp_path, bootstrap_samples=300, seed=7)
    two = score(tmp_path, bootstrap_samples=300, seed=7)
    other = score(tmp_path, bootstrap_samples=300, seed=8)
    cols = ['score_ci_low', 'score_ci_high']
    assert one.scores[cols].equals(two.scores[cols])
    assert not one.scores[cols].equals(other.scores[cols])
    s = one.scores
    assert (s['score_ci_low'] <= s['score']).all() and (s['score'] <= s['score_ci_high']).all()
    assert (s['score_ci_low'] >= 0).all() and (s['score_ci_high'] <= 1).all()
    t = one.times[one.times['note'] != 'not run']
    assert (t['time_ci_low'] <= t['time']).all() and (t['time'] <= t['time_ci_high']).all()
    by = t.set_index(['entrant', 'workload_id'])
    # One study: nothing to resample, a zero-width interval.
    assert by.loc[('c', 'w1'), 'time_ci_low'] == by.loc[('c', 'w1'), 'time_ci_high'] == 40
    # Five spread-out studies: a real interval, inside the observed range.
    assert 10 <= by.loc[('a', 'w1'), 'time_ci_low'] < by.loc[('a', 'w1'), 'time_ci_high'] <= 50


def test_bootstrap_off_leaves_intervals_empty(tmp_path):
    _tree(tmp_path)
    rep = score(tmp_path, bootstrap_samples=0)
    assert rep.scores['score_ci_low'].isna().all()
    assert rep.times['time_ci_low'].isna().all()


def test_speedups_handle_infinity_and_the_geometric_mean(tmp_path):
    study_table(
        tmp_path,
        {
            ('ref', 'w1'): [20],
            ('ref', 'w2'): [40],
            ('ref', 'w3'): [None],
            ('ref', 'w4'): [10],
            ('x', 'w1'): [10],
            ('x', 'w2'): [10],
            ('x', 'w3'): [10],
            ('x', 'w4'): [None],
            ('y', 'w1'): [40],
        },
    )
    rep = score(tmp_path, reference='ref', bootstrap_samples=0)
    assert rep.reference == 'ref'
    s = rep.speedups.set_index(['entrant', 'workload_id'])['speedup']
    assert s[('x', 'w1')] == 2.0 and s[('x', 'w2')] == 4.0
    assert np.isinf(s[('x', 'w3')])  # only x reached
    assert s[('x', 'w4')] == 0.0  # only the reference reached
    assert np.isnan(s[('y', 'w2')])  # y never ran w2
    summary = rep.speedup_summary.set_index('entrant')
    assert summary.loc['x', 'geomean_speedup'] == pytest.approx(np.sqrt(8.0))
    assert summary.loc['x', ['n_both_reached', 'n_only_entrant', 'n_only_reference']].tolist() == [
        2,
        1,
        1,
    ]
    assert summary.loc['ref', 'geomean_speedup'] == 1.0


def test_default_reference_is_the_top_scorer(tmp_path):
    study_table(tmp_path, {('a', 'w1'): [20], ('b', 'w1'): [10]})
    rep = score(tmp_path, bootstrap_samples=0)
    assert rep.reference == 'b'
    assert any('top-scoring entrant, b' in n for n in rep.notes)


def test_unknown_reference_lists_the_known_ones(tmp_path):
    study_table(tmp_path, {('adamw', 'w1'): [20], ('sgd', 'w1'): [10]})
    with pytest.raises(
        UserInputError,
        match=r"Unknown reference submission 'adamx'\. "
        r"Did you mean: adamw\? .*adamw, sgd",
    ):
        score(tmp_path, reference='adamx', bootstrap_samples=0)


def test_reference_by_submission_name_across_frameworks(tmp_path):
    trial(tmp_path, submission='adamw', framework='jax', reach_at_s=10)
    trial(tmp_path, submission='adamw', framework='pytorch', reach_at_s=20)
    with pytest.raises(UserInputError, match='adamw@jax, adamw@pytorch'):
        score(tmp_path, reference='adamw', bootstrap_samples=0)
    rep = score(tmp_path, reference='adamw@pytorch', bootstrap_samples=0)
    s = rep.speedups.set_index('entrant')['speedup']
    assert s['adamw@jax'] == 2.0
