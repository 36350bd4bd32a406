"""Sketchy (Frequent-Directions Shampoo) as a torch.optim.Optimizer.

The same math as ``optim_jax/sketchy.py`` (its docstring has the equations and
choices). State per factor: basis (N, d, k), sigma (N, k), tail (N,).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch

from submissions._lib.optim_torch.kronecker import FactorOps, KroneckerOptimizer


# Gram eigenvalues below this fraction of the largest are float32 noise (tall case).
GRAM_FLOOR = 1e-6


def top_left_singular(z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(u, s2) of z (N, d, m): left singular vectors (N, d, r) and squared singular
    values (N, r), r = min(d, m), largest first, through the smaller Gram matrix."""
    d, m = z.shape[-2:]
    zt = z.transpose(-1, -2)
    if d <= m:
        s2, u = torch.linalg.eigh(z @ zt)  # ascending
        return u.flip(-1), s2.flip(-1).clamp_min(0.0)
    s2, v = torch.linalg.eigh(zt @ z)
    s2, v = s2.flip(-1).clamp_min(0.0), v.flip(-1)
    kept = s2 > GRAM_FLOOR * s2[..., :1]
    one, zero = torch.ones_like(s2), torch.zeros_like(s2)
    inv_s = torch.where(kept, torch.where(kept, s2, one).rsqrt(), zero)
    return (z @ v) * inv_s[:, None, :], torch.where(kept, s2, zero)


def frequent_directions_update(
    factor: Dict[str, torch.Tensor], unfolded: torch.Tensor, beta2: float
) -> None:
    """One decayed Frequent Directions step, in place; ``unfolded`` is (N, d, cols)."""
    basis, sigma, tail = factor['basis'], factor['sigma'], factor['tail']
    k = sigma.shape[-1]
    kept = beta2**0.5 * basis * sigma[:, None, :]
    z = torch.cat([kept, (1.0 - beta2) ** 0.5 * unfolded], dim=-1)  # (N, d, k + cols)
    u, s2 = top_left_singular(z)  # u (N, d, r), s2 (N, r), r >= k
    cut2 = torch.cat([s2, torch.zeros_like(s2[:, :1])], dim=-1)[:, k]  # (N,) = c^2
    factor['basis'] = u[:, :, :k].contiguous()
    factor['sigma'] = (s2[:, :k] - cut2[:, None]).clamp_min(0.0).sqrt()
    factor['tail'] = beta2 * tail + cut2


def apply_sketch(
    factor: Dict[str, torch.Tensor], x: torch.Tensor, exponent: int, eps: float
) -> torch.Tensor:
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
        return {
            'basis': torch.zeros(num_blocks, dim, k, device=device),
            'sigma': torch.zeros(num_blocks, k, device=device),
            'tail': torch.zeros(num_blocks, device=device),
        }

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
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
            rank=rank,
            block_size=block_size,
            start_preconditioning_step=start_preconditioning_step,
            max_preconditioner_dim=max_preconditioner_dim,
            nesterov=nesterov,
            graft_type=graft_type,
            graft_eps=graft_eps,
        )
        super().__init__(params, defaults, family='sketchy', make_ops=sketchy_factor_ops)
