"""SALT_DS data selection: scores, the percentile band, and the whole data_selection on a
planted pool, in both frameworks."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from harness.errors import UserInputError
from submissions._lib import kd, kd_jax, kd_torch

# Planted pool: 8 sequences of 4 tokens; sequence i's teacher loss on its in-top-k tokens
# is DIFFICULTY[i] ± 0.2 (median DIFFICULTY[i]); sequence 3 has no target in the top-k.
DIFFICULTY = [0.5, 2.0, 1.0, np.nan, 3.0, 0.3, 2.5, 1.5]
POOL, T, K, VOCAB = 8, 4, 3, 50
HARDEST_HALF = [1, 4, 6, 7]  # band [50, 100): the four highest scores
EASIEST_HALF = [0, 2, 3, 5]  # band [0, 50): NaN ranks lowest


def planted_pool():
    """inputs (row id first), targets, and the teacher's top-K (log-probs, ids) per row."""
    inputs = np.zeros((POOL, T), np.int32)
    inputs[:, 0] = np.arange(POOL)
    targets = np.full((POOL, T), 7, np.int32)
    values = np.full((POOL, T, K), -8.0, np.float32)
    indices = np.tile(np.arange(20, 20 + K, dtype=np.int32), (POOL, T, 1))  # never 7
    for row, d in enumerate(DIFFICULTY):
        if np.isnan(d):
            continue
        for pos, loss in enumerate([d - 0.2, d + 0.2, d]):  # token 3 stays out of the top-k
            indices[row, pos, 1] = 7
            values[row, pos, 1] = -loss
    return inputs, targets, values, indices


def test_reference_scores_are_the_planted_medians():
    _, targets, values, indices = planted_pool()
    scores = kd.reference_sequence_scores(values, indices, targets)
    np.testing.assert_allclose(scores, DIFFICULTY, rtol=1e-6)


@pytest.mark.parametrize('framework', ['jax', 'pytorch'])
def test_framework_scores_match_the_reference(framework):
    rng = np.random.default_rng(0)
    values = -rng.exponential(size=(6, 9, K)).astype(np.float32)
    indices = rng.integers(0, 5, size=(6, 9, K)).astype(np.int32)
    targets = rng.integers(0, 5, size=(6, 9)).astype(np.int32)
    mask = (rng.random((6, 9)) > 0.3).astype(np.float32)
    mask[0] = 0.0  # a row with no valid token: NaN
    want = kd.reference_sequence_scores(values, indices, targets, mask)
    if framework == 'jax':
        got = np.asarray(
            kd_jax.sequence_scores(
                jnp.asarray(values), jnp.asarray(indices), jnp.asarray(targets), jnp.asarray(mask)
            )
        )
    else:
        got = kd_torch.sequence_scores(
            torch.from_numpy(values),
            torch.from_numpy(indices),
            torch.from_numpy(targets),
            torch.from_numpy(mask),
        ).numpy()
    assert np.isnan(got[0]) and np.isnan(want[0])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_median_of_an_even_count_is_the_mean_of_the_middle_two():
    x = np.array([[4.0, 1.0, 3.0, 2.0, 100.0]], np.float32)
    valid = np.array([[True, True, True, True, False]])
    assert float(kd_jax.masked_median(jnp.asarray(x), jnp.asarray(valid))[0]) == 2.5
    assert float(kd_torch.masked_median(torch.from_numpy(x), torch.from_numpy(valid))[0]) == 2.5


@pytest.mark.parametrize(
    'low,high,expected',
    [
        (50, 100, HARDEST_HALF),
        (0, 50, EASIEST_HALF),
        (25, 100, [0, 1, 2, 6]),  # six in the band, four evenly spaced: ranks 2, 3, 5, 6
    ],
)
def test_band_picks_the_expected_sequences(low, high, expected):
    chosen = kd.band_indices(np.array(DIFFICULTY), 4, low, high)
    assert chosen.tolist() == expected


def test_band_narrower_than_a_batch_is_an_error():
    with pytest.raises(UserInputError, match='holds 3, fewer than the batch of 4'):
        kd.band_indices(np.arange(8.0), 4, 70, 100)


class FakeTeacherWorkload:
    """Answers teacher_topk / teacher_logits from the planted table, by each row's id."""

    SINK = 40  # a token that takes the rest of the probability in the dense form

    def __init__(self, to_framework):
        self.to_framework = to_framework
        self.calls = []
        _, _, self.values, self.indices = planted_pool()

    def teacher_topk(self, batch, k):
        ids = np.asarray(batch['inputs'])[:, 0]
        self.calls.append(('topk', len(ids), k))
        values = np.concatenate(
            [self.values[ids], np.full((len(ids), T, k - K), -50.0, np.float32)], -1
        )
        indices = np.concatenate(
            [
                self.indices[ids],
                np.tile(np.arange(30, 30 + k - K, dtype=np.int32), (len(ids), T, 1)),
            ],
            -1,
        )
        return self.to_framework(values), self.to_framework(indices)

    def teacher_logits(self, batch):
        """Logits that are log-probabilities: the planted top-K, the rest on SINK."""
        ids = np.asarray(batch['inputs'])[:, 0]
        self.calls.append(('logits', len(ids), None))
        dense = np.full((len(ids), T, VOCAB), -60.0)
        np.put_along_axis(dense, self.indices[ids], self.values[ids].astype(np.float64), -1)
        rest = 1.0 - np.exp(dense).sum(-1) + np.exp(-60.0)
        dense[..., self.SINK] = np.log(rest)
        return self.to_framework(dense.astype(np.float32))


def _queue(to_framework):
    inputs, targets, _, _ = planted_pool()
    for start in (0, 4):  # two draws of a batch of 4 make the pool of 8
        yield {
            'inputs': to_framework(inputs[start : start + 4]),
            'targets': to_framework(targets[start : start + 4]),
        }


@pytest.mark.parametrize('framework', ['jax', 'pytorch'])
@pytest.mark.parametrize('kd_top_k', [0, 5])
def test_data_selection_keeps_the_planted_band(framework, kd_top_k):
    settings = kd.settings_from(
        {
            'kd_weight': 0.5,
            'kd_fraction': 0.5,
            'kd_top_k': kd_top_k,
            'ds_pool_factor': 2,
            'ds_top_k': K,
            'ds_low_percentile': 50,
            'ds_high_percentile': 100,
        },
        horizon_steps=10,
        mode='salt_ds',
    )
    if framework == 'jax':
        lib, convert, state = kd_jax, jnp.asarray, (None, None, settings)
    else:
        lib, state = kd_torch, {'settings': settings}

        def convert(a):
            return torch.from_numpy(np.ascontiguousarray(a))

    workload = FakeTeacherWorkload(convert)
    batch = lib.data_selection(workload, _queue(convert), state, None, None, None, 0, None)
    assert np.asarray(batch['inputs'])[:, 0].tolist() == HARDEST_HALF
    # One teacher pass for the pool, whose output the KD loss reuses.
    assert workload.calls == (
        [('topk', POOL, max(K, kd_top_k))] if kd_top_k else [('logits', POOL, None)]
    )
    if kd_top_k:
        _, _, values, indices = planted_pool()
        np.testing.assert_array_equal(
            np.asarray(batch[kd.TOPK_INDICES])[..., :K], indices[HARDEST_HALF]
        )
        np.testing.assert_allclose(
            np.asarray(batch[kd.TOPK_VALUES])[..., :K], values[HARDEST_HALF]
        )
    else:
        assert kd.TOPK_VALUES not in batch
        np.testing.assert_allclose(
            np.asarray(batch[kd.LOGITS]),
            np.asarray(workload.teacher_logits({'inputs': np.asarray(batch['inputs'])})),
        )
        workload.calls.pop()
    # After the distillation phase: the plain next batch, and no teacher call.
    plain = lib.data_selection(workload, _queue(convert), state, None, None, None, 5, None)
    assert np.asarray(plain['inputs'])[:, 0].tolist() == [0, 1, 2, 3]
    assert len(workload.calls) == 1
