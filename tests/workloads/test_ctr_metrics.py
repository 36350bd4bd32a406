"""CTR metrics against references: brute-force pair counts for AUC, sums for calibration."""

import itertools
import math

import numpy as np
import pytest

from workloads.ctr import metrics


def brute_force_auc(labels, scores):
    """P(click scored above non-click) + 0.5 P(tie), by counting every pair."""
    pos = [s for y, s in zip(labels, scores) if y == 1]
    neg = [s for y, s in zip(labels, scores) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize(
    'labels, scores, expected',
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1.0),  # perfect ranking
        ([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], 0.0),  # reversed
        ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),  # all tied
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),  # one of four pairs misordered
        ([0, 1, 1], [0.2, 0.2, 0.9], 0.75),  # one tied pair counts half
    ],
)
def test_auc_known_cases(labels, scores, expected):
    assert metrics.roc_auc(np.array(labels), np.array(scores)) == pytest.approx(expected)


@pytest.mark.parametrize('seed', range(5))
def test_auc_matches_brute_force_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 7, 200).astype(float)  # seven values: ties everywhere
    assert metrics.roc_auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))


def test_auc_undefined_with_one_class():
    assert math.isnan(metrics.roc_auc(np.ones(5), np.arange(5.0)))


def test_calibration_is_predicted_over_observed_clicks():
    labels = np.array([1, 0, 0, 1, 0])
    probs = np.array([0.5, 0.2, 0.1, 0.7, 0.5])
    assert metrics.calibration(labels, probs) == pytest.approx(2.0 / 2.0)
    assert metrics.calibration(labels, probs * 1.5) == pytest.approx(1.5)
    assert metrics.calibration(np.zeros(3), probs[:3]) == float('inf')


def test_log_loss_matches_definition_and_is_stable():
    labels = np.array([1.0, 0.0, 1.0, 0.0])
    logits = np.array([2.0, -1.0, -3.0, 0.5])
    p = 1.0 / (1.0 + np.exp(-logits))
    expected = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    np.testing.assert_allclose(metrics.sigmoid_cross_entropy(labels, logits), expected)
    extreme = metrics.sigmoid_cross_entropy(np.array([1.0, 0.0]), np.array([-1000.0, 1000.0]))
    np.testing.assert_allclose(extreme, [1000.0, 1000.0])


def test_ctr_metrics_keys_and_values():
    labels = np.array([0, 1, 1, 0])
    logits = np.array([-1.0, 1.0, 2.0, 0.0])
    out = metrics.ctr_metrics(labels, logits, base_rate=0.25)
    assert set(out) == {'loss', 'normalized_entropy', 'auc', 'calibration'}
    assert out['auc'] == pytest.approx(1.0)
    assert out['calibration'] == pytest.approx(metrics.sigmoid(logits).sum() / 2)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert out['normalized_entropy'] == pytest.approx(out['loss'] / h)


def test_normalized_entropy_is_one_for_the_base_rate_predictor():
    """He et al. 2014: predicting the background rate for every example scores NE = 1."""
    rng = np.random.default_rng(0)
    labels = (rng.random(10_000) < 0.3).astype(float)
    rate = labels.mean()
    logits = np.full(labels.size, math.log(rate / (1 - rate)))
    assert metrics.ctr_metrics(labels, logits, rate)['normalized_entropy'] == pytest.approx(1.0)
    # Better than the base rate: below 1; the base rate comes from the training rows.
    informed = np.where(labels > 0, 1.0, -1.0)
    assert metrics.ctr_metrics(labels, informed, rate)['normalized_entropy'] < 1.0
    assert math.isnan(metrics.normalized_entropy(0.3, 0.0))


def test_binary_entropy_and_sigmoid_at_the_edges():
    np.testing.assert_allclose(metrics.binary_entropy([0.0, 0.5, 1.0]), [0.0, math.log(2), 0.0])
    np.testing.assert_allclose(metrics.sigmoid([-1000.0, 0.0, 1000.0]), [0.0, 0.5, 1.0])
