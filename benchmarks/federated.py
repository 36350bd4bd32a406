"""Client updates per second of the federated submissions, vectorized and not.

    python benchmarks/federated.py [--frameworks jax pytorch] [--size tiny]
        [--cohorts 1 10 40] [--submission fedavg] [--repeats 5] [--data-dir DIR]
        [--trial fedavg:heavy_stragglers:300] [--threads 1]
    python benchmarks/federated.py --calibrate [VARIANT ...] [--size tiny] [--seeds 0 1]

For each framework and cohort size C, times ``client_update`` on C clients at
once (vmapped: ``jax.vmap`` / ``torch.func.vmap``) and, for comparison, C
calls on one client each; prints medians as greppable ``key:value`` lines and
the speed-up of vectorizing. ``--trial SUBMISSION:VARIANT:ROUNDS`` also runs
a trial capped at ROUNDS server updates and prints its wall and compute time
(the demo-size check: hundreds of rounds of tens of clients on 2 cores).

``--calibrate`` runs ``fedavg`` with its defaults (self-tuning, budget factor 1)
for the whole budget of each variant (``none`` = the base workload) and seed,
without stopping at the target, and prints ``validation/accuracy`` at 25, 50,
75, 90 and 100% of the budget (the best regular evaluation up to there) and the
target it suggests: the median over runs of the accuracy at 75% of the budget,
rounded down to 0.01, so FedAvg reaches it late in its budget (the calibration
recorded next to ``BUDGETS`` in workloads/federated_shakespeare/workload.py).
Needs the prepared data (``timetrial prepare federated_shakespeare``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import hardware, registry  # noqa: E402
from harness.submission.federated import SubmissionView, load_federated_submission  # noqa: E402
from harness.paths import resolve_data_dir  # noqa: E402


def time_cohort(
    workload, module, params, cohort: int, vectorized: bool, repeats: int, config
) -> float:
    """Median seconds to update ``cohort`` clients (after one warm-up call)."""
    view = SubmissionView(workload)
    clients = [i % workload.num_clients for i in range(cohort)]
    times = []
    for rep in range(repeats + 1):
        data = workload.client_batches(
            clients, [rep] * cohort, 0, config.local_steps, config.client_batch_size
        )
        start = time.perf_counter()
        if vectorized:
            out = module.client_update(view, params, None, data, None, workload.make_rng(rep))
            workload.synchronize(out.deltas)
        else:
            for c in range(cohort):
                one = {k: v[c : c + 1] for k, v in data.items()}
                out = module.client_update(view, params, None, one, None, workload.make_rng(c))
                workload.synchronize(out.deltas)
        if rep:  # the first call compiles (JAX) or warms caches
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_framework(framework: str, args) -> None:
    workload = registry.make_workload('federated_shakespeare', framework, args.size)
    workload.load_clients(str(resolve_data_dir(args.data_dir)))
    module = load_federated_submission(registry.resolve_submission(args.submission), framework)
    config = module.get_round_config(workload.name, None)
    params, _ = workload.init_model_fn(workload.make_rng(0))
    for cohort in args.cohorts:
        vec = time_cohort(workload, module, params, cohort, True, args.repeats, config)
        line = (
            f'framework:{framework} size:{args.size} cohort:{cohort} '
            f'local_steps:{config.local_steps} client_batch:{config.client_batch_size} '
            f'vmapped_updates_per_s:{cohort / vec:.1f}'
        )
        if cohort > 1 and not args.skip_loop:
            loop = time_cohort(workload, module, params, cohort, False, args.repeats, config)
            line += f' one_by_one_updates_per_s:{cohort / loop:.1f} vmap_speedup:{loop / vec:.2f}'
        print(line, flush=True)


def run_trial(framework: str, spec_text: str, args) -> None:
    from harness.trial.federated.runner import run_federated_trial
    from harness.trial.config import TrialConfig

    submission, variant, rounds = spec_text.split(':')
    with tempfile.TemporaryDirectory() as results_dir:
        config = TrialConfig(
            workload='federated_shakespeare',
            framework=framework,
            submission=submission,
            size=args.size,
            variant=None if variant in ('', 'none') else variant,
            results_dir=results_dir,
            data_dir=args.data_dir,
            max_steps=int(rounds),
            stop_at_target=False,
        )
        start = time.perf_counter()
        result = run_federated_trial(config)
        wall = time.perf_counter() - start
    print(
        f'trial framework:{framework} submission:{submission} variant:{variant} '
        f'rounds:{result["final_step"]} status:{result["status"]} wall_s:{wall:.1f} '
        f'compute_s:{result["compute_time_s"]:.1f} eval_s:{result["eval_time_s"]:.1f} '
        f'updates:{result["federated"]["arrived"]} '
        f'sim_hours:{result["submission_time_s"] / 3600:.1f}',
        flush=True,
    )


CALIBRATION_FRACTIONS = (0.25, 0.5, 0.75, 0.9, 1.0)
TARGET_FRACTION = 0.75


def calibrate(framework: str, args) -> None:
    import math

    from harness import results
    from harness.trial.config import TrialConfig
    from harness.trial.federated.runner import run_federated_trial

    at_target_fraction = []
    root = Path(args.results_dir or tempfile.mkdtemp(prefix='fed-calibration-'))
    for variant in args.calibrate or ['none']:
        for seed in args.seeds:
            config = TrialConfig(
                workload='federated_shakespeare',
                framework=framework,
                submission='fedavg',
                size=args.size,
                variant=None if variant == 'none' else variant,
                ruleset='self',
                seed=seed,
                results_dir=str(root),
                experiment='calibration',
                data_dir=args.data_dir,
                stop_at_target=False,
            )
            start = time.perf_counter()
            result = run_federated_trial(config)
            wall = time.perf_counter() - start
            rows = [
                r
                for r in results.read_jsonl(config.trial_dir() / results.EVALS_JSONL)
                if r.get('eval_kind', 'regular') != 'refine'
            ]
            budget_s = result['budget_s']
            best = {
                f: max(
                    (
                        r['validation/accuracy']
                        for r in rows
                        if r['submission_time_s'] <= f * budget_s
                    ),
                    default=float('nan'),
                )
                for f in CALIBRATION_FRACTIONS
            }
            at_target_fraction.append(best[TARGET_FRACTION])
            last = rows[-1]
            print(
                f'calibration framework:{framework} size:{args.size} variant:{variant} '
                f'seed:{seed} rounds:{result["final_step"]} wall_s:{wall:.0f} '
                + ' '.join(f'acc_at_{int(100 * f)}pct:{v:.4f}' for f, v in best.items())
                + f' final_accuracy_stragglers:{last.get("validation/accuracy_stragglers", math.nan):.4f}'
                f' trial_dir:{config.trial_dir()}',
                flush=True,
            )
    suggested = math.floor(100 * statistics.median(at_target_fraction)) / 100
    print(
        f'suggested_target:{suggested:.2f} (median accuracy at '
        f'{int(100 * TARGET_FRACTION)}% of the budget, rounded down)',
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--frameworks', nargs='+', default=['jax', 'pytorch'])
    parser.add_argument('--size', default='tiny')
    parser.add_argument('--submission', default='fedavg')
    parser.add_argument('--cohorts', nargs='+', type=int, default=[1, 10, 40])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--skip-loop', action='store_true', help='time only the vectorized updates')
    parser.add_argument('--data-dir', default=None)
    parser.add_argument('--trial', default=None, help='SUBMISSION:VARIANT:ROUNDS')
    parser.add_argument(
        '--calibrate',
        nargs='*',
        default=None,
        metavar='VARIANT',
        help='run fedavg for whole budgets and suggest a target (variants; none = base)',
    )
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--results-dir', default=None, help='--calibrate: keep the trials here')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='CPU threads per framework (default: theirs). 1 avoids the slowdown of '
        'several threads on cores shared with other processes.',
    )
    args = parser.parse_args()
    if args.threads:  # before torch or jax is imported
        os.environ['OMP_NUM_THREADS'] = str(args.threads)
        os.environ['XLA_FLAGS'] = (
            os.environ.get('XLA_FLAGS', '')
            + ' --xla_cpu_multi_thread_eigen='
            + ('true' if args.threads > 1 else 'false')
        ).strip()
        if 'pytorch' in args.frameworks:
            import torch

            torch.set_num_threads(args.threads)
    fp = hardware.fingerprint()
    print(
        f'hardware_class:{hardware.hardware_class(fp)} cpu:{fp["cpu_model"]!r} '
        f'cores:{fp["cpu_cores"]} jax:{fp["versions"].get("jax")} '
        f'torch:{fp["versions"].get("torch")}',
        flush=True,
    )
    for framework in args.frameworks:
        if args.calibrate is not None:
            calibrate(framework, args)
            continue
        bench_framework(framework, args)
        if args.trial:
            run_trial(framework, args.trial, args)


if __name__ == '__main__':
    main()
