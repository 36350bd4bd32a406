"""Fixtures for tests against a real Slurm (start one with `scripts/slurm_cluster.sh start`).

The trials are real: the `lm` workload at size tiny, PyTorch, a few steps, on
data prepared from generated text (no network).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness import results

REPO = Path(__file__).resolve().parents[2]


def _slurm_up() -> bool:
    try:
        ping = subprocess.run(['scontrol', 'ping'], capture_output=True, text=True, timeout=20)
        acct = subprocess.run(['sacct', '-n', '-X', '-S', 'now'], capture_output=True,
                              timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return 'UP' in ping.stdout and acct.returncode == 0


@pytest.fixture(scope='session', autouse=True)
def slurm_cluster():
    if not _slurm_up():
        pytest.skip('no Slurm cluster with accounting answers here; start one with '
                    '`scripts/slurm_cluster.sh start`')


@pytest.fixture(scope='session')
def lm_data_dir(tmp_path_factory):
    from tests.workloads.conftest import write_generated_plays
    from workloads.lm import data

    text = tmp_path_factory.mktemp('slurm_lm_text')
    write_generated_plays(text, n_plays=4, lines_per_play=200)
    root = tmp_path_factory.mktemp('slurm_lm_data')
    data.prepare(str(root), source=str(text), log=lambda _: None)
    return str(root)


@pytest.fixture
def make_suite(tmp_path, lm_data_dir):
    """make_suite(name, **overrides) -> path of a Slurm suite of real lm tiny trials."""

    def make(name: str, *, trials: int = 1, max_steps: int = 3, checkpoint_every_s: float = 60,
             time_limit_min: int = 10, stop_at_target: bool = True) -> Path:
        path = tmp_path / f'{name}.yaml'
        path.write_text(textwrap.dedent(f'''
            experiment: {name}
            results_dir: {tmp_path / 'results'}
            data_dir: {lm_data_dir}
            seed: 5
            trials: {trials}
            max_steps: {max_steps}
            checkpoint_every_s: {checkpoint_every_s}
            stop_at_target: {str(stop_at_target).lower()}
            workloads: [{{name: lm, size: tiny}}]
            submissions: [adamw]
            frameworks: [pytorch]
            executor:
              default: slurm
              slurm: {{cpus_per_task: 1, mem_gb: 2, time_limit_min: {time_limit_min}}}
        ''').lstrip(), encoding='utf-8')
        return path

    return make


def timetrial(*args: str) -> list:
    return [sys.executable, '-m', 'harness.cli.main', *args]


def driver(*args: str) -> subprocess.Popen:
    """`timetrial run ...` started in a subprocess, output captured line by line."""
    return subprocess.Popen(timetrial('run', *args), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, 'PYTHONUNBUFFERED': '1'})


def run_cli(*args: str, timeout_s: float) -> subprocess.CompletedProcess:
    """`timetrial ...` to its end."""
    return subprocess.run(timetrial(*args), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout_s)


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f'timed out after {timeout_s:.0f}s waiting for {what}')


def jobs_of(exp_dir: Path):
    from harness.launch.records import read_jobs

    return read_jobs(exp_dir)


def result_of(trial_dir: Path):
    return results.read_json(trial_dir / results.RESULT_JSON)
