"""Hand-made lm_slm result trees for the SALT section's tests (written through harness.results)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from scoring.synthetic import trial_seed, write_trial

TARGET = {'metric': 'validation/loss', 'value': 4.75, 'mode': 'min'}
TRAINING_S = 50.0
STEPS_PER_S = 10
BATCH = 16
TEACHER_ENTRANTS = ('salt', 'salt_ds', 'kd_only')
#: The base workload's teacher and the variants' (name, role, margin over the target).
TEACHERS = {
    None: ('quarter', 'weak', 0.17),
    'weaker_teacher': ('half_short', 'weak', 0.45),
    'strong_teacher': ('half', 'strong_control', -0.06),
}


def write_salt_trial(
    root: Path,
    submission: str,
    study: int,
    reach_s: Optional[float],
    *,
    workload: str = 'lm_slm',
    variant: Optional[str] = None,
    trial: int = 0,
    seed: Optional[int] = None,
    teacher_at_hit: Optional[float] = None,
    optimizer: Optional[str] = 'nadamw',
    stage: Optional[int] = None,
    training_s: Optional[float] = TRAINING_S,
    pool_factor: int = 1,
    experiment: str = 'salt',
    target: dict = TARGET,
    framework: str = 'jax',
) -> Path:
    """One trial: evaluations every 10 s at 10 steps per second, the target met at ``reach_s``.

    A teacher entrant (``TEACHER_ENTRANTS``) logs teacher time 0.1 s per second of
    training, except at the point that met the target, where it logs ``teacher_at_hit``.
    When ``reach_s`` falls between two evaluations, the runner's probes are written as it
    writes them, ``kind: refine`` lines before the regular evaluation that found the hit:
    one that missed (a second earlier) and the hit; the regular line after them meets the
    target too, with more teacher time (0.5 s per second since the hit), as result.json. Seeds default to the suite's (study s of every
    submission and of the teacher variants shares them).
    """
    uses_teacher = submission in TEACHER_ENTRANTS
    examples_per_step = BATCH * pool_factor

    def line(t, met, kind=None, teacher=None):
        row = {
            'step': int(round(STEPS_PER_S * t)),
            'submission_time_s': float(t),
            'wall_time_s': float(t) * 1.2,
            'eval_time_s': 1.0,
            'examples_seen': int(round(STEPS_PER_S * t)) * examples_per_step,
            'validation/loss': 4.7 if met else 6.0,
        }
        if kind:
            row['kind'] = kind
        if uses_teacher:
            row['teacher_time_s'] = teacher if teacher is not None else 0.1 * t
            row['reported_metrics'] = {'kd_stage': stage if stage is not None else 0}
        return row

    last_s = 10.0 * math.ceil((reach_s or 50.0) / 10.0)
    evals, hit = [], None
    for t in range(10, int(last_s) + 1, 10):
        met = reach_s is not None and t >= reach_s
        if met and hit is None and t != reach_s:
            evals.append(line(reach_s - 1.0, False, 'refine'))
            hit = line(reach_s, True, 'refine', teacher_at_hit)
            evals.append(hit)
            evals.append(line(t, True, None, (teacher_at_hit or 0.0) + 0.5 * (t - reach_s)))
            continue
        evals.append(line(t, met, None, teacher_at_hit if met and hit is None else None))
        if met and hit is None:
            hit = evals[-1]
    result = {
        'status': 'reached' if hit else 'budget_exhausted',
        'time_to_target_s': hit and hit['submission_time_s'],
        'steps_to_target': hit and hit['step'],
        'examples_to_target': hit and hit['examples_seen'],
        'final_step': evals[-1]['step'],
        'submission_time_s': evals[-1]['submission_time_s'],
        'error': None,
        'wall_time_s': evals[-1]['wall_time_s'],  # as the runner records it
    }
    meta = None
    if uses_teacher:
        result['teacher_time_s'] = evals[-1]['teacher_time_s']
        if hit:
            result['reported_at_target'] = hit['reported_metrics']
        name, role, margin = TEACHERS[variant]
        cost = {'flops': 1e12, 'name': name, 'role': role, 'margin_nats': margin,
                'validation_loss': target['value'] + margin, 'target': target['value']}
        if training_s is not None:
            cost['time_s'] = training_s
        meta = {'teacher_training_cost': cost}
    hparams = {'learning_rate': 2e-3}
    if optimizer is not None and submission != optimizer:
        hparams['optimizer'] = optimizer
    wl = f'{workload}-{variant}' if variant else workload
    config = {
        'workload': workload, 'variant': variant, 'size': 'tiny', 'framework': framework,
        'submission': submission, 'ruleset': 'external', 'study': study, 'trial': trial,
        'hparams': hparams,
        'seed': seed if seed is not None else trial_seed(0, workload, study, trial),
        'target': target,
    }
    return write_trial(
        root / experiment / submission / f'{wl}_{framework}' / f'study_{study}' / f'trial_{trial}',
        config=config, evals=evals, result=result, meta_extra=meta)


def write_suite_tree(root: Path) -> Path:
    """The salt suite's shape, 3 studies, with numbers chosen to be read off by hand.

    nadamw 100 s in every study (1,000 steps); salt 75, 85, 105 s (probes find them between
    evaluations) with 8, 9, 11 s of teacher time at the hit, stages 0, 0, 2; kd_only 90, 95, 105 s; salt_ds 90 s in every
    study with a pool of 2 x the batch; salt on weaker_teacher 120 s and not reached
    twice; salt on strong_teacher 70, 75, 80 s.
    """
    for s in range(3):
        write_salt_trial(root, 'nadamw', s, 100.0)
        write_salt_trial(root, 'salt', s, (75.0, 85.0, 105.0)[s],
                         teacher_at_hit=(8.0, 9.0, 11.0)[s], stage=(0, 0, 2)[s])
        write_salt_trial(root, 'kd_only', s, (90.0, 95.0, 105.0)[s], teacher_at_hit=12.0)
        write_salt_trial(root, 'salt_ds', s, 90.0, teacher_at_hit=9.0, pool_factor=2, stage=0)
        write_salt_trial(root, 'salt', s, (120.0, None, None)[s], variant='weaker_teacher',
                         teacher_at_hit=12.0, stage=2)
        write_salt_trial(root, 'salt', s, (70.0, 75.0, 80.0)[s], variant='strong_teacher',
                         teacher_at_hit=7.0, stage=0)
    return root
