"""Trials claim their own cores (harness.trial.cores), and the kernel's run-queue counters
tell when a trial's timing was disturbed anyway (harness.trial.contention)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from harness.errors import UserInputError
from harness.trial import contention, cores

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_two_cores = pytest.mark.skipif(len(cores.available_cores()) < 2,
                                     reason='needs two usable cores')


def _claim_in_child(threads: int, all_cores, **env) -> subprocess.CompletedProcess:
    """Another trial's process: a sibling that may use every core, as submitit starts them."""
    code = (f'import os; os.sched_setaffinity(0, {list(all_cores)})\n'
            'from harness.trial import cores\n'
            f'with cores.claimed({threads}) as c: print(sorted(os.sched_getaffinity(0)), c)')
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          env={**os.environ, 'PYTHONPATH': REPO, **env}, timeout=60)


@needs_two_cores
def test_trials_claim_disjoint_cores_and_a_third_is_refused():
    before = cores.available_cores()
    with cores.claimed(1) as mine:
        assert sorted(os.sched_getaffinity(0)) == mine and len(mine) == 1
        assert os.environ['OMP_NUM_THREADS'] == '1'
        other = _claim_in_child(1, before)
        assert other.returncode == 0, other.stderr
        theirs = eval(other.stdout.split(']')[0] + ']')
        assert theirs != mine and len(theirs) == 1
        # A trial that wants every core cannot have the one this trial holds.
        every = _claim_in_child(None, before)
        assert every.returncode != 0 and 'are free' in every.stderr
    assert cores.available_cores() == before
    assert _claim_in_child(None, before).returncode == 0  # released


@needs_two_cores
def test_slurm_jobs_unbound_by_slurm_claim_their_allocation_not_the_node(monkeypatch):
    # TaskPlugin=task/none: each 1-CPU job's affinity is the whole node. Without
    # reading its allocation, the second job on the node would be refused.
    before = cores.available_cores()
    job = {'SLURM_JOB_ID': '7', 'SLURM_CPUS_PER_TASK': '1'}
    for name, value in job.items():
        monkeypatch.setenv(name, value)
    with cores.claimed(None) as mine:
        assert len(mine) == 1
        other = _claim_in_child(None, before, **{**job, 'SLURM_JOB_ID': '8'})
        assert other.returncode == 0, other.stderr
        assert eval(other.stdout.split(']')[0] + ']') != mine
    monkeypatch.delenv('SLURM_CPUS_PER_TASK')
    monkeypatch.setenv('SLURM_JOB_CPUS_PER_NODE', '2(x3)')
    assert cores.allocated_count(before) == min(2, len(before))
    monkeypatch.delenv('SLURM_JOB_ID')  # outside a job: the whole affinity
    assert cores.allocated_count(before) == len(before)


def test_no_threads_means_every_core(monkeypatch):
    monkeypatch.delenv('SLURM_JOB_ID', raising=False)
    with cores.claimed(None) as mine:
        assert mine == cores.available_cores()


def test_bad_thread_counts_are_refused():
    with pytest.raises(UserInputError, match='at least 1'):
        with cores.claimed(0):
            pass


def test_shares_and_flag_from_the_counters(monkeypatch):
    clock = iter([0.0, 10.0])
    waits = iter([1.0, 1.0 + 0.5])        # 0.5 s waiting over 10 s x 2 threads: 2.5 %
    cpu = iter([5.0, 5.0 + 18.0])         # the trial's own CPU time: 18 s of 20
    busy = iter([100.0, 100.0 + 18.4])    # the two cores were busy 18.4 s: others 0.4 s, 2 %
    monkeypatch.setattr(contention, 'run_queue_wait_s', lambda: next(waits))
    monkeypatch.setattr(contention, '_cpu_s', lambda: next(cpu))
    monkeypatch.setattr(contention, 'cores_busy_s', lambda cores: next(busy))
    meter = contention.ContentionMeter(threads=2, wall_clock=lambda: next(clock), cores=[0, 1])
    meter.start()
    meter.stop()
    summary = meter.summary()
    assert summary['run_queue_share'] == pytest.approx(0.025)
    assert summary['other_cpu_share'] == pytest.approx(0.02)
    assert summary['cpu_share'] == pytest.approx(0.9)
    assert summary['timing_disturbed'] is False
    # The trial's own threads waiting on each other (XLA's pools) do not flag it ...
    meter.load_state_dict({**meter.state_dict(), 'wait_s': 4.0})
    assert meter.summary()['timing_disturbed'] is False
    # ... other processes on its cores do.
    meter.load_state_dict({**meter.state_dict(), 'other_s': 2.0})
    assert meter.summary()['timing_disturbed'] is True
    # Without /proc/stat the run-queue wait decides.
    meter.load_state_dict({**meter.state_dict(), 'other_s': None})
    assert meter.summary()['timing_disturbed'] is True


@pytest.mark.skipif(contention.run_queue_wait_s() is None, reason='no /proc schedstat')
def test_a_competitor_on_the_trials_core_is_seen():
    """A busy process pinned to the trial's only core makes its threads wait."""
    core = cores.available_cores()[0]
    previous = cores.available_cores()
    os.sched_setaffinity(0, [core])
    hog = subprocess.Popen([sys.executable, '-c',
                            f'import os; os.sched_setaffinity(0, [{core}])\nwhile True: pass'])
    try:
        time.sleep(0.2)
        meter = contention.ContentionMeter(threads=1)
        meter.start()
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            sum(range(1000))
        meter.stop()
    finally:
        hog.kill()
        hog.wait()
        os.sched_setaffinity(0, previous)
    summary = meter.summary()
    assert summary['run_queue_share'] > 0.2
    assert summary['other_cpu_share'] > 0.2
    assert summary['timing_disturbed'] is True
