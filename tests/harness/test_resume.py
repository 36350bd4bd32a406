"""Resuming an interrupted trial gives the trajectory of an uninterrupted one."""

import pytest
import torch

from harness import results
from harness.trial import checkpoint
from harness.trial.run import run_trial
from tests.harness import toy


def _run(config):
    return run_trial(config, clock=toy.CLOCK, wall_clock=toy.CLOCK)


def _final_weight(config):
    saved = checkpoint.load(config.trial_dir(), 'pytorch')
    return saved['params']['weight']


def test_interrupted_trial_resumes_to_the_same_result(toy_env):
    make_config, loaded = toy_env
    toy.COSTS.update(step=1.0, eval=3.0)
    straight = make_config(experiment='straight', max_steps=12, stop_at_target=False)
    expected = _run(straight)

    interrupted = make_config(experiment='interrupted', max_steps=12, stop_at_target=False)
    loaded.INTERRUPT_AT_STEP = 8  # killed after the checkpoint at the step-5 evaluation
    with pytest.raises(KeyboardInterrupt):
        _run(interrupted)
    assert not (interrupted.trial_dir() / results.RESULT_JSON).exists()
    loaded.INTERRUPT_AT_STEP = None
    resumed = _run(interrupted)

    assert resumed['status'] == expected['status']
    assert resumed['final_step'] == expected['final_step'] == 12
    assert resumed['submission_time_s'] == pytest.approx(expected['submission_time_s'])
    assert resumed['resumes'] == 1 and resumed['preemptions'] == 1
    a = results.read_jsonl(straight.trial_dir() / results.EVALS_JSONL)
    b = results.read_jsonl(interrupted.trial_dir() / results.EVALS_JSONL)
    assert [e['step'] for e in a] == [e['step'] for e in b] == [5, 10, 12]
    for x, y in zip(a, b):
        assert x['validation/loss'] == pytest.approx(y['validation/loss'], rel=1e-6)
        assert x['submission_time_s'] == pytest.approx(y['submission_time_s'])
    torch.testing.assert_close(_final_weight(straight), _final_weight(interrupted))


def test_unfinished_trial_refused_without_resume(toy_env):
    make_config, loaded = toy_env
    config = make_config(max_steps=8)
    loaded.INTERRUPT_AT_STEP = 6
    with pytest.raises(KeyboardInterrupt):
        _run(config)
    loaded.INTERRUPT_AT_STEP = None
    from harness.errors import UserInputError

    with pytest.raises(UserInputError, match='--resume'):
        run_trial(config, resume=False, clock=toy.CLOCK, wall_clock=toy.CLOCK)


def _drop_result(config):
    (config.trial_dir() / results.RESULT_JSON).unlink()


@pytest.mark.parametrize('ending', ['max_steps', 'budget', 'target'])
def test_trial_killed_after_its_final_checkpoint_is_not_run_again(toy_env, ending):
    """A kill between the final checkpoint and result.json: resuming reports the outcome.

    Nothing is trained or evaluated again (no step past the budget, no second
    final evaluation in evals.jsonl).
    """
    make_config, loaded = toy_env
    toy.COSTS.update(step=0.01 if ending == 'target' else 1.0, eval=3.0)
    kw = {'max_steps': dict(max_steps=12, stop_at_target=False),
          'budget': dict(stop_at_target=False),
          'target': dict(stop_at_target=True, hparams={'learning_rate': 0.2})}[ending]
    config = make_config(**kw)
    expected = _run(config)
    assert expected['status'] == {'max_steps': 'budget_exhausted', 'budget': 'budget_exhausted',
                                  'target': 'reached'}[ending]
    evals = results.read_jsonl(config.trial_dir() / results.EVALS_JSONL)
    _drop_result(config)
    seen_steps = len(loaded.SEEN['rngs'])

    again = _run(config)

    assert len(loaded.SEEN['rngs']) == seen_steps, 'a finished trial trained again'
    assert results.read_jsonl(config.trial_dir() / results.EVALS_JSONL) == evals
    for key in ('status', 'final_step', 'submission_time_s', 'time_to_target_s', 'num_evals',
                'final_metrics', 'error'):
        assert again[key] == expected[key], key
    assert again['resumes'] == 1


def test_checkpoint_at_max_steps_then_killed_before_the_final_evaluation(toy_env, monkeypatch):
    """The checkpoint written at step max_steps, then a kill: the resume evaluates once."""
    from harness.trial.runner import TrialRunner

    make_config, _ = toy_env
    toy.COSTS.update(step=1.0, eval=3.0)
    straight = make_config(experiment='straight', max_steps=7, stop_at_target=False,
                           checkpoint_every_s=0.0)
    expected = _run(straight)

    killed = make_config(experiment='killed', max_steps=7, stop_at_target=False,
                         checkpoint_every_s=0.0)
    final_eval = TrialRunner._final_eval

    def killed_first(self, status):
        raise KeyboardInterrupt  # the process dies right after its step-7 checkpoint

    monkeypatch.setattr(TrialRunner, '_final_eval', killed_first)
    with pytest.raises(KeyboardInterrupt):
        _run(killed)
    assert checkpoint.load(killed.trial_dir(), 'pytorch')['counters']['step'] == 7
    monkeypatch.setattr(TrialRunner, '_final_eval', final_eval)
    resumed = _run(killed)

    assert resumed['status'] == expected['status'] == 'budget_exhausted'
    a = results.read_jsonl(straight.trial_dir() / results.EVALS_JSONL)
    b = results.read_jsonl(killed.trial_dir() / results.EVALS_JSONL)
    assert [e['step'] for e in a] == [e['step'] for e in b] == [5, 7]
    assert b[-1]['validation/loss'] == pytest.approx(a[-1]['validation/loss'], rel=1e-6)
    assert resumed['submission_time_s'] == pytest.approx(expected['submission_time_s'])
