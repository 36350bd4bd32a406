"""Small objectives and optimizer tables shared by the optimizer tests.

Both objectives take a dict of parameters with a matrix (so that Shampoo and
Sketchy precondition something, with blocks and padding) and a vector (which
takes the grafted update), and are written once over an array namespace
(``jax.numpy`` or ``torch``).
"""

from __future__ import annotations

import numpy as np

MATRIX_SHAPE = (4, 3)
_TARGET = np.linspace(-1.0, 1.0, 12).reshape(MATRIX_SHAPE).astype(np.float32)
_SCALES = np.array([1.0, 2.0, 3.0, 4.0], np.float32)[:, None]  # condition number 16


def quadratic_init():
    return {'w': np.zeros(MATRIX_SHAPE, np.float32), 'b': np.ones(3, np.float32)}


def quadratic(params, xp):
    """0.5 * ||diag(s) (W - W*)||^2 + 0.5 * ||b - 0.5||^2, minimum 0."""
    scales, target = xp.asarray(_SCALES), xp.asarray(_TARGET)
    return 0.5 * xp.sum((scales * (params['w'] - target)) ** 2) + 0.5 * xp.sum(
        (params['b'] - 0.5) ** 2
    )


def rosenbrock_init():
    w = np.array(
        [[-1.2, 1.0, -1.2], [1.0, -1.2, 1.0], [-1.2, 1.0, -1.2], [1.0, -1.2, 1.0]], np.float32
    )
    return {'w': w, 'b': np.full(3, -1.0, np.float32)}


def rosenbrock(params, xp):
    """Chained Rosenbrock over W's entries (row-major) plus the vector's; minimum 0 at 1."""
    total = 0.0
    for x in (params['w'].reshape(-1), params['b']):
        total = total + xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    return total


OBJECTIVES = {'quadratic': (quadratic_init, quadratic), 'rosenbrock': (rosenbrock_init, rosenbrock)}

# Shared structural settings: blocks of 2 cut the (4, 3) matrix into 2 x 2
# blocks of (2, 2) with one padded column; preconditioning starts at step 5.
KRON = dict(block_size=2, start_preconditioning_step=5, beta2=0.99)
# (family, hyperparameters without the learning rate, learning rate per objective)
ZOO = {
    'nesterov': ({'beta1': 0.9}, {'quadratic': 0.02, 'rosenbrock': 2e-4}),
    'momentum': ({'beta1': 0.9}, {'quadratic': 0.02, 'rosenbrock': 2e-4}),
    'lamb': ({'beta1': 0.9, 'beta2': 0.99}, {'quadratic': 0.05, 'rosenbrock': 0.05}),
    'lars': ({'beta1': 0.9, 'trust_coefficient': 1.0}, {'quadratic': 0.005, 'rosenbrock': 2e-4}),
    'shampoo': ({**KRON, 'precondition_every': 3}, {'quadratic': 0.05, 'rosenbrock': 0.01}),
    'sketchy': ({**KRON, 'rank': 1}, {'quadratic': 0.05, 'rosenbrock': 0.01}),
    'sonew': ({'beta2': 0.99}, {'quadratic': 0.3, 'rosenbrock': 0.1}),
}
NUM_STEPS = 150


def jax_optimizer(family, lr, hparams):
    from submissions._lib import optim_jax

    return getattr(optim_jax, family)(lr, **hparams)


def torch_optimizer(family, params, lr, hparams):
    from submissions._lib import optim_torch

    builders = {
        'shampoo': optim_torch.Shampoo,
        'sketchy': optim_torch.Sketchy,
        'sonew': optim_torch.SONew,
    }
    builder = builders.get(family) or getattr(optim_torch, family)
    return builder(params, lr=lr, **hparams)


def run_jax(family, lr, hparams, init, loss_fn, num_steps):
    """Loss before and after ``num_steps`` steps, JAX."""
    import jax
    import jax.numpy as jnp
    import optax

    params = {k: jnp.asarray(v) for k, v in init.items()}
    opt = jax_optimizer(family, lr, hparams)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(p, jnp))(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    first = float(loss_fn(params, jnp))
    for _ in range(num_steps):
        params, state, _ = step(params, state)
    return first, float(loss_fn(params, jnp))


def run_torch(family, lr, hparams, init, loss_fn, num_steps):
    """Loss before and after ``num_steps`` steps, PyTorch."""
    import torch

    params = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in init.items()}
    opt = torch_optimizer(family, list(params.values()), lr, hparams)
    with torch.no_grad():
        first = float(loss_fn(params, torch))
    for _ in range(num_steps):
        opt.zero_grad()
        loss_fn(params, torch).backward()
        opt.step()
    with torch.no_grad():
        return first, float(loss_fn(params, torch))
