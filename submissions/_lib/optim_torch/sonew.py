"""Tridiagonal SONew as a torch.optim.Optimizer; the same math as ``optim_jax/sonew.py``.

Per-parameter state: ``step`` (int), ``mu`` and ``diag`` (n,), ``offdiag``
(n - 1,), float32, over the parameter's row-major flattening. Note that a
torch Linear weight is (out, in) and a flax Dense kernel (in, out), so the
two frameworks chain different neighbours on the same model; the optimizer
itself agrees on the same array (the parity test).
"""

from __future__ import annotations

from typing import Tuple

import torch

from submissions._lib.hparam_checks import raise_for_problems
from submissions._lib.optim_torch._blocks import safe_ratio


def tridiagonal_factors(
    diag: torch.Tensor, offdiag: torch.Tensor, eps: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(psi (n-1,), c (n,)) with X = L diag(1/c) L^T, L_i+1,i = -psi_i."""
    d = diag + eps
    psi = offdiag / d[1:]
    c_head = d[:-1] - psi * offdiag
    degenerate = c_head <= 0
    psi = torch.where(degenerate, torch.zeros_like(psi), psi)
    c_head = torch.where(degenerate, d[:-1], c_head)
    return psi, torch.cat([c_head, d[-1:]])


def apply_tridiagonal(psi: torch.Tensor, c: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """L diag(1/c) L^T v in O(n)."""
    y = v - torch.cat([psi * v[1:], torch.zeros_like(v[:1])])  # L^T v
    z = y / c
    return z - torch.cat([torch.zeros_like(z[:1]), psi * z[:-1]])  # L z


class SONew(torch.optim.Optimizer):
    """Tridiagonal SONew grafted to Adam's step norm, decoupled weight decay.

    theta <- theta - lr * (u + weight_decay * theta).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        graft_eps: float = 1e-8,
    ):
        defaults = dict(
            lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, graft_eps=graft_eps
        )
        super().__init__(params, defaults)

    def add_param_group(self, param_group) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        raise_for_problems('sonew', {k: v for k, v in group.items() if k != 'params'})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group['beta1'], group['beta2']
            for param in group['params']:
                if param.grad is None:
                    continue
                state = self.state[param]
                n = param.numel()
                if not state:
                    state['step'] = 0
                    for key, size in (('mu', n), ('diag', n), ('offdiag', n - 1)):
                        state[key] = torch.zeros(size, device=param.device)
                state['step'] += 1
                t = state['step']
                g = param.grad.float().reshape(-1)
                state['mu'].mul_(beta1).add_(g, alpha=1.0 - beta1)
                state['diag'].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                state['offdiag'].mul_(beta2).addcmul_(g[:-1], g[1:], value=1.0 - beta2)
                bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2**t
                m_hat = state['mu'] / bc1
                diag_hat, offdiag_hat = state['diag'] / bc2, state['offdiag'] / bc2
                psi, c = tridiagonal_factors(diag_hat, offdiag_hat, group['eps'])
                u = apply_tridiagonal(psi, c, m_hat)
                adam = m_hat / (diag_hat.sqrt() + group['graft_eps'])
                u = u * safe_ratio(torch.linalg.vector_norm(adam), torch.linalg.vector_norm(u))
                update = u.reshape(param.shape).to(param.dtype)
                param.add_(update + group['weight_decay'] * param, alpha=-group['lr'])
        return loss
