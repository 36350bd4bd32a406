"""Shampoo as a torch.optim.Optimizer; the same math as ``optim_jax/shampoo.py``.

Our own code rather than a library (decision recorded here): pytorch-optimizer
4.1.0's ``ScalableShampoo`` grafts per tensor, not per block; merges small axes
(``shape_interpretation``), which changes the factors and the exponent; seeds
the statistics with eps * I instead of a relative ridge at root time (and its
SVD path has no ridge at all); has no Adam grafting; its Schur-Newton root
syncs with the host at every iteration; and its Nesterov step differs from the
JAX one. Its plain ``Shampoo`` has no blocking, grafting or start step.
heavyball 3.2.1 has SOAP and KL-Shampoo but no grafted, blocked Shampoo.
Writing ours keeps JAX and PyTorch on the same math, which the parity tests
check.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from submissions._lib.optim_torch.kronecker import FactorOps, KroneckerOptimizer


def matrix_inverse_root(stats: torch.Tensor, exponent: int, eps: float) -> torch.Tensor:
    """(N, d, d) symmetric PSD -> (stats + eps * lambda_max * I)^(-1/exponent); zero -> I."""
    stats = 0.5 * (stats + stats.transpose(-1, -2))
    eigvals, eigvecs = torch.linalg.eigh(stats)
    eigvals = eigvals.clamp_min(0.0)  # round-off can make tiny eigenvalues negative
    lam_max = eigvals.amax(dim=-1, keepdim=True)
    active = lam_max > 0
    safe = torch.where(active, eigvals + eps * lam_max, torch.ones_like(eigvals))
    inv = torch.where(active, safe.pow(-1.0 / exponent), torch.ones_like(eigvals))
    return (eigvecs * inv[..., None, :]) @ eigvecs.transpose(-1, -2)


def shampoo_factor_ops(group: Dict[str, Any]) -> FactorOps:
    beta2, eps = group['beta2'], group['eps']

    def init(num_blocks: int, dim: int, device) -> Dict[str, torch.Tensor]:
        eye = torch.eye(dim, dtype=torch.float32, device=device)
        return {
            'stats': torch.zeros(num_blocks, dim, dim, device=device),
            'root': eye.repeat(num_blocks, 1, 1),
        }

    def update(factor, unfolded):
        gram = unfolded @ unfolded.transpose(-1, -2)  # (N, d, d)
        factor['stats'].mul_(beta2).add_(gram, alpha=1.0 - beta2)

    def refresh(factor, exponent):
        factor['root'] = matrix_inverse_root(factor['stats'], exponent, eps)

    def apply(factor, x, exponent):
        del exponent  # already in the root
        return x @ factor['root']  # the root is symmetric

    return FactorOps(init=init, update=update, refresh=refresh, apply=apply)


class Shampoo(KroneckerOptimizer):
    """Blocked, grafted Shampoo with decoupled weight decay.

    theta <- theta - lr * (update + weight_decay * theta). Defaults: AlgoPerf's
    Shampoo baseline (block 1024, start 101, refresh every 20,
    RMSProp-normalized grafting, Nesterov).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        block_size: int = 1024,
        precondition_every: int = 20,
        start_preconditioning_step: int = 101,
        max_preconditioner_dim: int = 1_000_000,
        nesterov: bool = True,
        graft_type: str = 'rmsprop_normalized',
        graft_eps: float = 1e-8,
    ):
        defaults = dict(
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
            block_size=block_size,
            precondition_every=precondition_every,
            start_preconditioning_step=start_preconditioning_step,
            max_preconditioner_dim=max_preconditioner_dim,
            nesterov=nesterov,
            graft_type=graft_type,
            graft_eps=graft_eps,
        )
        super().__init__(params, defaults, family='shampoo', make_ops=shampoo_factor_ops)
