"""Optimizers of the baseline zoo for PyTorch, as torch.optim.Optimizer objects.

``Shampoo``, ``Sketchy`` and ``SONew`` are our own (the same math as
``submissions._lib.optim_jax``); ``nesterov``, ``momentum``, ``lamb`` and
``lars`` build library optimizers. Hyperparameter names are shared with the
JAX package, except that the learning rate is ``lr``, as torch spells it.
"""

from submissions._lib.optim_torch.shampoo import Shampoo, matrix_inverse_root
from submissions._lib.optim_torch.sketchy import Sketchy
from submissions._lib.optim_torch.sonew import SONew
from submissions._lib.optim_torch.zoo import lamb, lars, momentum, nesterov

__all__ = [
    'SONew',
    'Shampoo',
    'Sketchy',
    'lamb',
    'lars',
    'matrix_inverse_root',
    'momentum',
    'nesterov',
]
