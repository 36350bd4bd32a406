"""Launching a suite's trials through submitit: debug, local, or Slurm job arrays.

``run_suite(suite, executor)`` takes the experiment lock, skips finished
trials, re-attaches to trials whose jobs from an earlier driver are still
queued or running, launches the rest, and waits for them:

- ``debug``: in this process, one trial after another (exceptions keep their traceback);
- ``local``: subprocesses, ``parallelism`` at a time (default 1: trials that share
  cores disturb each other's clock);
- ``slurm``: one job array per suite (chunks of ``MAX_ARRAY_TASKS``), one trial
  per array task, ``gpus_per_node`` GPUs each, ``array_parallelism`` at a time.

Every trial runs as a ``TrialTask`` (``submitit.helpers.Checkpointable``):
on preemption or at the time limit submitit calls its ``checkpoint``, which
counts the interruption in ``<trial_dir>/preemptions.json`` (``{"count": N,
"events": [...]}``; the runner reads ``count`` and logs it) and requeues the
same task; ``run_trial`` then resumes from the trial's latest checkpoint with
its accumulated submission time.

The launcher's records (manifest, job ids, lock) live in
``<experiment>/.timetrial/`` (see ``harness.launch.records``). A trial whose job ended
without a ``result.json`` (scancel, OOM, node failure) gets
``<trial_dir>/job_failure.json`` and is reported failed; running the suite
again resumes it. Drivers re-attach to jobs an earlier (killed) driver left
queued or running, so killing a driver loses nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import submitit

from harness import results
from harness.errors import UserInputError
from harness.launch.records import (
    JOB_FAILURE_JSON,
    JOB_JSON,
    PREEMPTIONS_JSON,
    ExperimentLock,
    launch_dir,
    read_jobs,
    write_jobs,
    write_manifest,
)
from harness.launch.status import alive_records, local_job_alive, slurm_states
from harness.launch.suite import Suite, trial_id
from harness.trial import cores
from harness.trial.config import TrialConfig

TRIAL_LOCK = '.trial.lock'
#: Slurm's default MaxArraySize is 1001; larger suites go out as several arrays.
MAX_ARRAY_TASKS = 1000
#: Local jobs have no scheduler limit; submitit's default (2 min) would kill them.
LOCAL_TIMEOUT_MIN = 60 * 24 * 30


def _now() -> str:
    return dt.datetime.now().isoformat(timespec='seconds')


# ---- the task each job runs -----------------------------------------------------------

def _job_id() -> Optional[str]:
    try:
        return submitit.JobEnvironment().job_id
    except Exception:  # noqa: BLE001 — outside a submitit job (debug, tests)
        return None


def record_preemption(trial_dir: Path, job_id: Optional[str], kind: str, n: int = 1) -> int:
    """Count an interruption of this trial; return the new count."""
    path = Path(trial_dir) / PREEMPTIONS_JSON
    data = results.read_json(path) or {'count': 0, 'events': []}
    for _ in range(n):
        data['events'].append({'job_id': job_id, 'kind': kind, 'at': _now(),
                               'host': socket.gethostname()})
    data['count'] = len(data['events'])
    results.atomic_write_json(path, data)
    return data['count']


def _note_slurm_requeues(trial_dir: Path, job_id: Optional[str]) -> None:
    """Requeues that bypassed our handler (Slurm preemption with PreemptMode=REQUEUE,
    node failure) still show in SLURM_RESTART_COUNT: count those too."""
    restarts = int(os.environ.get('SLURM_RESTART_COUNT') or 0)
    if not restarts or job_id is None:
        return
    data = results.read_json(Path(trial_dir) / PREEMPTIONS_JSON) or {'events': []}
    seen = sum(1 for e in data['events'] if e.get('job_id') == job_id)
    if restarts > seen:
        record_preemption(trial_dir, job_id, 'requeued by slurm', restarts - seen)


class TrialTask(submitit.helpers.Checkpointable):
    """One trial as a submitit job; requeued with the same config on preemption.

    ``run_fn`` replaces ``harness.trial.run.run_trial`` (a module-level function, so
    that it pickles): tests and benchmarks use it to launch without training.
    """

    def __init__(self, config: TrialConfig,
                 run_fn: Optional[Callable[[TrialConfig], Dict[str, Any]]] = None):
        self.config = config
        self.run_fn = run_fn

    def __call__(self) -> Dict[str, Any]:
        trial_dir = self.config.trial_dir()
        trial_dir.mkdir(parents=True, exist_ok=True)
        job_id = _job_id()
        # One process per trial directory, even if a stale duplicate job exists.
        fd = os.open(trial_dir / TRIAL_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = results.read_json(trial_dir / JOB_JSON) or {}
                raise RuntimeError(
                    f'Trial {trial_dir} is already running (host {holder.get("host")}, '
                    f'pid {holder.get("pid")}, job {holder.get("job_id")}).') from None
            _note_slurm_requeues(trial_dir, job_id)
            results.atomic_write_json(trial_dir / JOB_JSON, {
                'host': socket.gethostname(), 'pid': os.getpid(), 'job_id': job_id,
                'started_at': _now()})
            if self.run_fn is not None:
                return self.run_fn(self.config)
            from harness.trial.run import run_trial

            return run_trial(self.config)
        finally:
            os.close(fd)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        # Called by submitit's signal handler (preemption or time limit). The runner's
        # own checkpoint (every evaluation and checkpoint_every_s) holds the state; the
        # requeued task resumes from it. Here we only count the interruption.
        count = record_preemption(self.config.trial_dir(), _job_id(), 'signal')
        print(f'event:preempted trial:{trial_id(self.config)} count:{count}', flush=True)
        return super().checkpoint(*args, **kwargs)


def slurm_available() -> bool:
    return shutil.which('sbatch') is not None and shutil.which('srun') is not None


# ---- running jobs ---------------------------------------------------------------------

@dataclasses.dataclass
class Running:
    """A trial whose job is queued or running, as the driver follows it."""

    tid: str
    config: TrialConfig
    job: Any = None                  # a submitit job, or None for a re-attached local job
    record: Optional[Dict[str, Any]] = None   # the jobs.json record of a re-attached local job
    error: Optional[str] = None      # debug: the exception raised in this process
    finished: bool = False

    def done(self) -> bool:
        if self.finished:
            return True
        if self.job is None:
            return not local_job_alive(self.record or {})
        if isinstance(self.job, submitit.DebugJob):
            try:
                self.job.submission().result()
            except Exception:  # noqa: BLE001 — reported as this trial's job failure
                import traceback

                self.error = traceback.format_exc()
            self.finished = True
            return True
        return self.job.done()


def _tail(path: Path, n_lines: int = 25) -> str:
    try:
        lines = Path(path).read_text(encoding='utf-8', errors='replace').splitlines()
    except OSError:
        return ''
    return '\n'.join(lines[-n_lines:])


def job_failure_message(run: Running) -> str:
    if run.error:
        return run.error
    job = run.job
    if job is None:
        pid = (run.record or {}).get('job_id')
        return f'the local job (controller pid {pid}) ended without writing result.json'
    pickle = job.paths.result_pickle
    if pickle.exists():
        from submitit.core.utils import pickle_load

        outcome, payload = pickle_load(pickle)
        if outcome == 'error':
            return f'job {job.job_id} raised:\n{payload}'
        return f'job {job.job_id} returned but the trial wrote no result.json'
    state = job.state if not isinstance(job, submitit.DebugJob) else 'unknown'
    log = _tail(job.paths.stderr)
    return (f'job {job.job_id} ended ({state}) before the trial finished'
            + (f'\nlast lines of {job.paths.stderr}:\n{log}' if log else ''))


def failure_summary(message: str) -> str:
    """One line: a traceback's exception line, else the message's first line."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    if not lines:
        return ''
    if any(ln.startswith('Traceback') for ln in lines):
        return lines[-1][:200]
    return lines[0][:200]


def finish(run: Running, exp_dir: Path) -> Dict[str, Any]:
    """The trial's outcome once its job is done: its result, or a recorded job failure."""
    trial_dir = run.config.trial_dir()
    result = results.read_json(trial_dir / results.RESULT_JSON)
    if result is not None:
        return result
    message = job_failure_message(run)
    failure = {'status': 'failed', 'job_failure': True, 'at': _now(),
               'job_id': getattr(run.job, 'job_id', None) or (run.record or {}).get('job_id'),
               'summary': failure_summary(message), 'error': message}
    results.atomic_write_json(trial_dir / JOB_FAILURE_JSON, failure)
    return failure


# ---- executors ------------------------------------------------------------------------

def make_executor(name: str, suite: Suite, exp_dir: Path):
    folder = launch_dir(exp_dir) / 'logs' / '%j'
    if name == 'debug':
        return submitit.DebugExecutor(folder=folder)
    if name == 'local':
        ex = submitit.LocalExecutor(folder=folder, max_num_timeout=suite.slurm.max_timeouts)
        ex.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        return ex
    if not slurm_available():
        raise UserInputError(slurm_missing_message(suite))
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=suite.slurm.max_timeouts)
    ex.update_parameters(**sbatch_parameters(suite))
    return ex


def slurm_missing_message(suite: Suite) -> str:
    where = (f' ({suite.path}:{suite.executor_line}: executor.default)'
             if suite.executor == 'slurm' and suite.executor_line else '')
    from harness.launch.suite import SUITES_DIR

    name = suite.path.stem if suite.path.parent == SUITES_DIR else str(suite.path)
    return (f'The slurm executor was asked for{where} but there is no Slurm here: `sbatch` and '
            '`srun` are not on PATH. Run from a Slurm login node, or run on this machine with '
            f'`timetrial run {name} --executor local`.')


def sbatch_parameters(suite: Suite) -> Dict[str, Any]:
    """submitit SlurmExecutor parameters from the suite's slurm settings."""
    s = suite.slurm
    params: Dict[str, Any] = {
        'job_name': f'tt-{suite.experiment}', 'time': s.time_limit_min, 'nodes': 1,
        'ntasks_per_node': 1, 'cpus_per_task': s.cpus_per_task,
        'array_parallelism': s.array_parallelism,
    }
    optional = {'partition': s.partition, 'account': s.account, 'qos': s.qos,
                'constraint': s.constraint,
                'gpus_per_node': s.gpus_per_node or None,
                'mem': (f'{int(s.mem_gb)}GB' if s.mem_gb and float(s.mem_gb).is_integer()
                        else f'{int(s.mem_gb * 1024)}MB' if s.mem_gb else None),
                'setup': list(s.setup) or None}
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def submit(executor, name: str, configs: Sequence[TrialConfig], run_fn=None) -> List[Any]:
    """Submit trials; Slurm gets them as arrays (one sbatch per MAX_ARRAY_TASKS)."""
    if name != 'slurm':
        return [executor.submit(TrialTask(c, run_fn)) for c in configs]
    jobs: List[Any] = []
    for start in range(0, len(configs), MAX_ARRAY_TASKS):
        chunk = configs[start:start + MAX_ARRAY_TASKS]
        with executor.batch():
            batch = [executor.submit(TrialTask(c, run_fn)) for c in chunk]
        jobs.extend(batch)
    return jobs


def attach(record: Dict[str, Any], tid: str, config: TrialConfig) -> Running:
    """Follow a job an earlier driver launched."""
    if record['executor'] == 'slurm':
        from submitit.slurm.slurm import SlurmJob

        return Running(tid, config, job=SlurmJob(folder=record['folder'],
                                                 job_id=record['job_id']))
    return Running(tid, config, job=None, record=record)


def job_record(name: str, job: Any, folder: Path, attempt: int) -> Dict[str, Any]:
    return {'executor': name, 'job_id': str(job.job_id), 'host': socket.gethostname(),
            'folder': str(folder), 'submitted_at': _now(), 'attempt': attempt}


# ---- the driver -----------------------------------------------------------------------

@dataclasses.dataclass
class LaunchReport:
    experiment_dir: Path
    outcomes: Dict[str, Dict[str, Any]]     # trial id -> result (or job failure)
    skipped: List[str]                      # finished before this run
    submitted: List[str]
    attached: List[str]
    submit_time_s: float = 0.0
    waited: bool = True

    @property
    def job_failures(self) -> List[str]:
        return [t for t, o in self.outcomes.items() if o.get('job_failure')]


def _with_threads(config: TrialConfig, executor: str, capacity: int) -> TrialConfig:
    """Local trials that run side by side each claim their own cores (cores ÷ parallelism),
    so that they never share a core (harness.trial.cores); on Slurm the job's allocation
    decides, in one process (debug) there is one trial at a time."""
    if executor != 'local' or capacity <= 1 or config.threads is not None:
        return config
    return config.replace(threads=max(1, len(cores.available_cores()) // capacity))


def run_suite(suite: Suite, trials: Sequence[TrialConfig], executor: str, *,
              parallelism: Optional[int] = None, wait: bool = True, poll_s: float = 1.0,
              log: Callable[[str], None] = print, run_fn=None) -> LaunchReport:
    """Launch the unfinished trials and (by default) wait for all of them.

    ``run_fn``: see ``TrialTask`` (tests and benchmarks only).
    """
    exp_dir = suite.experiment_dir()
    with ExperimentLock(exp_dir) as lock:
        if lock.took_over:
            log(f'note: took over the lock of a driver that is gone '
                f'(host {lock.took_over.get("host")}, pid {lock.took_over.get("pid")})')
        write_manifest(exp_dir, suite, trials)
        jobs = read_jobs(exp_dir)
        by_id = {trial_id(c): c for c in trials}
        skipped = [t for t, c in by_id.items()
                   if (c.trial_dir() / results.RESULT_JSON).exists()]
        open_ids = [t for t in by_id if t not in skipped]
        # Whatever executor launched them: a job still queued or running is followed,
        # never launched twice.
        alive = alive_records(jobs, open_ids)
        todo = [by_id[t] for t in open_ids if t not in alive]
        report = LaunchReport(exp_dir, {}, skipped, [trial_id(c) for c in todo], list(alive))
        log(f'launch: experiment:{exp_dir} executor:{executor} trials:{len(by_id)} '
            f'finished:{len(skipped)} reattached:{len(alive)} to_launch:{len(todo)}')
        running = [attach(jobs[t], t, by_id[t]) for t in alive]
        ex = make_executor(executor, suite, exp_dir) if todo else None
        folder = launch_dir(exp_dir) / 'logs' / '%j'
        capacity = (len(todo) if executor == 'slurm'
                    else 1 if executor == 'debug' else (parallelism or suite.parallelism))
        pending = [_with_threads(c, executor, capacity) for c in todo]
        t0 = time.perf_counter()
        if executor == 'slurm' and pending:
            _launch(ex, executor, pending, running, jobs, exp_dir, folder, run_fn)
            pending = []
            report.submit_time_s = time.perf_counter() - t0
            log(f'submitted:{len(todo)} trials as Slurm array(s) in '
                f'{report.submit_time_s:.2f}s; follow with: timetrial status {exp_dir}')
        if not wait:
            report.waited = False
            return report
        try:
            _wait(ex, executor, pending, running, jobs, exp_dir, folder, capacity, poll_s,
                  report, log, run_fn)
        except KeyboardInterrupt:
            if executor == 'slurm':
                log(f'stopped waiting; the jobs keep running on the cluster. Follow them with '
                    f'`timetrial status {exp_dir}`, stop them with `timetrial cancel {exp_dir}`.')
            else:
                log('interrupted; run the same command again to resume where it stopped.')
            raise
        return report


def _launch(ex, executor: str, configs: List[TrialConfig], running: List[Running],
            jobs: Dict[str, Dict[str, Any]], exp_dir: Path, folder: Path, run_fn=None) -> None:
    for c in configs:
        (c.trial_dir() / JOB_FAILURE_JSON).unlink(missing_ok=True)
    for c, job in zip(configs, submit(ex, executor, configs, run_fn)):
        tid = trial_id(c)
        attempt = int(jobs.get(tid, {}).get('attempt', 0)) + 1
        if executor != 'debug':
            jobs[tid] = job_record(executor, job, folder, attempt)
        running.append(Running(tid, c, job=job))
    if executor != 'debug':
        write_jobs(exp_dir, jobs)


def _wait(ex, executor, pending, running, jobs, exp_dir, folder, capacity, poll_s,
          report: LaunchReport, log, run_fn=None) -> None:
    from submitit.slurm.slurm import SlurmJob

    last_sacct = last_gone_check = time.monotonic() - 5.0
    while pending or running:
        free = capacity - len(running)
        if pending and free > 0:
            batch, pending[:] = pending[:free], pending[free:]
            _launch(ex, executor, batch, running, jobs, exp_dir, folder, run_fn)
        slurm_runs = [r for r in running if isinstance(r.job, SlurmJob)]
        if slurm_runs and time.monotonic() - last_sacct >= 5.0:
            # One sacct call for all jobs, at most every 5 s.
            SlurmJob.watcher.update()
            last_sacct = time.monotonic()
        if slurm_runs and time.monotonic() - last_gone_check >= 30.0:
            # Without accounting, submitit never learns that a killed job ended: a job
            # that neither sacct nor squeue knows any more is over.
            known = slurm_states([r.job.job_id for r in slurm_runs])
            for r in slurm_runs if known is not None else []:
                r.finished = r.finished or r.job.job_id not in known
            last_gone_check = time.monotonic()
        still = []
        for run in running:
            if not run.done():
                still.append(run)
                continue
            outcome = finish(run, exp_dir)
            report.outcomes[run.tid] = outcome
            extra = (f' time_to_target_s:{outcome["time_to_target_s"]:.1f}'
                     if outcome.get('time_to_target_s') is not None else '')
            if outcome.get('error') and not outcome.get('job_failure'):
                # result.json's error is one line (`phase: Type: message`); older ones were not.
                extra += f' error:{(str(outcome["error"]).strip().splitlines() or [""])[0]}'
            log(f'done:{run.tid} status:{outcome["status"]}{extra}'
                + (' (job failed: see `timetrial status`)' if outcome.get('job_failure')
                   else ''))
        running[:] = still
        if any(not isinstance(r.job, submitit.DebugJob) for r in running):
            time.sleep(poll_s)


# ---- checks before anything launches ----------------------------------------------------

def preflight(suite: Suite, trials: Sequence[TrialConfig], executor: str, *,
              check_data: bool = True) -> None:
    """Everything that would make launched jobs fail at once, reported together:
    results directories of another configuration, no Slurm, data not prepared."""
    problems: List[str] = []
    for c in trials:
        existing = results.read_identity_mapping(c.trial_dir())
        if existing is None:
            continue
        diffs = [f'{k}: {existing.get(k)!r} there, {v!r} now'
                 for k, v in c.identity().items() if existing.get(k) != v]
        if diffs:
            problems.append(f'{c.trial_dir()} belongs to a different configuration '
                            f'({"; ".join(diffs)}); use another experiment name '
                            '(--experiment) or delete that directory')
    if executor == 'slurm' and not slurm_available():
        problems.append(slurm_missing_message(suite))
    if check_data:
        problems.extend(data_problems(t for t in trials
                                      if not (t.trial_dir() / results.RESULT_JSON).exists()))
    if problems:
        n = len(problems)
        raise UserInputError(f'Cannot launch suite {suite.path}: {n} problem{"s" * (n > 1)}:\n'
                             '  - ' + '\n  - '.join(problems))


def data_problems(trials) -> List[str]:
    """One check per workload/size/variant/data dir (builds the workload: imports its
    framework once, which the trials pay anyway)."""
    from harness import registry
    from harness.prepare import ensure_prepared

    seen, problems = set(), []
    for c in trials:
        key = (c.workload, c.size, c.variant, c.data_dir)
        if key in seen:
            continue
        seen.add(key)
        try:
            workload = registry.make_workload(c.workload, c.framework, c.size, c.variant)
            # `timetrial run` prepares missing data itself (once, in the driver, before
            # any job starts), so the demo is one command on a fresh machine.
            ensure_prepared(workload, c.workload, c.variant, c.data_dir)
        except UserInputError as e:
            problems.append(str(e))
    return problems
