"""Time `timetrial score` on a generated results tree of 10,000 trials, as a user runs it.

20 workloads x 10 submissions x 5 studies x 10 trials, 50 evaluations each
(``scoring.synthetic``), written to a temporary directory (removed at the end;
writing it takes minutes, as every file is fsync'd: ``--keep DIR`` keeps it and a
later run with the same DIR reuses it). Then the whole command, process start to
exit, runs ``--runs`` times as a subprocess:

    python -m harness.cli.main score TREE --out OUT      (what `timetrial score` runs)

Greppable key:value lines: per run its wall and CPU seconds (the command's own CPU
plus its worker processes') and the split the command prints (load, score,
outputs; start-up = the rest: interpreter, imports, exit); then the median and
range of the wall time against the 5 s budget, with the 1-minute load average:
on a shared machine wall time includes waiting for a core, CPU time does not.

Then one run in this process, phase by phase, with the CPU seconds of this
process and of its workers (``cpu_phase:`` lines), and from them the wall time the
command would take on an idle machine with this many cores: per phase, this
process's CPU plus the workers' divided among the cores (``idle_estimate_s``; an
estimate for a loaded machine, where the measured wall time means little).

    python benchmarks/scoring.py [--runs 3] [--keep DIR] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scoring.synthetic import generate  # noqa: E402

SHAPE = dict(n_workloads=20, n_submissions=10, n_studies=5, n_trials=10, n_evals=50)
N_TRIALS = 20 * 10 * 5 * 10
BUDGET_S = 5.0
EXPERIMENT = 'synthetic'


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(tree: Path, out: Path, workers) -> dict:
    command = [sys.executable, '-m', 'harness.cli.main', 'score', str(tree), '--out', str(out)]
    if workers is not None:
        command += ['--workers', str(workers)]
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    cpu0, t0 = _children_cpu_s(), time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall_s, cpu_s = time.perf_counter() - t0, _children_cpu_s() - cpu0
    if done.returncode != 0:
        raise SystemExit(f'the command failed ({done.returncode}):\n{done.stderr}')
    phases = {k: float(v) for k, v in re.findall(r'(\w+)_s:([0-9.]+)', done.stdout)}
    phases['startup'] = wall_s - sum(phases.values())
    return {'wall_s': wall_s, 'cpu_s': cpu_s, **{f'{k}_s': v for k, v in phases.items()}}


def _cpu() -> tuple:
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def phases_in_process(tree: Path, out: Path, workers) -> float:
    """Each phase's CPU seconds (this process, its workers); returns the idle estimate."""
    marks = [('start', _cpu())]
    import pandas  # noqa: F401

    marks.append(('import_pandas', _cpu()))
    from scoring.api import compute
    from scoring.load import load_results
    from scoring.outputs import write_outputs

    marks.append(('import_scoring_matplotlib', _cpu()))
    loaded = load_results(tree, workers=workers)
    marks.append(('load', _cpu()))
    rep = compute(loaded)
    marks.append(('score', _cpu()))
    write_outputs(rep, out, workers=workers)
    marks.append(('outputs', _cpu()))
    cores = workers or len(os.sched_getaffinity(0))
    estimate = 0.0
    for (_, (s0, c0)), (name, (s1, c1)) in zip(marks, marks[1:]):
        own, theirs = s1 - s0, c1 - c0
        estimate += own + theirs / cores
        print(f'cpu_phase:{name} self_cpu_s:{own:.2f} workers_cpu_s:{theirs:.2f}')
    return estimate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=3, help='runs of the command (default 3)')
    parser.add_argument('--keep', metavar='DIR', help='generate into DIR (or reuse it) and keep it')
    parser.add_argument('--workers', type=int, default=None, help="the command's --workers")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix='timetrial-bench-'))
    tree = root / EXPERIMENT
    try:
        if not tree.is_dir():
            t0 = time.perf_counter()
            generate(root, experiment=EXPERIMENT, stop_at_target=False, **SHAPE)
            print(f'generate_s:{time.perf_counter() - t0:.1f} trials:{N_TRIALS}')
        else:
            print(f'reused:{tree} trials:{N_TRIALS}')
        runs = []
        for i in range(1, args.runs + 1):
            run = run_once(tree, root / 'scoring', args.workers)
            runs.append(run)
            print(f'run:{i} ' + ' '.join(f'{k}:{v:.2f}' for k, v in run.items()))
        walls = [r['wall_s'] for r in runs]
        median = statistics.median(walls)
        print(
            f'command_wall_s_median:{median:.2f} min:{min(walls):.2f} max:{max(walls):.2f} '
            f'cpu_s_median:{statistics.median(r["cpu_s"] for r in runs):.2f} '
            f'budget_s:{BUDGET_S:.1f} ratio_to_budget:{median / BUDGET_S:.2f} '
            f'loadavg_1min:{os.getloadavg()[0]:.1f} cores:{os.cpu_count()}'
        )
        estimate = phases_in_process(tree, root / 'scoring', args.workers)
        print(f'idle_estimate_s:{estimate:.2f} (+ interpreter start) budget_s:{BUDGET_S:.1f}')
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
