"""Time to target at the resolution of server updates, and the distillation control.

Real (small) trials on 20 generated clients, so marked integration."""

from __future__ import annotations

import math

import pytest

from harness import results
from harness.trial.federated import evaluation
from harness.trial.federated.runner import run_federated_trial
from tests.federated.test_federated_runner import SYNC, config

pytestmark = pytest.mark.integration

PERIOD_S = 1200.0


def budget(target, runtime_s, period_s):
    return {
        'validation_target_value': target,
        'max_allowed_runtime_sec': runtime_s,
        'eval_period_time_sec': period_s,
        'step_hint': 10,
    }


def rows(cfg):
    return results.read_jsonl(cfg.trial_dir() / results.EVALS_JSONL)


def test_a_target_crossed_between_evaluations_gets_the_first_server_update_meeting_it(
    tmp_path, federated_data_dir, monkeypatch
):
    # Reference: the accuracy after every server update from 600 s on ("near" always).
    monkeypatch.setattr(evaluation, 'NEAR_TARGET_FRACTION', math.inf)
    ref = config(
        tmp_path,
        federated_data_dir,
        experiment='ref',
        variant=None,
        max_steps=None,
        stop_at_target=False,
        budget_override=budget(1.01, 3 * PERIOD_S + 100, 600.0),
    )
    run_federated_trial(ref)
    by_step = {}  # step -> the first evaluation of that model (at its server update)
    for r in rows(ref):
        by_step.setdefault(r['step'], r)
    assert {r['eval_kind'] for r in rows(ref)} == {'regular', 'near_target', 'final'}

    def value_at(time_s):  # what an evaluation at time_s sees
        return by_step[max(s for s, r in by_step.items() if r['submission_time_s'] <= time_s)]

    first, second = value_at(PERIOD_S), value_at(2 * PERIOD_S)
    assert second['validation/accuracy'] > first['validation/accuracy'], 'no progress to detect'
    # The target: the first model after the second regular evaluation that beats
    # every model evaluated before it, so the trial below first meets it there.
    best, crossing = 0.0, None
    for step in sorted(by_step):
        row = by_step[step]
        if row['submission_time_s'] > 2 * PERIOD_S and row['validation/accuracy'] > best:
            crossing = row
            break
        best = max(best, row['validation/accuracy'])
    assert crossing is not None and crossing['submission_time_s'] < 3 * PERIOD_S
    target = crossing['validation/accuracy']

    # The trial: regular evaluations every PERIOD_S; near the target after every update.
    monkeypatch.setattr(evaluation, 'NEAR_TARGET_FRACTION', 0.0)
    monkeypatch.setattr(evaluation, 'NEAR_TARGET_PERIODS', 1e9)  # any progress counts as near
    cfg = config(
        tmp_path,
        federated_data_dir,
        experiment='dense',
        variant=None,
        max_steps=None,
        budget_override=budget(target, 5 * PERIOD_S, PERIOD_S),
    )
    result = run_federated_trial(cfg)
    assert result['status'] == 'reached'
    assert result['time_to_target_s'] == crossing['submission_time_s']
    assert result['steps_to_target'] == crossing['step']
    lines = rows(cfg)
    assert lines[-1]['step'] == crossing['step'] and lines[-1]['eval_kind'] == 'near_target'
    missed = lines[-2]
    assert missed['validation/accuracy'] < target
    assert result['time_to_target_resolution_s'] == pytest.approx(
        crossing['submission_time_s'] - missed['submission_time_s']
    )
    previous_update = by_step[crossing['step'] - 1]['submission_time_s']
    assert missed['submission_time_s'] == max(previous_update, 2 * PERIOD_S)
    assert result['extra_evals'] == sum(r['eval_kind'] == 'near_target' for r in lines) > 0
    assert 0 < result['eval_wall_share'] < 1

    # Without evaluations near the target, the time is the next regular evaluation's.
    monkeypatch.setattr(evaluation, 'NEAR_TARGET_PERIODS', 0.0)
    coarse = config(
        tmp_path,
        federated_data_dir,
        experiment='coarse',
        variant=None,
        max_steps=None,
        budget_override=budget(target, 5 * PERIOD_S, PERIOD_S),
    )
    coarse_result = run_federated_trial(coarse)
    assert coarse_result['status'] == 'reached' and coarse_result['extra_evals'] == 0
    assert coarse_result['time_to_target_s'] % PERIOD_S == 0
    assert coarse_result['time_to_target_s'] > result['time_to_target_s']
    assert coarse_result['time_to_target_resolution_s'] == PERIOD_S


@pytest.mark.parametrize('framework', ['jax'])
def test_the_distillation_control_hears_from_the_same_clients(
    tmp_path, federated_data_dir, framework
):
    """fedavg_distill_control delivers late reports and sends the teacher like
    fedavg_distill, with distill weight 0: the same events, another model."""
    common = dict(framework=framework, variant=None, hparams=SYNC, max_steps=20)
    distill = config(tmp_path, federated_data_dir, submission='fedavg_distill', **common)
    control = config(tmp_path, federated_data_dir, submission='fedavg_distill_control', **common)
    a, b = run_federated_trial(distill), run_federated_trial(control)
    assert a['federated']['late_delivered'] > 0  # there were teachers
    assert a['federated'] == b['federated']  # same dispatches, arrivals, digest
    assert a['federated']['delivered_share_stragglers'] > 0
    assert rows(distill)[-1]['validation/loss'] != rows(control)[-1]['validation/loss']
