"""Bad hyperparameters: clear messages, every problem at once, in both frameworks."""

import jax.numpy as jnp
import pytest
import torch

from harness.errors import UserInputError
from submissions._lib import optim_jax, optim_torch
from submissions._lib.hparam_checks import FAMILIES, validate_hparams

BAD = [
    # (family, hyperparameters, words the message must contain)
    ('sketchy', {'rank': 200, 'block_size': 128}, ['rank = 200', 'block_size = 128']),
    ('shampoo', {'block_size': 0}, ['block_size = 0', 'integer >= 1']),
    ('shampoo', {'precondition_every': -5}, ['precondition_every = -5', 'integer >= 1']),
    ('shampoo', {'eps': 0.0}, ['eps = 0.0', '> 0']),
    ('sketchy', {'eps': -1e-7}, ['eps = -1e-07']),
    ('sonew', {'beta2': 1.0}, ['beta2 = 1.0', '[0, 1)']),
    ('shampoo', {'beta1': -0.1}, ['beta1 = -0.1', '[0, 1)']),
    ('lamb', {'beta1': 1.5}, ['beta1 = 1.5']),
    ('shampoo', {'graft_type': 'sgd'}, ['graft_type', 'rmsprop_normalized, adam']),
    ('sketchy', {'rank': 0}, ['rank = 0']),
    ('lars', {'trust_coefficient': 0.0}, ['trust_coefficient = 0.0']),
    ('nesterov', {'weight_decay': -1.0}, ['weight_decay = -1.0']),
]


@pytest.mark.parametrize('family,hparams,words', BAD)
def test_validate_hparams_names_the_problem(family, hparams, words):
    problems = validate_hparams(family, hparams)
    assert problems, hparams
    for word in words:
        assert any(word in p for p in problems), (word, problems)


def test_good_defaults_pass():
    good = {
        'learning_rate': 1e-3,
        'beta1': 0.9,
        'beta2': 0.999,
        'eps': 1e-8,
        'block_size': 1024,
        'precondition_every': 20,
        'rank': 128,
        'start_preconditioning_step': 101,
        'weight_decay': 0.0,
    }
    for family in FAMILIES:
        assert validate_hparams(family, good) == [], family


def test_search_space_entries_are_checked_at_their_ends():
    space = {
        'learning_rate': {'min': 1e-4, 'max': 1e-2, 'scaling': 'log'},
        'one_minus_beta1': {'min': 0.0, 'max': 0.1},
        'block_size': {'feasible_points': [256, 0]},
        'rank': {'feasible_points': [64, 512]},
    }
    problems = validate_hparams('sketchy', space)
    assert len(problems) == 3, problems  # one_minus_beta1 min, block_size 0, rank 512 > 256
    assert any('one_minus_beta1 = 0.0' in p for p in problems)
    assert any('rank = 512 is larger than block_size = 256' in p for p in problems)


def test_unknown_family():
    assert 'known:' in validate_hparams('shampo', {})[0]


def _jax(family, **hparams):
    builder = getattr(optim_jax, family)
    return builder(hparams.pop('learning_rate', 0.1), **hparams).init({'w': jnp.zeros((2, 2))})


def _torch(family, **hparams):
    builder = {
        'shampoo': optim_torch.Shampoo,
        'sketchy': optim_torch.Sketchy,
        'sonew': optim_torch.SONew,
    }.get(family) or getattr(optim_torch, family)
    return builder(
        [torch.nn.Parameter(torch.zeros(2, 2))], lr=hparams.pop('learning_rate', 0.1), **hparams
    )


@pytest.mark.parametrize('build', [_jax, _torch], ids=['jax', 'pytorch'])
def test_constructors_report_every_problem(build):
    with pytest.raises(UserInputError) as info:
        build('sketchy', rank=300, block_size=256, eps=0.0, beta2=1.0)
    message = str(info.value)
    for word in ('rank = 300', 'eps = 0.0', 'beta2 = 1.0', '3 problem(s)'):
        assert word in message, message
    with pytest.raises(UserInputError, match='precondition_every = -1'):
        build('shampoo', precondition_every=-1)
    with pytest.raises(UserInputError, match='block_size = 0'):
        build('shampoo', block_size=0)
    with pytest.raises(UserInputError, match='learning_rate = -1|lr = -1'):
        build('nesterov', learning_rate=-1.0)
    with pytest.raises(UserInputError, match='eps = 0.0'):
        build('sonew', eps=0.0)


def test_torch_param_group_overrides_are_checked():
    good = torch.nn.Parameter(torch.zeros(2, 2))
    bad = torch.nn.Parameter(torch.zeros(2, 2))
    with pytest.raises(UserInputError, match='block_size = 0'):
        optim_torch.Shampoo([{'params': [good]}, {'params': [bad], 'block_size': 0}])
