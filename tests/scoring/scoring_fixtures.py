"""Helpers that write small, hand-checkable results trees for the scoring tests.

(A plain module, not conftest.py: test folders have no __init__.py, and a second
conftest.py elsewhere would collide with this one under pytest's default imports.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from scoring.synthetic import write_trial

TARGET = {'metric': 'validation/loss', 'value': 1.0, 'mode': 'min'}


def trial(
    root: Path,
    *,
    submission: str = 'adamw',
    workload: str = 'mnist',
    study: int = 0,
    trial_index: int = 0,
    reach_at_s: Optional[float] = None,
    eval_period_s: float = 10.0,
    n_evals: Optional[int] = None,
    status: Optional[str] = None,
    variant: Optional[str] = None,
    target: Optional[dict] = None,
    ruleset: str = 'external',
    framework: str = 'jax',
    size: str = 'tiny',
    experiment: str = 'exp',
    hardware_class: str = 'cpu-test-2c',
    finished: bool = True,
    steps_per_s: float = 10.0,
    examples_per_step: int = 32,
    extra_metrics: Optional[Dict[str, Sequence[float]]] = None,
    result_extra: Optional[dict] = None,
    meta_extra: Optional[dict] = None,
    seed: Optional[int] = None,
) -> Path:
    """One trial whose validation loss first meets the target at ``reach_at_s``.

    Evaluations every ``eval_period_s`` seconds; the loss is 2.0 before the hit and
    0.9 from it on (target: loss <= 1.0). ``reach_at_s=None``: never reached.
    ``seed`` defaults to one shared by every submission (1000 * study + trial), as a
    suite derives it.
    """
    target = target or TARGET
    if n_evals is None:
        n_evals = int(round((reach_at_s or 5 * eval_period_s) / eval_period_s))
    evals = []
    hit = None
    for e in range(1, n_evals + 1):
        t = e * eval_period_s
        reached = reach_at_s is not None and t >= reach_at_s - 1e-9
        step = int(round(t * steps_per_s))
        row = {
            'step': step,
            'submission_time_s': t,
            'wall_time_s': t + 1.0,
            'eval_time_s': 0.5,
            'examples_seen': step * examples_per_step,
            target['metric']: 0.9 if reached else 2.0,
        }
        for key, values in (extra_metrics or {}).items():
            row[key] = values[min(e - 1, len(values) - 1)]
        evals.append(row)
        if reached and hit is None:
            hit = row
    if status is None:
        status = 'reached' if hit else 'budget_exhausted'
    result = None
    if finished:
        result = {
            'status': status,
            'time_to_target_s': hit['submission_time_s'] if hit else None,
            'steps_to_target': hit['step'] if hit else None,
            'examples_to_target': hit['examples_seen'] if hit else None,
            'final_step': evals[-1]['step'] if evals else 0,
            'submission_time_s': evals[-1]['submission_time_s'] if evals else 0.0,
            'error': 'Traceback: boom' if status == 'failed' else None,
            **(result_extra or {}),
        }
    wl_dir = f'{workload}-{variant}' if variant else workload
    config = {
        'workload': workload,
        'variant': variant,
        'size': size,
        'framework': framework,
        'submission': submission,
        'ruleset': ruleset,
        'study': study,
        'trial': trial_index,
        'hparams': {'learning_rate': 0.001} if ruleset == 'external' else None,
        'seed': 1000 * study + trial_index if seed is None else seed,
        'target': target,
    }
    trial_dir = (
        Path(root)
        / experiment
        / submission
        / f'{wl_dir}_{framework}'
        / f'study_{study}'
        / f'trial_{trial_index}'
    )
    return write_trial(
        trial_dir,
        config=config,
        evals=evals,
        result=result,
        hardware_class=hardware_class,
        meta_extra=meta_extra,
    )


def study_table(
    root: Path, table: Dict[Tuple[str, str], List[Optional[float]]], ruleset: str = 'self', **kwargs
) -> Path:
    """{(submission, workload): [time of study 0, study 1, ...]} with one trial per study.

    A workload name ``base-variant`` writes a variant of ``base``; None: not reached.
    """
    for (submission, workload), times in table.items():
        base, _, variant = workload.partition('-')
        for study, reach in enumerate(times):
            trial(
                root,
                submission=submission,
                workload=base,
                variant=variant or None,
                study=study,
                reach_at_s=reach,
                ruleset=ruleset,
                **kwargs,
            )
    return Path(root) / kwargs.get('experiment', 'exp')
