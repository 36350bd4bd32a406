"""Several devices per trial give the loss trajectory of one device (within tolerance).

JAX: data parallel over 2 host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2):
batches split along the batch dimension, parameters replicated, one jitted step.
PyTorch: DDP over 2 gloo processes on the CPU (``devices=2``): each rank trains on
half of every global batch, rank 0 alone writes the results files.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness import results
from harness.trial.run import run_trial
from harness.trial.config import TrialConfig

pytestmark = pytest.mark.integration

SCRIPT = r'''
import json, sys
import jax
from harness.trial.run import run_trial
from harness.trial.config import TrialConfig
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


HPARAMS = {'learning_rate': 2e-3, 'one_minus_beta1': 0.1, 'beta2': 0.99, 'warmup_factor': 0.05,
           'weight_decay': 0.05, 'grad_clip': 1.0, 'label_smoothing': 0.0, 'dropout_rate': 0.0}


def _torch_trial(data_dir, results_dir, devices, submission='adamw', max_steps=8):
    cfg = TrialConfig(workload='lm', framework='pytorch', submission=submission, size='tiny',
                      hparams=HPARAMS, max_steps=max_steps, data_dir=data_dir,
                      results_dir=str(results_dir), stop_at_target=False, devices=devices)
    return cfg, run_trial(cfg)


def _step_losses(trial_dir):
    losses = {}
    for line in (trial_dir / results.LOG_FILE).read_text(encoding='utf-8').splitlines():
        fields = dict(part.split(':', 1) for part in line.split() if ':' in part)
        if 'loss' in fields and 'event' not in fields:
            losses[int(fields['step'])] = float(fields['loss'])
    return losses


def test_torch_ddp_two_processes_match_one(data_dir, tmp_path):
    one_cfg, one = _torch_trial(data_dir, tmp_path / 'one', None)
    two_cfg, two = _torch_trial(data_dir, tmp_path / 'two', 2)
    assert one['status'] == two['status'] == 'budget_exhausted', (one, two)
    assert one.get('ddp_processes') is None and two['ddp_processes'] == 2
    # The global batch is counted once, not once per rank.
    assert two['examples_seen'] == one['examples_seen'] == 8 * one['global_batch_size']

    # The same loss at every step (the reported loss is the global-batch mean) ...
    a, b = _step_losses(one_cfg.trial_dir()), _step_losses(two_cfg.trial_dir())
    assert sorted(a) == sorted(b) == list(range(8))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4), step
    # ... and the same evaluation, written once (rank 0 is the only writer).
    evals_one = results.read_jsonl(one_cfg.trial_dir() / results.EVALS_JSONL)
    evals_two = results.read_jsonl(two_cfg.trial_dir() / results.EVALS_JSONL)
    assert len(evals_two) == len(evals_one) == 1
    assert evals_two[0]['validation/loss'] == pytest.approx(evals_one[0]['validation/loss'],
                                                            rel=1e-4)
    log = (two_cfg.trial_dir() / results.LOG_FILE).read_text(encoding='utf-8')
    assert log.count('event:start') == 1


FAILS_ON_RANK_1 = textwrap.dedent('''
    """AdamW that raises on DDP rank 1 only, at step 3: rank 0 is then left in a collective."""
    import torch.distributed as dist

    from submissions.adamw.pytorch_submission import *  # noqa: F401,F403
    from submissions.adamw import pytorch_submission as base


    def update_params(workload, current_param_container, current_params_types, model_state,
                      hyperparameters, batch, loss_type, optimizer_state, eval_results,
                      global_step, rng, train_state=None):
        if global_step == 3 and dist.is_initialized() and dist.get_rank() == 1:
            raise RuntimeError('rank 1 gives up at step 3')
        return base.update_params(workload, current_param_container, current_params_types,
                                  model_state, hyperparameters, batch, loss_type,
                                  optimizer_state, eval_results, global_step, rng, train_state)
''')


def test_torch_ddp_failure_on_one_rank_fails_the_trial_without_hanging(data_dir, tmp_path):
    folder = tmp_path / 'rank_one_fails'
    folder.mkdir()
    (folder / 'pytorch_submission.py').write_text(FAILS_ON_RANK_1, encoding='utf-8')
    cfg, result = _torch_trial(data_dir, tmp_path / 'results', 2, submission=str(folder))
    assert result['status'] == 'failed'
    assert result['error'].startswith('rank 1: update_params: RuntimeError: rank 1 gives up')
    error_txt = (cfg.trial_dir() / results.ERROR_FILE).read_text(encoding='utf-8')
    assert 'DDP rank 1 of 2' in error_txt and 'rank 1 gives up at step 3' in error_txt
    saved = results.read_json(cfg.trial_dir() / results.RESULT_JSON)
    assert saved['status'] == 'failed'


def test_torch_ddp_on_ctr_matches_one_process(data_dir, tmp_path):
    """The CTR input pipeline shares its batches over the ranks too (same metrics, AUC included)."""
    from harness.prepare import ensure_prepared
    from harness.trial.run import build_workload

    def run(devices):
        cfg = TrialConfig(workload='ctr', framework='pytorch', submission='adamw', size='tiny',
                          hparams=HPARAMS, max_steps=6, data_dir=data_dir,
                          results_dir=str(tmp_path / f'devices_{devices}'),
                          stop_at_target=False, devices=devices)
        ensure_prepared(build_workload(cfg), 'ctr', None, data_dir, log=lambda m: None)
        return run_trial(cfg)

    one, two = run(None), run(2)
    assert one['status'] == two['status'] == 'budget_exhausted', (one, two)
    assert two['ddp_processes'] == 2 and two['examples_seen'] == one['examples_seen']
    for key in ('validation/loss', 'validation/auc', 'validation/calibration'):
        assert two['final_metrics'][key] == pytest.approx(one['final_metrics'][key], rel=1e-5)
