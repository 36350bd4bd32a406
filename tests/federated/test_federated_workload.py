"""federated_shakespeare: JAX/PyTorch parity, registry entry, evaluation by client group."""

from __future__ import annotations

import numpy as np
import pytest

from harness import registry, spec
from harness.errors import UserInputError
from workloads.federated_shakespeare import data
from workloads.federated_shakespeare.torch_impl import torch_layout


@pytest.fixture(scope='module', params=['tiny', 'base'])
def pair(request):
    out = {}
    for framework in ('jax', 'pytorch'):
        w = registry.make_workload('federated_shakespeare', framework, request.param)
        params, _ = w.init_model_fn(w.make_rng(5))
        out[framework] = (w, params)
    return out


def test_registry_entry():
    info = registry.workload_info('federated_shakespeare')
    assert info.kind == 'federated'
    assert info.variants == ('no_stragglers', 'heavy_stragglers', 'early_target')
    with pytest.raises(UserInputError, match='huge.*base, tiny'):
        registry.make_workload('federated_shakespeare', 'jax', 'huge')
    # early_target is a tiny demo target: asked at base, a clear refusal.
    with pytest.raises(UserInputError, match='early_target variant is a tiny demo target'):
        registry.make_workload('federated_shakespeare', 'jax', 'base', 'early_target')


def test_same_parameter_count_shapes_and_types(pair):
    (wj, pj), (wt, pt) = pair['jax'], pair['pytorch']
    jax_leaves = torch_layout(wj.tree_to_numpy(pj))
    assert sum(v.size for _, v, _ in jax_leaves) == sum(v.numel() for v in pt.values())
    for name, value, path in jax_leaves:
        assert tuple(pt[name].shape) == value.shape, name
        types_j = wj.model_params_types
        for key in path:
            types_j = types_j[key]
        assert wt.model_params_types[name] == types_j
    assert wt.model_params_types['blocks.0.qkv.weight'] == spec.ParameterType.ATTENTION_QKV


def test_same_weights_same_outputs_and_loss(pair):
    (wj, pj), (wt, pt) = pair['jax'], pair['pytorch']
    rng = np.random.default_rng(0)
    chunks = rng.integers(2, data.VOCAB_SIZE, (3, data.SEQ_LEN + 1)).astype(np.uint8)
    chunks[1, 40:] = data.PAD_ID
    batch = data.split_chunks(chunks)
    logits_j, _ = wj.model_fn(
        pj, wj._to_device(batch), None, spec.ForwardPassMode.EVAL, None, False
    )
    logits_t, _ = wt.model_fn(
        pt, wt._to_device(batch), None, spec.ForwardPassMode.EVAL, None, False
    )
    np.testing.assert_allclose(np.asarray(logits_j), logits_t.detach().numpy(), atol=2e-5)
    for smoothing in (0.0, 0.1):
        lj = wj.loss_fn(
            wj._to_device(batch)['targets'], logits_j, wj._to_device(batch)['weights'], smoothing
        )
        lt = wt.loss_fn(
            wt._to_device(batch)['targets'], logits_t, wt._to_device(batch)['weights'], smoothing
        )
        np.testing.assert_allclose(float(lj['summed']), float(lt['summed']), rtol=1e-5)
        assert float(lj['n_valid_examples']) == float(lt['n_valid_examples']) == 3 * 80 - 41
        np.testing.assert_allclose(
            np.asarray(lj['per_example']), lt['per_example'].detach().numpy(), rtol=1e-5, atol=1e-6
        )


def test_loss_matches_the_written_math(pair):
    wj, _ = pair['jax']
    logits = np.random.default_rng(1).normal(size=(2, 3, 5)).astype(np.float32)
    labels = np.array([[0, 1, 2], [3, 4, 0]])
    mask = np.array([[1, 1, 0], [1, 1, 1]], np.float32)
    out = wj.loss_fn(labels, logits, mask, 0.2)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    q = 0.8 * np.eye(5)[labels] + 0.2 / 5
    expected = (-(q * log_p).sum(-1) * mask).sum()
    np.testing.assert_allclose(float(out['summed']), expected, rtol=1e-5)


def test_evaluation_by_client_group_agrees_across_frameworks(federated_data_dir):
    metrics = {}
    for framework in ('jax', 'pytorch'):
        w = registry.make_workload('federated_shakespeare', framework, 'tiny')
        w.load_clients(federated_data_dir)
        params, _ = w.init_model_fn(w.make_rng(0))
        groups = {'stragglers': np.arange(w.num_clients) % 4 == 0}
        groups['fast'] = ~groups['stragglers']
        metrics[framework] = w.eval_clients(params, groups)
    mj, mt = metrics['jax'], metrics['pytorch']
    assert set(mj) == {
        f'validation/{m}{g}' for m in ('accuracy', 'loss') for g in ('', '_stragglers', '_fast')
    }
    for key in mj:
        assert mj[key] == pytest.approx(mt[key], rel=1e-5), key
    assert 4.0 < mj['validation/loss'] < 5.0  # ~log(98) at initialization
    # The pooled accuracy is the character-weighted mean of the two groups.
    w = registry.make_workload('federated_shakespeare', 'jax', 'tiny')
    w.load_clients(federated_data_dir)
    chunks, owners = w._eval_set()
    counts = data.split_chunks(chunks)['weights'].astype(np.float64).sum(-1)
    share = counts[np.isin(owners, np.flatnonzero(np.arange(w.num_clients) % 4 == 0))].sum()
    share /= counts.sum()
    pooled = (
        share * mj['validation/accuracy_stragglers'] + (1 - share) * mj['validation/accuracy_fast']
    )
    assert mj['validation/accuracy'] == pytest.approx(pooled, rel=1e-9)


def test_centralized_view_pooled_batches(federated_data_dir):
    w = registry.make_workload('federated_shakespeare', 'pytorch', 'tiny')
    queue = w._build_input_queue(np.array([0, 3], np.uint32), 'train', federated_data_dir, 4)
    first = next(queue)
    assert tuple(first['inputs'].shape) == (4, data.SEQ_LEN)
    queue.load_state_dict({'position': 0})
    assert (next(queue)['inputs'] == first['inputs']).all()
    with pytest.raises(ValueError, match='train split only'):
        w._build_input_queue(None, 'validation', federated_data_dir, 4)
