"""Synthetic click data in the Criteo schema, with planted feature crosses.

13 count-like integer features (log-normal, some missing) and 26 categorical
features whose cardinalities fall off as a power law across features (the
largest first, like Criteo's) and whose values are Zipf-distributed within a
feature. The click probability is sigmoid(logit) with

    logit = bias
          + sum_f  w_f[v_f]                                  first-order effects
          + sum_(a,b) in P  c <u_a[v_a], u_b[v_b]> / sqrt(k)  planted crosses
          + sum_j  beta_j z_j  +  sum_(j,f) in Q  z_j g_f[v_f]   dense terms

where z_j is the standardized log count. The crosses are bilinear in the
features' latent vectors: one DCN cross layer, x0 ⊙ (W x + b), holds exactly
such products of embedding coordinates, while a ReLU MLP must approximate
them, so DCN beats a plain MLP of the same size on this data (tested). The
bias is solved so that about ``click_rate`` of the examples are clicks.

Everything is a pure function of (spec, seed): the hidden truth comes from
``default_rng([seed, 0])`` and row chunk ``i`` from ``default_rng([seed, 1, i])``,
so the data are identical whoever generates them, in any chunk size order.

The true click probability of every row is known, so the best log loss any
model can expect on the validation rows is known too: the Bayes-optimal log
loss, the mean over those rows of the binary entropy H(p_i) of their true
probabilities (``BayesLogLoss``; prepare records it in meta.json), against
which the synthetic targets are set.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, NamedTuple, Tuple

import numpy as np
from scipy.special import expit

from workloads.ctr.criteo_reader import NUM_CATEGORICAL, NUM_INTEGER, log_transform
from workloads.ctr.metrics import binary_entropy


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    num_train: int
    num_validation: int
    #: Cardinality of the largest feature; feature k has max_card / (k+1)^exponent.
    max_cardinality: int
    cardinality_exponent: float = 1.2
    min_cardinality: int = 3
    #: Zipf exponent of value frequencies within a feature.
    value_exponent: float = 1.05
    num_cross_pairs: int = 8
    latent_dim: int = 4
    #: Scale of the planted cross terms relative to the first-order ones.
    cross_scale: float = 1.5
    first_order_scale: float = 0.4
    click_rate: float = 0.25
    #: Rows per generated chunk; part of the data's identity (seeds are per chunk).
    chunk_rows: int = 1 << 16

    @property
    def num_rows(self) -> int:
        return self.num_train + self.num_validation


# 157 bytes a row on disk: tiny 550k rows = 86 MB (~2 s to generate);
# base 9M rows = 1.4 GB with 1.5M categories in all (>= 1M embedding rows).
SPECS = {
    'tiny': SyntheticSpec(num_train=500_000, num_validation=50_000, max_cardinality=4_000),
    'base': SyntheticSpec(num_train=8_000_000, num_validation=1_000_000, max_cardinality=500_000),
}


def cardinalities(spec: SyntheticSpec) -> np.ndarray:
    """Vocabulary size of each of the 26 categorical features (power law, largest first)."""
    k = np.arange(NUM_CATEGORICAL)
    card = np.floor(spec.max_cardinality / (k + 1.0) ** spec.cardinality_exponent)
    return np.maximum(card, spec.min_cardinality).astype(np.int64)


@dataclasses.dataclass
class _Truth:
    value_cdfs: list  # per feature: cumulative Zipf probabilities over ranks
    value_ids: list  # per feature: rank -> category id (a random permutation)
    dense_mu: np.ndarray
    dense_sigma: np.ndarray
    dense_missing: np.ndarray
    first_order: list  # per feature: (card,) effect
    cross_pairs: np.ndarray  # (P, 2) feature indices
    cross_latent: list  # per pair: ((card_a, k), (card_b, k))
    dense_beta: np.ndarray
    dense_cross: list  # (j, f, (card_f,) effect)
    bias: float = 0.0


def _make_truth(spec: SyntheticSpec, seed: int) -> _Truth:
    rng = np.random.default_rng([seed, 0])
    cards = cardinalities(spec)
    cdfs, ids, first = [], [], []
    for card in cards:
        weights = (np.arange(card) + 1.0) ** -spec.value_exponent
        cdfs.append(np.cumsum(weights) / weights.sum())
        ids.append(rng.permutation(card))
        first.append(rng.normal(0.0, spec.first_order_scale, card))
    pairs = np.stack(
        [rng.choice(NUM_CATEGORICAL, 2, replace=False) for _ in range(spec.num_cross_pairs)]
    )
    latent = [
        (
            rng.normal(0.0, 1.0, (cards[a], spec.latent_dim)),
            rng.normal(0.0, 1.0, (cards[b], spec.latent_dim)),
        )
        for a, b in pairs
    ]
    dense_cross = [
        (int(j), int(f), rng.normal(0.0, 0.5, cards[f]))
        for j, f in zip(
            rng.choice(NUM_INTEGER, 3, replace=False), rng.choice(NUM_CATEGORICAL, 3, replace=False)
        )
    ]
    return _Truth(
        value_cdfs=cdfs,
        value_ids=ids,
        dense_mu=rng.uniform(0.0, 4.0, NUM_INTEGER),
        dense_sigma=rng.uniform(0.5, 1.5, NUM_INTEGER),
        dense_missing=rng.uniform(0.0, 0.4, NUM_INTEGER),
        first_order=first,
        cross_pairs=pairs,
        cross_latent=latent,
        dense_beta=rng.normal(0.0, 0.3, NUM_INTEGER),
        dense_cross=dense_cross,
    )


def _features(truth: _Truth, rng: np.random.Generator, n: int):
    """(raw counts with NaN = missing (n, 13), categorical ids (n, 26))."""
    counts = np.floor(np.exp(rng.normal(truth.dense_mu, truth.dense_sigma, (n, NUM_INTEGER))))
    counts[rng.random((n, NUM_INTEGER)) < truth.dense_missing] = np.nan
    sparse = np.empty((n, NUM_CATEGORICAL), np.int64)
    u = rng.random((n, NUM_CATEGORICAL))
    for f, (cdf, ids) in enumerate(zip(truth.value_cdfs, truth.value_ids)):
        ranks = np.minimum(np.searchsorted(cdf, u[:, f]), len(cdf) - 1)
        sparse[:, f] = ids[ranks]
    return counts, sparse


def _logits(truth: _Truth, spec: SyntheticSpec, dense: np.ndarray, sparse: np.ndarray):
    # Standardize the log counts with the generator's own moments (not the data's).
    z = (dense - truth.dense_mu / 2.0) / 2.0
    logit = np.full(len(sparse), truth.bias) + z @ truth.dense_beta
    for f, effect in enumerate(truth.first_order):
        logit += effect[sparse[:, f]]
    scale = spec.cross_scale / np.sqrt(spec.latent_dim)
    for (a, b), (ua, ub) in zip(truth.cross_pairs, truth.cross_latent):
        logit += scale * np.einsum('nk,nk->n', ua[sparse[:, a]], ub[sparse[:, b]])
    for j, f, effect in truth.dense_cross:
        logit += z[:, j] * effect[sparse[:, f]]
    return logit


def _solve_bias(truth: _Truth, spec: SyntheticSpec, seed: int) -> float:
    """The bias that makes the mean click probability ``spec.click_rate`` (bisection)."""
    rng = np.random.default_rng([seed, 2])
    counts, sparse = _features(truth, rng, 20_000)
    truth.bias = 0.0
    base = _logits(truth, spec, log_transform(counts), sparse)
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if np.mean(expit(base + mid)) > spec.click_rate:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2.0


class Chunk(NamedTuple):
    dense: np.ndarray  # (n, 13) float32, log-transformed
    sparse: np.ndarray  # (n, 26) int32
    labels: np.ndarray  # (n,) float32 0/1, drawn from probabilities
    probabilities: np.ndarray  # (n,) float64, the true click probabilities
    start: int  # index of the chunk's first row


def generate_chunks(spec: SyntheticSpec, seed: int = 0) -> Iterator[Chunk]:
    """The rows in order, chunk by chunk, with their true click probabilities."""
    truth = _make_truth(spec, seed)
    truth.bias = _solve_bias(truth, spec, seed)
    for chunk, start in enumerate(range(0, spec.num_rows, spec.chunk_rows)):
        n = min(spec.chunk_rows, spec.num_rows - start)
        rng = np.random.default_rng([seed, 1, chunk])
        counts, sparse = _features(truth, rng, n)
        dense = log_transform(counts)
        p = expit(_logits(truth, spec, dense, sparse))
        labels = (rng.random(n) < p).astype(np.float32)
        yield Chunk(dense, sparse.astype(np.int32), labels, p, start)


def generate(
    spec: SyntheticSpec, seed: int = 0
) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Chunks of (dense float32 log-transformed (n, 13), sparse int32 (n, 26), labels (n,))."""
    for chunk in generate_chunks(spec, seed):
        yield chunk.dense, chunk.sparse, chunk.labels


@dataclasses.dataclass
class BayesLogLoss:
    """Log loss of the true probabilities on the validation rows, accumulated chunk by chunk.

    ``expected``: mean of H(p_i) = -p_i log p_i - (1 - p_i) log(1 - p_i), the
    log loss the true probabilities score on average over label draws (the
    lowest any model can expect). ``realized``: their log loss on the labels
    actually drawn (differs from ``expected`` by sampling noise, ~0.002 on
    50k rows). Both in nats, like the workload's ``loss``.
    """

    num_train: int
    _entropy: float = 0.0
    _loss: float = 0.0
    _rows: int = 0

    def add(self, chunk: Chunk) -> None:
        skip = max(self.num_train - chunk.start, 0)  # the chunk's training rows
        p = chunk.probabilities[skip:]
        y = chunk.labels[skip:].astype(np.float64)
        self._entropy += float(np.sum(binary_entropy(p)))
        self._loss += float(-np.sum(np.where(y > 0, np.log(p), np.log1p(-p))))
        self._rows += len(p)

    @property
    def expected(self) -> float:
        return self._entropy / self._rows

    @property
    def realized(self) -> float:
        return self._loss / self._rows
