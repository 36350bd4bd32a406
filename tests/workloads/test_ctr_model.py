"""DCN-V2 in JAX and PyTorch: cross-layer formulas, parity, parameter types, eval."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from harness import spec
from harness.errors import UserInputError
from workloads.ctr import data, jax_impl, model, torch_impl, workload
from workloads.ctr.fakes import write_prepared
from workloads.ctr.metrics import sigmoid_cross_entropy

from tests.workloads import ctr_reference

TRAIN, EVAL = spec.ForwardPassMode.TRAIN, spec.ForwardPassMode.EVAL


def small_config(cross, **kwargs):
    return model.ModelConfig(
        num_dense=2,
        table_sizes=(5, 3),
        embed_dim=2,
        num_cross_layers=1,
        cross=cross,
        deep_widths=(4,),
        **kwargs,
    )  # D = 2 + 2 * 2 = 6


def run_cross(cfg, weights, x0, x):
    """One cross layer in both frameworks: (jax output, torch output) as numpy."""
    jax_out = jax_impl.CrossLayer(cfg).apply({'params': weights}, jnp.asarray(x0), jnp.asarray(x))
    layer = torch_impl.CrossLayer(cfg)
    with torch.no_grad():
        for name, value in weights.items():
            getattr(layer, name).copy_(torch.from_numpy(value))
        torch_out = layer(torch.from_numpy(x0), torch.from_numpy(x))
    return np.asarray(jax_out), torch_out.numpy()


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=(3, 6)).astype(np.float32)


def test_full_cross_layer_is_x0_times_wx_plus_b_plus_x(vectors):
    x0, x = vectors
    cfg = small_config('full')
    weights = model.init_weights(cfg, seed=1)['cross_0']
    weights['bias'] = np.arange(6, dtype=np.float32) / 10
    w = weights['kernel'].T  # kernel is Wᵀ: the [in, out] layout
    expected = np.stack([x0[i] * (w @ x[i] + weights['bias']) + x[i] for i in range(3)])
    for out in run_cross(cfg, weights, x0, x):
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_lowrank_cross_layer_uses_w_equal_u_vt(vectors):
    x0, x = vectors
    cfg = small_config('lowrank', rank=2)
    weights = model.init_weights(cfg, seed=2)['cross_0']
    weights['bias'] = np.full(6, 0.3, np.float32)
    w = weights['u'] @ weights['v'].T  # (D, r) (r, D): a rank-2 W
    assert np.linalg.matrix_rank(w) == 2
    expected = np.stack([x0[i] * (w @ x[i] + weights['bias']) + x[i] for i in range(3)])
    for out in run_cross(cfg, weights, x0, x):
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_moe_cross_layer_is_the_published_mixture(vectors):
    """Σ_i G_i(x) x0 ⊙ (U_i g(C_i g(V_iᵀ x)) + b) + x, g = ReLU, G = softmax (arXiv:2008.13535)."""
    x0, x = vectors
    cfg = small_config('moe', rank=2, num_experts=3)
    weights = model.init_weights(cfg, seed=3)['cross_0']
    weights['bias'] = np.full(6, -0.2, np.float32)
    expected = []
    for i in range(3):
        scores = x[i] @ weights['gate']
        gates = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        experts = []
        for k in range(3):
            projected = np.maximum(weights['v'][k].T @ x[i], 0.0)  # g(Vᵀ x), (r,)
            mixed = np.maximum(weights['c'][k].T @ projected, 0.0)  # g(C g(Vᵀ x)), (r,)
            experts.append(x0[i] * (weights['u'][k] @ mixed + weights['bias']))
        expected.append(sum(g * e for g, e in zip(gates, experts)) + x[i])
    for out in run_cross(cfg, weights, x0, x):
        np.testing.assert_allclose(out, np.stack(expected), rtol=1e-5, atol=1e-6)
    # The nonlinearity acts: the layer is not the linear mixture U Vᵀ the paper improves on.
    linear = []
    for i in range(3):
        gates = np.exp(x[i] @ weights['gate']) / np.exp(x[i] @ weights['gate']).sum()
        low_rank = [weights['u'][k] @ weights['v'][k].T @ x[i] for k in range(3)]
        linear.append(sum(g * x0[i] * (w + weights['bias']) for g, w in zip(gates, low_rank)) + x[i])
    assert not np.allclose(np.stack(expected), np.stack(linear), atol=1e-3)


def test_cross_layer_parameter_counts_follow_the_formulas():
    kinds = (('full', {}), ('lowrank', {'rank': 2}), ('moe', {'rank': 2, 'num_experts': 3}))
    for cross, kwargs in kinds:
        cfg = small_config(cross, **kwargs)
        weights = model.init_weights(cfg, seed=0)['cross_0']
        assert model.count_params({'cross_0': weights}) == model.cross_layer_params(cfg)
    # D = 6, r = 2, K = 3: K (2 D r + r²) + D K + D
    assert model.cross_layer_params(small_config('moe', rank=2, num_experts=3)) == 3 * 28 + 18 + 6


def make_pair(variant, size='tiny'):
    budget = spec.Budget(0.5, 60.0, 10.0, 100)
    return (
        jax_impl.CtrJaxWorkload(size=size, variant=variant, budget=budget),
        torch_impl.CtrTorchWorkload(size=size, variant=variant, budget=budget),
    )


def random_inputs(cfg, n=32, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.exponential(1.0, (n, cfg.num_dense))
    ids = np.stack([rng.integers(0, t, n) for t in cfg.table_sizes], axis=1)
    labels = (rng.random(n) < 0.4).astype(np.float32)
    return np.concatenate([dense, ids], axis=1).astype(np.float32), labels


@pytest.mark.parametrize('variant', [None, 'lowrank', 'moe', 'parallel', 'synthetic'])
def test_parity_same_weights_same_outputs_and_loss(variant):
    jw, tw = make_pair(variant)
    params, _ = jw.init_model_fn(jax.random.PRNGKey(5))
    module, _ = tw.init_model_fn(np.array([0, 5], np.uint32))
    jax_leaves = {
        '.'.join(k.key for k in path): leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
    }
    torch_params = dict(module.named_parameters())
    assert sorted(jax_leaves) == sorted(torch_params)
    assert sum(v.size for v in jax_leaves.values()) == sum(p.numel() for p in module.parameters())
    for name, leaf in jax_leaves.items():  # identical initialization from numpy
        np.testing.assert_array_equal(np.asarray(leaf), torch_params[name].detach().numpy())

    inputs, labels = random_inputs(jw.config)
    jax_logits, _ = jw.model_fn(params, {'inputs': jnp.asarray(inputs)}, None, EVAL, None, False)
    torch_logits, _ = tw.model_fn(
        module, {'inputs': torch.from_numpy(inputs)}, None, EVAL, None, False
    )
    np.testing.assert_allclose(np.asarray(jax_logits), torch_logits.numpy(), rtol=1e-4, atol=1e-5)
    jax_loss = jw.loss_fn(jnp.asarray(labels), jax_logits)
    torch_loss = tw.loss_fn(torch.from_numpy(labels), torch_logits)
    np.testing.assert_allclose(float(jax_loss['summed']), float(torch_loss['summed']), rtol=1e-5)
    np.testing.assert_allclose(
        float(jax_loss['summed']),
        sigmoid_cross_entropy(labels, np.asarray(jax_logits, np.float64)).sum(),
        rtol=1e-5,
    )


@pytest.mark.parametrize('variant', [None, 'lowrank', 'moe', 'parallel'])
def test_both_frameworks_match_the_numpy_reference(variant):
    """Same weights -> the logits of the per-example numpy DCN-V2, and equal parameter counts."""
    jw, tw = make_pair(variant)
    cfg = jw.config
    weights = model.init_weights(cfg, seed=9)
    params, _ = jw.init_model_fn(jax.random.PRNGKey(9))
    module, _ = tw.init_model_fn(np.array([0, 9], np.uint32))
    n_params = model.count_params(weights)
    assert sum(np.asarray(v).size for v in jax.tree_util.tree_leaves(params)) == n_params
    assert sum(p.numel() for p in module.parameters()) == n_params
    cross = cfg.num_cross_layers * model.cross_layer_params(cfg)
    crosses = {k: v for k, v in weights.items() if k.startswith('cross_')}
    assert model.count_params(crosses) == cross
    inputs, _ = random_inputs(cfg, n=8, seed=4)
    expected = ctr_reference.logits(cfg, weights, inputs)
    jax_logits, _ = jw.model_fn(params, {'inputs': jnp.asarray(inputs)}, None, EVAL, None, False)
    torch_logits, _ = tw.model_fn(
        module, {'inputs': torch.from_numpy(inputs)}, None, EVAL, None, False
    )
    np.testing.assert_allclose(np.asarray(jax_logits), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(torch_logits.detach().numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('variant', ['parallel', 'moe'])
def test_parity_of_gradients(variant):
    jw, tw = make_pair(variant)
    params, _ = jw.init_model_fn(jax.random.PRNGKey(0))
    module, _ = tw.init_model_fn(np.array([0, 0], np.uint32))
    inputs, labels = random_inputs(jw.config, seed=1)

    def jax_loss(p):
        logits, _ = jw.model_fn(p, {'inputs': jnp.asarray(inputs)}, None, TRAIN, None, False)
        out = jw.loss_fn(jnp.asarray(labels), logits)
        return out['summed'] / out['n_valid_examples']

    jax_grads = jax.grad(jax_loss)(params)
    logits, _ = tw.model_fn(module, {'inputs': torch.from_numpy(inputs)}, None, TRAIN, None, False)
    out = tw.loss_fn(torch.from_numpy(labels), logits)
    (out['summed'] / out['n_valid_examples']).backward()
    for path, grad in jax.tree_util.tree_leaves_with_path(jax_grads):
        name = '.'.join(k.key for k in path)
        np.testing.assert_allclose(
            np.asarray(grad),
            dict(module.named_parameters())[name].grad,
            rtol=1e-3,
            atol=1e-6,
            err_msg=name,
        )


def test_parameter_types_mark_embeddings():
    jw, tw = make_pair(None)
    params, _ = jw.init_model_fn(jax.random.PRNGKey(0))
    tw.init_model_fn(np.array([0, 0], np.uint32))
    assert jw.model_params_types['embedding_0']['embedding'] == spec.ParameterType.EMBEDDING
    assert jw.model_params_types['cross_1']['kernel'] == spec.ParameterType.WEIGHT
    assert jw.model_params_types['dense_0']['bias'] == spec.ParameterType.BIAS
    assert tw.model_params_types['embedding_7.embedding'] == spec.ParameterType.EMBEDDING
    assert tw.model_params_types['output.kernel'] == spec.ParameterType.WEIGHT
    width = jw.config.input_dim
    assert tw.param_shapes['cross_0.kernel'] == spec.ShapeTuple((width, width))
    assert jw.param_shapes['cross_0']['kernel'] == spec.ShapeTuple((width, width))


@pytest.mark.parametrize('framework', ['jax', 'pytorch'])
def test_loss_fn_masks_and_smooths(framework):
    labels = np.array([1.0, 0.0, 1.0, 0.0], np.float32)
    logits = np.array([2.0, -1.0, -3.0, 0.5], np.float32)
    mask = np.array([1.0, 1.0, 0.0, 1.0], np.float32)
    expected = workload.numpy_loss(labels, logits, mask, label_smoothing=0.1)
    jw, tw = make_pair(None)
    if framework == 'jax':
        out = jw.loss_fn(jnp.asarray(labels), jnp.asarray(logits), jnp.asarray(mask), 0.1)
    else:
        out = tw.loss_fn(
            torch.from_numpy(labels), torch.from_numpy(logits), torch.from_numpy(mask), 0.1
        )
    np.testing.assert_allclose(np.asarray(out['per_example']), expected['per_example'], rtol=1e-5)
    assert float(out['n_valid_examples']) == 3.0
    np.testing.assert_allclose(float(out['summed']), expected['summed'], rtol=1e-5)


def test_eval_and_validation_predictions_agree_across_frameworks(tmp_path):
    jw, tw = make_pair(None)
    cfg = jw.config
    write_prepared(tmp_path, 'movielens', cfg.num_dense, cfg.table_sizes, 3000, 5000)
    params, _ = jw.init_model_fn(jax.random.PRNGKey(1))
    module, _ = tw.init_model_fn(np.array([0, 1], np.uint32))
    jax_metrics = jw.eval_model(0, params, None, None, str(tmp_path), None, 0)
    torch_metrics = tw.eval_model(0, module, None, None, str(tmp_path), None, 0)
    assert set(jw.eval_metric_keys()) <= set(jax_metrics)
    assert sorted(jax_metrics) == sorted(torch_metrics)
    for key, value in jax_metrics.items():
        assert value == pytest.approx(torch_metrics[key], rel=1e-4), key
    # Normalized entropy: log loss over the entropy of the training click rate.
    rate = float(np.mean(data.CtrData(data.source_dir(tmp_path, 'movielens')).labels[:3000]))
    entropy = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    for split in ('train', 'validation'):
        assert jax_metrics[f'{split}/normalized_entropy'] == pytest.approx(
            jax_metrics[f'{split}/loss'] / entropy, rel=1e-6
        )
    # A probe of a snapshot scores the validation split alone, with the full evaluation's
    # numbers.
    for workload, model, full in ((jw, params, jax_metrics), (tw, module, torch_metrics)):
        probe = workload.eval_target_split(0, model, None, None, str(tmp_path), 0)
        assert probe == {k: v for k, v in full.items() if k.startswith('validation/')}
    predictions = jw.validation_predictions(params, None, str(tmp_path))
    assert predictions.dtype == np.float32 and predictions.shape == (5000,)
    np.testing.assert_allclose(
        predictions, tw.validation_predictions(module, None, str(tmp_path)), rtol=1e-4, atol=1e-6
    )


def test_input_queue_is_on_device_and_resumable(tmp_path):
    jw, tw = make_pair(None)
    write_prepared(tmp_path, 'movielens', jw.config.num_dense, jw.config.table_sizes, 500, 100)
    jq = jw._build_input_queue(jax.random.PRNGKey(2), 'train', str(tmp_path), 64)
    tq = tw._build_input_queue(np.array([0, 2], np.uint32), 'train', str(tmp_path), 64)
    for _ in range(3):
        jb, tb = next(jq), next(tq)
        assert isinstance(jb['inputs'], jax.Array) and isinstance(tb['inputs'], torch.Tensor)
        np.testing.assert_array_equal(np.asarray(jb['inputs']), tb['inputs'].numpy())
    assert jq.state_dict() == {'position': 3}
    with pytest.raises(ValueError, match='train split only'):
        jw._build_input_queue(jax.random.PRNGKey(2), 'validation', str(tmp_path), 64)


def test_unknown_size_or_variant_lists_the_known_ones():
    with pytest.raises(UserInputError, match='Known.*tiny'):
        jax_impl.CtrJaxWorkload(size='huge')
    with pytest.raises(UserInputError, match='lowrank'):
        torch_impl.CtrTorchWorkload(size='tiny', variant='lowrnak')


def test_base_tables_hold_a_million_rows():
    cfg = workload.model_config('base', None)
    assert sum(cfg.table_sizes) >= 1_000_000
    assert workload.model_config('base', 'criteo').table_sizes[2] == 1 << 20
    width = workload.model_config('tiny', None).input_dim
    assert workload.model_config('tiny', 'lowrank').rank == width // 4
    moe = workload.model_config('tiny', 'moe')
    assert (moe.num_experts, moe.rank) == (4, width // 8)
    assert workload.model_config('tiny', 'parallel').structure == 'parallel'


def test_jax_model_fn_takes_a_traced_dropout_rate():
    """Submissions may jit their step with dropout_rate as an argument (a tracer)."""
    jw, _ = make_pair(None)
    params, _ = jw.init_model_fn(jax.random.PRNGKey(0))
    inputs, _ = random_inputs(jw.config)

    @jax.jit
    def train_logits(p, rate, rng):
        batch = {'inputs': jnp.asarray(inputs)}
        return jw.model_fn(p, batch, None, TRAIN, rng, False, dropout_rate=rate)[0]

    eval_logits, _ = jw.model_fn(params, {'inputs': jnp.asarray(inputs)}, None, EVAL, None, False)
    key = jax.random.PRNGKey(3)
    np.testing.assert_allclose(train_logits(params, 0.0, key), eval_logits, rtol=1e-5, atol=1e-6)
    assert not np.allclose(train_logits(params, 0.5, key), eval_logits, atol=1e-3)
