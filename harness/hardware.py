"""Hardware fingerprint of the machine a trial runs on, and its short class name.

Scoring compares only trials of one hardware class: two machines of one class
must give comparable times (same accelerator model and count, same CPU model
and core count). Memory and library versions are recorded but not part of the
class (they are shown in the report).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import socket
import subprocess
from functools import lru_cache
from importlib import metadata
from typing import Any, Dict, Optional

from harness import results

LIBRARIES = ('numpy', 'jax', 'jaxlib', 'flax', 'optax', 'torch', 'submitit', 'timetrial')


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _memory_gib() -> Optional[float]:
    try:
        with open('/proc/meminfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('MemTotal:'):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _gpus() -> list:
    """NVIDIA GPUs via nvidia-smi (no framework import; works for both)."""
    try:
        out = subprocess.run(
            ['nvidia-smi', '--query-gpu=name,memory.total', '--format=csv,noheader,nounits'],
            capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, _, mem = line.partition(',')
        gpus.append({'name': name.strip(), 'memory_mib': int(float(mem.strip() or 0))})
    return gpus


def _versions() -> Dict[str, Optional[str]]:
    versions = {'python': platform.python_version()}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return versions


@lru_cache(maxsize=1)
def fingerprint() -> Dict[str, Any]:
    gpus = _gpus()
    return {
        'accelerator': gpus[0]['name'] if gpus else None,
        'accelerator_count': len(gpus),
        'accelerator_memory_mib': gpus[0]['memory_mib'] if gpus else None,
        'cpu_model': _cpu_model(),
        'cpu_cores': _usable_cores(),
        'memory_gib': _memory_gib(),
        'platform': platform.platform(),
        'versions': _versions(),
    }


def _slug(text: str) -> str:
    return re.sub(r'[^a-z0-9]+', '-', text.lower()).strip('-')


def hardware_class(fp: Dict[str, Any]) -> str:
    """Short, stable name: 'cpu-amd-epyc-9b14-2c' or 'gpu-nvidia-h100-80gb-hbm3-x8'."""
    if fp.get('accelerator'):
        return f"gpu-{_slug(fp['accelerator'])}-x{fp['accelerator_count']}"
    cpu = _slug(fp.get('cpu_model') or 'cpu')
    for noise in ('-processor', '-cpu', '-with-radeon-graphics'):
        cpu = cpu.replace(noise, '')
    cpu = re.sub(r'-\d+-core', '', cpu)
    return f"cpu-{cpu}-{fp.get('cpu_cores', 1)}c"


def git_commit() -> Optional[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=here, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def trial_meta(**fields: Any) -> results.TrialMeta:
    """meta.json of a trial starting now, on this machine."""
    fp = fingerprint()
    return results.TrialMeta(
        hardware=fp, hardware_class=hardware_class(fp), versions=fp['versions'],
        git_commit=git_commit(), host=socket.gethostname(),
        start_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'), **fields)
