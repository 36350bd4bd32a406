"""Shampoo (Gupta et al. 2018; Anil et al. 2020) as an optax GradientTransformation.

Our own code: ``precondition-opt`` (the only packaged JAX Shampoo) fails on
JAX 0.10. The math (see docs/methods.md, section Shampoo): per block and axis,
L <- beta2 L + (1 - beta2) G_(a) G_(a)^T; the update is G times L_a^(-1/p)
along every axis a (p = 2 * number of axes, so L^(-1/4) G R^(-1/4) for a
matrix); inverse roots by eigendecomposition with a relative ridge
eps * (largest eigenvalue). Blocking, grafting, start step and momentum are
in ``kronecker.py``; the choices there are documented there.

Mirrors ``optim_torch/shampoo.py``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax.numpy as jnp
import optax

from submissions._lib.hparam_checks import raise_for_problems
from submissions._lib.optim_jax.decoupled import with_decoupled_weight_decay
from submissions._lib.optim_jax.kronecker import FactorOps, scale_by_kronecker


class ShampooFactor(NamedTuple):
    stats: jnp.ndarray  # (N, d, d) EMA of G G^T per block
    root: jnp.ndarray  # (N, d, d) stats^(-1/p), as of the last refresh


def matrix_inverse_root(stats: jnp.ndarray, exponent: int, eps: float) -> jnp.ndarray:
    """(N, d, d) symmetric PSD -> (stats + eps * lambda_max * I)^(-1/exponent).

    A zero matrix (no gradient seen yet) gives the identity.
    """
    stats = 0.5 * (stats + jnp.swapaxes(stats, -1, -2))
    eigvals, eigvecs = jnp.linalg.eigh(stats)
    eigvals = jnp.maximum(eigvals, 0.0)  # round-off can make tiny eigenvalues negative
    lam_max = jnp.max(eigvals, axis=-1, keepdims=True)
    ridge = eps * lam_max
    safe = jnp.where(lam_max > 0, eigvals + ridge, 1.0)
    inv = jnp.where(lam_max > 0, jnp.power(safe, -1.0 / exponent), 1.0)
    return (eigvecs * inv[..., None, :]) @ jnp.swapaxes(eigvecs, -1, -2)


def shampoo_factor_ops(beta2: float, eps: float) -> FactorOps:
    def init(num_blocks: int, dim: int) -> ShampooFactor:
        eye = jnp.broadcast_to(jnp.eye(dim, dtype=jnp.float32), (num_blocks, dim, dim))
        return ShampooFactor(stats=jnp.zeros((num_blocks, dim, dim), jnp.float32), root=eye)

    def update(factor: ShampooFactor, unfolded: jnp.ndarray) -> ShampooFactor:
        gram = unfolded @ jnp.swapaxes(unfolded, -1, -2)  # (N, d, d)
        return factor._replace(stats=beta2 * factor.stats + (1.0 - beta2) * gram)

    def refresh(factor: ShampooFactor, exponent: int) -> ShampooFactor:
        return factor._replace(root=matrix_inverse_root(factor.stats, exponent, eps))

    def apply(factor: ShampooFactor, x: jnp.ndarray, exponent: int) -> jnp.ndarray:
        del exponent  # already in the root
        return x @ factor.root  # (N, R, d) @ (N, d, d); the root is symmetric

    return FactorOps(init=init, update=update, refresh=refresh, apply=apply)


def scale_by_shampoo(
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-6,
    block_size: int = 1024,
    precondition_every: int = 20,
    start_preconditioning_step: int = 101,
    max_preconditioner_dim: int = 1_000_000,
    nesterov: bool = True,
    graft_type: str = 'rmsprop_normalized',
    graft_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Shampoo's direction. Defaults: AlgoPerf's Shampoo baseline (block 1024,
    start 101, refresh every 20, RMSProp-normalized grafting, Nesterov)."""
    raise_for_problems(
        'shampoo',
        dict(
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            block_size=block_size,
            precondition_every=precondition_every,
            start_preconditioning_step=start_preconditioning_step,
            max_preconditioner_dim=max_preconditioner_dim,
            nesterov=nesterov,
            graft_type=graft_type,
            graft_eps=graft_eps,
        ),
    )
    return scale_by_kronecker(
        shampoo_factor_ops(beta2, eps),
        beta1=beta1,
        beta2=beta2,
        block_size=block_size,
        precondition_every=precondition_every,
        start_preconditioning_step=start_preconditioning_step,
        max_preconditioner_dim=max_preconditioner_dim,
        nesterov=nesterov,
        graft_type=graft_type,
        graft_eps=graft_eps,
    )


def shampoo(
    learning_rate: optax.ScalarOrSchedule,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    weight_decay_mask: Optional[Any] = None,
    block_size: int = 1024,
    precondition_every: int = 20,
    start_preconditioning_step: int = 101,
    max_preconditioner_dim: int = 1_000_000,
    nesterov: bool = True,
    graft_type: str = 'rmsprop_normalized',
    graft_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Shampoo with decoupled weight decay: theta <- theta - lr * (update + wd * theta)."""
    return with_decoupled_weight_decay(
        'shampoo', scale_by_shampoo, learning_rate, weight_decay, weight_decay_mask,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        block_size=block_size,
        precondition_every=precondition_every,
        start_preconditioning_step=start_preconditioning_step,
        max_preconditioner_dim=max_preconditioner_dim,
        nesterov=nesterov,
        graft_type=graft_type,
        graft_eps=graft_eps,
    )
