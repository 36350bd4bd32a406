"""The part Shampoo and Sketchy share: blocks, grafting, start step, momentum (PyTorch).

The same algorithm as ``optim_jax/kronecker.py`` (read its docstring for the
choices), as a ``torch.optim.Optimizer`` base class; ``FactorOps`` says how one
axis's factors are stored, fed, refreshed and applied, as in JAX. Hyperparameters live in
each param group under the JAX names (the learning rate is ``lr``, as torch
schedulers expect); every group is validated when it is added.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import torch

from submissions._lib.hparam_checks import raise_for_problems
from submissions._lib.optim_blocks import BlockLayout, block_layout
from submissions._lib.optim_torch._blocks import (
    apply_along,
    block_norms,
    from_blocks,
    safe_ratio,
    to_blocks,
    unfold,
)


def graft_direction(
    grad: torch.Tensor,
    nu: torch.Tensor,
    step: int,
    graft_type: str,
    beta2: float,
    graft_eps: float,
) -> torch.Tensor:
    """The first-order direction to graft onto; updates ``nu`` in place."""
    if graft_type == 'rmsprop_normalized':
        grad = grad * safe_ratio(1.0, torch.linalg.vector_norm(grad))
    nu.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    nu_hat = nu / (1.0 - beta2**step)
    return grad / (nu_hat.sqrt() + graft_eps)


def momentum_update(
    mu: torch.Tensor, direction: torch.Tensor, step: int, beta1: float, nesterov: bool
) -> torch.Tensor:
    """The update; ``mu`` (bias-corrected EMA) is updated in place. NAdam's Nesterov."""
    mu.mul_(beta1).add_(direction, alpha=1.0 - beta1)
    if nesterov:
        return (beta1 / (1.0 - beta1 ** (step + 1))) * mu + (
            (1.0 - beta1) / (1.0 - beta1**step)
        ) * direction
    return mu / (1.0 - beta1**step)


class FactorOps(NamedTuple):
    """How one kind of Kronecker factor is stored, fed and applied (one axis's blocks)."""

    #: (num_blocks, dim, device) -> the axis's factor tensors, batched over blocks.
    init: Callable[[int, int, torch.device], Dict[str, torch.Tensor]]
    #: (factor, unfolded gradient (N, dim, cols) float32) -> None; updates in place, every step.
    update: Callable[[Dict[str, torch.Tensor], torch.Tensor], None]
    #: (factor, exponent p) -> None, in place, on refresh steps. None: nothing to refresh.
    refresh: Optional[Callable[[Dict[str, torch.Tensor], int], None]]
    #: (factor, x (N, R, dim), exponent p) -> x times the factor's -1/p power along dim.
    apply: Callable[[Dict[str, torch.Tensor], torch.Tensor, int], torch.Tensor]


class KroneckerOptimizer(torch.optim.Optimizer):
    """Base of Shampoo and Sketchy: ``make_ops(group)`` builds the group's FactorOps.

    Per-parameter state: ``step`` (int), ``mu`` and ``graft_nu`` (float32, like
    the parameter) and ``factors`` (one dict of tensors per squeezed axis; absent
    for parameters without a preconditioner).
    """

    def __init__(
        self,
        params,
        defaults: Dict[str, Any],
        family: str,
        make_ops: Callable[[Dict[str, Any]], FactorOps],
    ):
        self.family = family
        self._make_ops = make_ops
        super().__init__(params, defaults)

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        raise_for_problems(self.family, {k: v for k, v in group.items() if k != 'params'})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group['params']:
                if param.grad is not None:
                    self._step_param(param, group)
        return loss

    def _layout(self, shape, group) -> Optional[BlockLayout]:
        return block_layout(shape, group['block_size'], group['max_preconditioner_dim'])

    def _schedule(self, step: int, group: Dict[str, Any]) -> Tuple[bool, bool]:
        """(is_active, is_refresh) for a 1-based step."""
        start = max(int(group['start_preconditioning_step']), 1)
        is_active = step >= start
        every = int(group.get('precondition_every', 1))
        return is_active, is_active and (step - start) % every == 0

    def _step_param(self, param: torch.Tensor, group: Dict[str, Any]) -> None:
        ops = self._make_ops(group)
        state = self.state[param]
        layout = self._layout(param.shape, group)
        if not state:
            state['step'] = 0
            state['mu'] = torch.zeros_like(param, dtype=torch.float32)
            state['graft_nu'] = torch.zeros_like(param, dtype=torch.float32)
            if layout is not None:
                state['factors'] = [
                    ops.init(layout.num_blocks, dim, param.device) for dim in layout.sizes
                ]
        state['step'] += 1
        step = state['step']
        grad = param.grad.float()
        graft = graft_direction(
            grad, state['graft_nu'], step, group['graft_type'], group['beta2'], group['graft_eps']
        )
        direction = graft
        if layout is not None:
            exponent = layout.exponent
            factors = state['factors']
            blocks = to_blocks(grad, layout)  # (N, b1, ..., bk)
            for axis, factor in enumerate(factors):
                ops.update(factor, unfold(blocks, axis))
            is_active, is_refresh = self._schedule(step, group)
            if is_refresh and ops.refresh is not None:
                for factor in factors:
                    ops.refresh(factor, exponent)
            if is_active:
                pre = blocks
                for axis, factor in enumerate(factors):
                    pre = apply_along(
                        pre, axis, lambda x, factor=factor: ops.apply(factor, x, exponent)
                    )
                scale = safe_ratio(block_norms(to_blocks(graft, layout)), block_norms(pre))
                direction = from_blocks(pre * scale.reshape((-1,) + (1,) * layout.rank), layout)
        update = momentum_update(state['mu'], direction, step, group['beta1'], group['nesterov'])
        # Decoupled weight decay: theta <- theta - lr * (update + wd * theta).
        param.add_(update.to(param.dtype) + group['weight_decay'] * param, alpha=-group['lr'])
