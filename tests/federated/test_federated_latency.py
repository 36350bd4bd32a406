"""Latency models: validation (every problem at once), seeding, classes, tails."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.errors import UserInputError
from harness.trial.federated import latency
from workloads.federated_shakespeare.workload import LATENCY_CONFIGS


def test_lognormal_median_and_spread():
    lat = latency.from_config({'kind': 'lognormal', 'median_s': 100.0, 'sigma': 0.5}, 50, seed=1)
    samples = np.array([lat.latency_s(c, d) for c in range(50) for d in range(40)])
    assert abs(np.median(samples) / 100.0 - 1) < 0.08
    assert abs(np.std(np.log(samples)) - 0.5) < 0.05


def test_same_seed_same_latencies_other_seed_others():
    cfg = LATENCY_CONFIGS['heavy_stragglers']
    a = latency.from_config(cfg, 30, seed=7)
    b = latency.from_config(cfg, 30, seed=7)
    c = latency.from_config(cfg, 30, seed=8)
    grid = [(client, d) for client in range(30) for d in range(5)]
    assert [a.latency_s(*k) for k in grid] == [b.latency_s(*k) for k in grid]
    assert [a.latency_s(*k) for k in grid] != [c.latency_s(*k) for k in grid]
    # The order in which latencies are asked for does not matter (no RNG state).
    assert a.latency_s(3, 2) == b.latency_s(3, 2)


def test_speed_classes_are_persistent_exact_and_shared_across_variants():
    groups = {}
    for variant in (None, 'no_stragglers', 'heavy_stragglers'):
        lat = latency.from_config(LATENCY_CONFIGS[variant], 474, seed=variant is None)
        groups[variant] = lat.groups()
    stragglers = groups['heavy_stragglers']['stragglers']
    assert stragglers.sum() == round(0.2 * 474)
    assert not (stragglers & groups['heavy_stragglers']['fast']).any()
    for g in groups.values():  # the same clients in every variant and trial seed
        assert np.array_equal(g['stragglers'], stragglers)


def test_heavy_stragglers_report_hours_to_days_later():
    lat = latency.from_config(LATENCY_CONFIGS['heavy_stragglers'], 200, seed=0)
    slow = lat.groups()['stragglers']
    times = {
        flag: np.array(
            [lat.latency_s(c, d) for c in np.flatnonzero(slow == flag) for d in range(20)]
        )
        for flag in (True, False)
    }
    assert np.median(times[False]) < 300  # minutes
    assert np.median(times[True]) > 3 * 3600  # hours
    assert (times[True] > 86400).mean() > 0.05  # a tail of days
    lat0 = latency.from_config(LATENCY_CONFIGS['no_stragglers'], 200, seed=0)
    assert max(lat0.latency_s(c, 0) for c in range(200)) < 3600


def test_mixture_tail_probability():
    cfg = {
        'kind': 'mixture',
        'tail_prob': 0.25,
        'base': {'median_s': 10, 'sigma': 0.1},
        'tail': {'median_s': 10000, 'sigma': 0.1},
    }
    lat = latency.from_config(cfg, 10, seed=0)
    late = np.mean([lat.latency_s(c, d) > 1000 for c in range(10) for d in range(400)])
    assert abs(late - 0.25) < 0.03


def test_client_sigma_gives_persistent_per_client_speed():
    cfg = {'kind': 'lognormal', 'median_s': 60, 'sigma': 0.0, 'client_sigma': 1.0}
    lat = latency.from_config(cfg, 5, seed=0)
    assert lat.latency_s(2, 0) == lat.latency_s(2, 9)  # sigma 0: only the client's factor
    assert len({round(lat.latency_s(c, 0), 6) for c in range(5)}) == 5


def test_out_of_range_configuration_reports_every_problem():
    cfg = {
        'kind': 'speed_classes',
        'population_seed': -1,
        'classes': {
            'fast': {'fraction': 0.7, 'kind': 'lognormal', 'median_s': -5, 'sigma': 0.5},
            'stragglers': {
                'fraction': 0.2,
                'kind': 'mixture',
                'tail_prob': 1.5,
                'base': {'median_s': 60, 'sigma': 9},
                'tail': {'median_s': 60},
            },
        },
    }
    with pytest.raises(UserInputError) as err:
        latency.from_config(cfg, 10, seed=0)
    message = str(err.value)
    for expected in (
        'fast.median_s = -5 is out of range (0.0',
        'tail_prob = 1.5 is out of range [0.0, 1.0]',
        'base.sigma = 9 is out of range [0.0, 5.0]',
        "tail: missing key 'sigma'",
        'the fractions sum to 0.9; they must sum to 1',
        'population_seed: expected an integer >= 0',
    ):
        assert expected in message, message
    assert message.startswith('The latency configuration has 6 problem(s)')


@pytest.mark.parametrize(
    'cfg,expected',
    [
        ({'kind': 'gamma'}, "unknown latency kind 'gamma'; known kinds: device, lognormal, mixture"),
        (
            {'kind': 'lognormal', 'median_s': 1, 'sigma': 1, 'mean_s': 3},
            "unknown key(s) ['mean_s']; valid keys: median_s, sigma, client_sigma",
        ),
        ({'kind': 'lognormal', 'median_s': 'fast', 'sigma': 1}, "expected a number, got 'fast'"),
        (
            {'kind': 'lognormal', 'median_s': 2e7, 'sigma': 1},
            'median_s = 20000000.0 is out of range',
        ),
        ('lognormal', 'expected a mapping with a kind, got str'),
    ],
)
def test_single_problems(cfg, expected):
    with pytest.raises(UserInputError, match=None) as err:
        latency.from_config(cfg, 10, seed=0)
    assert expected in str(err.value)


def test_planted_latencies_and_groups():
    lat = latency.from_config(
        {'kind': 'planted', 'by_client': [1, 2, 3], 'groups': {'stragglers': [2]}}, 3, seed=0
    )
    assert [lat.latency_s(c, 99) for c in range(3)] == [1, 2, 3]
    assert lat.groups()['stragglers'].tolist() == [False, False, True]
    with pytest.raises(UserInputError, match='by_client has 3 entries for 4 clients'):
        latency.from_config({'kind': 'planted', 'by_client': [1, 2, 3]}, 4, seed=0)


def test_register_a_new_kind():
    class Constant(latency.LatencyModel):
        def sample_s(self, rng, client, dispatch_id, work):
            return 42.0

    kind = 'constant_for_test'
    latency.register(kind, lambda cfg, where, problems: Constant())
    try:
        assert latency.from_config({'kind': kind}, 2, seed=0).latency_s(1, 1) == 42.0
        with pytest.raises(ValueError, match='already registered'):
            latency.register(kind, lambda cfg, where, problems: Constant())
    finally:
        del latency.KINDS[kind]
    assert math.isfinite(latency.MAX_LATENCY_S)
