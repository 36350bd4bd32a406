"""When a federated trial evaluates beyond its period, and the straggler shares."""

from __future__ import annotations

import math

import pytest

from harness import results
from harness.trial.federated import evaluation
from harness.trial.federated.evaluation import group_shares, near_target

ACCURACY = results.Target(metric='validation/accuracy', value=0.5, mode='max')
LOSS = results.Target(metric='validation/loss', value=2.0, mode='min')


@pytest.mark.parametrize(
    'target,value,first_gap,periods,near,gap',
    [
        (ACCURACY, 0.30, None, 0, False, 0.20),  # first evaluation: no pace yet
        (ACCURACY, 0.30, 0.50, 1, True, 0.20),  # closed 0.30 in a period: near
        (ACCURACY, 0.30, 0.50, 2, True, 0.20),  # 0.15 a period on average: 1.3 periods
        (ACCURACY, 0.30, 0.45, 3, False, 0.20),  # 0.083 a period: 2.4 periods away
        (ACCURACY, 0.30, 0.50, 4, False, 0.20),  # 0.075 a period: 2.7 periods away
        (ACCURACY, 0.30, 0.20, 1, False, 0.20),  # no progress
        (ACCURACY, 0.30, 0.10, 1, False, 0.20),  # worse than at first
        (ACCURACY, 0.496, None, 0, True, 0.004),  # within 1% of the target
        (ACCURACY, 0.60, 0.1, 1, True, -0.10),  # met
        (LOSS, 2.6, 2.0, 2, True, 0.6),  # a loss target: the gap is value - target
        (LOSS, 2.6, 1.0, 2, False, 0.6),  # 0.2 a period: 3 periods away
    ],
)
def test_near_target(target, value, first_gap, periods, near, gap):
    got_near, got_gap = near_target(value, first_gap, periods, target)
    assert got_near is near and got_gap == pytest.approx(gap)


def test_a_missing_or_non_finite_value_is_never_near():
    for value in (None, math.nan, math.inf):
        assert near_target(value, 0.3, 1, ACCURACY) == (False, None)


def test_near_is_set_by_the_module_constants(monkeypatch):
    monkeypatch.setattr(evaluation, 'NEAR_TARGET_PERIODS', 5.0)
    assert near_target(0.30, 0.50, 4, ACCURACY)[0]  # 2.7 periods away at this pace
    monkeypatch.setattr(evaluation, 'NEAR_TARGET_FRACTION', 0.5)
    assert near_target(0.30, None, 0, ACCURACY)[0]


def test_group_shares():
    counts = {
        'dispatched': 10,
        'dispatched_fast': 8,
        'dispatched_stragglers': 2,
        'delivered': 4,
        'delivered_fast': 3,
        'delivered_stragglers': 1,
        'delivered_on_time': 0,
        'delivered_on_time_fast': 0,
        'delivered_on_time_stragglers': 0,
    }
    shares = group_shares(counts, ['fast', 'stragglers'])
    assert shares['dispatched_share_stragglers'] == 0.2
    assert shares['delivered_share_fast'] == 0.75
    assert math.isnan(shares['delivered_on_time_share_stragglers'])
