"""State and compilation: no recompile after the second step; Sketchy's state is O(d k)."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from optim_problems import KRON, ZOO, jax_optimizer
from submissions._lib import optim_jax, optim_torch


@pytest.mark.parametrize('family', sorted(ZOO))
def test_jax_update_compiles_once(family):
    """Eight steps cross the start step (5) and Shampoo's refreshes (5, 8): one compilation."""
    hparams, lrs = ZOO[family]
    opt = jax_optimizer(family, optax.linear_schedule(0.0, lrs['quadratic'], 4), hparams)
    params = {'w': jnp.ones((4, 3)), 'b': jnp.ones(3)}
    state = opt.init(params)

    @jax.jit
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    rng = np.random.default_rng(0)
    for _ in range(8):
        grads = {k: jnp.asarray(rng.normal(size=v.shape), jnp.float32) for k, v in params.items()}
        params, state = step(params, state, grads)
    assert step._cache_size() == 1


def _factor_arrays(family, shape, rank, block_size):
    """Every array of the JAX and the torch factor state for one parameter."""
    transform = optim_jax.scale_by_sketchy(rank=rank, block_size=block_size)
    jax_state = transform.init({'w': jnp.zeros(shape)})
    jax_arrays = [np.asarray(a) for a in jax.tree.leaves(jax_state.factors)]
    param = torch.nn.Parameter(torch.zeros(shape))
    opt = optim_torch.Sketchy([param], rank=rank, block_size=block_size)
    param.grad = torch.ones(shape)
    opt.step()
    torch_arrays = [t.numpy() for f in opt.state[param]['factors'] for t in f.values()]
    return jax_arrays, torch_arrays


@pytest.mark.parametrize(
    'shape,rank,block_size,blocks',
    [
        ((64, 48), 4, 64, [(1, 64), (1, 48)]),
        ((100, 48), 4, 64, [(2, 50), (2, 48)]),  # 100 rows: two blocks of 50
    ],
)
def test_sketchy_state_is_linear_in_dimension(shape, rank, block_size, blocks):
    expected_shapes = sorted(s for n, d in blocks for s in [(n, d, rank), (n, rank), (n,)])
    for arrays in _factor_arrays('sketchy', shape, rank, block_size):
        assert sorted(a.shape for a in arrays) == expected_shapes
        assert sum(a.size for a in arrays) == sum(n * (d * rank + rank + 1) for n, d in blocks)


def test_sketchy_rank_clamped_to_a_narrow_factor():
    jax_arrays, torch_arrays = _factor_arrays('sketchy', (3, 40), 8, 64)
    for arrays in (jax_arrays, torch_arrays):
        assert (1, 3, 3) in [a.shape for a in arrays]  # a 3-row factor keeps 3 directions


def test_parameters_without_preconditioner_keep_no_factors():
    """Vectors, (1, n) rows and embedding-sized tables take the grafted update."""
    params = {'bias': jnp.zeros(7), 'row': jnp.zeros((1, 7)), 'table': jnp.zeros((12, 4))}
    state = optim_jax.scale_by_shampoo(
        max_preconditioner_dim=12, **{k: v for k, v in KRON.items() if k != 'beta2'}
    ).init(params)
    assert state.factors == [(), (), ()]
    torch_params = [torch.nn.Parameter(torch.zeros(s)) for s in ((7,), (1, 7), (12, 4))]
    opt = optim_torch.Shampoo(torch_params, max_preconditioner_dim=12)
    for p in torch_params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert all('factors' not in opt.state[p] for p in torch_params)


@pytest.mark.parametrize('family', ['shampoo', 'sketchy', 'sonew'])
def test_torch_state_dict_round_trip(family):
    """A reloaded optimizer continues exactly where the saved one was (checkpoints)."""
    builder = {
        'shampoo': optim_torch.Shampoo,
        'sketchy': optim_torch.Sketchy,
        'sonew': optim_torch.SONew,
    }[family]
    hparams = {} if family == 'sonew' else {'block_size': 4, 'start_preconditioning_step': 2}
    if family == 'sketchy':
        hparams['rank'] = 2
    rng = np.random.default_rng(0)
    grads = [torch.tensor(rng.normal(size=(6, 5)), dtype=torch.float32) for _ in range(6)]

    def make(initial):
        param = torch.nn.Parameter(initial.clone())
        return param, builder([param], lr=0.1, **hparams)

    param, opt = make(torch.ones(6, 5))
    for grad in grads[:3]:
        param.grad = grad
        opt.step()
    # deepcopy: state_dict() shares the live tensors (the harness deep-copies too).
    saved_param, saved_state = param.detach().clone(), copy.deepcopy(opt.state_dict())
    for grad in grads[3:]:
        param.grad = grad
        opt.step()
    resumed, resumed_opt = make(saved_param)
    resumed_opt.load_state_dict(saved_state)
    for grad in grads[3:]:
        resumed.grad = grad
        resumed_opt.step()
    torch.testing.assert_close(resumed.detach(), param.detach(), rtol=0, atol=0)
