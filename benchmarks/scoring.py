"""Time scoring on a generated results tree of 10,000 trials.

20 workloads x 10 submissions x 5 studies x 10 trials, 50 evaluations each, written
to a temporary directory (removed at the end). Prints greppable key:value lines:
load time, scoring time (time to target, profiles, scores, 1000 bootstrap samples),
their total, and the time to write the outputs (figures, tables, report.html).

    python benchmarks/scoring.py [--keep DIR] [--no-outputs]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.api import compute  # noqa: E402
from scoring.load import load_results  # noqa: E402
from scoring.synthetic import generate  # noqa: E402

SHAPE = dict(n_workloads=20, n_submissions=10, n_studies=5, n_trials=10, n_evals=50)
BUDGET_S = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--keep', metavar='DIR', help='generate into DIR and keep it')
    parser.add_argument('--no-outputs', action='store_true', help='skip figures and report')
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix='timetrial-bench-'))
    try:
        t0 = time.perf_counter()
        exp_dir = generate(root, stop_at_target=False, **SHAPE)
        print(f'generate_s:{time.perf_counter() - t0:.2f} trials:{10_000}')
        t0, c0 = time.perf_counter(), time.process_time()
        loaded = load_results(exp_dir)
        load_s, load_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        rep = compute(loaded, bootstrap_samples=1000, seed=0)
        score_s, score_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        total_s = load_s + score_s
        # CPU time next to wall time: on a shared machine wall time includes waiting.
        print(f'load_s:{load_s:.2f} load_cpu_s:{load_cpu_s:.2f} evals:{len(loaded.evals)}')
        print(f'score_s:{score_s:.2f} score_cpu_s:{score_cpu_s:.2f}')
        print(
            f'total_s:{total_s:.2f} total_cpu_s:{load_cpu_s + score_cpu_s:.2f} '
            f'budget_s:{BUDGET_S:.1f} ratio_to_budget:{total_s / BUDGET_S:.2f} '
            f'loadavg_1min:{os.getloadavg()[0]:.1f} cores:{os.cpu_count()}'
        )
        if not args.no_outputs:
            from scoring.outputs import write_outputs

            t0 = time.perf_counter()
            write_outputs(rep, root / 'scoring')
            print(
                f'outputs_s:{time.perf_counter() - t0:.2f} '
                f'(figures for {len(rep.trials["workload_id"].unique())} workloads, tables, '
                f'report.html) out:{root / "scoring"}'
            )
        print(f'top:{rep.scores["entrant"].iloc[0]} score:{rep.scores["score"].iloc[0]:.3f}')
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
