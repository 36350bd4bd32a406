"""salt, salt_ds and kd_only on the lm_slm workload: steps, teacher time, frozen teacher,
JAX/PyTorch agreement, and refusals."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from harness import registry
from harness.errors import UserInputError
from harness.submission.loader import load_submission
from harness.submission.search_space import as_hyperparameters
from harness.submission.view import MetricsLogger, SubmissionWorkload
from workloads.lm_slm import workload as slm

# Two distillation steps, then plain ones.
KD_FRACTION = 2 / slm.REFERENCE_STEPS_TO_TARGET['tiny']

HPARAMS = {
    'learning_rate': 2e-3,
    'one_minus_beta1': 0.1,
    'beta2': 0.99,
    'warmup_factor': 0.05,
    'weight_decay': 0.05,
    'grad_clip': 1.0,
    'dropout_rate': 0.0,
    'optimizer': 'adamw',
    'kd_weight': 0.5,
    'kd_temperature': 1.0,
    'kd_top_k': 0,
    'kd_fraction': KD_FRACTION,
    'kd_transition': 'step',
    'kd_transition_fraction': 0.0,
    'ds_pool_factor': 2,
    'ds_top_k': 10,
    'ds_low_percentile': 50.0,
    'ds_high_percentile': 100.0,
}


class Trainer:
    """The harness's calls, without the harness: init, then data_selection + update_params."""

    def __init__(self, submission, framework, data_dir, hparams, workload='lm_slm', seed=5):
        self.workload = registry.make_workload(workload, framework, 'tiny')
        self.workload.check_data(data_dir)
        self.logger = MetricsLogger()
        self.workload.attach_metrics_logger(self.logger)
        self.view = SubmissionWorkload(self.workload)
        if framework == 'jax':
            rngs = [jax.random.PRNGKey(seed), jax.random.PRNGKey(seed + 1)]
        else:
            rngs = [np.array([0, seed], np.uint32), np.array([0, seed + 1], np.uint32)]
        self.params, self.model_state = self.workload.init_model_fn(rngs[0])
        self.queue = self.workload._build_input_queue(rngs[1], 'train', data_dir, 8)
        self.sub = load_submission(submission, framework)
        self.hparams = as_hyperparameters(hparams)
        self.rng = rngs[0]
        self.opt_state = self.sub.init_optimizer_state(
            workload=self.view,
            model_params=self.params,
            model_state=self.model_state,
            hyperparameters=self.hparams,
            rng=self.rng,
        )
        self.step = 0

    def train_step(self):
        batch = self.sub.data_selection(
            workload=self.view,
            input_queue=self.queue,
            optimizer_state=self.opt_state,
            current_param_container=self.params,
            model_state=self.model_state,
            hyperparameters=self.hparams,
            global_step=self.step,
            rng=self.rng,
        )
        self.opt_state, self.params, self.model_state = self.sub.update_params(
            workload=self.view,
            current_param_container=self.params,
            current_params_types=None,
            model_state=self.model_state,
            hyperparameters=self.hparams,
            batch=batch,
            loss_type=None,
            optimizer_state=self.opt_state,
            eval_results=[],
            global_step=self.step,
            rng=self.rng,
        )
        self.step += 1
        (record,) = self.logger.drain()
        return batch, record


def _teacher_weights(workload):
    if workload.framework == 'jax':
        return workload._teacher_model.params_to_canonical(workload._teacher_params)
    return workload._teacher_model.params_to_canonical(workload._teacher_module)


# Each case compiles or builds a model (~5-40 s on a busy 2-core CPU): salt on PyTorch is
# the unit test, the others run with -m integration.
_SLOW = pytest.mark.integration
STEP_CASES = [
    pytest.param('salt', 'pytorch'),
    pytest.param('salt', 'jax', marks=_SLOW),
    pytest.param('salt_ds', 'jax', marks=_SLOW),
    pytest.param('salt_ds', 'pytorch', marks=_SLOW),
    pytest.param('kd_only', 'jax', marks=_SLOW),
    pytest.param('kd_only', 'pytorch', marks=_SLOW),
]


@pytest.mark.parametrize('submission,framework', STEP_CASES)
def test_steps_teacher_time_and_frozen_teacher(submission, framework, slm_data_dir):
    trainer = Trainer(submission, framework, slm_data_dir, HPARAMS)
    before = _teacher_weights(trainer.workload)
    times, batch_sizes = [], []
    for _ in range(4):
        batch, record = trainer.train_step()
        assert np.isfinite(float(record['loss']))
        times.append(trainer.workload.teacher_time_s)
        batch_sizes.append(int(batch['inputs'].shape[0]))
    assert batch_sizes == [8] * 4
    assert times[0] > 0.0
    if submission == 'kd_only':
        assert times[0] < times[1] < times[2] < times[3]
    else:  # distillation for 2 steps; no teacher call after
        assert times[0] < times[1] == times[2] == times[3]
    # salt_ds scores a pool of 16 sequences per distillation step and reuses that pass.
    assert (
        trainer.workload.teacher_sequences
        == {'salt': 2 * 8, 'salt_ds': 2 * 16, 'kd_only': 4 * 8}[submission]
    )
    after = _teacher_weights(trainer.workload)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


@pytest.mark.integration
@pytest.mark.parametrize('optimizer', ['adamw', 'nadamw'])
@pytest.mark.parametrize('top_k', [0, 16])
def test_jax_and_pytorch_take_the_same_first_steps(slm_data_dir, top_k, optimizer):
    hparams = {**HPARAMS, 'kd_top_k': top_k, 'kd_fraction': 0.01, 'optimizer': optimizer}
    records = {}
    for framework in ('jax', 'pytorch'):
        trainer = Trainer('salt', framework, slm_data_dir, hparams)
        records[framework] = [trainer.train_step()[1] for _ in range(2)]
    for rj, rt in zip(records['jax'], records['pytorch']):
        for key in ('loss', 'label_loss', 'teacher_ce'):
            assert float(rj[key]) == pytest.approx(float(rt[key]), rel=2e-4), key


@pytest.mark.integration
@pytest.mark.parametrize('optimizer', ['adamw', 'nadamw'])
def test_weight_zero_takes_the_base_optimizers_step(slm_data_dir, optimizer):
    """ω = 0 reports the same loss as the baseline of the chosen base optimizer and never
    calls the teacher."""
    salt = Trainer(
        'salt', 'pytorch', slm_data_dir, {**HPARAMS, 'kd_weight': 0.0, 'optimizer': optimizer}
    )
    baseline = Trainer(
        optimizer,
        'pytorch',
        slm_data_dir,
        {
            k: HPARAMS[k]
            for k in (
                'learning_rate',
                'one_minus_beta1',
                'beta2',
                'warmup_factor',
                'weight_decay',
                'grad_clip',
                'dropout_rate',
            )
        },
    )
    for _ in range(2):
        a, b = float(salt.train_step()[1]['loss']), float(baseline.train_step()[1]['loss'])
        assert a == pytest.approx(b, rel=1e-5)
    assert salt.workload.teacher_time_s == 0.0


@pytest.mark.parametrize('framework', ['jax', 'pytorch'])
def test_salt_on_a_workload_without_teacher_says_where_to_run(framework, slm_data_dir):
    with pytest.raises(UserInputError, match="run it on 'lm_slm'"):
        Trainer('salt', framework, slm_data_dir, HPARAMS, workload='lm')


def test_top_k_larger_than_the_vocabulary_fails_at_init(slm_data_dir):
    with pytest.raises(UserInputError, match='kd_top_k = 100000 is larger than the vocab'):
        Trainer('salt', 'jax', slm_data_dir, {**HPARAMS, 'kd_top_k': 100_000})


def test_bad_weight_fails_at_init(slm_data_dir):
    with pytest.raises(UserInputError, match=r'kd_weight = 1.5 is invalid'):
        Trainer('kd_only', 'pytorch', slm_data_dir, {**HPARAMS, 'kd_weight': 1.5})


def test_baselines_ignore_the_teacher(slm_data_dir):
    trainer = Trainer(
        'nadamw',
        'pytorch',
        slm_data_dir,
        {
            k: HPARAMS[k]
            for k in (
                'learning_rate',
                'one_minus_beta1',
                'beta2',
                'warmup_factor',
                'weight_decay',
                'grad_clip',
                'dropout_rate',
            )
        },
    )
    trainer.train_step()
    assert trainer.workload.teacher_time_s == 0.0
