"""Sketchy (Frequent-Directions Shampoo) as a torch.optim.Optimizer.

The same math as ``optim_jax/sketchy.py`` (its docstring has the equations and
choices). State per factor: basis (N, d, k), sigma (N, k), tail (N,).
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from submissions._lib.optim_torch.kronecker import FactorOps, KroneckerOptimizer


def frequent_directions_update(factor: Dict[str, torch.Tensor], unfolded: torch.Tensor,
                               beta2: float) -> None:
    """One decayed Frequent Directions step, in place; ``unfolded`` is (N, d, cols)."""
    basis, sigma, tail = factor['basis'], factor['sigma'], factor['tail']
    k = sigma.shape[-1]
    kept = beta2**0.5 * basis * sigma[:, None, :]
    z = torch.cat([kept, (1.0 - beta2) ** 0.5 * unfolded], dim=-1)  # (N, d, k + cols)
    u, s, _ = torch.linalg.svd(z, full_matrices=False)  # u (N, d, m), s (N, m), m >= k
    s_padded = torch.cat([s, torch.zeros_like(s[:, :1])], dim=-1)
    cut = s_padded[:, k]  # (N,)
    factor['basis'] = u[:, :, :k].contiguous()
    factor['sigma'] = (s[:, :k].square() - cut.square()[:, None]).clamp_min(0.0).sqrt()
    factor['tail'] = beta2 * tail + cut.square()


def apply_sketch(factor: Dict[str, torch.Tensor], x: torch.Tensor, exponent: int,
                 eps: float) -> torch.Tensor:
    """x (N, R, d) times (U diag(sigma^2) U^T + tail I)^(-1/p) with a relative ridge."""
    basis = factor['basis']
    tail = factor['tail'][:, None]  # (N, 1)
    lam = factor['sigma'].square() + tail  # (N, k)
    lam_max = lam.amax(dim=-1, keepdim=True)
    ridge = eps * lam_max
    active = lam_max > 0  # a factor that has seen no gradient is the identity

    def inv_root(v):
        one = torch.ones_like(v)
        return torch.where(active, torch.where(active, v + ridge, one).pow(-1.0 / exponent), one)

    kept, rest = inv_root(lam), inv_root(tail)  # (N, k), (N, 1)
    coords = x @ basis  # (N, R, k)
    correction = (coords * (kept - rest)[:, None, :]) @ basis.transpose(-1, -2)
    return rest[:, :, None] * x + correction


def sketchy_factor_ops(group: Dict[str, Any]) -> FactorOps:
    beta2, eps, rank = group['beta2'], group['eps'], int(group['rank'])

    def init(num_blocks: int, dim: int, device) -> Dict[str, torch.Tensor]:
        k = min(rank, dim)
        return {'basis': torch.zeros(num_blocks, dim, k, device=device),
                'sigma': torch.zeros(num_blocks, k, device=device),
                'tail': torch.zeros(num_blocks, device=device)}

    return FactorOps(
        init=init,
        update=lambda factor, unfolded: frequent_directions_update(factor, unfolded, beta2),
        refresh=None,
        apply=lambda factor, x, exponent: apply_sketch(factor, x, exponent, eps),
    )


class Sketchy(KroneckerOptimizer):
    """Sketchy with decoupled weight decay; defaults rank 128, eps 1e-7, beta2 0.999."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-7,
        weight_decay: float = 0.0,
        rank: int = 128,
        block_size: int = 1024,
        start_preconditioning_step: int = 101,
        max_preconditioner_dim: int = 1_000_000,
        nesterov: bool = True,
        graft_type: str = 'rmsprop_normalized',
        graft_eps: float = 1e-8,
    ):
        defaults = dict(
            lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, rank=rank,
            block_size=block_size, start_preconditioning_step=start_preconditioning_step,
            max_preconditioner_dim=max_preconditioner_dim, nesterov=nesterov,
            graft_type=graft_type, graft_eps=graft_eps)
        super().__init__(params, defaults, family='sketchy', make_ops=sketchy_factor_ops)
