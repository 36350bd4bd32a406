"""The launcher's records in an experiment directory, and its one-driver lock.

``<experiment>/.timetrial/`` holds ``driver.lock`` (below), ``trials.json``
(the planned trials and their configurations; a later launch adds to it),
``jobs.json`` (per trial: executor, job id, host, submitit log folder),
``suite.yaml`` (the suite as launched) and ``logs/`` (submitit's). Records are
written atomically (temp file + rename).

One driver per experiment: an fcntl lock file in the experiment directory.

``timetrial run`` holds ``<experiment>/.timetrial/driver.lock`` while it
launches and waits; a second driver on the same experiment refuses with the
holder's host and PID instead of launching the same trials twice. The lock is
``fcntl.flock`` on the file: the kernel releases it when its process dies, even
by SIGKILL, so a stale lock file from a dead driver is simply taken over. (Not
``lockf``: a POSIX record lock is dropped as soon as the process closes *any*
descriptor of the file, e.g. by reading the holder record. On NFS, Linux maps
flock to a server-side lock, so drivers on two hosts exclude each other too.) The file's content (host, pid, start
time, command) is information for people and for ``timetrial status`` /
``cancel``, not the lock itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence

if TYPE_CHECKING:
    from harness.launch.suite import Suite

from harness import results
from harness.errors import UserInputError
from harness.trial.config import TrialConfig

LOCK_NAME = 'driver.lock'
#: Files the launcher keeps in each trial directory, beside the runner's (names in
#: harness.results): preemptions.json {"count": N, "events": [...]} (the runner reads
#: count); job.json (host, pid, job id of the process running the trial);
#: job_failure.json (the job ended without result.json: scancel, OOM, ...).
PREEMPTIONS_JSON = results.PREEMPTIONS_JSON
JOB_JSON = results.JOB_JSON
JOB_FAILURE_JSON = results.JOB_FAILURE_JSON


def launch_dir(experiment_dir: Path) -> Path:
    """Where the launcher keeps its records (hidden, so scoring never sees a submission)."""
    return Path(experiment_dir) / '.timetrial'


def lock_path(experiment_dir: Path) -> Path:
    return launch_dir(experiment_dir) / LOCK_NAME


def read_holder(experiment_dir: Path) -> Optional[Dict[str, Any]]:
    """The last holder's record (it may be gone: see ``holder_alive``)."""
    try:
        text = lock_path(experiment_dir).read_text(encoding='utf-8')
        return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None


# ---- records ----------------------------------------------------------------------------

def manifest_path(exp_dir: Path) -> Path:
    return launch_dir(exp_dir) / 'trials.json'


def jobs_path(exp_dir: Path) -> Path:
    return launch_dir(exp_dir) / 'jobs.json'


def read_manifest(exp_dir: Path) -> Dict[str, TrialConfig]:
    data = results.read_json(manifest_path(exp_dir)) or {}
    return {tid: TrialConfig(**cfg) for tid, cfg in data.get('trials', {}).items()}


def write_manifest(exp_dir: Path, suite: 'Suite', trials: Sequence[TrialConfig]) -> None:
    """Union with earlier launches: a suite extended later keeps its old trials listed."""
    from harness.launch.suite import trial_id

    known = {tid: dataclasses.asdict(c) for tid, c in read_manifest(exp_dir).items()}
    known.update({trial_id(c): dataclasses.asdict(c) for c in trials})
    results.atomic_write_json(manifest_path(exp_dir), {
        'experiment': suite.experiment, 'suite': str(suite.path),
        'updated_at': dt.datetime.now().isoformat(timespec='seconds'),
        'trials': known})
    results.atomic_write_text(launch_dir(exp_dir) / 'suite.yaml',
                              suite.path.read_text(encoding='utf-8'))


def read_jobs(exp_dir: Path) -> Dict[str, Dict[str, Any]]:
    return (results.read_json(jobs_path(exp_dir)) or {}).get('trials', {})


def write_jobs(exp_dir: Path, jobs: Dict[str, Dict[str, Any]]) -> None:
    results.atomic_write_json(jobs_path(exp_dir), {'trials': jobs})


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_alive(holder: Optional[Dict[str, Any]]) -> Optional[bool]:
    """True/False on this host; None if the holder ran on another host (cannot tell)."""
    if not holder:
        return False
    if holder.get('host') != socket.gethostname():
        return None
    return pid_alive(int(holder.get('pid', -1)))


class ExperimentLock:
    """``with ExperimentLock(exp_dir): ...`` — refuses if another driver holds it."""

    def __init__(self, experiment_dir: Path):
        self.experiment_dir = Path(experiment_dir)
        self.path = lock_path(experiment_dir)
        self._fd: Optional[int] = None
        #: The dead driver whose lock file this one took over, if any.
        self.took_over: Optional[Dict[str, Any]] = None

    def acquire(self) -> 'ExperimentLock':
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise UserInputError(
                    f'Cannot lock {self.path}: {e.strerror}. The experiment directory must be '
                    'on a file system with locks (local disk, or NFS with lockd).') from None
            holder = read_holder(self.experiment_dir) or {}
            raise UserInputError(
                f'Experiment {self.experiment_dir} is in use by another `timetrial run` '
                f'(host {holder.get("host", "?")}, pid {holder.get("pid", "?")}, since '
                f'{holder.get("started_at", "?")}). Two drivers would launch the same trials '
                'twice. Wait for it to finish, follow it with `timetrial status '
                f'{self.experiment_dir}`, or stop it with `timetrial cancel '
                f'{self.experiment_dir}`.') from None
        # Locked. A previous content is a driver that died without cleaning up.
        previous = os.pread(fd, 4096, 0).decode('utf-8', 'replace').strip()
        if previous:
            try:
                self.took_over = json.loads(previous)
            except ValueError:
                self.took_over = {'raw': previous}
        record = {'host': socket.gethostname(), 'pid': os.getpid(),
                  'started_at': dt.datetime.now().isoformat(timespec='seconds'),
                  'argv': sys.argv}
        data = json.dumps(record).encode('utf-8')
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        # Empty the record first: an empty file means "no driver".
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> 'ExperimentLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
