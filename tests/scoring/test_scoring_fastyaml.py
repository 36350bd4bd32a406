"""The fast trial.yaml reader must read exactly what yaml.safe_load reads, or decline."""

import math

import numpy as np
import pytest
import yaml

from scoring import fastyaml


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _random_value(rng, depth):
    kind = rng.integers(0, 9 if depth < 2 else 8)
    if kind == 0:
        return int(rng.integers(-(10**6), 10**6))
    if kind == 1:
        return float(10 ** rng.uniform(-9, 9) * rng.choice([-1, 1]))
    if kind == 2:
        return bool(rng.integers(0, 2))
    if kind == 3:
        return None
    if kind == 4:
        return str(
            rng.choice(
                [
                    'adamw',
                    'validation/loss',
                    'yes',
                    'No',
                    'on',
                    '1e-3',
                    '0o17',
                    'a b',
                    "it's",
                    '',
                    'x: y',
                    '#tag',
                    '- item',
                    'null',
                    '~',
                    '2001-12-14',
                    '.inf',
                    'min',
                    '/abs/path/sub.py',
                ]
            )
        )
    if kind == 5:
        return float(rng.choice([0.0, -0.0, 1.0, float('inf'), float('-inf'), float('nan')]))
    if kind == 6:
        return [int(x) for x in rng.integers(0, 9, size=rng.integers(0, 3))]
    if kind == 7:
        return {}
    return {f'k{i}': _random_value(rng, depth + 1) for i in range(rng.integers(1, 4))}


@pytest.mark.parametrize('seed', range(40))
def test_agrees_with_safe_load_or_declines(seed):
    rng = np.random.default_rng(seed)
    doc = {
        'workload': 'lm',
        'variant': None,
        'study': 0,
        'trial': int(rng.integers(0, 9)),
        'hparams': {f'h{i}': _random_value(rng, 1) for i in range(6)},
        'target': {'metric': 'validation/loss', 'value': 3.2, 'mode': 'min'},
    }
    text = yaml.safe_dump(doc, sort_keys=bool(seed % 2))
    fast = fastyaml.load(text)
    if fast is not None:
        assert _same(fast, yaml.safe_load(text)), text


def test_the_harness_trial_yaml_takes_the_fast_path():
    doc = {
        'workload': 'lm',
        'variant': None,
        'size': 'tiny',
        'framework': 'jax',
        'submission': 'adamw',
        'ruleset': 'external',
        'study': 2,
        'trial': 4,
        'hparams': {
            'learning_rate': 0.0012,
            'one_minus_beta1': 0.1,
            'warmup_factor': 0.05,
            'weight_decay': 1e-05,
            'label_smoothing': 0.0,
            'dropout_rate': None,
        },
        'seed': 123456,
        'target': {'metric': 'validation/loss', 'value': 3.2, 'mode': 'min'},
        'max_steps': None,
        'stop_at_target': True,
        'budget_factor': 1.5,
    }
    text = yaml.safe_dump(doc, sort_keys=False)
    assert fastyaml.load(text) == doc


@pytest.mark.parametrize(
    'text',
    [
        'a: 1\n  b: 2\n',  # bad indentation: PyYAML raises, so the fast path declines
        'a: x\na: y\n',  # duplicate key
        'a: 010\n',  # YAML 1.1 octal
        'a: On\n',  # YAML 1.1 boolean
        'yes: 1\n',  # boolean key
        'a: "quoted"\n',
        'a: [1, 2]\n',
        'a:\n- 1\n',
        '',
    ],
)
def test_declines_what_it_does_not_handle(text):
    assert fastyaml.load(text) is None
