"""Resuming an interrupted trial gives the trajectory of an uninterrupted one."""

import pytest
import torch

from harness import checkpoint, results
from harness.trial import run_trial
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
    from harness.spec import UserInputError

    with pytest.raises(UserInputError, match='--resume'):
        run_trial(config, resume=False, clock=toy.CLOCK, wall_clock=toy.CLOCK)
