"""NAdamW for PyTorch with optax's ``nadamw`` update, so both frameworks agree.

``torch.optim.NAdam`` uses Dozat's momentum-decay schedule (mu_t = b1 (1 −
0.5·0.96^(t·psi))), which is a different method; AlgoPerf's baseline and
optax use plain Nesterov momentum on Adam:

    m ← b1 m + (1 − b1) g;  v ← b2 v + (1 − b2) g²
    m̂ = b1 m / (1 − b1^(t+1)) + (1 − b1) g / (1 − b1^t);  v̂ = v / (1 − b2^t)
    θ ← θ − lr (m̂ / (√v̂ + eps) + wd θ)
"""

from __future__ import annotations

import torch


class NAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps <= 0 or not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f'invalid NAdamW settings lr={lr} betas={betas} eps={eps}')
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group['betas']
            lr, eps, wd = group['lr'], group['eps'], group['weight_decay']
            for p in group['params']:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state['step'] = 0
                    state['exp_avg'] = torch.zeros_like(p)
                    state['exp_avg_sq'] = torch.zeros_like(p)
                state['step'] += 1
                t = state['step']
                m, v = state['exp_avg'], state['exp_avg_sq']
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat = m.mul(b1 / (1 - b1 ** (t + 1))).add_(g, alpha=(1 - b1) / (1 - b1**t))
                denom = v.div(1 - b2**t).sqrt_().add_(eps)
                update = m_hat.div_(denom)
                if wd:
                    update.add_(p, alpha=wd)
                p.add_(update, alpha=-lr)
        return loss
