"""Stop an experiment: its driver first, then every queued or running job (``timetrial cancel``).

Slurm jobs get ``scancel``; local jobs' submitit controllers get SIGINT, then
SIGKILL after a grace period. Each cancelled trial gets a ``job_failure.json``
(state ``failed`` in ``timetrial status``); running the suite again resumes it
from its last checkpoint. A Slurm job whose state Slurm did not report is named,
not cancelled blindly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List

from harness import results
from harness.launch.records import (
    JOB_FAILURE_JSON,
    holder_alive,
    read_holder,
    read_jobs,
    read_manifest,
)
from harness.launch.status import collect, local_job_alive


def _stop_driver(exp_dir: Path, log) -> None:
    """SIGTERM the driver first, so that it launches nothing more while jobs are cancelled."""
    holder = read_holder(exp_dir)
    alive = holder_alive(holder)
    if alive is None:
        log(f'note: the driver runs on host {holder.get("host")} (pid {holder.get("pid")}); '
            'stop it there. Slurm drivers submit everything at once, so cancelling the jobs '
            'is enough for them.')
        return
    if not alive:
        return
    pid = int(holder['pid'])
    try:
        cmdline = Path(f'/proc/{pid}/cmdline').read_bytes()
    except OSError:
        cmdline = b''
    if cmdline and b'python' not in cmdline and b'timetrial' not in cmdline:
        log(f'note: pid {pid} from the lock file is not a timetrial driver; left alone')
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if holder_alive(holder) is False:
            break
        time.sleep(0.1)
    log(f'stopped driver pid {pid}')


def _descendants(pid: int) -> List[int]:
    """Every process below ``pid`` (Linux /proc), deepest last."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f'/proc/{parent}/task').glob('*'):
            try:
                kids = [int(k) for k in (task / 'children').read_text().split()]
            except (OSError, ValueError):
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


def _stop_local_controllers(records: List[Dict[str, Any]], grace_s: float) -> None:
    """SIGINT each controller (submitit's local controller then stops its task), and
    SIGKILL what still runs after ``grace_s``: a controller started from a
    non-interactive shell's background job inherits SIGINT *ignored* and would
    never stop otherwise. A killed trial resumes from its last checkpoint."""
    trees = {int(r['job_id']): _descendants(int(r['job_id'])) for r in records}
    for pid in trees:
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(local_job_alive(r) for r in records):
        time.sleep(0.1)
    for record in records:
        if local_job_alive(record):
            pid = int(record['job_id'])
            for victim in [pid, *trees[pid]]:
                with contextlib.suppress(ProcessLookupError):  # already gone
                    os.kill(victim, signal.SIGKILL)


def cancel(exp_dir: Path, log=print, grace_s: float = 10.0) -> List[str]:
    """Stop the driver and every queued or running job of the experiment; return trial ids."""
    exp_dir = Path(exp_dir)
    _stop_driver(exp_dir, log)
    statuses = {s.trial: s for s in collect(exp_dir)}
    jobs = read_jobs(exp_dir)
    manifest = read_manifest(exp_dir)
    live = [t for t, s in statuses.items() if s.state in ('running', 'resumed', 'pending')
            and t in jobs]
    slurm_ids = [jobs[t]['job_id'] for t in live if jobs[t].get('executor') == 'slurm']
    if slurm_ids:
        subprocess.run(['scancel', *slurm_ids], check=False, timeout=60)
    local = [t for t in live if jobs[t].get('executor') == 'local' and local_job_alive(jobs[t])]
    if local:
        _stop_local_controllers([jobs[t] for t in local], grace_s)
    cancelled = []
    for t in live:
        record = jobs[t]
        if record.get('executor') not in ('slurm', 'local') or (
                record.get('executor') == 'local' and t not in local):
            continue
        cancelled.append(t)
        log(f'cancelled:{t} job:{record["job_id"]}')
        trial_dir = manifest[t].trial_dir() if t in manifest else exp_dir / t
        results.atomic_write_json(trial_dir / JOB_FAILURE_JSON, {
            'status': 'failed', 'job_failure': True, 'job_id': record['job_id'],
            'summary': 'cancelled by `timetrial cancel`; run the suite again to resume',
            'error': 'cancelled by `timetrial cancel`'})
    unknown = sorted(jobs[t]['job_id'] for t, s in statuses.items() if s.state == 'unknown')
    if unknown:
        log(f'note: Slurm did not answer (sacct and squeue failed), so whether job(s) '
            f'{" ".join(unknown)} still run is unknown; check with `squeue` and cancel them '
            'with `scancel`')
    elif not cancelled:
        log('nothing to cancel: no queued or running job')
    return cancelled
