"""lm_slm: teacher shapes and regimes, checkpoint loading in both frameworks, timing, bad input."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from harness import registry
from harness.errors import DataNotPreparedError, UserInputError
from harness.submission.view import SubmissionWorkload, call_timer
from tests.salt.slm_fixtures import make_slm_data
from workloads.lm import data as lm_data
from workloads.lm import workload as lm
from workloads.lm_slm import teacher as teacher_lib
from workloads.lm_slm import workload as slm

BASE = teacher_lib.TEACHER_OF_VARIANT[None]  # 'quarter'


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
    assert teacher_lib.recipe_for('tiny', 'half_undertrained').steps == 125


def test_every_recipe_fits_its_epoch_cap():
    """Shakespeare's training split: no teacher's configured steps exceed the cap."""
    train_tokens = lm.SHAKESPEARE_TRAIN_TOKENS
    for size, student in lm.SIZES.items():
        for name in teacher_lib.TEACHERS:
            recipe = teacher_lib.recipe_for(size, name)
            assert teacher_lib.capped_steps(recipe, student.seq_len, train_tokens) == recipe.steps
    # A smaller corpus cuts the steps: at most max_epochs passes.
    recipe = teacher_lib.recipe_for('tiny', 'half')
    assert teacher_lib.capped_steps(recipe, 128, 100_000) == int(3 * 100_000 // (32 * 128))


def test_lms_target_and_schedule_for_every_variant():
    for variant in (None, *slm.VARIANTS):
        for size in ('tiny', 'small'):
            workload = registry.make_workload('lm_slm', 'jax', size, variant)
            assert workload.validation_target_value == lm.BUDGETS[size].validation_target_value
            assert workload.max_allowed_runtime_sec == (
                slm.BUDGET_S[size] or lm.BUDGETS[size].max_allowed_runtime_sec
            )
            assert workload.step_hint == lm.BUDGETS[size].step_hint
            assert workload.reference_steps_to_target == slm.REFERENCE_STEPS_TO_TARGET[size]
            assert workload.variant == variant
    names = {
        v: registry.make_workload('lm_slm', 'pytorch', 'tiny', v).teacher_name
        for v in (None, *slm.VARIANTS)
    }
    assert names == {
        None: 'quarter',
        'weaker_teacher': 'half_short',
        'undertrained_teacher': 'half_undertrained',
        'strong_teacher': 'half',
    }
    roles = {v: teacher_lib.TEACHERS[n].role for v, n in names.items()}
    assert [v for v, r in roles.items() if r != 'weak'] == ['strong_teacher']


def test_a_calibrated_budget_keeps_its_reference_steps():
    from harness import spec

    calibrated = spec.Budget(4.5, 100.0, 5.0, 800, reference_steps_to_target=250)
    workload = registry.make_workload('lm_slm', 'jax', 'tiny', None, budget=calibrated)
    assert workload.reference_steps_to_target == 250
    # One without them (an older targets file) gets the shipped ones.
    bare = spec.Budget(4.5, 100.0, 5.0, 800)
    workload = registry.make_workload('lm_slm', 'jax', 'tiny', None, budget=bare)
    assert workload.reference_steps_to_target == slm.REFERENCE_STEPS_TO_TARGET['tiny']


def test_unknown_variant_names_the_known_ones():
    from workloads.lm_slm.jax_impl import LmSlmJaxWorkload

    with pytest.raises(UserInputError, match='weaker_teacher, undertrained_teacher, strong'):
        LmSlmJaxWorkload(size='tiny', variant='big_teacher')


def test_checkpoint_loads_identically_in_both_frameworks(pair, slm_root, inputs):
    wj, wt = pair
    meta = teacher_lib.load_meta(slm_root, 'tiny', BASE)
    saved = teacher_lib.load_weights(slm_root, 'tiny', BASE, meta)
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
def test_teacher_time_is_measured_by_the_view(framework, slm_root, inputs):
    workload = _loaded(framework, slm_root)
    ticks = iter([10.0, 12.5, 20.0, 20.25])
    view = SubmissionWorkload(workload, clock=lambda: next(ticks))
    workload.teacher_logits({'inputs': inputs})  # the harness's own call: not timed
    assert workload.teacher_time_s == 0.0
    view.teacher_logits({'inputs': inputs})
    assert workload.teacher_time_s == pytest.approx(2.5) == call_timer(view).time_s
    view.teacher_topk({'inputs': inputs}, 3)
    assert workload.teacher_time_s == pytest.approx(2.75)
    assert workload.teacher_sequences == 9
    per_sequence = teacher_lib.teacher_forward_flops(workload.teacher_config)
    assert workload.teacher_flops == pytest.approx(9 * per_sequence)
    assert per_sequence == pytest.approx(lm.flops_per_sequence(workload.teacher_config) / 3)


def test_teacher_training_cost(pair):
    cost = pair[0].teacher_training_cost()
    assert cost['time_s'] > 0 and cost['steps'] == 2 and cost['name'] == BASE
    config = pair[0].teacher_config
    assert cost['flops'] == pytest.approx(2 * 32 * lm.flops_per_sequence(config))
    assert cost['tokens'] == 2 * 32 * 128 and cost['split'] == 'train'
    train_tokens = lm_data.load_meta(pair[0]._teacher_data_dir)['train_tokens']
    assert cost['epochs'] == pytest.approx(cost['tokens'] / train_tokens)
    assert cost['role'] == 'weak' and cost['target'] == 4.75
    assert cost['margin_nats'] == pytest.approx(cost['validation_loss'] - 4.75)
    assert cost['margin_nats'] > teacher_lib.WEAK_MARGIN_NATS  # two steps: far from the target


def test_view_exposes_the_teacher_functions_only(pair, inputs):
    view = SubmissionWorkload(pair[1])
    assert view.teacher_topk(inputs, 2)[0].shape == (3, 128, 2)
    assert view.reference_steps_to_target == slm.REFERENCE_STEPS_TO_TARGET['tiny']
    for hidden in (
        '_teacher_module',
        '_teacher_params',
        '_teacher_model',
        'teacher_time_s',
        'teacher_accounting',
        'restore_teacher_accounting',
        'attach_call_timer',
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
        teacher_lib.teacher_dir(slm_root, 'tiny', BASE),
        teacher_lib.teacher_dir(root, 'tiny', BASE),
    )
    registry.make_workload('lm_slm', 'pytorch', 'tiny').check_data(str(root))
    weaker = registry.make_workload('lm_slm', 'pytorch', 'tiny', 'weaker_teacher')
    with pytest.raises(DataNotPreparedError, match="teacher 'half_short'"):
        weaker.check_data(str(root))


def _copy_with_meta(slm_root, tmp_path, edit, name=BASE):
    """A data root with the base teacher's checkpoint under ``name``, its meta edited."""
    root = tmp_path / 'data'
    shutil.copytree(lm_data.lm_dir(slm_root), root / 'lm')
    folder = teacher_lib.teacher_dir(root, 'tiny', name)
    shutil.copytree(teacher_lib.teacher_dir(slm_root, 'tiny', BASE), folder)
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
    weights = teacher_lib.teacher_dir(root, 'tiny', BASE) / teacher_lib.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-8] + b'\0' * 8)
    workload = registry.make_workload('lm_slm', 'pytorch', 'tiny')
    workload.check_data(root)  # reads the JSON only: cheap for suite preflight
    with pytest.raises(DataNotPreparedError, match='does not match its checksum'):
        workload.init_model_fn(np.array([0, 0], np.uint32))


@pytest.mark.integration  # trains a teacher for one step (~20 s on a busy CPU)
def test_prepare_keeps_a_current_teacher_and_retrains_a_stale_one(slm_root, tmp_path):
    from workloads.lm_slm import data, train_teacher

    root = _copy_with_meta(slm_root, tmp_path, lambda m: None)
    assert train_teacher.is_current(root, 'tiny', BASE, steps=2)
    assert not train_teacher.is_current(root, 'tiny', BASE)  # the reference recipe differs
    logs = []
    data.prepare(root, variant='weaker_teacher', sizes=['tiny'], steps=1, log=logs.append)
    assert (teacher_lib.teacher_dir(root, 'tiny', 'half_short') / teacher_lib.META_FILE).is_file()
    assert any('role:weak' in line and 'margin_nats:+' in line for line in logs)
    logs.clear()
    data.prepare(root, variant='weaker_teacher', sizes=['tiny'], steps=1, log=logs.append)
    assert any('already prepared' in line for line in logs)
    with pytest.raises(UserInputError, match='no variant'):
        data.prepare(root, variant='tiny_teacher')


def test_teacher_logits_before_init_is_an_error(slm_root):
    workload = registry.make_workload('lm_slm', 'pytorch', 'tiny')
    workload.check_data(slm_root)
    with pytest.raises(RuntimeError, match='init_model_fn'):
        workload.teacher_logits(np.zeros((1, 4), np.int32))


def test_teacher_accounting_survives_a_resume(pair, inputs):
    wt = pair[1]
    view = SubmissionWorkload(wt, clock=iter([0.0, 1.5]).__next__)
    view.teacher_logits(inputs)
    saved = wt.teacher_accounting()
    assert saved['teacher_time_s'] == 1.5 and saved['teacher_calls'] == 1
    fresh = registry.make_workload('lm_slm', 'pytorch', 'tiny')
    fresh_view = SubmissionWorkload(fresh)
    fresh.restore_teacher_accounting(saved)
    assert fresh.teacher_accounting() == saved
    assert call_timer(fresh_view).time_s == 1.5
    fresh.restore_teacher_accounting(None)
    assert fresh.teacher_time_s == 0.0


# ---- the teacher's regime ---------------------------------------------------------------


def _with_loss(loss):
    return lambda meta: meta['training'].update(validation_loss=loss)


def test_a_weak_teacher_that_beats_the_target_is_refused(slm_root, tmp_path):
    root = _copy_with_meta(slm_root, tmp_path, _with_loss(4.80))  # within 0.1 of 4.75
    workload = registry.make_workload('lm_slm', 'jax', 'tiny')
    with pytest.raises(UserInputError) as err:
        workload.check_data(root)
    message = str(err.value)
    for needle in ("teacher 'quarter'", 'validation loss 4.8000', "target 4.75",
                   'at least 4.85', 'margin +0.0500', 'timetrial prepare lm_slm',
                   "'strong_teacher'"):
        assert needle in message, needle


def test_the_margin_uses_the_trials_own_target(slm_root, tmp_path):
    from harness import spec

    root = _copy_with_meta(slm_root, tmp_path, _with_loss(4.80))
    lower = spec.Budget(4.6, 150.0, 10.0, 1200)  # e.g. a calibrated target: 4.80 >= 4.7
    registry.make_workload('lm_slm', 'jax', 'tiny', None, budget=lower).check_data(root)


def test_the_strong_control_may_beat_the_target(slm_root, tmp_path):
    def strong(meta):
        meta['training'].update(validation_loss=4.60)
        meta.update(name='half', role='strong_control')

    root = _copy_with_meta(slm_root, tmp_path, strong, name='half')
    workload = registry.make_workload('lm_slm', 'jax', 'tiny', 'strong_teacher')
    workload.check_data(root)
    cost = workload.teacher_training_cost()
    assert cost['role'] == 'strong_control' and cost['margin_nats'] == pytest.approx(-0.15)


@pytest.mark.parametrize('edit,needle', [
    (lambda m: m['training'].pop('split'), 'no training split'),
    (lambda m: m['training'].update(epochs=3.5), 'over the cap of 3.0'),
    (lambda m: m['training'].pop('epochs'), 'no epoch count'),
    (lambda m: m['training'].pop('validation_loss'), 'no validation loss'),
])
def test_a_teacher_outside_its_training_regime_is_refused(slm_root, tmp_path, edit, needle):
    root = _copy_with_meta(slm_root, tmp_path, edit)
    with pytest.raises(UserInputError, match=needle):
        registry.make_workload('lm_slm', 'jax', 'tiny').check_data(root)


def test_prepare_refuses_a_weak_teacher_that_beats_the_shipped_target(tmp_path, monkeypatch):
    from workloads.lm_slm import data, train_teacher

    def fake_ensure(data_dir, size, name, **kwargs):
        return {'name': name, 'size': size, 'role': teacher_lib.TEACHERS[name].role,
                'recipe': {'max_epochs': 3.0},
                'training': {'split': 'train', 'epochs': 2.0, 'validation_loss': 4.7}}

    monkeypatch.setattr(train_teacher, 'ensure_teacher', fake_ensure)
    monkeypatch.setattr(lm_data, 'load_meta', lambda data_dir: {})
    logs = []
    # Each variant prepares its own teacher; a weak one that beats the target is refused
    # with the numbers.
    for variant, name in ((None, 'quarter'), ('weaker_teacher', 'half_short'),
                          ('undertrained_teacher', 'half_undertrained')):
        with pytest.raises(UserInputError) as err:
            data.prepare(tmp_path, variant=variant, sizes=['tiny'], log=logs.append)
        assert f'{name} (tiny)' in str(err.value)
    # The strong control is not refused, but the log shows its margin.
    data.prepare(tmp_path, variant='strong_teacher', sizes=['tiny'], log=logs.append)
    assert any('teacher:half ' in line and 'margin_nats:-0.0500' in line for line in logs)
