"""lm_slm: teacher shapes, checkpoint loading in both frameworks, timing, and bad input."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from harness import registry
from harness.errors import DataNotPreparedError, UserInputError
from harness.submission.view import SubmissionWorkload
from tests.salt.slm_fixtures import make_slm_data
from workloads.lm import data as lm_data
from workloads.lm import workload as lm
from workloads.lm_slm import teacher as teacher_lib


@pytest.fixture(scope='module')
def slm_root(tmp_path_factory, lm_text_dir):
    return make_slm_data(tmp_path_factory.mktemp('slm'), lm_text_dir)


def _loaded(framework, root, variant=None):
    workload = registry.make_workload('lm_slm', framework, 'tiny', variant)
    workload.check_data(root)
    rng = jax.random.PRNGKey(3) if framework == 'jax' else np.array([0, 3], np.uint32)
    workload.init_model_fn(rng)
    return workload


@pytest.fixture(scope='module')
def pair(slm_root):
    return _loaded('jax', slm_root), _loaded('pytorch', slm_root)


@pytest.fixture(scope='module')
def inputs(slm_root):
    batch = lm_data.TrainBatches(lm_data.open_split(slm_root, 'train'), 128, 3, seed=1)
    return batch.batch_at(0)['inputs']


def test_teacher_shapes_are_half_and_quarter_of_the_student():
    tiny, small = lm.SIZES['tiny'], lm.SIZES['small']
    half, quarter = teacher_lib.TEACHERS['half'].scale, teacher_lib.TEACHERS['quarter'].scale
    got = {
        (name, size): (c.n_layers, c.d_model, c.n_heads)
        for size, student in (('tiny', tiny), ('small', small))
        for name, scale in (('half', half), ('quarter', quarter))
        for c in [teacher_lib.teacher_config(student, scale)]
    }
    assert got == {
        ('half', 'tiny'): (1, 64, 2),
        ('quarter', 'tiny'): (1, 32, 1),
        ('half', 'small'): (6, 384, 6),
        ('quarter', 'small'): (3, 192, 3),
    }
    assert (
        teacher_lib.recipe_for('tiny', 'half_undertrained').steps
        == teacher_lib.RECIPES['tiny'].steps // 8
    )


def test_same_target_and_budget_as_lm_for_every_variant():
    for variant in (None, 'quarter_teacher', 'undertrained_teacher'):
        for size in ('tiny', 'small'):
            workload = registry.make_workload('lm_slm', 'jax', size, variant)
            assert workload.budget == lm.BUDGETS[size]
            assert workload.variant == variant
    names = {
        v: registry.make_workload('lm_slm', 'pytorch', 'tiny', v).teacher_name
        for v in (None, 'quarter_teacher', 'undertrained_teacher')
    }
    assert names == {
        None: 'half',
        'quarter_teacher': 'quarter',
        'undertrained_teacher': 'half_undertrained',
    }


def test_unknown_variant_names_the_known_ones():
    from workloads.lm_slm.jax_impl import LmSlmJaxWorkload

    with pytest.raises(UserInputError, match='quarter_teacher, undertrained_teacher'):
        LmSlmJaxWorkload(size='tiny', variant='big_teacher')


def test_checkpoint_loads_identically_in_both_frameworks(pair, slm_root, inputs):
    wj, wt = pair
    meta = teacher_lib.load_meta(slm_root, 'tiny', 'half')
    saved = teacher_lib.load_weights(slm_root, 'tiny', 'half', meta)
    from_jax = wj._teacher_model.params_to_canonical(wj._teacher_params)
    from_torch = wt._teacher_model.params_to_canonical(wt._teacher_module)
    assert saved.keys() == from_jax.keys() == from_torch.keys()
    for name in saved:
        np.testing.assert_array_equal(from_jax[name], saved[name], err_msg=name)
        np.testing.assert_array_equal(from_torch[name], saved[name], err_msg=name)
    logits_j = np.asarray(wj.teacher_logits({'inputs': inputs}))
    logits_t = wt.teacher_logits({'inputs': inputs}).numpy()
    assert logits_j.shape == (3, 128, wj.config.vocab_size)
    np.testing.assert_allclose(logits_j, logits_t, rtol=2e-4, atol=2e-4)
    values_j, indices_j = (np.asarray(x) for x in wj.teacher_topk(inputs, 5))
    values_t, indices_t = (x.numpy() for x in wt.teacher_topk(inputs, 5))
    np.testing.assert_allclose(values_j, values_t, rtol=2e-4, atol=2e-4)
    assert (indices_j == indices_t).mean() > 0.99  # near-ties may swap within float error
    # Top-k values are log-probabilities: the teacher's top-5 of log_softmax(logits).
    log_p = logits_t - np.log(np.exp(logits_t.astype(np.float64)).sum(-1, keepdims=True))
    np.testing.assert_allclose(values_t, -np.sort(-log_p, axis=-1)[..., :5], atol=1e-4)


@pytest.mark.parametrize('framework', ['jax', 'pytorch'])
def test_teacher_time_is_counted_with_the_workload_clock(framework, slm_root, inputs):
    workload = _loaded(framework, slm_root)
    ticks = iter([10.0, 12.5, 20.0, 20.25])
    workload.teacher_clock = lambda: next(ticks)
    workload.teacher_logits({'inputs': inputs})
    assert workload.teacher_time_s == pytest.approx(2.5)
    workload.teacher_topk({'inputs': inputs}, 3)
    assert workload.teacher_time_s == pytest.approx(2.75)
    assert workload.teacher_sequences == 6
    per_sequence = teacher_lib.teacher_forward_flops(workload.teacher_config)
    assert workload.teacher_flops == pytest.approx(6 * per_sequence)
    assert per_sequence == pytest.approx(lm.flops_per_sequence(workload.teacher_config) / 3)


def test_teacher_training_cost(pair):
    cost = pair[0].teacher_training_cost()
    assert cost['time_s'] > 0 and cost['steps'] == 2 and cost['name'] == 'half'
    config = pair[0].teacher_config
    assert cost['flops'] == pytest.approx(2 * 32 * lm.flops_per_sequence(config))


def test_view_exposes_the_teacher_functions_only(pair, inputs):
    view = SubmissionWorkload(pair[1])
    assert view.teacher_topk(inputs, 2)[0].shape == (3, 128, 2)
    for hidden in (
        '_teacher_module',
        '_teacher_params',
        '_teacher_model',
        'teacher_time_s',
        '_load_teacher_checkpoint',
    ):
        with pytest.raises(AttributeError, match='not available to submissions'):
            getattr(view, hidden)
    with pytest.raises(AttributeError, match='read-only'):
        view.teacher_logits = None


def test_torch_teacher_is_frozen(pair, inputs):
    wt = pair[1]
    assert not any(p.requires_grad for p in wt._teacher_module.parameters())
    assert not wt.teacher_logits(inputs).requires_grad


@pytest.mark.parametrize('k', [0, 10**6, 2.0])
def test_top_k_out_of_range_is_refused(pair, inputs, k):
    with pytest.raises(UserInputError, match='from 1 to the vocabulary size'):
        pair[0].teacher_topk(inputs, k)


def test_jax_teacher_refuses_to_be_traced(pair, inputs):
    with pytest.raises(TypeError, match='outside jax.jit'):
        jax.jit(lambda x: pair[0].teacher_logits(x))(inputs)


def test_missing_teacher_names_the_prepare_command(slm_root, tmp_path):
    root = tmp_path / 'data'
    shutil.copytree(lm_data.lm_dir(slm_root), root / 'lm')
    workload = registry.make_workload('lm_slm', 'pytorch', 'tiny')
    with pytest.raises(DataNotPreparedError, match='timetrial prepare lm_slm'):
        workload.check_data(str(root))
    # A variant needs its own teacher.
    shutil.copytree(
        teacher_lib.teacher_dir(slm_root, 'tiny', 'half'),
        teacher_lib.teacher_dir(root, 'tiny', 'half'),
    )
    registry.make_workload('lm_slm', 'pytorch', 'tiny').check_data(str(root))
    quarter = registry.make_workload('lm_slm', 'pytorch', 'tiny', 'quarter_teacher')
    with pytest.raises(DataNotPreparedError, match="teacher 'quarter'"):
        quarter.check_data(str(root))


def _copy_with_meta(slm_root, tmp_path, edit):
    root = tmp_path / 'data'
    shutil.copytree(lm_data.lm_dir(slm_root), root / 'lm')
    folder = teacher_lib.teacher_dir(root, 'tiny', 'half')
    shutil.copytree(teacher_lib.teacher_dir(slm_root, 'tiny', 'half'), folder)
    meta = json.loads((folder / teacher_lib.META_FILE).read_text())
    edit(meta)
    (folder / teacher_lib.META_FILE).write_text(json.dumps(meta))
    return str(root)


def test_teacher_with_another_vocabulary_and_sequence_length(slm_root, tmp_path):
    def edit(meta):
        meta['config']['vocab_size'] += 64
        meta['config']['seq_len'] = 256

    root = _copy_with_meta(slm_root, tmp_path, edit)
    workload = registry.make_workload('lm_slm', 'jax', 'tiny')
    with pytest.raises(UserInputError) as err:
        workload.check_data(root)
    message = str(err.value)
    assert 'vocabulary of' in message and 'sequences of 256 tokens' in message
    assert 'timetrial prepare lm_slm' in message


def test_teacher_trained_on_other_data(slm_root, tmp_path):
    root = _copy_with_meta(slm_root, tmp_path, lambda m: m['data'].update(train_sha256='0' * 64))
    with pytest.raises(UserInputError, match='trained on other lm data'):
        registry.make_workload('lm_slm', 'jax', 'tiny').check_data(root)


def test_corrupt_weights_fail_the_checksum(slm_root, tmp_path):
    root = _copy_with_meta(slm_root, tmp_path, lambda m: None)
    weights = teacher_lib.teacher_dir(root, 'tiny', 'half') / teacher_lib.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-8] + b'\0' * 8)
    workload = registry.make_workload('lm_slm', 'pytorch', 'tiny')
    workload.check_data(root)  # reads the JSON only: cheap for suite preflight
    with pytest.raises(DataNotPreparedError, match='does not match its checksum'):
        workload.init_model_fn(np.array([0, 0], np.uint32))


@pytest.mark.integration  # trains a teacher for one step (~20 s on a busy CPU)
def test_prepare_keeps_a_current_teacher_and_retrains_a_stale_one(slm_root, tmp_path):
    from workloads.lm_slm import data, train_teacher

    root = _copy_with_meta(slm_root, tmp_path, lambda m: None)
    assert train_teacher.is_current(root, 'tiny', 'half', steps=2)
    assert not train_teacher.is_current(root, 'tiny', 'half')  # the reference recipe differs
    logs = []
    data.prepare(root, variant='quarter_teacher', sizes=['tiny'], steps=1, log=logs.append)
    assert (teacher_lib.teacher_dir(root, 'tiny', 'quarter') / teacher_lib.META_FILE).is_file()
    logs.clear()
    data.prepare(root, variant='quarter_teacher', sizes=['tiny'], steps=1, log=logs.append)
    assert any('already prepared' in line for line in logs)
    with pytest.raises(UserInputError, match='no variant'):
        data.prepare(root, variant='tiny_teacher')


def test_teacher_logits_before_init_is_an_error(slm_root):
    workload = registry.make_workload('lm_slm', 'pytorch', 'tiny')
    workload.check_data(slm_root)
    with pytest.raises(RuntimeError, match='init_model_fn'):
        workload.teacher_logits(np.zeros((1, 4), np.int32))


def test_teacher_accounting_survives_a_resume(pair):
    wt = pair[1]
    saved = wt.teacher_accounting()
    fresh = registry.make_workload('lm_slm', 'pytorch', 'tiny')
    fresh.restore_teacher_accounting(saved)
    assert fresh.teacher_accounting() == saved
    fresh.restore_teacher_accounting(None)
    assert fresh.teacher_time_s == 0.0
