"""`timetrial calibrate` end to end on the toy workload (real clock, sub-second budgets)."""

import yaml

from harness import spec
from harness.calibration import targets
from harness.calibration.calibrate import calibrate
from harness.errors import UserInputError
from harness.trial.run import build_workload
from tests.harness import toy


def test_calibrate_writes_targets_used_by_later_trials(toy_env, monkeypatch, tmp_path):
    make_config, _ = toy_env
    toy.COSTS.update(step=0.0, eval=0.0)
    monkeypatch.setattr(toy.ToyWorkload, 'BUDGET', spec.Budget(
        validation_target_value=1e-3, max_allowed_runtime_sec=0.3, eval_period_time_sec=0.02,
        step_hint=300))
    out = calibrate('toy', 'tiny', framework='pytorch', baselines=(str(toy.__file__).replace(
        'toy.py', 'toy_submission.py'),), trials=2, reruns=3, generous_factor=1.0,
        budget_factor=3.0, results_dir=str(tmp_path / 'results'), log=lambda m: None)
    budget = out['budget']
    path = targets.targets_file(out['hardware_class'])
    saved = yaml.safe_load(path.read_text())['toy']['tiny']['default']
    assert saved['validation_target_value'] == budget.validation_target_value
    # A loss the reruns reached: below the initial error of 1+4+9+16 = 30.
    assert 0.0 <= budget.validation_target_value < 30.0
    assert budget.max_allowed_runtime_sec > 0 and budget.step_hint >= 1
    # The reruns' median steps to the target: a horizon for schedules (SALT's n_KD).
    assert budget.reference_steps_to_target >= 1
    assert saved['reference_steps_to_target'] == budget.reference_steps_to_target
    # The eval period keeps the workload's ratio of eval period to budget.
    assert budget.eval_period_time_sec / budget.max_allowed_runtime_sec == \
        __import__('pytest').approx(0.02 / 0.3)
    # Later trials on this hardware class get the calibrated budget.
    workload = build_workload(make_config())
    assert workload.validation_target_value == budget.validation_target_value
    assert workload.max_allowed_runtime_sec == budget.max_allowed_runtime_sec
    assert workload.reference_steps_to_target == budget.reference_steps_to_target


def test_calibrate_rejects_bad_counts(toy_env):
    import pytest

    with pytest.raises(UserInputError, match='--trials'):
        calibrate('toy', 'tiny', framework='pytorch', trials=0, log=lambda m: None)
