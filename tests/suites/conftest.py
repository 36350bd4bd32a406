"""Fixtures for suite tests: a fake workload registry, a small submission, a suite writer."""

from __future__ import annotations

import textwrap

import pytest

from harness import registry
from tests.suites import fakes

_SIGNATURES = '''
def get_batch_size(workload_name):
    return 8


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {}


def update_params(workload, current_param_container, current_params_types, model_state,
                  hyperparameters, batch, loss_type, optimizer_state, eval_results, global_step,
                  rng, train_state=None):
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container,
                   model_state, hyperparameters, global_step, rng):
    return next(input_queue)
'''

SPACE = '''
learning_rate: {min: 1.0e-4, max: 1.0e-2, scaling: log}
beta1: {min: 0.8, max: 0.95}
weight_decay: {feasible_points: [0.0, 0.1]}
'''


def make_submission(folder, frameworks=('jax', 'pytorch'), space=SPACE):
    folder.mkdir(parents=True, exist_ok=True)
    for fw in frameworks:
        (folder / f'{fw}_submission.py').write_text(_SIGNATURES, encoding='utf-8')
    if space is not None:
        (folder / 'search_space.yaml').write_text(space, encoding='utf-8')
    return folder


@pytest.fixture
def fake_registry(monkeypatch):
    infos = {'fakewl': fakes.INFO, 'jaxonly': fakes.JAX_ONLY}
    monkeypatch.setattr(registry, 'workload_infos', lambda: infos)
    monkeypatch.delenv('FAKE_DATA_MISSING', raising=False)
    return infos


@pytest.fixture
def write_suite(tmp_path, fake_registry):
    """write_suite(yaml_text) -> path; submissions `sub_a` and `sub_b` sit next to it."""
    make_submission(tmp_path / 'sub_a')
    make_submission(tmp_path / 'sub_b')

    def write(text: str, name: str = 'suite.yaml'):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding='utf-8')
        return path

    return write


BASIC = '''
    experiment: exp
    results_dir: {results}
    seed: 3
    studies: 2
    trials: 2
    workloads:
      - {{name: fakewl, size: tiny}}
    submissions: [sub_a, sub_b]
    frameworks: [jax, pytorch]
'''
