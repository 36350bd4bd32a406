"""Federated trials end to end on 20 generated clients: results files, replay, resume,
failures and bad input. Real (small) trials, so marked integration."""

from __future__ import annotations

import json

import pytest

from harness import results
from harness.errors import UserInputError
from harness.trial.config import TrialConfig
from harness.trial.federated import runner
from harness.trial.federated.runner import run_federated_trial
from workloads.federated_shakespeare.workload import BUDGETS

pytestmark = pytest.mark.integration

FAST = {'local_steps': 2, 'client_batch_size': 2, 'client_learning_rate': 0.5}
SYNC = {**FAST, 'clients_per_round': 4, 'over_selection': 0.5, 'round_deadline_s': 600.0}
ASYNC = {**FAST, 'concurrency': 6, 'buffer_size': 3}
TIMING_KEYS = {'wall_time_s', 'eval_time_s', 'compute_time_s'}


def config(tmp_path, data_dir, **changes):
    base = dict(
        workload='federated_shakespeare',
        framework='pytorch',
        submission='fedavg',
        size='tiny',
        variant='heavy_stragglers',
        hparams=SYNC,
        seed=3,
        results_dir=str(tmp_path / 'results'),
        data_dir=data_dir,
        max_steps=6,
    )
    base.update(changes)
    return TrialConfig(**base)


def evals_without_timing(cfg):
    rows = results.read_jsonl(cfg.trial_dir() / results.EVALS_JSONL)
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def test_results_layout(tmp_path, federated_data_dir):
    cfg = config(tmp_path, federated_data_dir)
    result = run_federated_trial(cfg)
    d = cfg.trial_dir()
    trial = results.read_identity_mapping(d)
    for key in (
        'workload',
        'variant',
        'size',
        'framework',
        'submission',
        'ruleset',
        'study',
        'trial',
        'hparams',
        'seed',
    ):
        assert key in trial
    assert trial['target'] == {
        'metric': 'validation/accuracy',
        'value': pytest.approx(BUDGETS[('tiny', 'heavy_stragglers')].validation_target_value),
        'mode': 'max',
    }
    assert trial['clock'] == 'simulated' and trial['round_config']['clients_per_round'] == 4
    meta = results.read_json(d / results.META_JSON)
    assert meta['hardware_class'] and 'cpu_model' in meta['hardware']
    rows = results.read_jsonl(d / results.EVALS_JSONL)
    for row in rows:
        for key in (
            'step',
            'submission_time_s',
            'wall_time_s',
            'eval_time_s',
            'examples_seen',
            'compute_time_s',
            'validation/accuracy',
            'validation/loss',
            'validation/accuracy_stragglers',
            'validation/accuracy_fast',
        ):
            assert key in row, key
    assert [r['step'] for r in rows] == sorted(r['step'] for r in rows)
    assert rows[-1]['step'] == 6 and result['final_step'] == 6
    assert result['status'] == 'budget_exhausted' and result['error'] is None
    assert result['submission_time_s'] == rows[-1]['submission_time_s'] > 0
    assert rows[-1]['examples_seen'] == result['federated']['arrived'] * 2 * 2
    for key in (
        'status',
        'time_to_target_s',
        'steps_to_target',
        'examples_to_target',
        'final_step',
        'submission_time_s',
        'error',
    ):
        assert key in results.read_json(d / results.RESULT_JSON)
    assert run_federated_trial(cfg) == result  # a finished trial is skipped


@pytest.mark.parametrize('framework', ['jax', 'pytorch'])
def test_same_seed_replays_the_same_trial(tmp_path, federated_data_dir, framework):
    a = config(tmp_path, federated_data_dir, framework=framework, experiment='a')
    b = config(tmp_path, federated_data_dir, framework=framework, experiment='b')
    ra, rb = run_federated_trial(a), run_federated_trial(b)
    assert ra['federated'] == rb['federated']
    assert evals_without_timing(a) == evals_without_timing(b)
    c = config(tmp_path, federated_data_dir, framework=framework, experiment='c', seed=4)
    assert run_federated_trial(c)['federated']['event_digest'] != ra['federated']['event_digest']


class Crash(Exception):
    pass


@pytest.mark.parametrize(
    'framework,submission,hparams,crash_after',
    [
        ('pytorch', 'fedbuff', ASYNC, 9),
        ('jax', 'fedavg_distill', SYNC, 13),
        ('pytorch', 'fedbuff_ema', ASYNC, 20),
        ('jax', 'fedadam', SYNC, 5),
    ],
)
def test_resume_mid_simulation_gives_identical_results(
    tmp_path, federated_data_dir, monkeypatch, framework, submission, hparams, crash_after
):
    common = dict(framework=framework, submission=submission, hparams=hparams, max_steps=8)
    whole = config(tmp_path, federated_data_dir, experiment='whole', **common)
    expected = run_federated_trial(whole)

    cut = config(tmp_path, federated_data_dir, experiment='cut', checkpoint_every_s=0.0, **common)

    def crash(events):
        if events == crash_after:
            raise Crash

    monkeypatch.setattr(runner, '_after_event', crash)
    with pytest.raises(Crash):
        run_federated_trial(cut)
    assert not (cut.trial_dir() / results.RESULT_JSON).exists()
    monkeypatch.setattr(runner, '_after_event', lambda events: None)
    resumed = run_federated_trial(cut)
    assert resumed['preemptions'] == 1
    assert resumed['federated'] == expected['federated']
    assert resumed['final_step'] == expected['final_step']
    assert evals_without_timing(cut) == evals_without_timing(whole)


def test_reaching_the_target_stops_the_trial(tmp_path, federated_data_dir):
    override = {
        'validation_target_value': 0.0,
        'max_allowed_runtime_sec': 86400.0,
        'eval_period_time_sec': 1800.0,
        'step_hint': 10,
    }
    cfg = config(tmp_path, federated_data_dir, budget_override=override, max_steps=None)
    result = run_federated_trial(cfg)
    assert result['status'] == 'reached'
    # The regular evaluation at 1800 s found it met and stopped the trial; the search
    # over the models kept since the start found the first server update's already met.
    assert result['submission_time_s'] == 1800.0 and result['final_step'] > 1
    rows = results.read_jsonl(cfg.trial_dir() / results.EVALS_JSONL)
    assert [r['eval_kind'] for r in rows] == ['refine'] * result['extra_evals'] + ['regular']
    assert result['steps_to_target'] == 1 == rows[0]['step']
    assert 0 < result['time_to_target_s'] == rows[0]['submission_time_s'] < 1800.0
    assert result['time_to_target_resolution_s'] == result['time_to_target_s']  # from the start


BROKEN = '''
from harness import spec_federated


def get_round_config(workload_name, hyperparameters):
    return spec_federated.RoundConfig(mode='sync', local_steps=1, client_batch_size=1,
                            clients_per_round=2)

def init_server_state(workload, model_params, hyperparameters, rng):
    return spec_federated.ServerState(params=model_params)

def client_update(workload, server_params, client_extras, client_data, hyperparameters, rng):
    raise ValueError('boom in client_update')

def server_update(workload, server_state, updates, hyperparameters, server_version, rng):
    return server_state
'''


def test_an_exception_in_submission_code_fails_the_trial(tmp_path, federated_data_dir):
    file = tmp_path / 'broken_fed.py'
    file.write_text(BROKEN)
    cfg = config(tmp_path, federated_data_dir, submission=str(file), hparams=None)
    result = run_federated_trial(cfg)
    assert result['status'] == 'failed'
    assert result['error'] == 'client_update: ValueError: boom in client_update'
    error_txt = (cfg.trial_dir() / results.ERROR_FILE).read_text()
    assert 'Traceback' in error_txt and 'boom in client_update' in error_txt


def test_more_clients_per_round_than_clients(tmp_path, federated_data_dir):
    cfg = config(tmp_path, federated_data_dir, hparams={**SYNC, 'clients_per_round': 18})
    with pytest.raises(UserInputError) as err:
        run_federated_trial(cfg)
    assert (
        'clients_per_round=18 with over_selection=0.5 dispatches 27 clients per round, '
        'but the workload has 20 clients'
    ) in str(err.value)
    assert not cfg.trial_dir().exists()
    cfg = config(
        tmp_path, federated_data_dir, submission='fedbuff', hparams={**ASYNC, 'concurrency': 25}
    )
    with pytest.raises(
        UserInputError,
        match='concurrency=25 is more clients than the '
        r'workload has \(20\)',
    ):
        run_federated_trial(cfg)


def test_bad_latency_configuration(tmp_path, federated_data_dir, monkeypatch):
    from workloads.federated_shakespeare import workload

    bad = {'kind': 'lognormal', 'median_s': 0, 'sigma': 7}
    monkeypatch.setitem(workload.LATENCY_CONFIGS, 'heavy_stragglers', bad)
    with pytest.raises(UserInputError) as err:
        run_federated_trial(config(tmp_path, federated_data_dir))
    message = str(err.value)
    assert 'latency of variant heavy_stragglers.median_s = 0 is out of range' in message
    assert 'sigma = 7 is out of range' in message


def test_role_filter_that_leaves_no_clients(tmp_path, federated_data_dir, monkeypatch):
    from workloads.federated_shakespeare import workload

    monkeypatch.setitem(workload.SIZES['tiny'], 'min_lines', 10_000)
    with pytest.raises(UserInputError, match='min_lines=10000 leaves no clients'):
        run_federated_trial(config(tmp_path, federated_data_dir))


def test_a_centralized_submission_is_refused(tmp_path, federated_data_dir):
    with pytest.raises(UserInputError, match='centralized submission'):
        run_federated_trial(config(tmp_path, federated_data_dir, submission='adamw'))


def test_trial_files_are_json_clean(tmp_path, federated_data_dir):
    cfg = config(tmp_path, federated_data_dir, submission='fedbuff', hparams=ASYNC, max_steps=3)
    run_federated_trial(cfg)
    for line in (cfg.trial_dir() / results.EVALS_JSONL).read_text().splitlines():
        row = json.loads(line)  # NaN would not parse as strict JSON
        assert row['federated/mean_staleness'] is None or row['federated/mean_staleness'] >= 0
