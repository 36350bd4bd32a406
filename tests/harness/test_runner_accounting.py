"""The runner's time accounting, checked exactly with a fake clock (docs/architecture.md, "Timing rules")."""

import json

import pytest

from harness import results
from harness.trial.run import run_trial
from tests.harness import toy


def _evals(config):
    return results.read_jsonl(config.trial_dir() / results.EVALS_JSONL)


def _run(config):
    return run_trial(config, clock=toy.CLOCK, wall_clock=toy.CLOCK)


def test_eval_time_is_never_counted(toy_env):
    make_config, _ = toy_env
    toy.COSTS.update(step=1.0, eval=100.0)
    config = make_config(stop_at_target=False)
    result = _run(config)
    evals = _evals(config)
    # Budget 20 s at 1 s/step: 20 steps, evaluations every 5 s of submission time.
    assert result['status'] == 'budget_exhausted'
    assert result['final_step'] == 20
    assert result['submission_time_s'] == pytest.approx(20.0)
    assert [e['step'] for e in evals] == [5, 10, 15, 20]
    assert [e['submission_time_s'] for e in evals] == pytest.approx([5, 10, 15, 20])
    assert result['eval_time_s'] == pytest.approx(400.0)
    assert [e['eval_time_s'] for e in evals] == pytest.approx([100, 200, 300, 400])


def test_budget_is_checked_every_step_not_only_at_evals(toy_env):
    make_config, _ = toy_env
    toy.COSTS.update(step=1.0)
    config = make_config(budget_factor=0.375, stop_at_target=False)  # 7.5 s budget
    result = _run(config)
    evals = _evals(config)
    assert result['status'] == 'budget_exhausted'
    assert result['final_step'] == 8  # the step that crosses 7.5 s ends the trial
    assert [e['step'] for e in evals] == [5, 8]  # one periodic eval, then the final one


def test_first_eval_and_compile_time_counted(toy_env):
    make_config, _ = toy_env
    toy.COSTS.update(step=1.0, compile=4.5, init=0.25, data=0.25)
    config = make_config(max_steps=3, stop_at_target=False)
    result = _run(config)
    evals = _evals(config)
    # init 0.25 + step0 (0.25 data + 1 + 4.5 compile) = 6.0 >= 5 s: first eval after step 1.
    assert evals[0]['step'] == 1
    assert evals[0]['submission_time_s'] == pytest.approx(6.0)
    # Then 1.25 s per step: steps 2 and 3, final eval at max_steps.
    assert result['submission_time_s'] == pytest.approx(6.0 + 2 * 1.25)
    assert [e['step'] for e in evals] == [1, 3]


def test_prepare_for_eval_is_timed(toy_env):
    make_config, _ = toy_env
    toy.COSTS.update(step=1.0, prepare=0.5)
    config = make_config(max_steps=6, stop_at_target=False)
    result = _run(config)
    # Evals at step 5 and the final one at step 6: 6 steps + 2 prepare_for_eval calls.
    assert result['submission_time_s'] == pytest.approx(6 * 1.0 + 2 * 0.5)


def test_target_reached_stops_at_first_eval_meeting_it(toy_env):
    make_config, _ = toy_env
    toy.COSTS.update(step=0.01)
    config = make_config(hparams={'learning_rate': 0.2})
    result = _run(config)
    evals = _evals(config)
    regular = [e for e in evals if 'kind' not in e]
    assert result['status'] == 'reached'
    # Training stopped at the first regular evaluation meeting the target ...
    assert regular[-1]['validation/loss'] <= 1e-3
    assert all(e['validation/loss'] > 1e-3 for e in regular[:-1])
    # ... and the time to target is the first evaluated point meeting it (probes
    # between the last two regular evaluations found it; file order = training order).
    first = next(e for e in evals if e['validation/loss'] <= 1e-3)
    assert result['time_to_target_s'] == pytest.approx(first['submission_time_s'])
    assert result['steps_to_target'] == first['step'] <= regular[-1]['step']
    assert result['examples_to_target'] == first['step'] * 8


def test_target_met_after_budget_does_not_count(toy_env):
    make_config, _ = toy_env
    toy.COSTS.update(step=1.0)
    # 2.5 s budget at 1 s/step: the final eval after step 3 is past the budget.
    config = make_config(hparams={'learning_rate': 0.4}, budget_factor=0.125)
    result = _run(config)
    assert result['status'] == 'budget_exhausted'
    assert result['time_to_target_s'] is None


def test_non_finite_reported_loss_is_diverged(toy_env):
    make_config, loaded = toy_env
    loaded.NAN_AT_STEP = 2
    config = make_config()
    result = _run(config)
    assert result['status'] == 'diverged'
    assert result['final_step'] == 3
    assert 'loss' in result['error']


def test_exception_in_submission_is_failed_with_traceback(toy_env):
    make_config, loaded = toy_env
    loaded.RAISE_AT_STEP = 4
    config = make_config()
    result = _run(config)
    assert result['status'] == 'failed'
    assert 'boom in submission code' in result['error']
    tb = (config.trial_dir() / results.ERROR_FILE).read_text()
    assert 'RuntimeError' in tb and 'toy_submission.py' in tb
    on_disk = json.loads((config.trial_dir() / results.RESULT_JSON).read_text())
    assert on_disk['status'] == 'failed'


def test_training_complete_gets_a_final_eval(toy_env):
    make_config, loaded = toy_env
    loaded.COMPLETE_AT_STEP = 3
    config = make_config()
    result = _run(config)
    assert result['status'] == 'training_complete'
    assert result['final_step'] == 3
    assert _evals(config)[-1]['step'] == 3


def test_unknown_workload_name_gets_default_batch_size_and_rngs_fold_per_step(toy_env):
    make_config, loaded = toy_env
    config = make_config(max_steps=4)
    _run(config)
    assert loaded.SEEN['batch_sizes'] == [8, 8, 8, 8]
    rngs = loaded.SEEN['rngs']
    assert len(set(rngs)) == 4  # a different key every step
    # Deterministic: a second trial of the same seed sees the same keys.
    loaded.SEEN['rngs'] = []
    _run(make_config(max_steps=4, experiment='again'))
    assert loaded.SEEN['rngs'] == rngs


def test_train_state_is_read_only(toy_env):
    make_config, loaded = toy_env
    _run(make_config(max_steps=2))
    state = loaded.SEEN['train_state'][-1]
    assert state['global_step'] == 1
    with pytest.raises(TypeError):
        state['accumulated_submission_time'] = 0.0


def test_finished_trial_is_skipped_and_other_config_refused(toy_env):
    make_config, _ = toy_env
    config = make_config(max_steps=2)
    first = _run(config)
    assert _run(config) == first  # finished: returned, not rerun
    other = make_config(max_steps=2, hparams={'learning_rate': 0.5})
    from harness.errors import UserInputError

    with pytest.raises(UserInputError, match='different configuration'):
        _run(other)


def test_ddp_writer_work_never_reaches_another_ranks_clock(toy_env, monkeypatch):
    """Under DDP a step's time is the slowest rank's. A rank that starts its clock while
    the writer still evaluates or checkpoints waits for it inside DDP's all-reduce, so
    every step must start with all ranks together (a barrier), or evaluation time would
    be counted as submission time."""
    import harness.trial.in_process
    from harness.trial.backends.torch_backend import TorchBackend

    class SecondRankSeen(TorchBackend):
        """The writer's backend, with a second rank whose clock runs from the last point
        where the ranks met (a barrier or an agreement) to the end of the writer's step."""

        world_size = 2

        def __init__(self):
            super().__init__()
            self.met_at = toy.CLOCK()
            self.barriers = 0

        def barrier(self):
            self.met_at = toy.CLOCK()
            self.barriers += 1

        def agree_max(self, values):
            other_rank_s = toy.CLOCK() - self.met_at
            self.met_at = toy.CLOCK()
            return [max(values[0], other_rank_s), *values[1:]]

        def from_writer(self, obj):
            return obj

        def prepare_model(self, params):
            return params  # no process group here: the toy model stays unwrapped

    backend = SecondRankSeen()
    monkeypatch.setattr(harness.trial.in_process, 'get_backend', lambda framework: backend)
    make_config, _ = toy_env
    toy.COSTS.update(step=1.0, eval=100.0)
    config = make_config(stop_at_target=False)
    result = _run(config)
    # As in one process: 20 steps of 1 s; the 4 evaluations (400 s) stay off the clock.
    assert result['final_step'] == 20
    assert result['submission_time_s'] == pytest.approx(20.0)
    assert result['eval_time_s'] == pytest.approx(400.0)
    assert backend.barriers == 20
