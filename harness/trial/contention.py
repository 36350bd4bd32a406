"""How much the machine disturbed a trial's timing, measured from the kernel's own counters.

A trial that shares its cores with another job runs slower through no fault of
its algorithm (a PyTorch trial that shared 2 cores with another job ran at
2 s per step instead of 0.15 s). Two measurements over the trial's training
windows (from one evaluation to the next; evaluation is off the clock and left
out):

- ``other_cpu_share``: the CPU time *other* processes used on the trial's cores
  (the cores' busy time in ``/proc/stat``, steal included, less the trial's own
  CPU time), over the window's wall time × the trial's cores. It is the
  measurement the flag uses: 0 on an idle machine, whatever the trial's own
  threads do.
- ``run_queue_share``: the time the trial's threads spent *runnable but waiting
  for a CPU* (Linux ``/proc/self/task/*/schedstat``, second field), over the
  window's wall time × the threads the trial was given. Another busy process on
  the same cores raises it at once, but so does a framework running more threads
  than cores (XLA's pools: 0.05-0.06 for a quiet JAX ctr trial on 2 cores), so it
  is the flag's measure only where /proc/stat cannot be read.
- ``cpu_share``: the process's CPU time over wall time × threads: how busy the
  given cores were kept (low on an idle machine too, when a step is mostly
  Python or waits for a GPU — so it is reported, not used for the flag).

The 1-minute load average is sampled at the window ends (its maximum is kept).
A trial is ``timing_disturbed`` when other processes used more than
``DISTURBED_OTHER_CPU_SHARE`` of its cores' time (without /proc/stat: when its
threads waited for a CPU more than ``DISTURBED_RUN_QUEUE_SHARE`` of their time;
idle PyTorch trials stay under 0.02, a trial sharing its cores with one
CPU-bound process is above 0.3).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict, Optional

#: Other processes' CPU time above this share of the trial's cores' time flags its timing.
DISTURBED_OTHER_CPU_SHARE = 0.05
#: Without /proc/stat: run-queue wait above this share of the trial's thread time.
DISTURBED_RUN_QUEUE_SHARE = 0.05
_TASKS = Path('/proc/self/task')
_STAT = Path('/proc/stat')


def cores_busy_s(cores) -> Optional[float]:
    """Seconds the given CPUs have been busy since boot, any process (None off Linux)."""
    try:
        lines = _STAT.read_text().splitlines()
        ticks_per_s = os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError):
        return None
    wanted = {f'cpu{c}' for c in cores}
    busy = 0
    found = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            # user nice system idle iowait irq softirq steal ...: all but idle and iowait.
            values = [int(v) for v in fields[1:9]]
            busy += sum(values) - values[3] - values[4]
            found += 1
    return busy / ticks_per_s if found else None


def run_queue_wait_s() -> Optional[float]:
    """Seconds this process's threads have spent runnable, waiting for a CPU (None off Linux)."""
    total_ns = 0
    try:
        tasks = list(_TASKS.iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            fields = (task / 'schedstat').read_text().split()
        except OSError:
            continue  # the thread ended
        if len(fields) >= 2:
            total_ns += int(fields[1])
    return total_ns / 1e9


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class ContentionMeter:
    """Accumulates windows of training; ``summary()`` gives the trial's shares and flag."""

    def __init__(self, threads: int, wall_clock=time.monotonic, cores=None):
        self.threads = max(1, int(threads))
        if cores is None:
            try:
                cores = sorted(os.sched_getaffinity(0))
            except AttributeError:
                cores = []
        self.cores = list(cores)
        self.other_s: Optional[float] = 0.0
        self.wall_clock = wall_clock
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.wait_s: Optional[float] = 0.0
        self.load_average: Optional[float] = None
        self._start: Optional[Dict[str, Optional[float]]] = None

    def _sample(self) -> Dict[str, Optional[float]]:
        return {'wall': self.wall_clock(), 'cpu': _cpu_s(), 'wait': run_queue_wait_s(),
                'busy': cores_busy_s(self.cores) if self.cores else None}

    def start(self) -> None:
        """A training window starts (after setup, or after an evaluation)."""
        self._start = self._sample()

    def stop(self) -> None:
        """The window ends (an evaluation, or the end): add it."""
        if self._start is None:
            return
        end = self._sample()
        self.wall_s += end['wall'] - self._start['wall']
        self.cpu_s += end['cpu'] - self._start['cpu']
        if self.wait_s is not None and end['wait'] is not None and self._start['wait'] is not None:
            self.wait_s += end['wait'] - self._start['wait']
        else:
            self.wait_s = None
        if self.other_s is not None and end['busy'] is not None \
                and self._start['busy'] is not None:
            own_s = end['cpu'] - self._start['cpu']
            self.other_s += max(0.0, (end['busy'] - self._start['busy']) - own_s)
        else:
            self.other_s = None
        try:
            load = os.getloadavg()[0]
            self.load_average = load if self.load_average is None else max(load,
                                                                            self.load_average)
        except OSError:
            pass  # no load average on this system: the field stays None
        self._start = None

    def state_dict(self) -> Dict[str, Optional[float]]:
        return {'wall_s': self.wall_s, 'cpu_s': self.cpu_s, 'wait_s': self.wait_s,
                'other_s': self.other_s, 'load_average': self.load_average}

    def load_state_dict(self, state: Dict[str, Optional[float]]) -> None:
        self.wall_s = state.get('wall_s', 0.0)
        self.cpu_s = state.get('cpu_s', 0.0)
        self.wait_s = state.get('wait_s', 0.0)
        # A checkpoint of an older TimeTrial that trained has no other_s: unknown then.
        self.other_s = state.get('other_s', None if self.wall_s else 0.0)
        self.load_average = state.get('load_average')

    def summary(self) -> Dict[str, Optional[float]]:
        if self.wall_s <= 0:
            return {'cpu_share': None, 'run_queue_share': None, 'other_cpu_share': None,
                    'load_average': None, 'timing_disturbed': None}
        capacity_s = self.wall_s * self.threads
        run_queue = None if self.wait_s is None else self.wait_s / capacity_s
        other = (None if self.other_s is None or not self.cores
                 else self.other_s / (self.wall_s * len(self.cores)))
        if other is not None:
            disturbed = bool(other > DISTURBED_OTHER_CPU_SHARE)
        else:
            disturbed = None if run_queue is None else bool(run_queue > DISTURBED_RUN_QUEUE_SHARE)
        return {
            'cpu_share': self.cpu_s / capacity_s,
            'run_queue_share': run_queue,
            'other_cpu_share': other,
            'load_average': self.load_average,
            'timing_disturbed': disturbed,
        }
