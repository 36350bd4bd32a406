"""The KD loss of submissions/_lib: ω = 0 is plain CE, gradients, top-k, JAX/PyTorch parity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from submissions._lib import kd, kd_jax, kd_torch
from workloads.lm import workload as lm

B, T, V, K = 2, 5, 11, 4


def _inputs(seed=0, top_k=None):
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.standard_normal((B, T, V))).astype(np.float32)
    targets = rng.integers(0, V, size=(B, T)).astype(np.int32)
    teacher_logits = (3.0 * rng.standard_normal((B, T, V))).astype(np.float32)
    if top_k is None:
        return logits, targets, teacher_logits, None
    log_probs = teacher_logits - np.log(np.exp(teacher_logits).sum(-1, keepdims=True))
    indices = np.argsort(-log_probs, axis=-1)[..., :top_k].astype(np.int32)
    return logits, targets, np.take_along_axis(log_probs, indices, -1), indices


def _jax_losses(logits, targets, values, indices, weight, temperature):
    teacher = (jnp.asarray(values), None if indices is None else jnp.asarray(indices))
    out = kd_jax.token_losses(
        jnp.asarray(logits), jnp.asarray(targets), teacher, weight, temperature
    )
    return [np.asarray(x) for x in out]


def _torch_losses(logits, targets, values, indices, weight, temperature):
    teacher = (torch.from_numpy(values), None if indices is None else torch.from_numpy(indices))
    out = kd_torch.token_losses(
        torch.from_numpy(logits), torch.from_numpy(targets), teacher, weight, temperature
    )
    return [x.numpy() for x in out]


FRAMEWORKS = {'jax': _jax_losses, 'pytorch': _torch_losses}


@pytest.mark.parametrize('framework', sorted(FRAMEWORKS))
@pytest.mark.parametrize('top_k', [None, K])
def test_weight_zero_is_plain_cross_entropy(framework, top_k):
    logits, targets, values, indices = _inputs(1, top_k)
    mixed, label_ce, _ = FRAMEWORKS[framework](logits, targets, values, indices, 0.0, 2.0)
    plain = lm.reference_loss(logits, targets)['per_example']
    np.testing.assert_allclose(mixed, plain, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(label_ce, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('framework', sorted(FRAMEWORKS))
@pytest.mark.parametrize('top_k', [None, K])
@pytest.mark.parametrize('weight,temperature', [(0.3, 1.0), (1.0, 2.5), (0.7, 0.5)])
def test_matches_the_numpy_reference(framework, top_k, weight, temperature):
    logits, targets, values, indices = _inputs(2, top_k)
    mixed, label_ce, teacher_ce = FRAMEWORKS[framework](
        logits, targets, values, indices, weight, temperature
    )
    want = kd.reference_token_loss(logits, targets, values, indices, weight, temperature)
    np.testing.assert_allclose(mixed, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        (1 - weight) * label_ce + weight * teacher_ce, want, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize('top_k', [None, K])
def test_jax_and_pytorch_agree(top_k):
    args = (*_inputs(3, top_k), 0.6, 1.7)
    for a, b in zip(_jax_losses(*args), _torch_losses(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_top_k_truncation_renormalizes():
    _, _, values, indices = _inputs(4, K)
    for temperature in (0.5, 1.0, 3.0):
        dense = kd.teacher_distribution(values, indices, V, temperature)
        np.testing.assert_allclose(dense.sum(-1), 1.0, atol=1e-12)
        outside = np.ones_like(dense, dtype=bool)
        np.put_along_axis(outside, indices, False, axis=-1)
        assert np.all(dense[outside] == 0.0)
        # Renormalizing the tempered full distribution over the top-k gives the same numbers.
        _, _, full_logits, _ = _inputs(4)
        full = kd.teacher_distribution(full_logits, None, V, temperature)
        kept = np.take_along_axis(full, indices, -1)
        np.testing.assert_allclose(
            np.take_along_axis(dense, indices, -1), kept / kept.sum(-1, keepdims=True), rtol=1e-5
        )


@pytest.mark.parametrize('framework', sorted(FRAMEWORKS))
def test_top_k_of_the_whole_vocabulary_is_the_full_distribution(framework):
    logits, targets, teacher_logits, _ = _inputs(5)
    _, _, values, indices = _inputs(5, V)  # log-probabilities of all V tokens, sorted
    full = FRAMEWORKS[framework](logits, targets, teacher_logits, None, 0.5, 1.5)[0]
    top = FRAMEWORKS[framework](logits, targets, values, indices, 0.5, 1.5)[0]
    np.testing.assert_allclose(full, top, rtol=1e-5, atol=1e-5)


def _mean_loss_jax(logits, targets, values, indices, weight, temperature):
    teacher = (jnp.asarray(values), None if indices is None else jnp.asarray(indices))
    return kd_jax.token_losses(logits, jnp.asarray(targets), teacher, weight, temperature)[0].mean()


def _grad_jax(logits, *args):
    return np.asarray(jax.grad(_mean_loss_jax)(jnp.asarray(logits), *args))


def _grad_torch(logits, targets, values, indices, weight, temperature):
    z = torch.from_numpy(logits).requires_grad_(True)
    teacher = (torch.from_numpy(values), None if indices is None else torch.from_numpy(indices))
    kd_torch.token_losses(z, torch.from_numpy(targets), teacher, weight, temperature)[
        0
    ].mean().backward()
    return z.grad.numpy()


@pytest.mark.parametrize('grad_fn', [_grad_jax, _grad_torch], ids=['jax', 'pytorch'])
@pytest.mark.parametrize('top_k', [None, K])
def test_gradient_matches_finite_differences(grad_fn, top_k):
    logits, targets, values, indices = _inputs(6, top_k)
    weight, temperature = 0.4, 1.3
    analytic = grad_fn(logits, targets, values, indices, weight, temperature)

    def reference(z):
        return kd.reference_token_loss(z, targets, values, indices, weight, temperature).mean()

    z64, eps = logits.astype(np.float64), 1e-5
    numeric = np.zeros_like(z64)
    for index in np.ndindex(z64.shape):
        up, down = z64.copy(), z64.copy()
        up[index] += eps
        down[index] -= eps
        numeric[index] = (reference(up) - reference(down)) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-6)
    # And the closed form: (softmax(z) − (1 − ω)·onehot(y) − ω·p_T) / number of tokens.
    p = np.exp(z64 - z64.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    onehot = np.eye(V)[targets]
    p_t = kd.teacher_distribution(values, indices, V, temperature)
    closed = (p - (1 - weight) * onehot - weight * p_t) / (B * T)
    np.testing.assert_allclose(numeric, closed, rtol=1e-5, atol=1e-8)
