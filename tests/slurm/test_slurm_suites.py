"""Suites on a real Slurm: job arrays, a killed driver, preemption with exact resume, scancel.

Run with: scripts/slurm_cluster.sh start && python -m pytest -m slurm tests/slurm
"""

from __future__ import annotations

import math
import re
import signal
import subprocess

import pytest

from harness import results

from harness.trial import checkpoint
from harness.launch.launcher import run_suite
from harness.launch.status import collect
from harness.launch.suite import expand, load_suite, trial_id
from tests.slurm.conftest import driver, jobs_of, result_of, run_cli, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(400)]


def test_array_lands_every_result_and_a_killed_driver_loses_nothing(make_suite):
    path = make_suite('array', trials=3, max_steps=3)
    suite = load_suite(path)
    exp = suite.experiment_dir()
    first = driver(str(path))
    try:
        jobs = wait_for(lambda: len(jobs_of(exp)) == 3 and jobs_of(exp), 120, 'the submission')
        # One sbatch: every trial is a task of the same array.
        assert len({j['job_id'].split('_')[0] for j in jobs.values()}) == 1
        # A second driver on the same experiment refuses, and says who holds it (the
        # first is stopped meanwhile, so that it cannot finish and let go of the lock).
        first.send_signal(signal.SIGSTOP)
        second = run_cli('run', str(path), timeout_s=120)
        assert second.returncode == 2
        assert 'is in use by another `timetrial run`' in second.stderr
        assert f'pid {first.pid}' in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The same command again re-attaches to the running jobs instead of resubmitting.
    again = run_cli('run', str(path), timeout_s=360)
    assert again.returncode == 0, again.stdout + again.stderr
    assert 'to_launch:0' in again.stdout and 'reattached:' in again.stdout
    for t in expand(suite):
        result = result_of(t.trial_dir())
        assert result is not None and result['status'] == 'budget_exhausted'
        assert result['final_step'] == 3
    assert {j['attempt'] for j in jobs_of(exp).values()} == {1}
    assert jobs_of(exp) == jobs


def test_preempted_trial_resumes_to_the_twins_result(make_suite):
    from submitit.slurm.slurm import SlurmJob

    # Same configuration in two experiments; one gets preempted mid-training.
    suites = {name: load_suite(make_suite(name, max_steps=30, checkpoint_every_s=1))
              for name in ('preempted', 'twin')}
    trials = {name: expand(s) for name, s in suites.items()}
    for name, s in suites.items():
        run_suite(s, trials[name], 'slurm', wait=False, log=lambda _: None)
    (config,) = trials['preempted']
    trial_dir = config.trial_dir()
    record = jobs_of(suites['preempted'].experiment_dir())[trial_id(config)]
    job = SlurmJob(folder=record['folder'], job_id=record['job_id'])
    # Preempt only once the runner has written a checkpoint, while it still trains.
    wait_for(lambda: checkpoint.checkpoint_path(trial_dir).exists(), 240, 'a first checkpoint',
             interval_s=0.1)
    assert result_of(trial_dir) is None
    job._interrupt()          # SIGTERM, then USR2: what Slurm sends on preemption
    wait_for(lambda: (trial_dir / 'preemptions.json').exists(), 60, 'the preemption record')

    outcomes = {}
    for name, s in suites.items():
        report = run_suite(s, trials[name], 'slurm', log=lambda _: None)
        assert not report.submitted      # re-attached (or already finished), never resubmitted
        outcomes[name] = result_of(trials[name][0].trial_dir())
    pre, twin = outcomes['preempted'], outcomes['twin']
    assert pre['preemptions'] == 1 and twin['preemptions'] == 0
    assert pre['resumes'] >= 1
    # Evaluations are due by submission time, so their number may differ; the
    # training trajectory may not.
    for key in ('status', 'final_step', 'examples_seen'):
        assert pre[key] == twin[key], key
    assert math.isclose(pre['final_metrics']['validation/loss'],
                        twin['final_metrics']['validation/loss'], rel_tol=1e-4)
    events = results.read_json(trial_dir / 'preemptions.json')['events']
    assert [e['job_id'] for e in events] == [record['job_id']]
    # The requeued task resumed from the checkpoint with its accumulated submission
    # time, and went on counting from there.
    log = (trial_dir / results.LOG_FILE).read_text()
    resume = re.search(r'event:resume step:(\d+) .*submission_time_s:([\d.e-]+)', log)
    assert resume is not None, log
    resumed_step, resumed_time_s = int(resume.group(1)), float(resume.group(2))
    assert 1 <= resumed_step < pre['final_step']
    assert 0 < resumed_time_s < pre['submission_time_s']
    (status,) = collect(suites['preempted'].experiment_dir())
    assert status.preemptions == 1 and status.state == 'budget_exhausted'


def test_scancelled_job_is_reported_failed_and_cancel_stops_the_rest(make_suite):
    from harness.launch.status import slurm_states

    # The generated text is easy: with stop_at_target on, trial 1 could reach the
    # target and finish before `timetrial cancel` comes for it.
    path = make_suite('cancelled', trials=2, max_steps=100000, time_limit_min=10,
                      stop_at_target=False)
    suite = load_suite(path)
    exp = suite.experiment_dir()
    proc = driver(str(path))
    try:
        jobs = wait_for(lambda: len(jobs_of(exp)) == 2 and jobs_of(exp), 120, 'the submission')
        ids = sorted(jobs)
        victim = jobs[ids[0]]['job_id']
        wait_for(lambda: (slurm_states([victim]) or {}).get(victim) == 'RUNNING', 120, 'a running job')
        subprocess.run(['scancel', victim], check=True, timeout=60)
        # The driver notices the cancelled job and reports it, while the other still runs.
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(f'done:{ids[0]}'):
                break
        assert 'status:failed' in seen[-1], ''.join(seen)
        by_id = {s.trial: s for s in collect(exp)}
        assert by_id[ids[0]].state == 'failed' and 'CANCELLED' in by_id[ids[0]].note
        assert by_id[ids[1]].state in ('running', 'pending')
        # `timetrial cancel` stops the driver and the remaining job.
        out = run_cli('cancel', str(exp), timeout_s=120)
        assert out.returncode == 0, out.stderr
        assert f'cancelled:{ids[1]}' in out.stdout and 'stopped driver' in out.stdout
        assert proc.wait(timeout=60) == -signal.SIGTERM
        other = jobs[ids[1]]['job_id']
        wait_for(lambda: (slurm_states([other]) or {}).get(other, '').startswith('CANCELLED'), 60,
                 'the second job to be cancelled')
        assert {s.state for s in collect(exp)} == {'failed'}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(['scancel', '--name', f'tt-{suite.experiment}'], timeout=60)
