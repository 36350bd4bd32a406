"""Run independent pieces of scoring (reading trials, drawing figures) on several cores.

``fork_map(fn, items, workers)`` is ``[fn(x) for x in items]``, spread over forked
worker processes. Fork, not spawn: a forked worker starts with everything the
parent has imported (pandas, matplotlib: ~1 s to import again) and every frame it
holds, so only the items' indices and the results cross a pipe. ``fn`` may be a
closure: the workers find it in their copy of this module.

Serial, in this process, where forking is not available, not safe, or would not
pay: one worker, one item, a platform other than Linux (macOS's frameworks are not
fork-safe; Windows has no fork), or a process that has imported JAX or PyTorch
(``timetrial submit`` scores in the process that ran the trials): their thread
pools make a forked child liable to deadlock. The results are the same either way
(tests compare both).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, List, Optional, Sequence, TypeVar

T = TypeVar('T')
R = TypeVar('R')

#: (fn, items) of the map in progress, inherited by the forked workers.
_JOB: Optional[tuple] = None


def usable_cores() -> int:
    """Cores this process may run on (a Slurm or taskset limit included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: Multithreaded runtimes after which forking is not safe.
_FORK_UNSAFE_MODULES = ('jax', 'torch', 'tensorflow')


def can_fork() -> bool:
    return (sys.platform.startswith('linux')
            and 'fork' in multiprocessing.get_all_start_methods()
            and not any(name in sys.modules for name in _FORK_UNSAFE_MODULES))


def _call(index: int):
    fn, items = _JOB
    return fn(items[index])


def fork_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int,
    while_waiting: Optional[Callable[[], None]] = None,
) -> List[R]:
    """``[fn(x) for x in items]`` on up to ``workers`` forked processes, in order.

    ``while_waiting()`` runs in this process while the workers work (before them,
    when serial): other work that does not need their results. An exception in
    ``fn`` is raised here, as in the serial loop.
    """
    global _JOB
    workers = min(workers, len(items))
    if workers <= 1 or not can_fork():
        if while_waiting is not None:
            while_waiting()
        return [fn(x) for x in items]
    if _JOB is not None:
        raise RuntimeError('fork_map is not re-entrant')
    _JOB = (fn, items)
    try:
        # Every worker is forked at the first submit (the fork context starts them all
        # at once), so each sees _JOB as set here; map() submits every item at once.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('fork')) as pool:
            pending = pool.map(_call, range(len(items)))
            if while_waiting is not None:
                while_waiting()
            return list(pending)
    finally:
        _JOB = None
