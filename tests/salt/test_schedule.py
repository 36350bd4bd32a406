"""ω over steps (step and linear-decay transitions, KD-only) and hyperparameter checks."""

from __future__ import annotations

from collections import namedtuple

import pytest

from harness.errors import UserInputError
from submissions._lib import kd


def _settings(mode='salt', horizon_steps=100, **hparams):
    return kd.settings_from({**{'kd_weight': 0.6}, **hparams}, horizon_steps, mode)


def test_step_transition_switches_off_at_n_kd():
    s = _settings(kd_fraction=0.2, kd_transition='step')
    assert s.kd_steps == 20
    assert [kd.kd_weight_at(t, s) for t in (0, 10, 19)] == [0.6, 0.6, 0.6]
    assert [kd.kd_weight_at(t, s) for t in (20, 21, 99, 10_000)] == [0.0] * 4


def test_linear_decay_goes_to_zero_over_the_window():
    s = _settings(kd_fraction=0.2, kd_transition='linear_decay', kd_transition_fraction=0.04)
    assert (s.kd_steps, s.window_steps) == (20, 4)
    weights = [kd.kd_weight_at(t, s) for t in range(18, 27)]
    expected = [0.6, 0.6, 0.6 * 4 / 5, 0.6 * 3 / 5, 0.6 * 2 / 5, 0.6 * 1 / 5, 0.0, 0.0, 0.0]
    assert weights == pytest.approx(expected)
    # Monotone non-increasing throughout.
    assert all(a >= b for a, b in zip(weights, weights[1:]))


def test_linear_decay_with_an_empty_window_is_a_step():
    s = _settings(kd_fraction=0.2, kd_transition='linear_decay', kd_transition_fraction=0.0)
    assert kd.kd_weight_at(19, s) == 0.6 and kd.kd_weight_at(20, s) == 0.0


def test_kd_only_never_stops_and_ignores_the_salt_keys():
    s = _settings('kd_only', kd_fraction=0.01)
    assert s.kd_steps is None
    assert {kd.kd_weight_at(t, s) for t in (0, 50, 10**6)} == {0.6}


def test_selection_only_while_distilling():
    s = _settings('salt_ds', kd_fraction=0.1)
    assert kd.uses_selection(9, s) and not kd.uses_selection(10, s)
    assert not kd.uses_selection(0, _settings('salt', kd_fraction=0.1))


def test_namedtuple_hyperparameters_and_defaults():
    hp = namedtuple('Hyperparameters', ['kd_weight', 'learning_rate'])(0.25, 1e-3)
    s = kd.settings_from(hp, 500, 'salt')
    assert (s.weight, s.temperature, s.top_k, s.kd_steps, s.transition) == (
        0.25,
        1.0,
        0,
        100,
        'step',
    )


@pytest.mark.parametrize(
    'bad,needle',
    [
        ({'kd_weight': -0.1}, 'kd_weight = -0.1'),
        ({'kd_weight': 1.01}, 'ω must lie in [0, 1]'),
        ({'kd_temperature': 0.0}, 'kd_temperature = 0.0'),
        ({'kd_top_k': 2.5}, 'kd_top_k = 2.5'),
        ({'kd_fraction': 1.5}, 'kd_fraction = 1.5'),
        ({'kd_transition': 'cosine'}, "kd_transition = 'cosine'"),
        ({'optimizer': 'sgd'}, "optimizer = 'sgd'"),
    ],
)
def test_bad_hyperparameters_are_named(bad, needle):
    problems = kd.validate_hyperparameters(bad, 'salt')
    assert len(problems) == 1 and needle in problems[0], problems
    with pytest.raises(UserInputError, match='Invalid salt hyperparameters'):
        kd.settings_from(bad, 100, 'salt')


def test_every_problem_is_reported_at_once():
    problems = kd.validate_hyperparameters(
        {
            'kd_weight': 2,
            'kd_temperature': -1,
            'ds_pool_factor': 0,
            'ds_low_percentile': 80,
            'ds_high_percentile': 20,
        },
        'salt_ds',
    )
    joined = '\n'.join(problems)
    for needle in ('kd_weight', 'kd_temperature', 'ds_pool_factor', 'must be below'):
        assert needle in joined
    assert len(problems) == 4


def test_a_band_smaller_than_a_batch_is_refused():
    problems = kd.validate_hyperparameters(
        {'ds_pool_factor': 2, 'ds_low_percentile': 60, 'ds_high_percentile': 100}, 'salt_ds'
    )
    assert len(problems) == 1 and 'less than one batch' in problems[0]
    assert (
        kd.validate_hyperparameters(
            {'ds_pool_factor': 4, 'ds_low_percentile': 60, 'ds_high_percentile': 100}, 'salt_ds'
        )
        == []
    )


def test_top_k_larger_than_the_vocabulary():
    s = _settings('salt_ds', kd_top_k=64, ds_top_k=10)
    kd.check_top_k(s, 64)
    with pytest.raises(UserInputError, match='kd_top_k = 64 is larger than the vocabulary'):
        kd.check_top_k(s, 63)
    with pytest.raises(UserInputError, match='ds_top_k = 10'):
        kd.check_top_k(_settings('salt_ds', ds_top_k=10), 8)
    kd.check_top_k(s, None)  # unknown vocabulary: the teacher checks at its first call


def test_the_horizon_is_the_reference_steps_to_the_target():
    """n_KD is a fraction of the reference baseline's steps to the target, not step_hint."""

    class View:
        name = 'lm_slm'
        step_hint = 1200
        reference_steps_to_target = 390

        def teacher_logits(self, batch):
            return batch

    settings = kd.trial_settings(View(), {'kd_weight': 0.5, 'kd_fraction': 0.2}, 'salt', ())
    assert settings.kd_steps == 78
    assert kd.kd_stage(77, settings) == 0 and kd.kd_stage(78, settings) == 2


@pytest.mark.parametrize('steps', [None, 0, 2.5, True])
def test_a_workload_without_reference_steps_is_refused_by_name(steps):
    class View:
        name = 'other'
        step_hint = 1200
        reference_steps_to_target = steps

        def teacher_logits(self, batch):
            return batch

    with pytest.raises(UserInputError, match='reference_steps_to_target.*timetrial calibrate'):
        kd.trial_settings(View(), {}, 'salt_ds', ())
    # kd_only distills at every step: it needs no horizon.
    assert kd.trial_settings(View(), {}, 'kd_only', ()).kd_steps is None
