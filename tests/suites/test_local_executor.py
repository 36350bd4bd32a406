"""The local executor (subprocesses through submitit), and a driver killed mid-suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import results
from harness.launch.launcher import run_suite
from harness.launch.records import read_jobs
from harness.launch.suite import expand, load_suite, trial_id
from tests.suites import fakes
from tests.suites.conftest import BASIC

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

# A driver whose trials are fakes.slow_run (the CLI cannot swap run_trial).
_DRIVER = '''
import sys
from harness import registry
from tests.suites import fakes
registry.workload_infos = lambda: {'fakewl': fakes.INFO, 'jaxonly': fakes.JAX_ONLY}
from harness.launch.launcher import run_suite
from harness.launch.suite import expand, load_suite
suite = load_suite(sys.argv[1])
report = run_suite(suite, expand(suite)[:4], 'local', parallelism=2, poll_s=0.2,
                   run_fn=fakes.slow_run, log=lambda line: print(line, flush=True))
'''


@pytest.fixture
def suite(write_suite, tmp_path):
    return load_suite(write_suite(BASIC.format(results=tmp_path / 'results')))


def test_local_runs_n_at_a_time_in_subprocesses(suite, monkeypatch):
    monkeypatch.chdir(REPO)          # the jobs import tests.suites.fakes from here
    trials = expand(suite)[:3]
    report = run_suite(suite, trials, 'local', parallelism=2, poll_s=0.2,
                       run_fn=fakes.fake_run, log=lambda _: None)
    assert sorted(report.outcomes) == sorted(trial_id(t) for t in trials)
    jobs = read_jobs(suite.experiment_dir())
    pids = {j['job_id'] for j in jobs.values()}
    assert len(pids) == 3 and all(j['executor'] == 'local' for j in jobs.values())
    for t in trials:
        job = results.read_json(t.trial_dir() / 'job.json')
        assert job['pid'] != os.getpid()             # ran in its own process
    crashed = run_suite(suite, expand(suite)[3:4], 'local', poll_s=0.2,
                        run_fn=fakes.crash_run, log=lambda _: None)
    (failure,) = crashed.outcomes.values()
    assert failure['job_failure'] and 'the node caught fire' in failure['error']


def test_a_killed_driver_loses_nothing_and_the_rerun_reattaches(suite, tmp_path):
    env = {**os.environ, 'FAKE_RUN_SLEEP_S': '10', 'PYTHONPATH': str(REPO)}
    cmd = [sys.executable, '-c', _DRIVER, str(suite.path)]
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    exp = suite.experiment_dir()
    deadline = time.monotonic() + 60
    while len(read_jobs(exp)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(read_jobs(exp)) == 2
    first.send_signal(signal.SIGKILL)
    first.wait()
    # The two running trials were not killed with their driver ...
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    # ... so the new driver follows them instead of starting them again.
    assert 'finished:0 reattached:2 to_launch:2' in rerun.stdout, rerun.stdout
    trials = expand(suite)[:4]
    assert all((t.trial_dir() / results.RESULT_JSON).exists() for t in trials)
    assert all(j['attempt'] == 1 for j in read_jobs(exp).values())
