"""SIGKILL a real trial process mid-run, resume it, and get the uninterrupted result.

Also for a PyTorch DDP trial (2 gloo processes): killing the trial's process
takes its ranks with it — none is left training and writing checkpoints.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness import results

from harness.trial import checkpoint, ddp

pytestmark = pytest.mark.integration
MAX_STEPS = 24


def _cmd(framework, results_dir, data_dir, experiment, resume=False, devices=None):
    cmd = [sys.executable, '-m', 'harness.cli.main', 'run', '--workload', 'lm', '--size', 'tiny',
           '--submission', 'adamw', '--framework', framework, '--max-steps', str(MAX_STEPS),
           '--results-dir', str(results_dir), '--data-dir', data_dir, '--experiment',
           experiment, '--checkpoint-every-s', '0']
    cmd += ['--devices', str(devices)] if devices else []
    return cmd + (['--resume'] if resume else [])


# A rank's command line: python -m harness.trial.ddp JOB PARENT_PID RANK.
RANK_MODULE = ddp.__name__.encode()


def _ranks_of(pid):
    """PIDs of DDP rank processes started by the trial process ``pid``."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / 'cmdline').read_bytes().split(b'\0')
        except OSError:
            continue
        if RANK_MODULE in argv and str(pid).encode() in argv:
            found.append(int(entry.name))
    return found


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


@pytest.mark.parametrize('framework, devices', [('pytorch', None), ('jax', None), ('pytorch', 2)],
                         ids=['pytorch', 'jax', 'pytorch-ddp2'])
def test_sigkill_then_resume_matches_uninterrupted(framework, devices, data_dir, tmp_path):
    env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
    straight = subprocess.run(_cmd(framework, tmp_path, data_dir, 'straight', devices=devices),
                              env=env,
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr

    killed_dir = _trial_dir(tmp_path, framework, 'killed')
    proc = subprocess.Popen(_cmd(framework, tmp_path, data_dir, 'killed', devices=devices),
                            env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = checkpoint.checkpoint_path(killed_dir)
    log = killed_dir / results.LOG_FILE
    deadline = time.time() + 300
    # Kill soon after step 6 (a checkpoint is written every step here). Watching the
    # log's per-step lines is cheap, so the kill lands mid-run even on a loaded
    # machine; a kill after the final checkpoint is tested in tests/harness/test_resume.py.
    while time.time() < deadline:
        if ckpt.exists() and log.exists() and '\nstep:6 ' in log.read_text():
            break
        time.sleep(0.01)
    if devices:
        assert len(_ranks_of(proc.pid)) == devices
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (killed_dir / results.RESULT_JSON).exists()
    assert 0 < checkpoint.load(killed_dir, framework)['counters']['step'] < MAX_STEPS
    deadline = time.time() + 20
    while _ranks_of(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert _ranks_of(proc.pid) == [], 'DDP ranks outlived the killed trial process'

    refused = subprocess.run(_cmd(framework, tmp_path, data_dir, 'killed'), env=env,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and '--resume' in refused.stderr

    resumed = subprocess.run(_cmd(framework, tmp_path, data_dir, 'killed', resume=True,
                                  devices=devices), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr

    a = json.loads((_trial_dir(tmp_path, framework, 'straight') / 'result.json').read_text())
    b = json.loads((killed_dir / 'result.json').read_text())
    error_file = killed_dir / results.ERROR_FILE
    assert b['status'] != 'failed', (b.get('error'), error_file.exists() and error_file.read_text(),
                                     resumed.stderr[-3000:])
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
