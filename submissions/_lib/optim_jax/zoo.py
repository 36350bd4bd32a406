"""First-order members of the optimizer zoo, as thin builders over optax.

The same hyperparameter names as ``optim_torch/zoo.py``; each builder there
says how the PyTorch library differs, where it does.

- ``nesterov`` / ``momentum``: SGD with coupled L2 weight decay (added to the
  gradient before momentum), as torch.optim.SGD does.
- ``lamb``: optax.lamb (bias-corrected Adam direction plus weight decay, times
  the trust ratio ||theta|| / ||update||).
- ``lars``: optax.lars with weight decay and the trust ratio applied to
  parameters with two or more axes only, as pytorch_optimizer.LARS does
  (biases and norm scales take plain momentum SGD).
"""

from __future__ import annotations

import jax
import optax

from submissions._lib.hparam_checks import raise_for_problems


def _check(name, learning_rate, **hparams):
    if not callable(learning_rate):
        hparams['learning_rate'] = learning_rate
    raise_for_problems(name, hparams)


def _sgd(name: str, learning_rate, beta1: float, weight_decay: float, nesterov: bool):
    _check(name, learning_rate, beta1=beta1, weight_decay=weight_decay)
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.sgd(learning_rate, momentum=beta1, nesterov=nesterov),
    )


def nesterov(
    learning_rate: optax.ScalarOrSchedule, beta1: float = 0.9, weight_decay: float = 0.0
) -> optax.GradientTransformation:
    return _sgd('nesterov', learning_rate, beta1, weight_decay, nesterov=True)


def momentum(
    learning_rate: optax.ScalarOrSchedule, beta1: float = 0.9, weight_decay: float = 0.0
) -> optax.GradientTransformation:
    return _sgd('momentum', learning_rate, beta1, weight_decay, nesterov=False)


def lamb(
    learning_rate: optax.ScalarOrSchedule,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    _check('lamb', learning_rate, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
    return optax.lamb(learning_rate, b1=beta1, b2=beta2, eps=eps, weight_decay=weight_decay)


def _matrices(params):
    return jax.tree.map(lambda p: p.ndim > 1, params)


def lars(
    learning_rate: optax.ScalarOrSchedule,
    beta1: float = 0.9,
    weight_decay: float = 0.0,
    trust_coefficient: float = 1e-3,
    eps: float = 0.0,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    _check(
        'lars',
        learning_rate,
        beta1=beta1,
        weight_decay=weight_decay,
        trust_coefficient=trust_coefficient,
        eps=eps,
        nesterov=nesterov,
    )
    return optax.lars(
        learning_rate,
        weight_decay=weight_decay,
        weight_decay_mask=_matrices,
        trust_coefficient=trust_coefficient,
        eps=eps,
        trust_ratio_mask=_matrices,
        momentum=beta1,
        nesterov=nesterov,
    )
