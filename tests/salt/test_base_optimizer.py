"""The SALT ablations' controls: salt, salt_ds and kd_only stand on the same base optimizer
(AdamW or NAdamW, hyperparameter ``optimizer``) and search the same ω and τ, in both
frameworks; a tiny fake LM (fake_lm.py) keeps these unit tests fast."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from harness import registry
from harness.submission import search_space
from submissions._lib import common
from tests.salt import fake_lm

MODES = ('salt', 'salt_ds', 'kd_only')
SWITCH = {'kd_fraction', 'kd_transition', 'kd_transition_fraction'}

HPARAMS = {
    'learning_rate': 1e-2,
    'one_minus_beta1': 0.1,
    'beta2': 0.99,
    'warmup_factor': 0.3,
    'weight_decay': 0.05,
    'grad_clip': 1.0,
    'dropout_rate': 0.0,
    'kd_weight': 0.6,
    'kd_temperature': 1.5,
    'kd_top_k': 0,
    # 6 distillation steps, then ω decays over 4: fractions of fake_lm.REFERENCE_STEPS (30),
    # the reference baseline's steps to the target, not of step_hint (20).
    'kd_fraction': 0.2,
    'kd_transition': 'linear_decay',
    'kd_transition_fraction': 4 / 30,
    'ds_pool_factor': 2,
    'ds_top_k': 4,
    'ds_low_percentile': 25.0,
    'ds_high_percentile': 100.0,
}


def module(name, framework):
    file = 'jax_submission' if framework == 'jax' else 'pytorch_submission'
    return importlib.import_module(f'submissions.{name}.{file}')


def _space(name):
    return search_space.load(registry.resolve_submission(name) / 'search_space.yaml')


def test_search_spaces_differ_only_by_the_stage_switch_and_the_selection():
    salt, salt_ds, kd_only = _space('salt'), _space('salt_ds'), _space('kd_only')
    assert set(salt) - set(kd_only) == SWITCH and set(kd_only) <= set(salt)
    assert {k: salt[k] for k in kd_only} == kd_only  # same ω, τ, top-k and optimizer ranges
    assert set(salt_ds) - set(salt) == {
        'ds_pool_factor', 'ds_top_k', 'ds_low_percentile', 'ds_high_percentile'
    }
    assert {k: salt_ds[k] for k in salt} == salt
    for space in (salt, salt_ds, kd_only):
        assert space['optimizer'] == {'feasible_points': list(common.BASE_OPTIMIZERS)}
        assert space['kd_weight'] == salt['kd_weight']
        assert space['kd_temperature'] == salt['kd_temperature']


def test_the_base_optimizer_is_checked():
    for name in MODES:
        validate = module(name, 'jax').validate_hyperparameters
        assert validate({'optimizer': 'nadamw'}) == []
        (problem,) = validate({'optimizer': 'adam'})
        assert "optimizer = 'adam' is invalid: must be one of adamw, nadamw" in problem


@pytest.mark.parametrize('optimizer', common.BASE_OPTIMIZERS)
@pytest.mark.parametrize('mode', MODES)
def test_jax_and_pytorch_take_the_same_steps(mode, optimizer):
    """Distillation, the ω decay and (salt_ds) the selection, on either base optimizer."""
    hparams = {**HPARAMS, 'optimizer': optimizer}
    out = {fw: fake_lm.train(module(mode, fw), fw, hparams, num_steps=8)
           for fw in ('jax', 'pytorch')}
    (jax_w, jax_records, jax_sizes), (torch_w, torch_records, torch_sizes) = out.values()
    assert jax_sizes == torch_sizes == [fake_lm.B] * 8
    weights = [r['kd_weight'] for r in jax_records]
    assert weights == [r['kd_weight'] for r in torch_records]
    stages = [r['kd_stage'] for r in jax_records]
    assert stages == [r['kd_stage'] for r in torch_records]
    if mode == 'kd_only':
        assert weights == [0.6] * 8
        assert stages == [0] * 8
    else:  # ω for 6 steps, then 4/5 and 3/5 of it as it decays
        assert weights == pytest.approx([0.6] * 6 + [0.48, 0.36])
        assert stages == [0] * 6 + [1, 1]
    for rj, rt in zip(jax_records, torch_records):
        assert rj.keys() == rt.keys()
        for key in rj:
            assert rj[key] == pytest.approx(rt[key], rel=2e-4, abs=1e-6), key
    for name in jax_w:
        np.testing.assert_allclose(jax_w[name], torch_w[name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('framework', ['jax', 'pytorch'])
def test_weight_zero_steps_as_the_chosen_baseline(framework):
    """With ω = 0 SALT is its base optimizer's baseline: adamw's or nadamw's, as chosen."""
    baseline_keys = [k for k in HPARAMS if not k.startswith(('kd_', 'ds_'))]
    weights = {}
    for optimizer in common.BASE_OPTIMIZERS:
        salt, _, _ = fake_lm.train(
            module('salt', framework), framework,
            {**HPARAMS, 'kd_weight': 0.0, 'optimizer': optimizer}, num_steps=3,
        )
        baseline, _, _ = fake_lm.train(
            module(optimizer, framework), framework, {k: HPARAMS[k] for k in baseline_keys},
            num_steps=3,
        )
        for name in salt:
            np.testing.assert_allclose(salt[name], baseline[name], rtol=1e-5, atol=1e-6)
        weights[optimizer] = salt
    # The choice takes effect: Nesterov momentum moves the weights elsewhere.
    assert not np.allclose(weights['adamw']['out'], weights['nadamw']['out'], rtol=1e-4)
