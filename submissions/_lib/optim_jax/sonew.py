"""Tridiagonal SONew (Devvrit et al. 2023, arXiv:2311.10085) as an optax transformation.

On each parameter's flattened (row-major) vector (see docs/methods.md,
section SONew):

    m <- beta1 m + (1 - beta1) g
    H_ii <- beta2 H_ii + (1 - beta2) g_i^2            (the diagonal, n entries)
    H_i,i+1 <- beta2 H_i,i+1 + (1 - beta2) g_i g_i+1    (the off-diagonal, n - 1)
    bias-correct all three; d = diag + eps; e = off-diagonal
    psi_i = e_i / d_i+1;  c_i = d_i - psi_i e_i (c_n = d_n); psi_i = 0 where c_i <= 0
    X = L diag(1 / c) L^T,  L unit lower bidiagonal with L_i+1,i = -psi_i
    u = X m_hat, rescaled to the norm of Adam's step m_hat / (sqrt(diag_hat) + graft_eps)

X is the tridiagonal matrix whose inverse agrees with the tridiagonal band of
H (the solution of SONew's LogDet problem on a chain graph). u is computed with
shifted vector operations, O(n), no loop over elements. ``eps`` is absolute,
as in the paper. Grafting is per parameter. Every parameter, vectors
included, gets the tridiagonal preconditioner.

At step 1 the statistics are rank one, so X is singular up to eps and its
float32 direction is dominated by round-off (its norm is still Adam's, and
warmup makes the step small); from about step 3 on it is well conditioned.

Mirrors ``optim_torch/sonew.py``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import optax

from submissions._lib.hparam_checks import raise_for_problems
from submissions._lib.optim_jax._blocks import safe_ratio
from submissions._lib.optim_jax.decoupled import with_decoupled_weight_decay


class SONewState(NamedTuple):
    count: jnp.ndarray  # int32 (), steps taken
    mu: optax.Params  # (n,) per leaf, float32: first moment
    diag: optax.Params  # (n,) EMA of g_i^2
    offdiag: optax.Params  # (n - 1,) EMA of g_i g_i+1


def tridiagonal_factors(
    diag: jnp.ndarray, offdiag: jnp.ndarray, eps: float
) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """(psi (n-1,), c (n,)) with X = L diag(1/c) L^T, L_i+1,i = -psi_i."""
    d = diag + eps
    psi = offdiag / d[1:]
    c_head = d[:-1] - psi * offdiag
    degenerate = c_head <= 0
    psi = jnp.where(degenerate, 0.0, psi)
    c_head = jnp.where(degenerate, d[:-1], c_head)
    return psi, jnp.concatenate([c_head, d[-1:]])


def apply_tridiagonal(psi: jnp.ndarray, c: jnp.ndarray, v: jnp.ndarray) -> jnp.ndarray:
    """L diag(1/c) L^T v in O(n)."""
    # (L^T v)_i = v_i - psi_i v_i+1
    y = v - jnp.concatenate([psi * v[1:], jnp.zeros_like(v[:1])])
    z = y / c
    # (L z)_i = z_i - psi_i-1 z_i-1
    return z - jnp.concatenate([jnp.zeros_like(z[:1]), psi * z[:-1]])


def scale_by_sonew(
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    graft_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """SONew's grafted direction (no learning rate, no weight decay)."""
    raise_for_problems('sonew', dict(beta1=beta1, beta2=beta2, eps=eps, graft_eps=graft_eps))

    def init_fn(params):
        def flat(p, drop):
            return jnp.zeros((max(p.size - drop, 0),), jnp.float32)

        return SONewState(
            count=jnp.zeros([], jnp.int32),
            mu=jax.tree.map(lambda p: flat(p, 0), params),
            diag=jax.tree.map(lambda p: flat(p, 0), params),
            offdiag=jax.tree.map(lambda p: flat(p, 1), params),
        )

    def leaf(grad, mu, diag, offdiag, count):
        g = grad.astype(jnp.float32).reshape(-1)
        t = count.astype(jnp.float32)
        mu = beta1 * mu + (1.0 - beta1) * g
        diag = beta2 * diag + (1.0 - beta2) * jnp.square(g)
        offdiag = beta2 * offdiag + (1.0 - beta2) * g[:-1] * g[1:]
        bc1 = 1.0 - jnp.power(beta1, t)
        bc2 = 1.0 - jnp.power(beta2, t)
        m_hat, diag_hat, offdiag_hat = mu / bc1, diag / bc2, offdiag / bc2
        psi, c = tridiagonal_factors(diag_hat, offdiag_hat, eps)
        u = apply_tridiagonal(psi, c, m_hat)
        adam = m_hat / (jnp.sqrt(diag_hat) + graft_eps)
        u = u * safe_ratio(jnp.linalg.norm(adam), jnp.linalg.norm(u))
        return u.reshape(grad.shape).astype(grad.dtype), mu, diag, offdiag

    def update_fn(updates, state, params=None):
        del params
        count = state.count + 1
        grads, treedef = jax.tree.flatten(updates)
        outs = [
            leaf(g, m, d, o, count)
            for g, m, d, o in zip(
                grads,
                jax.tree.leaves(state.mu),
                jax.tree.leaves(state.diag),
                jax.tree.leaves(state.offdiag),
            )
        ]

        def field(i):
            return treedef.unflatten([out[i] for out in outs])

        return field(0), SONewState(count=count, mu=field(1), diag=field(2), offdiag=field(3))

    return optax.GradientTransformation(init_fn, update_fn)


def sonew(
    learning_rate: optax.ScalarOrSchedule,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_decay_mask: Optional[Any] = None,
    graft_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """SONew with decoupled weight decay: theta <- theta - lr * (u + wd * theta)."""
    return with_decoupled_weight_decay(
        'sonew', scale_by_sonew, learning_rate, weight_decay, weight_decay_mask,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        graft_eps=graft_eps,
    )
