"""Several devices per trial give the loss trajectory of one device (within tolerance).

JAX: data parallel over 2 host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2):
batches split along the batch dimension, parameters replicated, one jitted step.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

SCRIPT = r'''
import json, sys
import jax
from harness.trial import run_trial
from harness.trial_config import TrialConfig
from harness import results
hp = {'learning_rate': 2e-3, 'one_minus_beta1': 0.1, 'beta2': 0.99, 'warmup_factor': 0.05,
      'weight_decay': 0.05, 'grad_clip': 1.0, 'label_smoothing': 0.0, 'dropout_rate': 0.0}
cfg = TrialConfig(workload='lm', framework='jax', submission='adamw', size='tiny', hparams=hp,
                  max_steps=6, data_dir=sys.argv[1], results_dir=sys.argv[2],
                  stop_at_target=False)
result = run_trial(cfg)
evals = results.read_jsonl(cfg.trial_dir() / 'evals.jsonl')
print(json.dumps({'devices': jax.device_count(), 'status': result['status'],
                  'loss': evals[-1]['validation/loss'], 'error': result.get('error')}))
'''


def _run(devices, data_dir, results_dir):
    env = {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'}
    out = subprocess.run([sys.executable, '-c', SCRIPT, data_dir, str(results_dir)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_jax_two_host_devices_match_one(data_dir, tmp_path):
    one = _run(1, data_dir, tmp_path / 'one')
    two = _run(2, data_dir, tmp_path / 'two')
    assert one['devices'] == 1 and two['devices'] == 2
    assert one['status'] == two['status'] == 'budget_exhausted', (one, two)
    assert two['loss'] == pytest.approx(one['loss'], rel=1e-4)
