"""torch.compile with inductor (the real compiler, C++ on the CPU) in real trials.

- every PyTorch workload trains compiled: no recompile after warm-up, the trial log
  says ``torch_compile:on`` (lm_slm: the teacher's forward is compiled too);
- DDP over 2 gloo processes, compiled, gives the losses of one eager process;
- a compiled trial interrupted mid-run resumes eager to the weights of an
  uninterrupted eager run.
"""

from __future__ import annotations

import pytest
import torch

from harness import results

from harness.trial import checkpoint
from harness.trial.run import run_trial
from harness.trial.config import TrialConfig
from workloads._common import torch_compile

pytestmark = pytest.mark.integration

HPARAMS = {'learning_rate': 2e-3, 'one_minus_beta1': 0.1, 'beta2': 0.99, 'warmup_factor': 0.05,
           'weight_decay': 0.05, 'grad_clip': 1.0, 'label_smoothing': 0.0, 'dropout_rate': 0.0}


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _config(results_dir, data_dir, **kw):
    base = dict(workload='lm', framework='pytorch', submission='adamw', size='tiny',
                hparams=HPARAMS, max_steps=6, data_dir=data_dir, results_dir=str(results_dir),
                stop_at_target=False, checkpoint_every_s=0.0)
    base.update(kw)
    return TrialConfig(**base)


def _log(config):
    return (config.trial_dir() / results.LOG_FILE).read_text(encoding='utf-8')


def _step_losses(config):
    losses = {}
    for line in _log(config).splitlines():
        fields = dict(part.split(':', 1) for part in line.split() if ':' in part)
        if 'loss' in fields and 'event' not in fields:
            losses[int(fields['step'])] = float(fields['loss'])
    return losses


@pytest.mark.parametrize('workload, submission', [
    ('lm', 'adamw'), ('lm_slm', 'salt'), ('ctr', 'adamw')])
def test_each_workload_trains_compiled(workload, submission, data_dir, tmp_path, monkeypatch):
    from harness import registry
    from harness.prepare import ensure_prepared
    from harness.submission.search_space import load, sample
    from harness.submission.loader import search_space_path
    from harness.trial.run import build_workload

    monkeypatch.setenv(torch_compile.ENV_VAR, 'on')
    hparams = sample(load(search_space_path(registry.resolve_submission(submission))), 0, 0)
    config = _config(tmp_path, data_dir, workload=workload, submission=submission,
                     hparams=hparams, max_steps=4)
    ensure_prepared(build_workload(config), workload, None, data_dir, log=lambda m: None)
    result = run_trial(config)
    assert result['status'] == 'budget_exhausted', result.get('error')
    assert result['recompiles_after_warmup'] == 0
    assert 'torch_compile:on' in _log(config)
    assert 'torch_compile:fallback' not in _log(config)


def test_compiled_ddp_gives_the_losses_of_one_eager_process(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(torch_compile.ENV_VAR, 'off')
    one = _config(tmp_path / 'one', data_dir)
    assert run_trial(one)['status'] == 'budget_exhausted'
    monkeypatch.setenv(torch_compile.ENV_VAR, 'on')  # the ranks inherit it
    two = _config(tmp_path / 'two', data_dir, devices=2)
    result = run_trial(two)
    assert result['status'] == 'budget_exhausted', result.get('error')
    assert result['ddp_processes'] == 2 and result['recompiles_after_warmup'] == 0
    assert 'torch_compile:on' in _log(two)
    a, b = _step_losses(one), _step_losses(two)
    assert sorted(a) == sorted(b) == list(range(6))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4), step


class _StopAt:
    def __init__(self, step):
        self.step = step

    def __call__(self, kind, info):
        if kind == 'step' and info['step'] == self.step:
            raise KeyboardInterrupt  # a stand-in for the process being killed


def test_a_compiled_trial_resumes_eager_to_the_uninterrupted_weights(data_dir, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv(torch_compile.ENV_VAR, 'off')
    straight = _config(tmp_path, data_dir, experiment='straight')
    run_trial(straight)
    split = _config(tmp_path, data_dir, experiment='split')
    monkeypatch.setenv(torch_compile.ENV_VAR, 'on')
    with pytest.raises(KeyboardInterrupt):
        run_trial(split, on_event=_StopAt(3))
    monkeypatch.setenv(torch_compile.ENV_VAR, 'off')
    assert run_trial(split)['final_step'] == 6
    expected = checkpoint.load(straight.trial_dir(), 'pytorch')['params']
    got = checkpoint.load(split.trial_dir(), 'pytorch')['params']
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5)
