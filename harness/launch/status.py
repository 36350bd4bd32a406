"""Where every trial of one experiment stands (``timetrial status``; ``cancel`` reads it too).

A trial's state comes from its files first, then from its job:

- ``result.json``: the trial's final status (reached, budget_exhausted,
  diverged, failed, training_complete);
- a live job (Slurm state from one ``sacct`` call; a local job's controller
  PID): ``pending``, ``running``, or ``resumed`` when it runs again after a
  preemption or time limit (``preemptions.json``);
- ``job_failure.json``: ``failed`` — the job ended without a result (scancel,
  OOM, node failure); running the suite again resumes it;
- ``unknown``: a Slurm job, and Slurm did not answer (sacct and squeue failed);
- otherwise ``pending`` (never started) or ``stopped`` (has progress, nothing
  runs it: the driver was killed; running the suite again resumes it).

Trials come from the launcher's manifest, plus any trial directory on disk
(single trials run with ``timetrial run --workload ...``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from harness import results
from harness.errors import UserInputError
from harness.launch.records import (
    JOB_FAILURE_JSON,
    PREEMPTIONS_JSON,
    launch_dir,
    pid_alive,
    read_jobs,
    read_manifest,
)

FINAL = ('reached', 'budget_exhausted', 'diverged', 'failed', 'training_complete')


ALIVE_SLURM_STATES = ('PENDING', 'RUNNING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED',
                      'COMPLETING', 'CONFIGURING', 'SUSPENDED', 'RESIZING', 'PREEMPTED',
                      'SIGNALING', 'STAGE_OUT')


# ---- where jobs stand ---------------------------------------------------------------

def slurm_states(job_ids: Sequence[str]) -> Optional[Dict[str, str]]:
    """job id ('123' or '123_4') -> Slurm state, from one sacct call (+ squeue for the
    ones sacct does not know yet). Unknown ids are left out; None if neither answered."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    def query(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None

    ids = sorted({j.split('_')[0] for j in job_ids})
    if not ids:
        return {}
    states: Dict[str, str] = {}
    answered = False
    out = query(['sacct', '-X', '-o', 'JobID,State', '--parsable2', '-j', ','.join(ids)])
    if out is not None and out.returncode == 0:
        answered = True
        info = SlurmInfoWatcher().read_info(out.stdout)
        states.update({j: info[j]['State'].split()[0] for j in job_ids if j in info})
    missing = [j for j in job_ids if j not in states]
    if missing:
        out = query(['squeue', '-h', '-r', '-o', '%i|%T', '-j',
                     ','.join(sorted({j.split('_')[0] for j in missing}))])
        # squeue refuses ids it no longer knows: that too is an answer (they are gone).
        if out is not None and (out.returncode == 0 or 'Invalid job id' in out.stderr):
            answered = True
            for line in out.stdout.splitlines():
                jid, _, state = line.partition('|')
                if jid in missing:
                    states[jid] = state.strip()
    return states if answered else None


def local_job_alive(record: Dict[str, Any]) -> Optional[bool]:
    """A local job's controller still runs (None: it ran on another host, cannot tell)."""
    if record.get('host') != socket.gethostname():
        return None
    pid = int(record.get('job_id') or -1)
    if pid <= 0 or not pid_alive(pid):
        return False
    try:
        cmdline = Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError:
        return True
    return b'submitit' in cmdline


def alive_records(jobs: Dict[str, Dict[str, Any]], tids: Sequence[str]) -> Dict[str, str]:
    """Trial id -> state for trials whose recorded job is still queued or running."""
    alive: Dict[str, str] = {}
    slurm_ids = {tid: jobs[tid]['job_id'] for tid in tids
                 if tid in jobs and jobs[tid].get('executor') == 'slurm'}
    states = (slurm_states(list(slurm_ids.values())) or {}) if slurm_ids else {}
    for tid, jid in slurm_ids.items():
        if states.get(jid, '').upper() in ALIVE_SLURM_STATES:
            alive[tid] = states[jid].upper()
    for tid in tids:
        if tid in jobs and jobs[tid].get('executor') == 'local' and local_job_alive(jobs[tid]):
            alive[tid] = 'RUNNING'
    return alive


@dataclasses.dataclass
class TrialStatus:
    trial: str
    state: str
    job_id: Optional[str] = None
    preemptions: int = 0
    step: Optional[int] = None
    submission_time_s: Optional[float] = None
    metric: Optional[str] = None
    metric_value: Optional[float] = None
    note: str = ''


def resolve_experiment_dir(name_or_path: str) -> Path:
    """An experiment directory, or an experiment name under ./results."""
    path = Path(name_or_path).expanduser()
    if not path.is_dir() and (Path('results') / name_or_path).is_dir():
        path = Path('results') / name_or_path
    if not path.is_dir():
        raise UserInputError(f'Experiment directory {name_or_path} does not exist; give '
                             'results/<experiment> (as printed by `timetrial run`).')
    return path.resolve()


def _trial_dirs_on_disk(exp_dir: Path) -> Dict[str, Path]:
    found = {}
    for trial_dir in exp_dir.glob('*/*/study_*/trial_*'):
        if results.has_identity(trial_dir):
            found[str(trial_dir.relative_to(exp_dir))] = trial_dir
    return found


def _last_line(path: Path, chunk_bytes: int = 65536) -> Optional[Dict[str, Any]]:
    """The last complete JSON line of a (possibly long) evals.jsonl, reading only its tail."""
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chunk_bytes))
            tail = f.read().decode('utf-8', 'replace')
    except OSError:
        return None
    complete = tail[:tail.rfind('\n') + 1] if '\n' in tail else ''
    for line in reversed(complete.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def collect(exp_dir: Path) -> List[TrialStatus]:
    exp_dir = Path(exp_dir)
    trial_dirs = {tid: c.trial_dir() for tid, c in read_manifest(exp_dir).items()}
    for tid, path in _trial_dirs_on_disk(exp_dir).items():
        trial_dirs.setdefault(tid, path)
    if not trial_dirs:
        raise UserInputError(f'{exp_dir} holds no trials (no {launch_dir(exp_dir).name}/trials.json '
                             'and no trial directories); give results/<experiment>.')
    jobs = read_jobs(exp_dir)
    open_ids = [t for t, d in trial_dirs.items() if not (d / results.RESULT_JSON).exists()]
    slurm_ids = [jobs[t]['job_id'] for t in open_ids
                 if jobs.get(t, {}).get('executor') == 'slurm']
    # None: Slurm did not answer, so its jobs' states are unknown (not "stopped").
    states = slurm_states(slurm_ids) if slurm_ids else {}
    return [_one(tid, trial_dirs[tid], jobs.get(tid), states) for tid in sorted(trial_dirs)]


def _one(tid: str, trial_dir: Path, job: Optional[Dict[str, Any]],
         slurm: Optional[Dict[str, str]]) -> TrialStatus:
    preempt = results.read_json(trial_dir / PREEMPTIONS_JSON) or {}
    st = TrialStatus(tid, 'pending', job_id=(job or {}).get('job_id'),
                     preemptions=int(preempt.get('count', 0)))
    try:
        identity = results.read_identity_mapping(trial_dir) or {}
    except ValueError:  # unreadable: the table still shows the rest
        identity = {}
    st.metric = (identity.get('target') or {}).get('metric')
    last = _last_line(trial_dir / results.EVALS_JSONL)
    if last:
        st.step, st.submission_time_s = last.get('step'), last.get('submission_time_s')
        st.metric_value = last.get(st.metric) if st.metric else None
    result = results.read_json(trial_dir / results.RESULT_JSON)
    if result is not None:
        st.state = result.get('status', 'failed')
        if result.get('final_step') is not None:
            st.step = result['final_step']
        st.submission_time_s = result.get('submission_time_s', st.submission_time_s)
        if st.state == 'reached' and result.get('time_to_target_s') is not None:
            st.note = f'time to target {result["time_to_target_s"]:.1f}s'
        elif result.get('error'):
            st.note = str(result['error']).splitlines()[0][:120]
        return st
    live = None
    slurm_job = bool(job) and job.get('executor') == 'slurm'
    if slurm_job:
        live = (slurm or {}).get(job['job_id'], '').upper() or None
        live = live if live in ALIVE_SLURM_STATES else None
    elif job and job.get('executor') == 'local' and local_job_alive(job):
        live = 'RUNNING'
    if live == 'RUNNING' or live == 'COMPLETING':
        st.state = 'resumed' if st.preemptions else 'running'
    elif live:
        st.state = 'pending'
        st.note = live.lower() + (' (requeued)' if st.preemptions else '')
    elif (failure := results.read_json(trial_dir / JOB_FAILURE_JSON)) is not None:
        st.state = 'failed'
        st.note = failure.get('summary') or str(failure.get('error', '')).split('\n')[0][:120]
    elif slurm_job and slurm is None:
        st.state = 'unknown'
        st.note = 'Slurm did not answer (sacct, squeue); check with `squeue`'
    elif job or results.has_identity(trial_dir):
        st.state = 'stopped'
        st.note = 'not running; run the suite again to resume'
    return st
