"""Server rules of the federated submissions on planted deltas, in both frameworks,
and client updates that agree across frameworks."""

from __future__ import annotations

import importlib
from collections import namedtuple

import numpy as np
import pytest

from harness import registry, spec_federated
from harness.errors import UserInputError
from harness.submission import federated as federated_submission
from submissions._lib import federated

FRAMEWORKS = ('jax', 'pytorch')
SUBMISSIONS = ('fedavg', 'fedadam', 'fedbuff', 'fedbuff_ema', 'fedavg_distill')


def module(name, framework):
    file = 'jax_submission' if framework == 'jax' else 'pytorch_submission'
    return importlib.import_module(f'submissions.{name}.{file}')


def hparams(**values):
    return namedtuple('Hyperparameters', sorted(values))(**values)


def tree(framework, arrays):
    """{'w': ..., 'b': ...} of framework arrays from numpy."""
    if framework == 'jax':
        import jax.numpy as jnp

        return {k: jnp.asarray(v, dtype=jnp.float32) for k, v in arrays.items()}
    import torch

    return {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()}


def to_np(t):
    return {k: np.asarray(v) for k, v in t.items()}


def updates(framework, deltas, staleness, num_examples, on_time=None):
    k = len(staleness)
    return spec_federated.ArrivedUpdates(
        deltas=tree(framework, {'w': np.stack(deltas)}),
        num_examples=np.array(num_examples),
        examples_processed=np.full(k, 8),
        staleness=np.array(staleness),
        on_time=np.array(on_time if on_time is not None else [True] * k),
        client_index=np.arange(k),
        start_version=np.zeros(k, int),
        dispatch_time_s=np.zeros(k),
        arrival_time_s=np.ones(k),
    )


W0 = np.array([1.0, -2.0, 0.5])
DELTAS = [np.array([1.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0]), np.array([0.0, 0.0, -4.0])]


@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_fedavg_weights_by_examples(framework):
    sub = module('fedavg', framework)
    state = sub.init_server_state(None, tree(framework, {'w': W0}), None, None)
    new = sub.server_update(
        None,
        state,
        updates(framework, DELTAS, [0, 0, 0], [1, 1, 2]),
        hparams(server_learning_rate=0.5),
        0,
        None,
    )
    expected = W0 + 0.5 * (DELTAS[0] + DELTAS[1] + 2 * DELTAS[2]) / 4
    np.testing.assert_allclose(to_np(new.params)['w'], expected, rtol=1e-6)


@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_fedbuff_staleness_weighting(framework):
    sub = module('fedbuff', framework)
    state = sub.init_server_state(None, tree(framework, {'w': W0}), None, None)
    staleness = [0, 3, 8]
    new = sub.server_update(
        None,
        state,
        updates(framework, DELTAS, staleness, [5, 1, 1]),
        hparams(server_learning_rate=2.0),
        7,
        None,
    )
    # 1/sqrt(1 + tau), averaged over the K = 3 reports, not renormalized;
    # example counts do not enter FedBuff's mean.
    s = [1.0, 0.5, 1.0 / 3.0]
    expected = W0 + 2.0 * sum(si * d for si, d in zip(s, DELTAS)) / 3
    np.testing.assert_allclose(to_np(new.params)['w'], expected, rtol=1e-6)
    # Another exponent: s(tau) = (1 + tau)^-1.
    new = sub.server_update(
        None,
        state,
        updates(framework, DELTAS, staleness, [5, 1, 1]),
        hparams(server_learning_rate=1.0, staleness_exponent=1.0),
        7,
        None,
    )
    weights = federated.staleness_weights(staleness, 1.0, 3)
    np.testing.assert_allclose(weights, [1 / 3, 1 / 12, 1 / 27])
    expected = W0 + sum(wi * d for wi, d in zip(weights, DELTAS))
    np.testing.assert_allclose(to_np(new.params)['w'], expected, rtol=1e-6)


@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_fedadam_server_step(framework):
    sub = module('fedadam', framework)
    hp = hparams(server_learning_rate=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    state = sub.init_server_state(None, tree(framework, {'w': W0}), hp, None)
    delta = np.mean(DELTAS, axis=0)
    m, v, w = np.zeros(3), np.full(3, 1e-6), W0.copy()
    for version in range(2):
        state = sub.server_update(
            None, state, updates(framework, DELTAS, [0, 0, 0], [1, 1, 1]), hp, version, None
        )
        m = 0.9 * m + 0.1 * delta
        v = 0.99 * v + 0.01 * delta**2
        w = w + 0.1 * m / (np.sqrt(v) + 1e-3)
    np.testing.assert_allclose(to_np(state.params)['w'], w, rtol=1e-5)


@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_fedbuff_ema_evaluates_the_debiased_average(framework):
    sub = module('fedbuff_ema', framework)
    hp = hparams(server_learning_rate=1.0, ema_decay=0.5, staleness_exponent=0.5)
    state = sub.init_server_state(None, tree(framework, {'w': W0}), hp, None)
    raw = []
    for version in range(3):
        state = sub.server_update(
            None, state, updates(framework, DELTAS[:1], [0], [1]), hp, version, None
        )
        raw.append(to_np(state.params)['w'])
    np.testing.assert_allclose(raw[-1], W0 + 3 * DELTAS[0], rtol=1e-6)  # training is FedBuff's
    a = 0.5 * (0.5 * (0.5 * raw[0]) + 0.5 * raw[1]) + 0.5 * raw[2]
    np.testing.assert_allclose(to_np(state.eval_params)['w'], a / (1 - 0.5**3), rtol=1e-6)


@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_distill_turns_late_reports_into_the_teacher(framework):
    sub = module('fedavg_distill', framework)
    hp = hparams(server_learning_rate=1.0, teacher_max_age=1)
    state = sub.init_server_state(None, tree(framework, {'w': W0}), hp, None)
    assert state.client_extras['teacher_delta'] is None
    mixed = updates(framework, DELTAS, [0, 0, 4], [1, 3, 2], on_time=[True, True, False])
    state = sub.server_update(None, state, mixed, hp, 0, None)
    # On-time reports: FedAvg; the late one is not added to the weights...
    np.testing.assert_allclose(
        to_np(state.params)['w'], W0 + (DELTAS[0] + 3 * DELTAS[1]) / 4, rtol=1e-6
    )
    # ...it becomes the teacher delta sent to clients.
    np.testing.assert_allclose(to_np(state.client_extras['teacher_delta'])['w'], DELTAS[2])
    on_time = updates(framework, DELTAS[:1], [0], [1])
    state = sub.server_update(None, state, on_time, hp, 1, None)
    assert state.client_extras['teacher_age'] == 1
    state = sub.server_update(None, state, on_time, hp, 2, None)
    assert state.client_extras['teacher_delta'] is None  # expired after teacher_max_age


@pytest.mark.parametrize('name', SUBMISSIONS)
@pytest.mark.parametrize('framework', FRAMEWORKS)
def test_submission_modules_meet_the_contract(name, framework):
    path = registry.resolve_submission(name)
    loaded = federated_submission.load_federated_submission(path, framework)
    config = loaded.get_round_config('federated_shakespeare', None)
    federated_submission.check_round_config(config, 474, name)
    assert registry.submission_kind(path) == 'federated'


def test_search_spaces_load_and_sample_valid_points():
    from harness.submission import search_space

    for name in SUBMISSIONS:
        path = registry.resolve_submission(name) / 'search_space.yaml'
        space = search_space.load(path)
        for index in range(3):
            point = search_space.sample(space, seed=0, index=index)
            for framework in FRAMEWORKS:
                assert module(name, framework).validate_hyperparameters(point) == []
                config = module(name, framework).get_round_config('x', hparams(**point))
                federated_submission.check_round_config(config, 474, name)


@pytest.fixture(scope='module')
def both_workloads():
    out = {}
    for framework in FRAMEWORKS:
        w = registry.make_workload('federated_shakespeare', framework, 'tiny')
        params, _ = w.init_model_fn(w.make_rng(0))
        out[framework] = (w, params)
    return out


def synthetic_client_data(num_clients, local_steps, batch, seed=0):
    from workloads.federated_shakespeare import data

    rng = np.random.default_rng(seed)
    chunks = rng.integers(
        2, data.VOCAB_SIZE, (num_clients, local_steps, batch, data.SEQ_LEN + 1)
    ).astype(np.uint8)
    chunks[..., -5:] = data.PAD_ID  # some padding to mask
    return data.split_chunks(chunks)


@pytest.mark.parametrize('name', ['fedavg', 'fedavg_distill'])
def test_client_updates_agree_across_frameworks(both_workloads, name):
    batches = synthetic_client_data(num_clients=3, local_steps=2, batch=2)
    hp = hparams(
        client_learning_rate=0.5, client_grad_clip=1.0, distill_weight=0.5, distill_temperature=2.0
    )
    out = {}
    for framework, (workload, params) in both_workloads.items():
        view = federated_submission.SubmissionView(workload)
        extras = None
        if name == 'fedavg_distill':  # a teacher: the current model moved by a late delta
            delta = _scale_tree(workload.tree_to_numpy(params), 0.05)
            extras = {'teacher_delta': workload.tree_from_numpy(delta), 'teacher_age': 0}
        result = module(name, framework).client_update(
            view, params, extras, workload._to_device(batches), hp, workload.make_rng(0)
        )
        out[framework] = (
            workload.tree_to_numpy(result.deltas),
            np.asarray(workload.tree_to_numpy(result.metrics['loss'])),
        )
    from workloads.federated_shakespeare.torch_impl import torch_layout

    np.testing.assert_allclose(out['jax'][1], out['pytorch'][1], rtol=1e-4)
    jax_deltas, torch_deltas = out['jax'][0], out['pytorch'][0]
    for c in range(3):  # torch_layout maps one client's flax-layout tree to torch names
        client = _index_tree(jax_deltas, c)
        for torch_name, value, _ in torch_layout(client):
            np.testing.assert_allclose(
                value, torch_deltas[torch_name][c], atol=2e-5, err_msg=f'client {c} {torch_name}'
            )


def _scale_tree(t, factor):
    return {k: _scale_tree(v, factor) if isinstance(v, dict) else v * factor for k, v in t.items()}


def _index_tree(t, i):
    return {k: _index_tree(v, i) if isinstance(v, dict) else v[i] for k, v in t.items()}


def test_a_federated_submission_is_refused_by_the_centralized_loader():
    from harness.submission.loader import load_submission

    with pytest.raises(UserInputError, match='is federated .* trains federated workloads'):
        load_submission('fedavg', 'jax')
