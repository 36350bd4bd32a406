"""A real salt trial through the harness: teacher time lands in result.json and evals.jsonl."""

from __future__ import annotations

import json

import pytest

from harness.trial.run import run_trial
from harness.trial.config import TrialConfig
from workloads.lm import workload as lm


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
            'kd_fraction': 3 / lm.BUDGETS['tiny'].step_hint,
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
