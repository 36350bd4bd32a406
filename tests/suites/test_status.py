"""`timetrial status` states and `timetrial cancel`, on hand-made experiment directories."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import results
from harness.cli import status as status_cli
from harness.launch import cancel, status
from harness.launch.launcher import run_suite
from harness.launch.records import (
    JOB_FAILURE_JSON,
    PREEMPTIONS_JSON,
    read_jobs,
    write_jobs,
    write_manifest,
)
from harness.launch.suite import expand, load_suite, trial_id
from tests.suites import fakes
from tests.suites.conftest import BASIC

# A stand-in for a local job's controller: `submitit` in its command line, sleeps.
# Says "ready" once its SIGINT handling is in place: a signal that lands while the
# interpreter is still starting up can be lost, and the test would then wait in vain.
_CONTROLLER = ('import time, sys; sys.argv.append("submitit"); print("ready", flush=True); '
               'time.sleep(60)')


@pytest.fixture
def experiment(write_suite, tmp_path):
    suite = load_suite(write_suite(BASIC.format(results=tmp_path / 'results')))
    trials = expand(suite)
    run_suite(suite, trials[:1], 'debug', run_fn=fakes.fake_run, log=lambda _: None)
    run_suite(suite, trials[1:2], 'debug', run_fn=fakes.crash_run, log=lambda _: None)
    # The rest only planned (the manifest lists every trial).
    write_manifest(suite.experiment_dir(), suite, trials)
    return suite, trials


@contextlib.contextmanager
def _running(code: str):
    """A stand-in controller process running ``code``; killed at the end if still alive."""
    controller = subprocess.Popen([sys.executable, '-c', code, 'submitit'],
                                  stdout=subprocess.PIPE, text=True)
    try:
        yield controller
    finally:
        if controller.poll() is None:
            controller.kill()
        controller.wait()


def _local_record(pid: int) -> dict:
    import socket

    return {'executor': 'local', 'job_id': str(pid), 'host': socket.gethostname(),
            'folder': '/nowhere/%j', 'attempt': 1}


def test_states_from_files_and_jobs(experiment, monkeypatch):
    suite, trials = experiment
    exp = suite.experiment_dir()
    ids = [trial_id(t) for t in trials]
    with _running(_CONTROLLER) as controller:
        assert controller.stdout.readline().strip() == 'ready'
        jobs = read_jobs(exp)
        jobs[ids[2]] = _local_record(controller.pid)
        results.atomic_write_json(trials[2].trial_dir() / PREEMPTIONS_JSON, {'count': 1})
        jobs[ids[3]] = _local_record(controller.pid)
        jobs[ids[4]] = _local_record(2 ** 22 + 4321)           # a controller that is gone
        fakes.fake_run(trials[4])
        (trials[4].trial_dir() / results.RESULT_JSON).unlink()  # started, never finished
        jobs[ids[5]] = {'executor': 'slurm', 'job_id': '77_5', 'folder': '/x/%j'}
        jobs[ids[6]] = {'executor': 'slurm', 'job_id': '77_6', 'folder': '/x/%j'}
        write_jobs(exp, jobs)
        monkeypatch.setattr(status, 'slurm_states',
                            lambda job_ids: {'77_5': 'PENDING', '77_6': 'RUNNING'})
        by_id = {s.trial: s for s in status.collect(exp)}
        assert len(by_id) == len(trials)
        first = by_id[ids[0]]
        assert (first.state, first.step, first.metric, first.metric_value) == (
            'reached', 10, 'validation/loss', 2.5)
        assert first.note == 'time to target 1.5s'
        assert by_id[ids[1]].state == 'failed' and 'caught fire' in by_id[ids[1]].note
        assert (by_id[ids[2]].state, by_id[ids[2]].preemptions) == ('resumed', 1)
        assert by_id[ids[3]].state == 'running'
        assert by_id[ids[3]].job_id == str(controller.pid)
        assert by_id[ids[4]].state == 'stopped' and by_id[ids[4]].step == 10
        assert by_id[ids[5]].state == 'pending' and by_id[ids[5]].job_id == '77_5'
        assert by_id[ids[6]].state == 'running'
        assert by_id[ids[7]].state == 'pending' and by_id[ids[7]].job_id is None

        from rich.console import Console

        out = io.StringIO()
        status_cli.render(list(by_id.values()), exp, Console(file=out, width=200))
        text = out.getvalue()
        assert 'validation/loss' in text and 'resumed' in text and '77_5' in text
        assert 'failed:1' in text and 'reached:1' in text


def test_cancel_stops_local_controllers_and_scancels_slurm_jobs(experiment, monkeypatch):
    suite, trials = experiment
    exp = suite.experiment_dir()
    ids = [trial_id(t) for t in trials]
    with _running(_CONTROLLER) as controller:
        assert controller.stdout.readline().strip() == 'ready'
        jobs = read_jobs(exp)
        jobs[ids[2]] = _local_record(controller.pid)
        jobs[ids[3]] = {'executor': 'slurm', 'job_id': '80_3', 'folder': '/x/%j'}
        write_jobs(exp, jobs)
        monkeypatch.setattr(status, 'slurm_states', lambda job_ids: {'80_3': 'RUNNING'})
        calls = []
        monkeypatch.setattr(status.subprocess, 'run', lambda cmd, **kw: calls.append(cmd))
        lines = []
        cancelled = cancel.cancel(exp, log=lines.append)
        assert sorted(cancelled) == sorted([ids[2], ids[3]])
        assert calls == [['scancel', '80_3']]
        controller.wait(timeout=30)       # SIGINT ended it
        assert any(line.startswith(f'cancelled:{ids[2]}') for line in lines)
        monkeypatch.setattr(status, 'slurm_states', lambda job_ids: {'80_3': 'CANCELLED'})
        by_id = {s.trial: s for s in status.collect(exp)}
        assert by_id[ids[2]].state == 'failed' and 'cancelled' in by_id[ids[2]].note
        assert by_id[ids[3]].state == 'failed'
        assert cancel.cancel(exp, log=lines.append) == []
        assert lines[-1].startswith('nothing to cancel')



def test_status_and_cancel_say_when_slurm_does_not_answer(experiment, monkeypatch):
    suite, trials = experiment
    exp = suite.experiment_dir()
    ids = [trial_id(t) for t in trials]
    jobs = read_jobs(exp)
    jobs[ids[3]] = {'executor': 'slurm', 'job_id': '81_3', 'folder': '/x/%j'}
    write_jobs(exp, jobs)
    monkeypatch.setattr(status, 'slurm_states', lambda job_ids: None)
    by_id = {s.trial: s for s in status.collect(exp)}
    assert by_id[ids[3]].state == 'unknown' and 'Slurm did not answer' in by_id[ids[3]].note
    assert by_id[ids[0]].state != 'unknown'   # finished trials need no answer from Slurm
    calls = []
    monkeypatch.setattr(status.subprocess, 'run', lambda cmd, **kw: calls.append(cmd))
    lines = []
    assert cancel.cancel(exp, log=lines.append) == []
    assert calls == []
    assert 'Slurm did not answer' in lines[-1] and '81_3' in lines[-1], lines
    assert not (trials[3].trial_dir() / JOB_FAILURE_JSON).exists()
    # When Slurm answers that the job is gone, there is nothing to cancel.
    monkeypatch.setattr(status, 'slurm_states', lambda job_ids: {'81_3': 'COMPLETED'})
    assert cancel.cancel(exp, log=lines.append) == []
    assert lines[-1].startswith('nothing to cancel')

# A controller as a non-interactive shell's background job gets it: SIGINT ignored. Its
# task (here a sleeping child) must stop too.
_DEAF_CONTROLLER = (
    'import signal, subprocess, sys, time; sys.argv.append("submitit"); '
    'signal.signal(signal.SIGINT, signal.SIG_IGN); '
    'child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]); '
    'print(child.pid, flush=True); time.sleep(60)')


def test_cancel_kills_a_controller_that_ignores_sigint_and_its_task(experiment, monkeypatch):
    suite, trials = experiment
    exp = suite.experiment_dir()
    ids = [trial_id(t) for t in trials]
    with _running(_DEAF_CONTROLLER) as controller:
        task_pid = int(controller.stdout.readline())
        jobs = read_jobs(exp)
        jobs[ids[2]] = _local_record(controller.pid)
        write_jobs(exp, jobs)
        lines = []
        assert cancel.cancel(exp, log=lines.append, grace_s=1.0) == [ids[2]]
        assert controller.wait(timeout=30) == -signal.SIGKILL
        deadline = time.time() + 10
        while Path(f'/proc/{task_pid}').exists() and time.time() < deadline:
            time.sleep(0.1)
        # Gone, or a zombie waiting for init to reap it: either way no longer running.
        assert not Path(f'/proc/{task_pid}').exists() or \
            Path(f'/proc/{task_pid}/stat').read_text().split()[2] == 'Z'


def test_unknown_or_empty_experiment_directories(tmp_path, monkeypatch):
    from harness.errors import UserInputError

    with pytest.raises(UserInputError, match='does not exist'):
        status.resolve_experiment_dir(str(tmp_path / 'nope'))
    with pytest.raises(UserInputError, match='holds no trials'):
        status.collect(tmp_path)
    (tmp_path / 'results' / 'named').mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert status.resolve_experiment_dir('named') == tmp_path / 'results' / 'named'


def test_last_eval_is_read_from_the_tail_and_a_torn_line_is_ignored(tmp_path):
    path = tmp_path / 'evals.jsonl'
    lines = [json.dumps({'step': step, 'validation/loss': 1.0 / (step + 1)})
             for step in range(2000)]
    # ... and a writer killed mid-line.
    path.write_text('\n'.join(lines) + '\n{"step": 2000, "valid')
    assert status._last_line(path, chunk_bytes=4096)['step'] == 1999
    assert status._last_line(tmp_path / 'missing.jsonl') is None


def test_slurm_states_from_sacct_then_squeue(monkeypatch):
    from types import SimpleNamespace

    answers = {}

    def fake_run(cmd, **kw):
        rc, out, err = answers[cmd[0]]
        return SimpleNamespace(returncode=rc, stdout=out, stderr=err)

    monkeypatch.setattr(status.subprocess, 'run', fake_run)
    answers['sacct'] = (0, 'JobID|State\n12_1|RUNNING\n12_[3-5]|PENDING\n13|CANCELLED by 0\n', '')
    answers['squeue'] = (0, '14_0|PENDING\n', '')
    assert status.slurm_states(['12_1', '12_4', '13', '14_0', '15']) == {
        '12_1': 'RUNNING', '12_4': 'PENDING', '13': 'CANCELLED', '14_0': 'PENDING'}
    # No accounting: squeue alone; ids it no longer knows are simply absent (gone).
    answers['sacct'] = (1, '', 'Slurm accounting storage is disabled')
    answers['squeue'] = (1, '', 'slurm_load_jobs error: Invalid job id specified')
    assert status.slurm_states(['16_0']) == {}
    # Nobody answers: unknown, which is not the same as gone.
    answers['squeue'] = (1, '', 'Unable to contact slurm controller')
    assert status.slurm_states(['16_0']) is None
