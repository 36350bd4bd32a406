"""First-order members of the optimizer zoo for PyTorch: thin builders over libraries.

Same names and hyperparameters as ``optim_jax/zoo.py``. Differences from the
optax versions that remain, by library:

- ``nesterov`` / ``momentum``: torch.optim.SGD (coupled L2 decay, momentum
  without dampening) is optax's ``add_decayed_weights`` + ``sgd``: identical.
- ``lamb``: pytorch_optimizer 4.1.0 ``Lamb`` set to optax's semantics as far
  as it goes: weight decay inside the trust ratio (``weight_decouple=False``),
  no clamp of the weight norm (the library clamps at 10 by default; optax does
  not), no extra 1 / (1 - beta1^t) step size (``adam_debias=True``). Left:
  its Adam direction is not bias-corrected, which only changes how much the
  weight-decay term weighs in the first ~1 / (1 - beta2) steps.
- ``lars``: pytorch_optimizer 4.1.0 ``LARS`` (weight decay and trust ratio on
  parameters with two or more axes, like our optax masks). Left: its trust
  ratio divides by ||g|| + wd ||theta|| where optax uses ||g + wd theta||, and
  it applies the learning rate after momentum where optax applies it before
  (the same when the learning rate is constant).
"""

from __future__ import annotations

import math

import torch
from pytorch_optimizer import LARS, Lamb

from submissions._lib.hparam_checks import raise_for_problems


def nesterov(
    params, lr: float, beta1: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    raise_for_problems('nesterov', dict(lr=lr, beta1=beta1, weight_decay=weight_decay))
    return torch.optim.SGD(params, lr=lr, momentum=beta1, weight_decay=weight_decay, nesterov=True,
                           fused=True)


def momentum(
    params, lr: float, beta1: float = 0.9, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    raise_for_problems('momentum', dict(lr=lr, beta1=beta1, weight_decay=weight_decay))
    return torch.optim.SGD(params, lr=lr, momentum=beta1, weight_decay=weight_decay, nesterov=False,
                           fused=True)


def lamb(
    params,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    raise_for_problems(
        'lamb', dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
    )
    optimizer = Lamb(
        params,
        lr=lr,
        betas=(beta1, beta2),
        eps=eps,
        weight_decay=weight_decay,
        weight_decouple=False,
        adam_debias=True,
    )
    optimizer.clamp = math.inf  # the class default clamps ||theta|| at 10
    return optimizer


def lars(
    params,
    lr: float,
    beta1: float = 0.9,
    weight_decay: float = 0.0,
    trust_coefficient: float = 1e-3,
    eps: float = 0.0,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """``eps`` is accepted for the shared signature; pytorch_optimizer's LARS has none
    (it falls back to a trust ratio of 1 where a norm is zero, as optax does)."""
    raise_for_problems(
        'lars',
        dict(
            lr=lr,
            beta1=beta1,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            eps=eps,
            nesterov=nesterov,
        ),
    )
    return LARS(
        params,
        lr=lr,
        momentum=beta1,
        weight_decay=weight_decay,
        trust_coefficient=trust_coefficient,
        nesterov=nesterov,
    )
