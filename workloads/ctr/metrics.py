"""CTR metrics in numpy: log loss, normalized entropy, ROC AUC, calibration.

Written once for both frameworks: the eval loop gathers logits to the host and
calls these, so JAX and PyTorch report the same numbers from the same logits.

Normalized entropy (He et al., "Practical Lessons from Predicting Clicks on
Ads at Facebook", 2014) is the mean log loss divided by the entropy of the
background click rate, H(p) = -p log p - (1 - p) log(1 - p): 1 is no better
than predicting the base rate for every example, lower is better. The base
rate is the click rate of the *training* rows (the prior a model could know
before seeing the evaluated rows), the same for the train and validation
metrics, so a split's NE is its log loss over one fixed constant.
"""

from __future__ import annotations

import numpy as np
from scipy.special import entr, expit
from scipy.stats import rankdata


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function in float64 (scipy's expit: no overflow for any logit)."""
    return expit(np.asarray(logits, dtype=np.float64))


def sigmoid_cross_entropy(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Per-example -[y log p + (1 - y) log(1 - p)] with p = sigmoid(z), from logits.

    Uses max(z, 0) - z y + log(1 + exp(-|z|)), which never overflows.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    return np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))


def binary_entropy(p) -> np.ndarray:
    """H(p) = -p log p - (1 - p) log(1 - p) in nats (0 at p = 0 and p = 1)."""
    p = np.asarray(p, dtype=np.float64)
    return entr(p) + entr(1.0 - p)


def normalized_entropy(mean_log_loss: float, base_rate: float) -> float:
    """Log loss over the entropy of the base click rate (He et al. 2014); NaN for a 0 or 1 rate."""
    h = float(binary_entropy(base_rate))
    return mean_log_loss / h if h > 0 else float('nan')


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
    rank_sum = rankdata(scores, method='average')[labels].sum()  # ties share their mean rank
    u_statistic = rank_sum - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def calibration(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Sum of predicted click probabilities over the number of clicks (1.0 is calibrated).

    Above 1 the model over-predicts clicks. Inf when there are no clicks.
    """
    clicks = float(np.sum(labels, dtype=np.float64))
    predicted = float(np.sum(probabilities, dtype=np.float64))
    return predicted / clicks if clicks > 0 else float('inf')


def ctr_metrics(labels: np.ndarray, logits: np.ndarray, base_rate: float) -> dict:
    """{'loss', 'normalized_entropy', 'auc', 'calibration'} of one split, from logits.

    ``base_rate``: the training click rate, the normalizer of the normalized entropy.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    loss = float(np.mean(sigmoid_cross_entropy(labels, logits)))
    return {
        'loss': loss,
        'normalized_entropy': normalized_entropy(loss, base_rate),
        'auc': roc_auc(labels, logits),
        'calibration': calibration(labels, sigmoid(logits)),
    }
