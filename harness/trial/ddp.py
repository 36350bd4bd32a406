"""PyTorch DDP for one trial: one process per device, launched and supervised here.

A trial that runs on several devices in PyTorch is ``world`` processes on one
node (the GPUs the job was given; on a CPU-only machine, ``devices: N`` gloo
processes, which is how the tests check DDP without GPUs):

- ``run_ranks`` (the trial's own process) starts the ranks as fresh
  interpreters and waits. If one rank fails, the others are
  stopped (a rank blocked in a collective would otherwise wait forever) and the
  trial is recorded as failed with that rank's error. Ranks die with the
  process that spawned them (``PR_SET_PDEATHSIG``), so a SIGKILLed or preempted
  trial never leaves a rank training — and writing checkpoints — behind.
- Every rank builds the workload, loads the submission and the checkpoint, and
  runs the same ``TrialRunner``. The model is wrapped in
  ``DistributedDataParallel``; each rank draws the same global batch and trains
  on its own rows (``workloads._common.torch_utils.local_rows``), so the data
  order and the resume position are those of one process.
- The clock: each rank times its own step; the step's time is the maximum over
  ranks (``agree_max``), so every rank adds the same time and takes the same
  decisions (evaluate, stop, diverged). Every step starts with a barrier, so
  that no rank's clock runs while the writer is still checkpointing or logging
  (it would wait for the writer inside DDP's all-reduce, on the clock). Evaluation runs on every rank on the
  full validation data and the writer's metrics are the ones used.
- Rank 0 is the writer: trial.log, evals.jsonl, checkpoints, error.txt.

Rendezvous is a file in a fresh temporary directory (no port to collide).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ctypes
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Dict, Optional

import torch
import torch.distributed as dist

from harness import results
from harness.trial.in_process import train_in_process

_PR_SET_PDEATHSIG = 1



def run_ranks(config, world: int, *, resumed: bool) -> results.TrialResult:
    """Run ``config`` as ``world`` DDP processes; return rank 0's result (or the failure).

    Ranks are fresh interpreters (``python -m harness.trial.ddp``), not
    multiprocessing children: a user's script or notebook that calls
    ``run_trial`` needs no ``if __name__ == '__main__'`` guard.
    """
    with tempfile.TemporaryDirectory(prefix='timetrial-ddp-') as tmp:
        job = Path(tmp) / 'job.pkl'
        job.write_bytes(pickle.dumps({'config': config, 'world': world, 'resumed': resumed,
                                      'init_file': str(Path(tmp) / 'rendezvous')}))
        command = [sys.executable, '-m', __name__, str(job), str(os.getpid())]
        # The ranks import this very TimeTrial, installed or not, from any working directory.
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
            p for p in (root, os.environ.get('PYTHONPATH')) if p)}
        procs = [subprocess.Popen(command + [str(r)], env=env) for r in range(world)]
        exit_error = None
        try:
            while any(p.poll() is None for p in procs):
                for r, p in enumerate(procs):
                    if exit_error is None and p.returncode not in (None, 0):
                        # The others may be blocked in a collective with the dead rank.
                        exit_error = f'DDP rank {r} exited with code {p.returncode}'
                        for other in procs:
                            if other.poll() is None:
                                other.terminate()
                time.sleep(0.1)
            for r, p in enumerate(procs):
                if exit_error is None and p.returncode != 0:
                    exit_error = f'DDP rank {r} exited with code {p.returncode}'
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        reports = {}
        for r in range(world):
            path = Path(tmp) / f'rank_{r}.pkl'
            if path.exists():
                reports[r] = pickle.loads(path.read_bytes())
    return _collect(config, world, reports, exit_error)


def _collect(config, world: int, reports: Dict[int, Dict[str, Any]],
             exit_error: Optional[str]) -> results.TrialResult:
    # The first rank to fail is the cause; the others usually fail after it, in a
    # collective whose peer is gone.
    failed = sorted((reports[r]['finished_at'], r) for r in reports
                    if reports[r]['result'].status == 'failed')
    chosen = failed[0][1] if failed else 0
    if chosen in reports and (failed or exit_error is None):
        report = reports[chosen]
        result = dataclasses.replace(report['result'])
        if chosen != 0 and result.error:
            result.error = f'rank {chosen}: {result.error}'
        if chosen != 0 and report.get('traceback'):
            results.atomic_write_text(config.trial_dir() / results.ERROR_FILE,
                                      f'DDP rank {chosen} of {world}:\n{report["traceback"]}')
    else:
        missing = sorted(set(range(world)) - set(reports))
        error = exit_error or f'DDP ranks {missing} ended without a result'
        result = results.TrialResult.failed(f'harness error: {error}')
        results.atomic_write_text(config.trial_dir() / results.ERROR_FILE, error + '\n')
    result.ddp_processes = world
    return result


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this rank when the process that spawned it dies."""
    # Not Linux (no prctl): run_ranks still kills its ranks on its way out, but a
    # SIGKILLed trial process would leave them running.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _rank_main(job_path: str, parent_pid: int, rank_index: int) -> None:
    _die_with_parent(parent_pid)
    job = pickle.loads(Path(job_path).read_bytes())
    world = job['world']
    os.environ.update({'LOCAL_RANK': str(rank_index), 'RANK': str(rank_index),
                       'WORLD_SIZE': str(world), 'LOCAL_WORLD_SIZE': str(world)})
    if torch.cuda.is_available():
        backend = 'nccl'
        torch.cuda.set_device(rank_index)
    else:
        backend = 'gloo'
        # Ranks share the trial's cores: each keeps its own slice of them (or shares
        # when there are fewer cores than ranks), so no rank starts a thread per core.
        trial_cores = sorted(os.sched_getaffinity(0))
        per_rank = max(1, len(trial_cores) // world)
        mine = trial_cores[(rank_index * per_rank) % len(trial_cores):][:per_rank]
        os.sched_setaffinity(0, mine)
        torch.set_num_threads(len(mine))
    dist.init_process_group(backend, init_method=f'file://{job["init_file"]}',
                            rank=rank_index, world_size=world)
    report: Dict[str, Any] = {'rank': rank_index}
    try:
        result, error_traceback = train_in_process(job['config'], resumed=job['resumed'])
        report.update(result=result, traceback=error_traceback)
    except BaseException as e:  # noqa: BLE001 — reported to the trial's process
        report.update(result=results.TrialResult.failed(f'{type(e).__name__}: {e}'),
                      traceback=traceback.format_exc())
    report['finished_at'] = time.time()
    out = Path(job_path).with_name(f'rank_{rank_index}.pkl')
    out.with_suffix('.tmp').write_bytes(pickle.dumps(report))
    out.with_suffix('.tmp').replace(out)
    if report['result'].status == 'failed':
        # The other ranks may be blocked in a collective: exit non-zero so that the
        # trial's process stops them now rather than at a collective timeout.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    dist.destroy_process_group()


if __name__ == '__main__':
    _rank_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
