"""Every zoo optimizer decreases a convex quadratic and Rosenbrock, in both frameworks."""

import pytest

from optim_problems import NUM_STEPS, OBJECTIVES, ZOO, run_jax, run_torch

CASES = [(family, objective) for family in ZOO for objective in OBJECTIVES]


@pytest.mark.parametrize('framework', ['jax', 'pytorch'])
@pytest.mark.parametrize('family,objective', CASES)
def test_decreases(family, objective, framework):
    hparams, lrs = ZOO[family]
    init, loss_fn = OBJECTIVES[objective]
    run = run_jax if framework == 'jax' else run_torch
    first, last = run(family, lrs[objective], hparams, init(), loss_fn, NUM_STEPS)
    assert last < 0.5 * first, f'{family} on {objective} ({framework}): {first:.4g} -> {last:.4g}'
