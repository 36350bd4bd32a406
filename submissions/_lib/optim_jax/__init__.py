"""Optimizers of the baseline zoo for JAX, as optax GradientTransformations.

Each ``name(learning_rate, ...)`` returns a full optimizer (direction, decoupled
weight decay, learning rate); ``scale_by_name(...)`` returns the direction
alone, to compose with ``optax.chain``. Hyperparameter names are shared with
``submissions._lib.optim_torch`` (which spells the learning rate ``lr``, as
torch does) and checked by ``submissions._lib.hparam_checks``.
"""

from submissions._lib.optim_jax.kronecker import KroneckerState
from submissions._lib.optim_jax.shampoo import (
    ShampooFactor,
    matrix_inverse_root,
    scale_by_shampoo,
    shampoo,
)
from submissions._lib.optim_jax.sketchy import SketchFactor, scale_by_sketchy, sketchy
from submissions._lib.optim_jax.sonew import SONewState, scale_by_sonew, sonew
from submissions._lib.optim_jax.zoo import lamb, lars, momentum, nesterov

__all__ = [
    'KroneckerState',
    'SONewState',
    'ShampooFactor',
    'SketchFactor',
    'lamb',
    'lars',
    'matrix_inverse_root',
    'momentum',
    'nesterov',
    'scale_by_shampoo',
    'scale_by_sketchy',
    'scale_by_sonew',
    'shampoo',
    'sketchy',
    'sonew',
]
