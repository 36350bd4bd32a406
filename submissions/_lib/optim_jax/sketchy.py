"""Sketchy (Feinberg et al. 2023, arXiv:2302.03764): Shampoo with Frequent-Directions factors.

Each Kronecker factor is a rank-k Frequent Directions sketch: an orthonormal
basis U (d x k), the kept spectrum sigma (k) and a scalar ``tail`` (the mass
the sketch has let go of). State per factor is O(d k), never d x d.

Per step and axis, with G the mode-a unfolding of the block's gradient
(see docs/methods.md, section Sketchy):

    Z = [sqrt(beta2) U diag(sigma), sqrt(1 - beta2) G]     SVD Z = U' S V'^T
    c = s_(k+1) (0 when Z has no (k+1)-th singular value)
    U <- U'[:, :k]      sigma_i^2 <- s_i^2 - c^2      tail <- beta2 tail + c^2

Our choice: G is scaled by sqrt(1 - beta2), so that with k = d the sketch is
exactly Shampoo's EMA factor (a constant factor would not change the grafted
update anyway, since grafting and the relative eps are scale-free).

The factor is applied with exponent -1/p (p = 2 * number of axes):

    x <- U diag((lambda + e)^(-1/p)) U^T x + (tail + e)^(-1/p) (x - U U^T x),
    lambda_i = sigma_i^2 + tail  (= s_i^2 + beta2 * tail_before),
    e = eps * max(lambda).

The sketch is updated and used at every step, so there is no refresh
interval. The SVD of Z is taken through the eigendecomposition of its smaller
Gram matrix (our choice, ~10x faster on CPU than an SVD of Z, and no larger
than Z): Z Z^T (d x d) when d <= k + cols, giving U' directly; else Z^T Z
(m x m, m = k + cols) with U' = Z V' / s, where directions with
s^2 <= 1e-6 * s_max^2 (float32 noise in a Gram matrix) are dropped from the
basis. A factor narrower than ``rank`` keeps a rank-d sketch, which is exact.

Mirrors ``optim_torch/sketchy.py``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

import jax.numpy as jnp
import optax

from submissions._lib.hparam_checks import raise_for_problems
from submissions._lib.optim_jax.decoupled import with_decoupled_weight_decay
from submissions._lib.optim_jax.kronecker import FactorOps, scale_by_kronecker


class SketchFactor(NamedTuple):
    basis: jnp.ndarray  # (N, d, k) orthonormal columns (zero before any gradient)
    sigma: jnp.ndarray  # (N, k) kept singular values
    tail: jnp.ndarray  # (N,) escaped mass


# Gram eigenvalues below this fraction of the largest are float32 noise (tall case).
GRAM_FLOOR = 1e-6


def top_left_singular(z: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """(u, s2) of z (N, d, m): left singular vectors (N, d, r) and squared singular
    values (N, r), r = min(d, m), largest first, through the smaller Gram matrix."""
    d, m = z.shape[-2:]
    zt = jnp.swapaxes(z, -1, -2)
    if d <= m:
        s2, u = jnp.linalg.eigh(z @ zt)  # ascending
        return u[..., ::-1], jnp.maximum(s2[..., ::-1], 0.0)
    s2, v = jnp.linalg.eigh(zt @ z)
    s2, v = jnp.maximum(s2[..., ::-1], 0.0), v[..., ::-1]
    kept = s2 > GRAM_FLOOR * s2[..., :1]
    inv_s = jnp.where(kept, 1.0 / jnp.sqrt(jnp.where(kept, s2, 1.0)), 0.0)
    return (z @ v) * inv_s[:, None, :], jnp.where(kept, s2, 0.0)


def frequent_directions_update(
    factor: SketchFactor, unfolded: jnp.ndarray, beta2: float
) -> SketchFactor:
    """One decayed Frequent Directions step; ``unfolded`` is (N, d, cols)."""
    k = factor.sigma.shape[-1]
    kept = jnp.sqrt(beta2) * factor.basis * factor.sigma[:, None, :]
    z = jnp.concatenate([kept, jnp.sqrt(1.0 - beta2) * unfolded], axis=-1)  # (N, d, k + cols)
    u, s2 = top_left_singular(z)  # u (N, d, r), s2 (N, r), r >= k
    cut2 = jnp.concatenate([s2, jnp.zeros_like(s2[:, :1])], axis=-1)[:, k]  # (N,) = c^2
    sigma = jnp.sqrt(jnp.maximum(s2[:, :k] - cut2[:, None], 0.0))
    return SketchFactor(basis=u[:, :, :k], sigma=sigma, tail=beta2 * factor.tail + cut2)


def apply_sketch(factor: SketchFactor, x: jnp.ndarray, exponent: int, eps: float) -> jnp.ndarray:
    """x (N, R, d) times (U diag(sigma^2) U^T + tail I)^(-1/p) with a relative ridge."""
    tail = factor.tail[:, None]  # (N, 1)
    lam = jnp.square(factor.sigma) + tail  # (N, k)
    lam_max = jnp.max(lam, axis=-1, keepdims=True)
    ridge = eps * lam_max
    active = lam_max > 0  # a factor that has seen no gradient is the identity

    def inv_root(v):
        return jnp.where(active, jnp.power(jnp.where(active, v + ridge, 1.0), -1.0 / exponent), 1.0)

    kept, rest = inv_root(lam), inv_root(tail)  # (N, k), (N, 1)
    coords = x @ factor.basis  # (N, R, k)
    correction = (coords * (kept - rest)[:, None, :]) @ jnp.swapaxes(factor.basis, -1, -2)
    return rest[:, :, None] * x + correction


def sketchy_factor_ops(beta2: float, eps: float, rank: int) -> FactorOps:
    def init(num_blocks: int, dim: int) -> SketchFactor:
        k = min(rank, dim)
        return SketchFactor(
            basis=jnp.zeros((num_blocks, dim, k), jnp.float32),
            sigma=jnp.zeros((num_blocks, k), jnp.float32),
            tail=jnp.zeros((num_blocks,), jnp.float32),
        )

    return FactorOps(
        init=init,
        update=lambda factor, unfolded: frequent_directions_update(factor, unfolded, beta2),
        refresh=None,
        apply=lambda factor, x, exponent: apply_sketch(factor, x, exponent, eps),
    )


def scale_by_sketchy(
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-7,
    rank: int = 128,
    block_size: int = 1024,
    start_preconditioning_step: int = 101,
    max_preconditioner_dim: int = 1_000_000,
    nesterov: bool = True,
    graft_type: str = 'rmsprop_normalized',
    graft_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Sketchy's direction. Defaults: rank 128, eps 1e-7, beta2 0.999 (the paper's
    code); the rest as Shampoo's."""
    raise_for_problems(
        'sketchy',
        dict(
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            rank=rank,
            block_size=block_size,
            start_preconditioning_step=start_preconditioning_step,
            max_preconditioner_dim=max_preconditioner_dim,
            nesterov=nesterov,
            graft_type=graft_type,
            graft_eps=graft_eps,
        ),
    )
    return scale_by_kronecker(
        sketchy_factor_ops(beta2, eps, rank),
        beta1=beta1,
        beta2=beta2,
        block_size=block_size,
        precondition_every=1,
        start_preconditioning_step=start_preconditioning_step,
        max_preconditioner_dim=max_preconditioner_dim,
        nesterov=nesterov,
        graft_type=graft_type,
        graft_eps=graft_eps,
    )


def sketchy(
    learning_rate: optax.ScalarOrSchedule,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-7,
    weight_decay: float = 0.0,
    weight_decay_mask: Optional[Any] = None,
    rank: int = 128,
    block_size: int = 1024,
    start_preconditioning_step: int = 101,
    max_preconditioner_dim: int = 1_000_000,
    nesterov: bool = True,
    graft_type: str = 'rmsprop_normalized',
    graft_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Sketchy with decoupled weight decay: theta <- theta - lr * (update + wd * theta)."""
    return with_decoupled_weight_decay(
        'sketchy', scale_by_sketchy, learning_rate, weight_decay, weight_decay_mask,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        rank=rank,
        block_size=block_size,
        start_preconditioning_step=start_preconditioning_step,
        max_preconditioner_dim=max_preconditioner_dim,
        nesterov=nesterov,
        graft_type=graft_type,
        graft_eps=graft_eps,
    )
