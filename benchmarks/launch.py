"""How fast suites launch: a 200-trial suite submitted to Slurm, and one trial's start-up cost.

    python benchmarks/launch.py                 # needs a Slurm (scripts/slurm_cluster.sh start)
    python benchmarks/launch.py --skip-slurm    # start-up cost only

1. Submission: `timetrial run SUITE --no-wait` of a 200-trial suite (lm tiny x
   {adamw, nadamw} x {jax, pytorch} x 5 studies x 10 trials) as a job array,
   end to end (interpreter, imports, validation, expansion, pre-flight, lock,
   sbatch), then the same phases timed in this process. The jobs are
   cancelled right after. Goal: under 10 s (arrays, not 200 sbatch calls).
2. Per-trial start-up: what every job pays before its first step — process
   start, `import submitit, harness.launch.launcher`, the framework and the workload,
   then the data (check + first training batch). Median over --repeats runs.

Output lines are `key:value` pairs; the data is generated text prepared into a
temporary directory (no network).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_STARTUP = '''
import json, sys, time
t = {'start': time.time()}
import submitit, harness.launch.launcher  # what a job imports before unpickling its trial
t['harness'] = time.time()
from harness import registry
from harness.trial import backends
framework, data_dir = sys.argv[1], sys.argv[2]
backend = backends.get_backend(framework)
workload = registry.make_workload('lm', framework, 'tiny')
t['framework'] = time.time()
workload.check_data(data_dir)
batches = workload._build_input_queue(backend.initial_rng(0), 'train', data_dir, 32)
next(iter(batches))
t['data'] = time.time()
print(json.dumps(t))
'''


def prepare_data(root: Path) -> str:
    from tests.workloads.conftest import write_generated_plays
    from workloads.lm import data

    write_generated_plays(root / 'text')
    data.prepare(str(root / 'data'), source=str(root / 'text'), log=lambda _: None)
    return str(root / 'data')


def startup_cost(data_dir: str, repeats: int) -> None:
    for framework in ('pytorch', 'jax'):
        phases = {'process_start_s': [], 'harness_imports_s': [], 'framework_workload_s': [],
                  'data_load_s': [], 'total_s': []}
        for _ in range(repeats):
            launched = time.time()
            out = subprocess.run([sys.executable, '-c', _STARTUP, framework, data_dir],
                                 cwd=REPO, capture_output=True, text=True, check=True).stdout
            t = json.loads(out.strip().splitlines()[-1])
            phases['process_start_s'].append(t['start'] - launched)
            phases['harness_imports_s'].append(t['harness'] - t['start'])
            phases['framework_workload_s'].append(t['framework'] - t['harness'])
            phases['data_load_s'].append(t['data'] - t['framework'])
            phases['total_s'].append(t['data'] - launched)
        print(f'startup framework:{framework} repeats:{repeats} '
              + ' '.join(f'{k}:{statistics.median(v):.2f}' for k, v in phases.items()))


def write_suite(root: Path, name: str, data_dir: str, trials_per_study: int) -> Path:
    path = root / f'{name}.yaml'
    path.write_text(textwrap.dedent(f'''
        experiment: {name}
        results_dir: {root / 'results'}
        data_dir: {data_dir}
        studies: 5
        trials: {trials_per_study}
        workloads: [{{name: lm, size: tiny}}]
        submissions: [adamw, nadamw]
        frameworks: [jax, pytorch]
        executor:
          default: slurm
          slurm: {{cpus_per_task: 1, mem_gb: 1, time_limit_min: 5, array_parallelism: 2}}
    ''').lstrip())
    return path


def cancel(name: str) -> None:
    subprocess.run(['scancel', '--name', f'tt-{name}'], check=False)


def submission_time(root: Path, data_dir: str, n_trials: int) -> None:
    per_study = n_trials // 20
    # End to end, as a user runs it.
    path = write_suite(root, 'bench_cli', data_dir, per_study)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, '-m', 'harness.cli.main', 'run', str(path), '--no-wait'],
                          cwd=REPO, capture_output=True, text=True)
    wall_s = time.perf_counter() - t0
    cancel('bench_cli')
    if proc.returncode != 0:
        sys.exit(f'timetrial run failed:\n{proc.stdout}\n{proc.stderr}')
    m = re.search(r'submitted:(\d+) trials as Slurm array\(s\) in ([\d.]+)s', proc.stdout)
    print(f'submit_cli trials:{m.group(1)} total_s:{wall_s:.2f} sbatch_step_s:{m.group(2)} '
          f'goal_s:10 ok:{wall_s < 10}')

    # The same phases, timed one by one in this process.
    from harness.launch.launcher import preflight, run_suite
    from harness.launch.records import read_jobs
    from harness.launch.suite import expand, load_suite

    path = write_suite(root, 'bench_api', data_dir, per_study)
    times = {}
    t = time.perf_counter()
    suite = load_suite(path)
    times['validate_s'] = time.perf_counter() - t
    t = time.perf_counter()
    trials = expand(suite)
    times['expand_s'] = time.perf_counter() - t
    t = time.perf_counter()
    preflight(suite, trials, 'slurm')
    times['preflight_s'] = time.perf_counter() - t
    t = time.perf_counter()
    report = run_suite(suite, trials, 'slurm', wait=False, log=lambda _: None)
    times['launch_s'] = time.perf_counter() - t
    cancel('bench_api')
    jobs = read_jobs(suite.experiment_dir())
    arrays = {j['job_id'].split('_')[0] for j in jobs.values()}
    print(f'submit_phases trials:{len(report.submitted)} sbatch_calls:{len(arrays)} '
          f'sbatch_step_s:{report.submit_time_s:.2f} '
          + ' '.join(f'{k}:{v:.2f}' for k, v in times.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--trials', type=int, default=200, help='suite size (multiple of 20)')
    parser.add_argument('--repeats', type=int, default=3, help='start-up runs per framework')
    parser.add_argument('--skip-slurm', action='store_true')
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix='tt-bench-launch-'))
    try:
        data_dir = prepare_data(root)
        if args.skip_slurm:
            print('submit skipped:--skip-slurm')
        elif shutil.which('sbatch') is None:
            print('submit skipped:no Slurm here (scripts/slurm_cluster.sh start)')
        else:
            submission_time(root, data_dir, args.trials)
        startup_cost(data_dir, args.repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
