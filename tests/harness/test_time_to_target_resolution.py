"""The time to target is the clock reading of the first point that meets the target, found
between two regular evaluations by bisection over snapshots (harness.trial.evaluation).

The toy workload's loss falls steadily under SGD; with a step of 0.01 s on the fake
clock and an evaluation every 5 s, the target (1e-3) is met hundreds of steps before
the regular evaluation that notices it. A reference run evaluates after every step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness import results
from harness.trial.run import run_trial
from harness.trial import evaluation
from harness.trial import snapshots as snapshots_mod
from tests.harness import toy

STEP_S = 0.01


def _run(config):
    return run_trial(config, clock=toy.CLOCK, wall_clock=toy.CLOCK)


def _budget(eval_period_s):
    return {'validation_target_value': 1e-3, 'max_allowed_runtime_sec': 20.0,
            'eval_period_time_sec': eval_period_s, 'step_hint': 20}


@pytest.fixture
def pair(toy_env):
    """(refined result, its evals, reference result with an evaluation every step)."""
    make_config, _ = toy_env
    toy.COSTS.update(step=STEP_S, eval=3.0, prepare=0.0)
    refined_cfg = make_config(hparams={'learning_rate': 0.02}, experiment='refined',
                              budget_override=_budget(5.0))
    refined = _run(refined_cfg)
    toy.CLOCK.t = 0.0
    every_cfg = make_config(hparams={'learning_rate': 0.02}, experiment='every_step',
                            budget_override=_budget(STEP_S / 2))
    every = _run(every_cfg)
    return refined, results.read_evals(refined_cfg.trial_dir()), every


def test_time_to_target_is_the_first_point_meeting_it_not_the_next_regular_evaluation(pair):
    refined, evals, every = pair
    assert refined['status'] == every['status'] == 'reached'
    regular = [e for e in evals if e.kind is None]
    # The regular evaluation that noticed the target came well after the first hit.
    assert regular[-1].step > refined['steps_to_target'] + 50
    assert refined['steps_to_target'] == every['steps_to_target']
    assert refined['time_to_target_s'] == pytest.approx(every['time_to_target_s'])
    assert refined['examples_to_target'] == every['examples_to_target']
    # Known to one step: the probe before it missed.
    assert refined['time_to_target_resolution_s'] == pytest.approx(STEP_S)
    window = regular[-1].step - (regular[-2].step if len(regular) > 1 else 0)
    assert refined['extra_evals'] == pytest.approx(math.log2(window), abs=1.5)


def test_probes_are_written_in_training_order_before_the_evaluation_that_found_the_hit(pair):
    refined, evals, _ = pair
    steps = [e.step for e in evals]
    assert steps == sorted(steps)
    probes = [e for e in evals if e.kind == 'refine']
    assert len(probes) == refined['extra_evals'] == sum(1 for e in evals) - sum(
        1 for e in evals if e.kind is None)
    target = 1e-3
    first = next(e for e in evals if e.metrics['validation/loss'] <= target)
    assert (first.step, first.submission_time_s) == (refined['steps_to_target'],
                                                    refined['time_to_target_s'])
    before = [e for e in evals if e.step < first.step]
    assert all(e.metrics['validation/loss'] > target for e in before)
    assert first.submission_time_s - before[-1].submission_time_s == pytest.approx(
        refined['time_to_target_resolution_s'])


def test_probing_never_changes_the_trajectory(toy_env):
    """With stop_at_target off, the refined trial trains on exactly as an unrefined one."""
    make_config, _ = toy_env
    toy.COSTS.update(step=STEP_S, eval=3.0)
    a_cfg = make_config(hparams={'learning_rate': 0.02}, experiment='a', stop_at_target=False,
                        budget_override=_budget(5.0), max_steps=1200)
    a = _run(a_cfg)
    toy.CLOCK.t = 0.0
    b_cfg = make_config(hparams={'learning_rate': 0.02}, experiment='b', stop_at_target=False,
                        budget_override=_budget(5.0), max_steps=1200)
    b = run_trial(b_cfg, clock=toy.CLOCK, wall_clock=toy.CLOCK)
    assert a['extra_evals'] > 0
    assert a['final_metrics'] == b['final_metrics']
    regular_a = [e.metrics for e in results.read_evals(a_cfg.trial_dir()) if e.kind is None]
    regular_b = [e.metrics for e in results.read_evals(b_cfg.trial_dir()) if e.kind is None]
    assert regular_a == regular_b


def test_prepare_for_eval_time_counts_at_the_probed_point(toy_env):
    make_config, _ = toy_env
    toy.COSTS.update(step=STEP_S, eval=3.0, prepare=0.5)
    config = make_config(hparams={'learning_rate': 0.02}, budget_override=_budget(5.0))
    result = _run(config)
    hit = next(e for e in results.read_evals(config.trial_dir())
               if e.step == result['steps_to_target'])
    # Every regular evaluation before the hit ran prepare_for_eval (0.5 s) on the clock,
    # and the probe pays it once more, as it would have there.
    regular_before = [e for e in results.read_evals(config.trial_dir())
                      if e.kind is None and e.step < hit.step]
    init_s = 0.0
    expected = init_s + hit.step * STEP_S + 0.5 * (len(regular_before) + 1)
    assert result['time_to_target_s'] == pytest.approx(expected)


def test_a_small_memory_budget_coarsens_the_resolution_and_says_so(toy_env):
    make_config, _ = toy_env
    toy.COSTS.update(step=STEP_S, eval=3.0)
    # The toy's state is its 1 x 4 float32 weight (plain SGD keeps no tensors): 16 bytes.
    assert snapshots_mod.nbytes({'weight': np.zeros((1, toy.DIM), 'float32')}) == 16
    config = make_config(hparams={'learning_rate': 0.02}, budget_override=_budget(5.0),
                         snapshot_budget_mb=20 * 16 / 2**20)
    result = _run(config)
    assert result['status'] == 'reached'
    # 500 steps per window in at most 20 snapshots: spaced 32 steps apart.
    assert result['time_to_target_resolution_s'] >= 16 * STEP_S - 1e-9
    log = (config.trial_dir() / results.LOG_FILE).read_text()
    assert 'event:reached' in log and 'resolution_s:' in log


def test_probes_follow_the_step_grid_whatever_the_window():
    """Two runs of one seed whose regular evaluations fell at different steps probe the same
    steps (a binary search over step numbers), so they find the same crossing."""
    def probes(window_end, first_hit):
        steps, seen = list(range(1, window_end)), []

        def meets(i):
            seen.append(steps[i])
            return steps[i] >= first_hit

        # One step a second: 1 % of the time is under a step, so the search ends adjacent.
        _, hi = evaluation.bisect_first_hit(steps, [float(s) for s in steps], 0.0,
                                            float(window_end), meets)
        return seen, steps[hi] if hi < len(steps) else window_end
    a, found_a = probes(290, 165)
    b, found_b = probes(281, 165)
    assert a == b and found_a == found_b == 165
    assert a[0] == 256 and len(a) <= 9


def test_the_search_stops_at_adjacent_snapshots_or_one_percent():
    steps = list(range(1, 100))
    seen = []

    def meets(i):
        seen.append(steps[i])
        return steps[i] >= 37

    # One step a second: 1 % of ~37 s is under a step, so the search ends adjacent.
    lo, hi = evaluation.bisect_first_hit(steps, [float(s) for s in steps], 0.0, 100.0, meets)
    assert (steps[lo], steps[hi]) == (36, 37) and len(seen) <= 7
    # A clock that starts late (1000 s + the step): 1 % of the time is ~10 steps.
    seen.clear()
    lo, hi = evaluation.bisect_first_hit(steps, [1000.0 + s for s in steps], 1000.0, 1100.0,
                                         meets)
    assert steps[hi] >= 37 > steps[lo] and steps[hi] - steps[lo] <= 0.01 * (1000 + steps[hi])
    assert len(seen) < 7
    # No snapshots: the miss and the hit that bound the window.
    assert evaluation.bisect_first_hit([], [], 0.0, 5.0, meets) == (-1, 0)
