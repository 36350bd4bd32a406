"""torch.compile through real lm trials: the trial log says whether the model was
compiled, a failing compiler leaves a logged fallback and a finished trial, a
recompile after warm-up is counted, an AlgoPerf-style submission runs unchanged,
and a trial interrupted with compile on resumes with it off (and the reverse).

dynamo's ``aot_eager`` backend stands in for inductor (same wrapper, graph
capture and AOTAutograd, no C++ to build); tests/integration/test_torch_compile.py
runs inductor end to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness import results

from harness.trial import checkpoint
from harness.submission.search_space import load, sample
from harness.trial.run import run_trial
from harness.trial.config import TrialConfig
from workloads._common import torch_compile

HPARAMS = {'learning_rate': 2e-3, 'one_minus_beta1': 0.1, 'beta2': 0.99, 'warmup_factor': 0.05,
           'weight_decay': 0.05, 'grad_clip': 1.0, 'label_smoothing': 0.0, 'dropout_rate': 0.0}
RESHAPING = Path(__file__).with_name('reshaping_submission.py')
ALGOPERF_STYLE = 'tests/algoperf_style'


@pytest.fixture(autouse=True)
def compiled(monkeypatch, tmp_path):
    """Compile on, with the fast backend; each test starts without compiled graphs."""
    monkeypatch.setenv(torch_compile.ENV_VAR, 'on')
    monkeypatch.setattr(torch_compile, 'BACKEND', 'aot_eager')
    monkeypatch.setenv('TIMETRIAL_TARGETS_DIR', str(tmp_path / 'targets'))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _config(tmp_path, data_dir, **kw):
    base = dict(workload='lm', framework='pytorch', submission='adamw', size='tiny',
                hparams=HPARAMS, data_dir=data_dir, results_dir=str(tmp_path),
                stop_at_target=False, max_steps=4, checkpoint_every_s=0.0)
    base.update(kw)
    return TrialConfig(**base)


def _log_lines(config, word):
    text = (config.trial_dir() / results.LOG_FILE).read_text(encoding='utf-8')
    return [line for line in text.splitlines() if word in line]


def test_the_trial_log_says_the_model_was_compiled(tmp_path, lm_data_dir):
    config = _config(tmp_path, lm_data_dir)
    result = run_trial(config)
    assert result['status'] == 'budget_exhausted', result.get('error')
    assert result['recompiles_after_warmup'] == 0
    lines = _log_lines(config, 'torch_compile')
    assert len(lines) == 1 and 'torch_compile:on' in lines[0] and 'step:0' in lines[0]


def test_a_failing_compiler_is_logged_and_the_trial_runs_eager(tmp_path, lm_data_dir,
                                                               monkeypatch):
    def failing(graph_module, example_inputs):
        raise RuntimeError('simulated: no C++ compiler')

    monkeypatch.setattr(torch_compile, 'BACKEND', failing)
    config = _config(tmp_path, lm_data_dir)
    with pytest.warns(RuntimeWarning, match='torch_compile:fallback'):
        result = run_trial(config)
    assert result['status'] == 'budget_exhausted', result.get('error')
    [line] = _log_lines(config, 'torch_compile:fallback')
    assert 'simulated: no C++ compiler' in line


def test_a_recompile_after_warm_up_is_counted_and_logged(tmp_path, lm_data_dir):
    """The submission halves its batch from step 3 on: a new shape, a new graph."""
    config = _config(tmp_path, lm_data_dir, submission=str(RESHAPING), max_steps=5)
    result = run_trial(config)
    assert result['status'] == 'budget_exhausted', result.get('error')
    assert result['recompiles_after_warmup'] >= 1
    assert _log_lines(config, 'event:recompile')[0].startswith('event:recompile step:4')


def test_an_algoperf_style_submission_runs_compiled_unchanged(tmp_path, lm_data_dir):
    hparams = sample(load(f'{ALGOPERF_STYLE}/tuning_search_space.json'), 0, 0)
    config = _config(tmp_path, lm_data_dir, submission=ALGOPERF_STYLE, hparams=hparams)
    result = run_trial(config)
    assert result['status'] == 'budget_exhausted', result.get('error')
    assert result['recompiles_after_warmup'] == 0
    assert 'torch_compile:on' in _log_lines(config, 'torch_compile')[0]


class _StopAt:
    """on_event hook: interrupt the trial (as a kill would) after ``step`` steps."""

    def __init__(self, step):
        self.step = step

    def __call__(self, kind, info):
        if kind == 'step' and info['step'] == self.step:
            raise KeyboardInterrupt


def _final_params(config):
    return checkpoint.load(config.trial_dir(), 'pytorch')['params']


@pytest.mark.parametrize('first, then', [('on', 'off'), ('off', 'on')])
def test_a_trial_resumes_across_compile_settings(tmp_path, lm_data_dir, monkeypatch, first,
                                                  then):
    """Interrupted at step 3 with one setting, resumed with the other: the final weights
    are those of an uninterrupted run (float32; compiled and eager agree to 1e-5)."""
    straight = _config(tmp_path, lm_data_dir, experiment='straight', max_steps=6)
    assert run_trial(straight)['final_step'] == 6

    split = _config(tmp_path, lm_data_dir, experiment='split', max_steps=6)
    monkeypatch.setenv(torch_compile.ENV_VAR, first)
    with pytest.raises(KeyboardInterrupt):
        run_trial(split, on_event=_StopAt(3))
    saved = _final_params(split)
    assert not any('_orig_mod' in name for name in saved)
    monkeypatch.setenv(torch_compile.ENV_VAR, then)
    resumed = run_trial(split)
    assert resumed['final_step'] == 6 and resumed['resumes'] == 1
    expected, got = _final_params(straight), _final_params(split)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-5)
