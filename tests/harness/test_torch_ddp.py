"""The DDP launcher's decisions that need no second process: how many ranks, batch
shares, and which rank's report becomes the trial's result.

Real two-process runs are integration tests (tests/integration/test_data_parallel.py,
tests/integration/test_kill_resume.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import results
from harness.errors import UserInputError
from harness.trial import ddp
from harness.trial.backends import torch_ddp
from harness.trial.config import TrialConfig
from workloads._common import torch_utils


@pytest.fixture
def config(tmp_path):
    cfg = TrialConfig(workload='lm', framework='pytorch', submission='adamw', size='tiny',
                      results_dir=str(tmp_path))
    cfg.trial_dir().mkdir(parents=True)
    return cfg


def _report(status, finished_at, error=None, traceback=None, final_step=0):
    result = results.TrialResult(status=status, time_to_target_s=None, steps_to_target=None,
                                 examples_to_target=None, final_step=final_step,
                                 submission_time_s=0.0, error=error)
    return {'result': result, 'traceback': traceback, 'finished_at': finished_at}


def test_rank_zero_result_when_all_ranks_finish(config):
    reports = {0: _report('reached', 2.0, final_step=7), 1: _report('reached', 2.1)}
    result = ddp._collect(config, 2, reports, None)
    assert result.status == 'reached' and result.final_step == 7
    assert result.ddp_processes == 2
    assert not (config.trial_dir() / results.ERROR_FILE).exists()


def test_the_first_rank_to_fail_is_the_cause(config):
    # Rank 1 raised first; rank 0 then failed in a collective whose peer was gone.
    reports = {0: _report('failed', 5.0, 'update_params: RuntimeError: gloo read error', 'tb0'),
               1: _report('failed', 4.0, 'update_params: ValueError: bad', 'tb1')}
    result = ddp._collect(config, 2, reports, 'DDP rank 1 exited with code 1')
    assert result.status == 'failed'
    assert result.error == 'rank 1: update_params: ValueError: bad'
    text = (config.trial_dir() / results.ERROR_FILE).read_text(encoding='utf-8')
    assert text == 'DDP rank 1 of 2:\ntb1'


def test_a_rank_that_died_without_a_report_fails_the_trial(config):
    result = ddp._collect(config, 2, {0: _report('reached', 1.0)},
                                'DDP rank 1 exited with code -9')
    assert result.status == 'failed'
    assert result.error == 'harness error: DDP rank 1 exited with code -9'
    result = ddp._collect(config, 2, {}, None)
    assert result.error == 'harness error: DDP ranks [0, 1] ended without a result'
    assert (config.trial_dir() / results.ERROR_FILE).exists()


def test_world_size_on_a_cpu_only_machine():
    assert torch_ddp.world_size_for(None) == 1
    assert torch_ddp.world_size_for(3) == 3


def test_a_batch_that_does_not_split_is_refused_with_the_numbers():
    torch_ddp.check_batch_divides(16, 4)
    with pytest.raises(UserInputError, match=r'global batch size \(16\).*DDP processes \(3\)'):
        torch_ddp.check_batch_divides(16, 3)


def test_one_process_keeps_the_whole_batch():
    batch = {'inputs': np.arange(12).reshape(6, 2), 'targets': np.arange(6)}
    out = torch_utils.local_rows(batch)
    assert out.keys() == batch.keys()
    np.testing.assert_array_equal(out['inputs'], batch['inputs'])
