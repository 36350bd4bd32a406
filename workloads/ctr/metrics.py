"""CTR metrics in numpy: log loss, ROC AUC, calibration.

Written once for both frameworks: the eval loop gathers logits to the host and
calls these, so JAX and PyTorch report the same numbers from the same logits.
"""

from __future__ import annotations

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, float64."""
    z = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def sigmoid_cross_entropy(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Per-example -[y log p + (1 - y) log(1 - p)] with p = sigmoid(z), from logits.

    Uses max(z, 0) - z y + log(1 + exp(-|z|)), which never overflows.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    return np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the mean of their ranks."""
    values = np.asarray(values)
    order = np.argsort(values, kind='stable')
    sorted_values = values[order]
    # Boundaries of runs of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney U statistic with average ranks.

    Equals P(score of a random click > score of a random non-click) + 0.5 P(tie).
    NaN when the labels hold only one class (AUC is undefined there).
    """
    labels = np.asarray(labels).reshape(-1) > 0.5
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    rank_sum = average_ranks(scores)[labels].sum()
    u_statistic = rank_sum - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def calibration(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Sum of predicted click probabilities over the number of clicks (1.0 is calibrated).

    Above 1 the model over-predicts clicks. Inf when there are no clicks.
    """
    clicks = float(np.sum(labels, dtype=np.float64))
    predicted = float(np.sum(probabilities, dtype=np.float64))
    return predicted / clicks if clicks > 0 else float('inf')


def ctr_metrics(labels: np.ndarray, logits: np.ndarray) -> dict:
    """{'loss', 'auc', 'calibration'} of one split, from logits."""
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    return {
        'loss': float(np.mean(sigmoid_cross_entropy(labels, logits))),
        'auc': roc_auc(labels, logits),
        'calibration': calibration(labels, sigmoid(logits)),
    }
