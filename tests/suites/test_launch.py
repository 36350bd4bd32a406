"""The launcher with the in-process (debug) executor and a stand-in for run_trial."""

from __future__ import annotations

import pytest

from harness import results
from harness.errors import UserInputError
from harness.launch.launcher import TrialTask, preflight, record_preemption, run_suite
from harness.launch.records import JOB_FAILURE_JSON, PREEMPTIONS_JSON, read_jobs, read_manifest
from harness.launch.suite import expand, load_suite, trial_id
from tests.suites import fakes
from tests.suites.conftest import BASIC


@pytest.fixture
def suite(write_suite, tmp_path):
    return load_suite(write_suite(BASIC.format(results=tmp_path / 'results')))


def test_debug_run_lands_every_result_and_a_rerun_skips_them(suite):
    trials = expand(suite)
    logs = []
    report = run_suite(suite, trials, 'debug', run_fn=fakes.fake_run, log=logs.append)
    assert sorted(report.outcomes) == sorted(trial_id(t) for t in trials)
    assert all(o['status'] == 'reached' for o in report.outcomes.values())
    assert all((t.trial_dir() / results.RESULT_JSON).exists() for t in trials)
    assert sorted(read_manifest(suite.experiment_dir())) == sorted(report.outcomes)
    assert (suite.experiment_dir() / '.timetrial' / 'suite.yaml').read_text() == \
        suite.path.read_text()
    assert any(line.startswith('done:sub_a/fakewl_jax/study_0/trial_0 status:reached')
               for line in logs)
    again = run_suite(suite, trials, 'debug', run_fn=fakes.crash_run, log=logs.append)
    assert again.skipped == report.submitted and not again.outcomes


def test_a_crashed_job_is_recorded_as_failed_and_resumed_by_the_next_run(suite):
    trials = expand(suite)[:2]
    report = run_suite(suite, trials, 'debug', run_fn=fakes.crash_run, log=lambda _: None)
    assert report.job_failures == [trial_id(t) for t in trials]
    failure = results.read_json(trials[0].trial_dir() / JOB_FAILURE_JSON)
    assert failure['status'] == 'failed' and 'the node caught fire' in failure['error']
    # Nothing final was written: the same command again runs them (and clears the record).
    report = run_suite(suite, trials, 'debug', run_fn=fakes.fake_run, log=lambda _: None)
    assert not report.job_failures and len(report.outcomes) == 2
    assert not (trials[0].trial_dir() / JOB_FAILURE_JSON).exists()


def test_the_manifest_keeps_trials_of_earlier_launches(suite):
    trials = expand(suite)
    run_suite(suite, trials[:3], 'debug', run_fn=fakes.fake_run, log=lambda _: None)
    run_suite(suite, trials[3:5], 'debug', run_fn=fakes.fake_run, log=lambda _: None)
    assert sorted(read_manifest(suite.experiment_dir())) == sorted(
        trial_id(t) for t in trials[:5])
    # The debug executor records no job ids (there is no job to follow).
    assert read_jobs(suite.experiment_dir()) == {}


def test_preflight_refuses_a_directory_of_another_configuration(suite):
    trials = expand(suite)
    fakes.fake_run(trials[0].replace(hparams={'learning_rate': 9.0}))
    with pytest.raises(UserInputError) as e:
        preflight(suite, trials, 'debug')
    assert 'belongs to a different configuration (hparams:' in str(e.value)
    assert '--experiment' in str(e.value)


def test_preflight_reports_missing_data_and_missing_slurm_together(suite, monkeypatch):
    monkeypatch.setenv('FAKE_DATA_MISSING', '1')
    monkeypatch.setattr('shutil.which', lambda name: None)
    with pytest.raises(UserInputError) as e:
        preflight(suite, expand(suite), 'slurm')
    text = str(e.value)
    assert '2 problems' in text and 'timetrial prepare fakewl' in text
    assert 'there is no Slurm here' in text and '--executor local' in text


def test_preemption_is_counted_and_the_task_requeues_itself(suite, monkeypatch):
    config = expand(suite)[0]
    task = TrialTask(config, fakes.fake_run)
    delayed = task.checkpoint()
    assert delayed.function is task and delayed.args == () and delayed.kwargs == {}
    assert results.read_json(config.trial_dir() / PREEMPTIONS_JSON)['count'] == 1
    # Requeues that bypassed submitit's handler show in SLURM_RESTART_COUNT.
    monkeypatch.setattr('harness.launch.launcher._job_id', lambda: '42_0')
    record_preemption(config.trial_dir(), '42_0', 'signal')
    monkeypatch.setenv('SLURM_RESTART_COUNT', '3')
    assert task()['status'] == 'reached'
    data = results.read_json(config.trial_dir() / PREEMPTIONS_JSON)
    assert data['count'] == 4
    assert [e['kind'] for e in data['events']][-2:] == ['requeued by slurm'] * 2
    job = results.read_json(config.trial_dir() / 'job.json')
    assert job['job_id'] == '42_0' and job['pid'] > 0


def test_trial_task_pickles_by_reference(suite):
    import pickle

    task = TrialTask(expand(suite)[0], fakes.fake_run)
    copy = pickle.loads(pickle.dumps(task))
    assert copy.config == task.config and copy.run_fn is fakes.fake_run
