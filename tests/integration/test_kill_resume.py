"""SIGKILL a real trial process mid-run, resume it, and get the uninterrupted result."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness import checkpoint, results

pytestmark = pytest.mark.integration
MAX_STEPS = 24


def _cmd(framework, results_dir, data_dir, experiment, resume=False):
    cmd = [sys.executable, '-m', 'harness.cli', 'run', '--workload', 'lm', '--size', 'tiny',
           '--submission', 'adamw', '--framework', framework, '--max-steps', str(MAX_STEPS),
           '--results-dir', str(results_dir), '--data-dir', data_dir, '--experiment',
           experiment, '--checkpoint-every-s', '0']
    return cmd + (['--resume'] if resume else [])


def _trial_dir(results_dir, framework, experiment):
    return Path(results_dir) / experiment / 'adamw' / f'lm_{framework}' / 'study_0' / 'trial_0'


def _params(trial_dir, framework):
    saved = checkpoint.load(trial_dir, framework)
    leaves = saved['params'].values() if framework == 'pytorch' else _flatten(saved['params'])
    return [np.asarray(x, dtype=np.float64) for x in leaves]


def _flatten(tree):
    if isinstance(tree, dict):
        for k in sorted(tree):
            yield from _flatten(tree[k])
    else:
        yield tree


@pytest.mark.parametrize('framework', ['pytorch', 'jax'])
def test_sigkill_then_resume_matches_uninterrupted(framework, data_dir, tmp_path):
    env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
    straight = subprocess.run(_cmd(framework, tmp_path, data_dir, 'straight'), env=env,
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr

    killed_dir = _trial_dir(tmp_path, framework, 'killed')
    proc = subprocess.Popen(_cmd(framework, tmp_path, data_dir, 'killed'), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = checkpoint.checkpoint_path(killed_dir)
    deadline = time.time() + 300
    # Kill once a checkpoint past step 5 exists (checkpoints are written every step here).
    while time.time() < deadline:
        if ckpt.exists():
            try:
                step = checkpoint.load(killed_dir, framework)['counters']['step']
            except Exception:  # noqa: BLE001 — a checkpoint being replaced right now
                step = 0
            if step >= 6:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (killed_dir / results.RESULT_JSON).exists()

    refused = subprocess.run(_cmd(framework, tmp_path, data_dir, 'killed'), env=env,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and '--resume' in refused.stderr

    resumed = subprocess.run(_cmd(framework, tmp_path, data_dir, 'killed', resume=True),
                             env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr

    a = json.loads((_trial_dir(tmp_path, framework, 'straight') / 'result.json').read_text())
    b = json.loads((killed_dir / 'result.json').read_text())
    assert a['final_step'] == b['final_step'] == MAX_STEPS
    assert b['resumes'] == 1
    final_a = results.read_jsonl(_trial_dir(tmp_path, framework, 'straight') / 'evals.jsonl')[-1]
    final_b = results.read_jsonl(killed_dir / 'evals.jsonl')[-1]
    assert final_a['step'] == final_b['step'] == MAX_STEPS
    assert final_b['validation/loss'] == pytest.approx(final_a['validation/loss'], rel=1e-5)
    assert final_b['examples_seen'] == final_a['examples_seen']
    for x, y in zip(_params(_trial_dir(tmp_path, framework, 'straight'), framework),
                    _params(killed_dir, framework)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
