"""The CPU cores a trial trains on, and both frameworks' thread counts set from them.

Two trials that share cores slow each other's clocks. A trial is given cores:
all the process may use (``os.sched_getaffinity``; in a Slurm job, the CPUs
the job was allocated — ``SLURM_CPUS_PER_TASK`` — since a cluster whose
``TaskPlugin`` does not bind jobs leaves every job the whole node's mask), or
``threads`` of them (``--threads``, the suite's ``threads:``,
or the local executor's cores ÷ parallelism). The trial *claims* its cores
— one lock file per core, held with ``flock`` for the trial's lifetime, so a
killed trial frees its cores — and, with fewer than all, pins its process to
them: a second trial on this machine gets other cores, or a clear refusal. The frameworks then size their
thread pools from the pinned cores: PyTorch's intra-op threads are set to the
count, XLA sizes its CPU pool from the affinity mask when it starts (a JAX
already started in this process keeps its pool, confined to the claimed cores).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional

from harness.errors import UserInputError


def available_cores() -> List[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def allocated_count(available: List[int]) -> int:
    """How many of ``available`` this process may train on when no thread count is given.

    In a Slurm job: the CPUs Slurm allocated to the task. With ``TaskPlugin=task/none``
    (no cgroups, as on small or containerised clusters) the job's affinity is the whole
    node, so two jobs sharing the node would both claim every core, and the second
    would be refused. Claiming the allocation instead gives each its own cores.
    """
    if not os.environ.get('SLURM_JOB_ID'):
        return len(available)
    for var in ('SLURM_CPUS_PER_TASK', 'SLURM_JOB_CPUS_PER_NODE'):
        # SLURM_JOB_CPUS_PER_NODE reads like "2" or "2(x3)": the first count is this node's.
        text = os.environ.get(var, '').split('(')[0].split(',')[0].strip()
        if text.isdigit() and int(text) >= 1:
            return min(int(text), len(available))
    return len(available)


#: Where the per-core lock files live; one directory per machine (and user) by default.
LOCK_DIR_ENV = 'TIMETRIAL_CORES_LOCK_DIR'


def _lock_dir() -> Path:
    path = Path(os.environ.get(LOCK_DIR_ENV)
                or Path(tempfile.gettempdir()) / f'timetrial-cores-{os.getuid()}')
    path.mkdir(parents=True, exist_ok=True)
    return path


def _set_threads(n: int) -> None:
    for var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
        os.environ[var] = str(n)
    torch = sys.modules.get('torch')
    if torch is not None:
        torch.set_num_threads(n)


@contextlib.contextmanager
def claimed(threads: Optional[int]) -> Iterator[List[int]]:
    """Pin this process to the trial's cores for the ``with`` block; yields them.

    ``threads=None`` claims every core the process may use (in a Slurm job, as many as
    it was allocated: ``allocated_count``). Raises UserInputError
    when fewer cores are free than asked for: trials would share cores and disturb
    each other's timing.
    """
    available = available_cores()
    if threads is not None and threads < 1:
        raise UserInputError(f'threads must be at least 1, got {threads}.')
    threads = allocated_count(available) if threads is None else min(threads, len(available))
    held = []
    try:
        for core in available:
            if len(held) == threads:
                break
            handle = open(_lock_dir() / f'core-{core}.lock', 'a')
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            held.append((core, handle))
        if len(held) < threads:
            raise UserInputError(
                f'This trial asks for {threads} core(s) of its own, but only {len(held)} of '
                f'the cores {available} are free (other TimeTrial trials hold the rest). Run '
                'fewer trials at once (--parallelism), or fewer threads per trial (--threads).')
        cores = [core for core, _ in held]
        if cores != available:
            os.sched_setaffinity(0, cores)
        _set_threads(len(cores))
        try:
            yield cores
        finally:
            if cores != available:
                os.sched_setaffinity(0, available)
    finally:
        for _, handle in held:
            handle.close()
