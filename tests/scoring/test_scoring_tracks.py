"""A suite may hold federated and centralized workloads: each contract is a track, and an
entrant is scored on its own track's workloads only (a workload of the other track is not
applicable to it, which is not the same as not reaching it)."""

from __future__ import annotations

import math

import pytest

from scoring.api import score
from scoring.synthetic import write_trial


def _trial(root, sub, workload, study, reach_s, kind='centralized', requires=(), offers=()):
    d = root / 'exp' / sub / f'{workload}_jax' / f'study_{study}' / 'trial_0'
    write_trial(d, config={
        'workload': workload, 'variant': None, 'size': 'tiny', 'framework': 'jax',
        'submission': sub, 'ruleset': 'external', 'study': study, 'trial': 0,
        'hparams': {'learning_rate': 0.1}, 'seed': study, 'kind': kind,
        'requires': list(requires), 'offers': list(offers),
        'target': {'metric': 'validation/loss', 'value': 1.0, 'mode': 'min'}},
        evals=[{'step': 10, 'submission_time_s': reach_s, 'wall_time_s': reach_s,
                'eval_time_s': 1.0, 'examples_seen': 10, 'validation/loss': 0.9}],
        result={'status': 'reached', 'time_to_target_s': reach_s, 'steps_to_target': 10,
                'examples_to_target': 10, 'final_step': 10, 'submission_time_s': reach_s,
                'error': None})


@pytest.fixture
def report(tmp_path):
    for s in range(2):
        _trial(tmp_path, 'adamw', 'lm', s, 10.0)
        _trial(tmp_path, 'nadamw', 'lm', s, 20.0)
        _trial(tmp_path, 'adamw', 'ctr', s, 8.0)
        _trial(tmp_path, 'nadamw', 'ctr', s, 4.0)
        _trial(tmp_path, 'fedavg', 'federated_shakespeare', s, 100.0, 'federated')
        _trial(tmp_path, 'fedbuff', 'federated_shakespeare', s, 50.0, 'federated')
    return score(tmp_path, reference='adamw', bootstrap_samples=50)


def test_another_tracks_workload_is_not_applicable_not_unreached(report):
    r = report.ratios
    assert math.isnan(r.loc['adamw', 'federated_shakespeare'])
    assert math.isnan(r.loc['fedbuff', 'lm'])
    # The minimum of a column is taken over its own track's entrants.
    assert r.loc['fedbuff', 'federated_shakespeare'] == 1.0
    assert r.loc['fedavg', 'federated_shakespeare'] == 2.0
    assert r.loc['nadamw', 'lm'] == 2.0 and r.loc['nadamw', 'ctr'] == 1.0


def test_scores_and_counts_are_per_track(report):
    s = report.scores.set_index('entrant')
    # fedbuff is fastest on every workload of its track: B = 1 (not 1/3).
    assert s.loc['fedbuff', 'score'] == pytest.approx(1.0)
    assert s.loc['fedavg', 'score'] == pytest.approx((4 - 2) / 3)
    # adamw: ratios 1 (lm) and 2 (ctr) over its 2 workloads.
    assert s.loc['adamw', 'score'] == pytest.approx(((4 - 1) + (4 - 2)) / (2 * 3))
    assert (s.loc['fedbuff', 'n_workloads_scored'], s.loc['adamw', 'n_workloads_scored']) == (1, 2)
    profile = report.profile[report.profile['entrant'] == 'fedbuff']
    assert profile['rho'].max() == 1.0


def test_the_report_says_there_are_two_tracks_and_does_not_compare_across(report):
    assert any(n.startswith('Two tracks: centralized (ctr, lm); federated '
                            '(federated_shakespeare)') for n in report.notes)
    # Speed-ups per track, each against its own reference: adamw (named) for the
    # centralized one, the top-scoring fedbuff for the federated one.
    summary = report.speedup_summary.set_index('entrant')
    assert summary.loc['fedavg', 'reference'] == 'fedbuff'
    assert summary.loc['nadamw', 'reference'] == 'adamw'
    assert summary.loc['fedavg', 'vs_reference'] == 'slower'
    assert set(report.speedups['workload_id'][report.speedups['reference'] == 'fedbuff']) == {
        'federated_shakespeare'}
    assert report.comparison_sentence.startswith('Centralized track: ')
    assert 'Federated track: Distinguishable from fedbuff: fedavg' in report.comparison_sentence
    assert any(n.startswith('Speed-ups are per track') for n in report.notes)


def test_a_workload_without_what_a_submission_needs_is_not_applicable_to_it(tmp_path):
    """SALT needs lm_slm's teacher: ctr, which has none, is not applicable to it (NaN), while
    an entrant that needs nothing is scored on both; an entrant that never ran a workload
    it could run is still ∞ (AlgoPerf's rule)."""
    teacher = ('teacher_logits', 'teacher_topk')
    for s in range(2):
        _trial(tmp_path, 'nadamw', 'lm_slm', s, 20.0, offers=teacher)
        _trial(tmp_path, 'salt', 'lm_slm', s, 15.0, requires=teacher, offers=teacher)
        _trial(tmp_path, 'nadamw', 'ctr', s, 4.0)
        _trial(tmp_path, 'adamw', 'ctr', s, 5.0)
    r = score(tmp_path, reference='nadamw', bootstrap_samples=50).ratios
    assert math.isnan(r.loc['salt', 'ctr'])
    assert r.loc['salt', 'lm_slm'] == 1.0 and r.loc['nadamw', 'lm_slm'] == pytest.approx(4 / 3)
    assert math.isinf(r.loc['adamw', 'lm_slm'])
