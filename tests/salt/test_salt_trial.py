"""A real salt trial through the harness: teacher time in result.json and evals.jsonl, the
stage of every step in trial.log, the teacher's regime in meta.json."""

from __future__ import annotations

import json

import pytest

from harness.trial.run import run_trial
from harness.trial.config import TrialConfig
from workloads.lm_slm import workload as slm


@pytest.mark.integration
@pytest.mark.parametrize('framework', ['jax', 'pytorch'])
def test_salt_trial_records_teacher_time(framework, slm_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv('TIMETRIAL_TARGETS_DIR', str(tmp_path / 'targets'))
    config = TrialConfig(
        workload='lm_slm',
        framework=framework,
        submission='salt',
        size='tiny',
        hparams={
            'learning_rate': 2e-3,
            'one_minus_beta1': 0.1,
            'beta2': 0.99,
            'warmup_factor': 0.05,
            'weight_decay': 0.05,
            'grad_clip': 1.0,
            'dropout_rate': 0.0,
            'kd_weight': 0.5,
            'kd_fraction': 3 / slm.REFERENCE_STEPS_TO_TARGET['tiny'],
        },
        results_dir=str(tmp_path / 'results'),
        data_dir=slm_data_dir,
        max_steps=5,
        submission_name='salt',
    )
    result = run_trial(config)
    assert result['status'] == 'budget_exhausted', result.get('error')
    # 3 distillation steps, then plain ones.
    assert 0.0 < result['teacher_time_s'] < result['submission_time_s']
    lines = (config.trial_dir() / 'evals.jsonl').read_text().splitlines()
    assert json.loads(lines[-1])['teacher_time_s'] == result['teacher_time_s']
    # The stage of every step is in the log: 3 of distillation, then plain training.
    log = (config.trial_dir() / 'trial.log').read_text().splitlines()
    stages = [line.split('kd_stage:')[1].split()[0] for line in log if 'kd_stage:' in line]
    assert stages == ['0'] * 3 + ['2'] * 2
    # The teacher's regime and one-off cost travel with the trial.
    teacher = json.loads((config.trial_dir() / 'meta.json').read_text())['teacher_training_cost']
    assert teacher['name'] == 'quarter' and teacher['role'] == 'weak'
    assert teacher['split'] == 'train' and teacher['steps'] == 2 and teacher['epochs'] > 0
    assert teacher['margin_nats'] == teacher['validation_loss'] - teacher['target'] > 0.1
