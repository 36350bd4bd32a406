"""Our exact score against AlgoPerf's published grid procedure (scoring.algoperf_reference)."""

import numpy as np
import pandas as pd
import pytest

from scoring.algoperf_reference import (
    algoperf_grid_scores,
    algoperf_workload_times,
    grid_error_bound,
)
from scoring.api import score
from scoring.time_to_target import wide_times
from scoring_fixtures import study_table, trial


def _random_tree(root, seed, n_entrants=4, n_workloads=4, n_studies=3, n_trials=3):
    """Equal eval periods (1 s) for every trial; some trials never reach."""
    rng = np.random.default_rng(seed)
    workloads = [(f'w{i}', None) for i in range(n_workloads)] + [('w0', 'wide')]
    for e in range(n_entrants):
        speed = rng.uniform(1.0, 3.0)
        for workload, variant in workloads:
            for study in range(n_studies):
                for index in range(n_trials):
                    reach = None if rng.random() < 0.25 else float(rng.integers(5, 40) * speed // 1)
                    trial(
                        root,
                        submission=f's{e}',
                        workload=workload,
                        variant=variant,
                        study=study,
                        trial_index=index,
                        reach_at_s=reach,
                        eval_period_s=1.0,
                        n_evals=130,
                    )


def _reference(rep, time_col='seconds', num_points=100):
    times = algoperf_workload_times(rep.trials, rep.evals, time_col)
    entrants = list(rep.ratios.index)
    workloads = sorted(set(rep.trials['workload_id']))
    wide = wide_times(times, entrants, workloads)
    return times, algoperf_grid_scores(
        wide, rep.variants, rep.scored_workloads, rep.r_max, num_points
    )


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('time_col', ['seconds', 'steps'])
def test_exact_score_agrees_with_algoperf_grid_within_grid_error(tmp_path, seed, time_col):
    _random_tree(tmp_path, seed)
    rep = score(tmp_path, time_col=time_col, bootstrap_samples=0)
    times, grid = _reference(rep, time_col)
    # Equal eval periods: earliest evaluation index and shortest time pick the same trial.
    ours = rep.times.set_index(['entrant', 'workload_id'])['time']
    theirs = times.set_index(['entrant', 'workload_id'])['time']
    pd.testing.assert_series_equal(ours.loc[theirs.index], theirs, check_names=False)
    exact = rep.scores.set_index('entrant')['score']
    bound = grid_error_bound(rep.ratios, rep.r_max)
    diff = (grid.loc[exact.index] - exact).abs()
    assert (diff <= bound.loc[exact.index] + 1e-12).all(), pd.DataFrame(
        {'exact': exact, 'grid': grid, 'bound': bound}
    )
    # A finer grid converges on the exact value.
    _, fine = _reference(rep, time_col, num_points=100_001)
    np.testing.assert_allclose(fine.loc[exact.index], exact, atol=1e-4)


def test_exactly_equal_when_every_ratio_is_one_or_infinite(tmp_path):
    study_table(
        tmp_path,
        {
            ('a', 'w1'): [10, 10, 20],
            ('b', 'w1'): [None, None, 30],
            ('a', 'w2'): [None],
            ('b', 'w2'): [40],
            ('a', 'w3'): [30],
            ('b', 'w3'): [30],
        },
    )
    rep = score(tmp_path, bootstrap_samples=0)
    assert set(np.unique(rep.ratios.to_numpy())) <= {1.0, np.inf}
    _, grid = _reference(rep)
    exact = rep.scores.set_index('entrant')['score']
    assert (grid.loc[exact.index] == exact).all()
    assert exact.to_dict() == {'a': pytest.approx(2 / 3), 'b': pytest.approx(2 / 3)}


def test_study_selection_differs_only_with_unequal_eval_periods(tmp_path):
    # One study, two trials: x evaluates every 100 s and meets the target at its first
    # evaluation (index 0, t = 100 s); y evaluates every 10 s and meets it at index 2
    # (t = 30 s). AlgoPerf's earliest-index rule takes x (100 s); we take y (30 s).
    trial(tmp_path, submission='a', trial_index=0, reach_at_s=100, eval_period_s=100)
    trial(tmp_path, submission='a', trial_index=1, reach_at_s=30, eval_period_s=10)
    rep = score(tmp_path, bootstrap_samples=0)
    times, _ = _reference(rep)
    assert rep.times['time'].iloc[0] == 30.0
    assert times['time'].iloc[0] == 100.0


def test_held_out_rule_matches_algoperf_order(tmp_path):
    # a is fastest on w1 but misses its variant; b is 5x slower than a on w1 (beyond
    # r_max before the held-out rule) and c is 3x slower. AlgoPerf cuts at r_max first,
    # then applies the held-out rule, then divides by the new minimum (c's time).
    study_table(
        tmp_path,
        {
            ('a', 'w1'): [10],
            ('a', 'w1-v'): [None],
            ('b', 'w1'): [50],
            ('b', 'w1-v'): [10],
            ('c', 'w1'): [30],
            ('c', 'w1-v'): [10],
        },
    )
    rep = score(tmp_path, bootstrap_samples=0)
    _, grid = _reference(rep)
    exact = rep.scores.set_index('entrant')['score']
    assert exact.to_dict() == {'a': 0.0, 'b': 0.0, 'c': 1.0}
    assert (grid.loc[exact.index] == exact).all()
