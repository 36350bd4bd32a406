"""``timetrial calibrate``: AlgoPerf's target-setting procedure, scaled to the machine at hand.

1. Tune each reference baseline (default adamw and nadamw) with ``--trials``
   quasi-random trials from its search space, within a generous budget
   (``--generous-factor`` × the current budget), training to the end.
2. Take the configuration whose best validation value is best, and rerun it
   ``--reruns`` times with other seeds.
3. Target = median over the reruns of the best validation value each reached.
4. Budget = ``--budget-factor`` × the median submission time the reruns
   needed to reach that target (reruns that never reach it are left out; if
   none does, the calibration fails with a message). ``step_hint`` = the
   median steps per second of the reruns × the budget; the eval period keeps
   the workload's ratio of eval period to budget; ``reference_steps_to_target``
   = the median steps the reruns needed to reach the target (a horizon for
   schedules tied to the target, e.g. SALT's distillation phase).

The result is written to this hardware class's targets file
(``harness.calibration.targets``) and used by every later trial on this class. The
factor 3 default for the budget is our choice (AlgoPerf sets budgets from its
target-setting runs too, with per-workload factors we could not confirm).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional

from harness import hardware, registry, results
from harness.calibration import targets
from harness.errors import UserInputError
from harness.spec import Budget
from harness.submission import search_space
from harness.trial.config import TrialConfig


def _best_value(trial_dir, metric: str, mode: str) -> Optional[float]:
    values = [e[metric] for e in results.read_jsonl(Path(trial_dir) / results.EVALS_JSONL)
              if e.get(metric) is not None]
    if not values:
        return None
    return min(values) if mode == 'min' else max(values)


def _time_to(trial_dir, metric: str, mode: str, target: float):
    for e in results.read_jsonl(Path(trial_dir) / results.EVALS_JSONL):
        v = e.get(metric)
        if v is not None and (v <= target if mode == 'min' else v >= target):
            return e['submission_time_s'], e['step']
    return None


def calibrate(workload: str, size: Optional[str] = None, variant: Optional[str] = None,
              framework: str = 'jax', baselines=('adamw', 'nadamw'), trials: int = 3,
              reruns: int = 3, generous_factor: float = 2.0, budget_factor: float = 3.0,
              results_dir: str = 'results', data_dir: Optional[str] = None,
              max_steps: Optional[int] = None, log=print) -> Dict[str, Any]:
    from harness.prepare import ensure_prepared
    from harness.submission.loader import search_space_path
    from harness.trial.run import build_workload, run_trial

    problems = []
    if trials < 1:
        problems.append(f'--trials must be >= 1, got {trials}')
    if reruns < 1:
        problems.append(f'--reruns must be >= 1, got {reruns}')
    if generous_factor <= 0 or budget_factor <= 0:
        problems.append('--generous-factor and --budget-factor must be positive')
    if problems:
        raise UserInputError('; '.join(problems) + '.')
    info = registry.validate_workload_choice(workload, size, variant, framework)
    size = size or info.sizes[0]
    hw_class = hardware.hardware_class(hardware.fingerprint())
    base = TrialConfig(workload=workload, framework=framework, submission='', size=size,
                       variant=variant, data_dir=data_dir, results_dir=results_dir)
    wl = build_workload(base)
    ensure_prepared(wl, workload, variant, data_dir, log=log)
    metric, mode = f'validation/{wl.target_metric_name}', wl.target_mode
    generous = {'validation_target_value': wl.validation_target_value,
                'max_allowed_runtime_sec': wl.max_allowed_runtime_sec * generous_factor,
                'eval_period_time_sec': wl.eval_period_time_sec,
                'step_hint': int(wl.step_hint * generous_factor)}
    experiment = f'_calibration/{hw_class}/{workload}-{size}{"-" + variant if variant else ""}'

    def make(sub_path, name, hparams, seed, study, trial):
        return base.replace(submission=str(sub_path), submission_name=name, hparams=hparams,
                            seed=seed, study=study, trial=trial, experiment=experiment,
                            stop_at_target=False, max_steps=max_steps, budget_override=generous)

    tuned: List[Dict[str, Any]] = []
    for name in baselines:
        path = registry.resolve_submission(name)
        space = search_space.load(search_space_path(path))
        for t in range(trials):
            hp = search_space.sample(space, 0, t)
            cfg = make(path, registry.submission_name(path), hp, 0, 0, t)
            result = run_trial(cfg)
            best = _best_value(cfg.trial_dir(), metric, mode)
            log(f'tune submission:{name} trial:{t} status:{result["status"]} best:{best}')
            if best is not None:
                tuned.append({'path': path, 'name': registry.submission_name(path), 'hparams': hp,
                              'best': best})
    if not tuned:
        raise UserInputError(f'No tuning run of {", ".join(baselines)} produced a finite '
                             f'{metric}: check the logs under {results_dir}/{experiment}.')
    pick = (min if mode == 'min' else max)(tuned, key=lambda r: r['best'])
    log(f'best configuration: {pick["name"]} {pick["hparams"]} best:{pick["best"]}')

    rerun_dirs, bests = [], []
    for k in range(reruns):
        cfg = make(pick['path'], pick['name'], pick['hparams'], 1000 + k, 1, k)
        run_trial(cfg)
        best = _best_value(cfg.trial_dir(), metric, mode)
        if best is not None:
            rerun_dirs.append(cfg.trial_dir())
            bests.append(best)
    if not bests:
        raise UserInputError('The reruns of the best configuration produced no evaluation.')
    target = statistics.median(bests)
    times, steps, rates = [], [], []
    for d in rerun_dirs:
        hit = _time_to(d, metric, mode, target)
        if hit is not None:
            times.append(hit[0])
            steps.append(hit[1])
        res = results.read_json(d / results.RESULT_JSON) or {}
        if res.get('submission_time_s'):
            rates.append(res['final_step'] / res['submission_time_s'])
    if not times:
        raise UserInputError('No rerun reached the median target; raise --reruns.')
    budget_s = budget_factor * statistics.median(times)
    period_ratio = wl.eval_period_time_sec / wl.max_allowed_runtime_sec
    budget = Budget(validation_target_value=float(target), max_allowed_runtime_sec=float(budget_s),
                    eval_period_time_sec=float(budget_s * period_ratio),
                    step_hint=max(int(statistics.median(rates) * budget_s), 1),
                    reference_steps_to_target=max(int(round(statistics.median(steps))), 1))
    path = targets.write_calibrated_budget(hw_class, workload, size, variant, budget)
    log(f'calibrated hardware_class:{hw_class} {metric}_target:{budget.validation_target_value:.6g} '
        f'budget_s:{budget.max_allowed_runtime_sec:.1f} step_hint:{budget.step_hint} '
        f'reference_steps_to_target:{budget.reference_steps_to_target} '
        f'reruns_reaching:{len(times)}/{len(rerun_dirs)} file:{path}')
    return {'budget': budget, 'targets_file': path, 'hardware_class': hw_class,
            'best_configuration': {'submission': pick['name'], 'hparams': pick['hparams']}}
