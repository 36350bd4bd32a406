"""lm model: JAX/PyTorch parity (params, init, logits, loss, gradients), loss_fn, trees, RNG."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from harness import registry, spec
from harness.errors import DataNotPreparedError, UserInputError
from workloads._common import jax_utils, param_trees, torch_utils
from workloads._common.rng import rng_to_seed
from workloads.lm import data, jax_impl
from workloads.lm import workload as lm

TOL = dict(rtol=2e-4, atol=2e-4)


def _t(array):
    """A numpy array as a tensor on the workload's device."""
    return torch.from_numpy(np.asarray(array)).to(torch_utils.device())


def _np(tensor):
    return tensor.detach().cpu().numpy()


@pytest.fixture(scope='module')
def pair(lm_data_dir):
    """(jax workload, its params, torch workload, its module), both from seed 7."""
    wj = registry.make_workload('lm', 'jax', 'tiny')
    wt = registry.make_workload('lm', 'pytorch', 'tiny')
    wj.check_data(lm_data_dir)
    wt.check_data(lm_data_dir)
    pj, _ = wj.init_model_fn(jax.random.PRNGKey(7))
    pt, _ = wt.init_model_fn(np.array([0, 7], np.uint32))
    return wj, pj, wt, pt


@pytest.fixture(scope='module')
def batch(lm_data_dir):
    return data.TrainBatches(data.open_split(lm_data_dir, 'train'), 32, 4, seed=0).batch_at(0)


def _jax_logits(workload, params, batch):
    # Jitted: op-by-op JAX is slow on a busy CPU.
    @jax.jit
    def forward(params, inputs):
        return workload.model_fn(
            params, {'inputs': inputs}, None, spec.ForwardPassMode.EVAL, None, False
        )[0]

    return np.asarray(forward(params, jnp.asarray(batch['inputs'])))


def _torch_logits(workload, model, batch):
    logits, _ = workload.model_fn(
        model, {'inputs': _t(batch['inputs']).long()}, None, spec.ForwardPassMode.EVAL, None, False
    )
    return _np(logits)


def test_same_parameter_count_and_identical_init(pair):
    wj, pj, wt, pt = pair
    n_torch = sum(p.numel() for p in pt.parameters())
    assert param_trees.count_params(pj) == n_torch == lm.count_params(wj.config)
    cj, ct = wj.params_to_canonical(pj), wt.params_to_canonical(pt)
    assert cj.keys() == ct.keys()
    for name in cj:
        np.testing.assert_array_equal(cj[name], ct[name], err_msg=name)
    other = wj.params_to_canonical(wj.init_model_fn(jax.random.PRNGKey(8))[0])
    assert not np.array_equal(other['embed'], cj['embed'])


def test_vocabulary_follows_the_prepared_data(pair, lm_data_dir):
    wj, pj, _, _ = pair
    vocab = data.load_meta(lm_data_dir)['vocab_size']
    assert pj['embed']['embedding'].shape == (lm.model_vocab_size(vocab), 128)
    assert lm.model_vocab_size(vocab) % 64 == 0 and lm.model_vocab_size(vocab) >= vocab


def _perturbed(canonical, seed):
    """Weights unlike the init (norm scales not 1) so parity covers every parameter."""
    rng = np.random.default_rng(seed)
    return {
        k: (v + 0.05 * rng.standard_normal(v.shape)).astype(np.float32)
        for k, v in canonical.items()
    }


def test_parity_jax_weights_into_torch(pair, batch):
    wj, _, wt, _ = pair
    weights = _perturbed(wj.params_to_canonical(pair[1]), 1)
    pj = wj.params_from_canonical(weights)
    pt = wt.params_from_canonical(wj.params_to_canonical(pj))
    lj, lt = _jax_logits(wj, pj, batch), _torch_logits(wt, pt, batch)
    np.testing.assert_allclose(lj, lt, **TOL)
    loss_j = float(wj.loss_fn(jnp.asarray(batch['targets']), lj)['summed'])
    loss_t = wt.loss_fn(_t(batch['targets']), _t(lt))['summed']
    np.testing.assert_allclose(loss_j, loss_t.item(), rtol=1e-5)


def test_parity_torch_weights_into_jax(pair, batch):
    wj, _, wt, _ = pair
    pt = wt.params_from_canonical(_perturbed(wt.params_to_canonical(pair[3]), 2))
    pj = wj.params_from_canonical(wt.params_to_canonical(pt))
    np.testing.assert_allclose(_torch_logits(wt, pt, batch), _jax_logits(wj, pj, batch), **TOL)


def test_parity_of_gradients(pair, batch):
    wj, pj, wt, _ = pair
    pt = wt.params_from_canonical(wj.params_to_canonical(pj))

    def mean_loss(params):
        logits, _ = wj.model_fn(
            params, {'inputs': batch['inputs']}, None, spec.ForwardPassMode.TRAIN, None, True
        )
        out = wj.loss_fn(batch['targets'], logits)
        return out['summed'] / out['n_valid_examples']

    grads_j = wj.params_to_canonical(jax.jit(jax.grad(mean_loss))(pj))
    logits, _ = wt.model_fn(
        pt, {'inputs': _t(batch['inputs']).long()}, None, spec.ForwardPassMode.TRAIN, None, True
    )
    out = wt.loss_fn(_t(batch['targets']), logits)
    (out['summed'] / out['n_valid_examples']).backward()
    for p in pt.parameters():
        p.data = p.grad  # Read the gradients back through the canonical mapping.
    grads_t = wt.params_to_canonical(pt)
    for name in grads_j:
        np.testing.assert_allclose(grads_j[name], grads_t[name], rtol=1e-3, atol=1e-6, err_msg=name)


@pytest.mark.parametrize('label_smoothing', [0.0, 0.1])
def test_loss_fn_with_mask_matches_the_formula(pair, label_smoothing):
    wj, _, wt, _ = pair
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 5, 11)).astype(np.float32) * 3
    targets = rng.integers(0, 11, (3, 5)).astype(np.int32)
    mask = (rng.random((3, 5)) < 0.6).astype(np.float32)
    want = lm.reference_loss(logits, targets, mask, label_smoothing)
    got_j = wj.loss_fn(
        jnp.asarray(targets), jnp.asarray(logits), jnp.asarray(mask), label_smoothing
    )
    got_t = wt.loss_fn(_t(targets), _t(logits), _t(mask), label_smoothing)
    got_t = {k: _np(v) for k, v in got_t.items()}
    for got in (got_j, got_t):
        np.testing.assert_allclose(np.asarray(got['summed']), want['summed'], rtol=1e-5)
        assert float(got['n_valid_examples']) == mask.sum()
        np.testing.assert_allclose(
            np.asarray(got['per_example']), want['per_example'], rtol=1e-5, atol=1e-6
        )
        assert np.all(np.asarray(got['per_example'])[mask == 0] == 0)
    unmasked = wj.loss_fn(jnp.asarray(targets), jnp.asarray(logits))
    assert float(unmasked['n_valid_examples']) == targets.size


def test_reference_loss_smoothing_is_cross_entropy_to_the_smoothed_target():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((2, 7))
    targets = np.array([3, 0])
    eps = 0.2
    q = np.full((2, 7), eps / 7)
    q[np.arange(2), targets] += 1 - eps
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -(q * log_p).sum()
    np.testing.assert_allclose(lm.reference_loss(logits, targets, None, eps)['summed'], want)


def test_flax_module_has_the_structure_of_the_numpy_params(pair):
    wj, pj, _, _ = pair
    abstract = jax.eval_shape(
        jax_impl.Transformer(wj.config).init, jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32)
    )['params']
    assert jax.tree_util.tree_structure(abstract) == jax.tree_util.tree_structure(pj)
    assert jax.tree_util.tree_map(lambda a: a.shape, abstract) == jax.tree_util.tree_map(
        lambda a: a.shape, pj
    )


def test_shape_and_type_trees(pair):
    wj, pj, wt, pt = pair
    assert jax.tree_util.tree_structure(wj.param_shapes) == jax.tree_util.tree_structure(pj)
    assert wj.param_shapes['blocks_0']['attn']['q']['kernel'] == spec.ShapeTuple((128, 128))
    types_j = wj.model_params_types
    assert types_j['embed']['embedding'] == spec.ParameterType.EMBEDDING
    assert types_j['blocks_1']['attn']['k']['kernel'] == spec.ParameterType.ATTENTION_K
    assert types_j['blocks_1']['attn']['o']['kernel'] == spec.ParameterType.ATTENTION_OUT
    assert types_j['final_norm']['scale'] == spec.ParameterType.LAYER_NORM_SCALE
    names = [n for n, _ in pt.named_parameters()]
    assert list(wt.param_shapes) == names and set(wt.model_params_types) == set(names)
    assert wt.param_shapes['blocks.0.mlp.down.weight'] == spec.ShapeTuple((128, 384))
    assert wt.model_params_types['blocks.0.attn.v.weight'] == spec.ParameterType.ATTENTION_V
    assert wt.model_params_types['blocks.0.mlp.gate.weight'] == spec.ParameterType.WEIGHT
    assert wt.model_params_types['blocks.0.attn_norm.weight'] == spec.ParameterType.LAYER_NORM_SCALE


def test_input_queues_are_on_device_and_resumable(pair, lm_data_dir):
    wj, _, wt, _ = pair
    qj = wj._build_input_queue(jax.random.PRNGKey(4), 'train', lm_data_dir, 8)
    qt = wt._build_input_queue(np.array([0, 4], np.uint32), 'train', lm_data_dir, 8)
    bj, bt = next(qj), next(qt)
    assert isinstance(bj['inputs'], jax.Array) and bj['inputs'].shape == (8, 128)
    assert bj['inputs'].sharding.is_equivalent_to(jax_utils.batch_sharding(), 2)
    assert bt['targets'].dtype == torch.int64
    assert bt['targets'].device.type == ('cuda' if torch.cuda.is_available() else 'cpu')
    np.testing.assert_array_equal(np.asarray(bj['targets']), _np(bt['targets']))
    qj.load_state_dict({'position': 5})
    qt.position = 5
    np.testing.assert_array_equal(np.asarray(next(qj)['inputs']), _np(next(qt)['inputs']))
    assert qj.state_dict() == {'position': 6}
    with pytest.raises(ValueError, match="split 'train' only"):
        wj._build_input_queue(jax.random.PRNGKey(0), 'validation', lm_data_dir, 8)


def test_batch_that_does_not_divide_the_devices_is_a_user_error(monkeypatch):
    monkeypatch.setattr(jax_utils.jax, 'device_count', lambda: 2)
    with pytest.raises(UserInputError, match=r'global batch size \(5\).*devices \(2\)'):
        jax_utils.check_batch_divides(5)
    jax_utils.check_batch_divides(6)


def test_eval_model_agrees_across_frameworks(pair, lm_data_dir):
    wj, pj, wt, _ = pair
    pt = wt.params_from_canonical(wj.params_to_canonical(pj))
    # 16 does not divide the number of windows: the padded last batch must not count.
    assert wj.num_validation_examples % 16
    mj = wj.eval_model(16, pj, None, None, lm_data_dir, None, 0)
    mt = wt.eval_model(16, pt, None, None, lm_data_dir, None, 0)
    assert set(mj) == {'validation/loss', 'validation/ppl', 'train/loss', 'train/ppl'}
    for key in mj:
        np.testing.assert_allclose(mj[key], mt[key], rtol=1e-4, err_msg=key)
    np.testing.assert_allclose(mj['validation/ppl'], np.exp(mj['validation/loss']), rtol=1e-6)
    assert wj.eval_model(64, pj, None, None, lm_data_dir, None, 0)[
        'validation/loss'
    ] == pytest.approx(mj['validation/loss'], rel=1e-5)
    assert wj.has_reached_validation_target({'validation/loss': 0.1})


def test_dropout_only_in_training(pair, batch):
    wj, pj, wt, pt = pair
    inputs = {'inputs': jnp.asarray(batch['inputs'])}

    def train(rate, key):
        forward = jax.jit(
            lambda p, r: wj.model_fn(p, inputs, None, spec.ForwardPassMode.TRAIN, r, True, rate)[0]
        )
        return np.asarray(forward(pj, jax.random.PRNGKey(key)))

    np.testing.assert_allclose(train(None, 0), _jax_logits(wj, pj, batch), rtol=1e-5, atol=1e-5)
    assert not np.allclose(train(0.3, 0), train(0.3, 1))

    # Submissions may pass the rate (and label smoothing) into jit as traced scalars.
    @jax.jit
    def traced(p, r, rate, smoothing):
        logits = wj.model_fn(p, inputs, None, spec.ForwardPassMode.TRAIN, r, True, rate)[0]
        return logits, wj.loss_fn(jnp.asarray(batch['targets']), logits, None, smoothing)['summed']

    logits0, loss0 = traced(pj, jax.random.PRNGKey(0), 0.0, 0.0)
    np.testing.assert_allclose(np.asarray(logits0), train(None, 0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(traced(pj, jax.random.PRNGKey(0), 0.3, 0.0)[0]),
        train(0.3, 0),
        rtol=1e-5,
        atol=1e-5,
    )
    assert float(traced(pj, jax.random.PRNGKey(0), 0.0, 0.1)[1]) != float(loss0)
    logits, _ = wt.model_fn(
        pt,
        {'inputs': _t(batch['inputs']).long()},
        None,
        spec.ForwardPassMode.TRAIN,
        None,
        True,
        0.3,
    )
    assert pt.training and not np.allclose(_np(logits), _torch_logits(wt, pt, batch))
    assert not pt.training  # EVAL switched it back.


def test_rng_to_seed_agrees_across_frameworks():
    for seed in (0, 1, 12345, 2**32 - 1):
        assert rng_to_seed(jax.random.PRNGKey(seed)) == seed
        assert rng_to_seed(np.array([0, seed], np.uint32)) == seed
    assert rng_to_seed(jax.random.key(9)) == 9
    assert rng_to_seed(5) == 5
    split = jax.random.split(jax.random.PRNGKey(0))[1]
    assert rng_to_seed(split) == rng_to_seed(np.asarray(split))
    with pytest.raises(ValueError, match='two unsigned 32-bit words'):
        rng_to_seed(np.zeros(3, np.uint32))


def test_registry_sizes_variants_and_counts():
    workload = registry.make_workload('lm', 'jax', 'tiny')
    assert workload.target_metric_name == 'loss' and workload.target_mode == 'min'
    assert workload.tokens_per_example == 128
    cfg = workload.config
    n = lm.count_params(cfg)
    assert workload.flops_per_example() == 128 * (6 * n + 12 * 2 * 128 * 128)
    assert workload.validation_target_value == lm.BUDGETS['tiny'].validation_target_value
    with pytest.raises(UserInputError, match='Known sizes: tiny, small'):
        lm.BaseLmWorkload.default_budget(workload, 'huge', None)
    with pytest.raises(UserInputError):
        registry.make_workload('lm', 'jax', 'huge')
    small = lm.SIZES['small']
    assert (small.n_layers, small.d_model, small.n_heads, small.seq_len) == (12, 768, 12, 1024)
    assert 80e6 < lm.count_params(small) < 130e6


def test_check_data_before_init_and_vocabulary_guard(tmp_path, lm_data_dir):
    workload = registry.make_workload('lm', 'pytorch', 'tiny')
    with pytest.raises(DataNotPreparedError, match='timetrial prepare lm'):
        workload.check_data(str(tmp_path))
    workload.init_model_fn(np.array([0, 0], np.uint32))  # Default vocabulary (4096).
    workload.check_data(lm_data_dir)  # The generated data's vocabulary is smaller: fine.
    assert workload.config.vocab_size == 4096
