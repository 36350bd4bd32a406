"""Generate a results tree of made-up trials, in the layout the harness writes.

Used by ``benchmarks/scoring.py`` (10,000 trials) and by tests and demos of the
report. Nothing here runs a model: each trial's validation loss follows
``floor + (start - floor) * exp(-time / scale)`` with a per-submission speed, a
per-study offset and per-trial noise, evaluated every ``eval_period_s`` seconds of
submission time up to the budget. Deterministic in ``seed``.

As in a real suite, a trial's ``seed`` derives from (seed, workload[-variant],
study, trial) only, so study *s* of every submission shares its seeds, and the
study offset (what a seed's data order and initialization do to the time) is
shared by every submission too: comparisons can pair by study.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from harness import results

HARDWARE = {
    'accelerator': None,
    'accelerator_count': 0,
    'cpu_model': 'Synthetic CPU',
    'cpu_cores': 2,
    'memory_gib': 24.0,
}
HARDWARE_CLASS = 'cpu-synthetic-2c'


def trial_seed(*parts) -> int:
    """A stable 31-bit seed from its parts (as the suite expander derives one)."""
    digest = hashlib.sha256('/'.join(str(p) for p in parts).encode('utf-8')).digest()
    return int.from_bytes(digest[:4], 'little') & 0x7FFFFFFF


def write_trial(
    trial_dir: Path,
    *,
    config: dict,
    evals: Sequence[dict],
    result: Optional[dict],
    hardware_class: Optional[str] = HARDWARE_CLASS,
    meta_extra: Optional[dict] = None,
) -> Path:
    """Write one trial's files through ``harness.results`` (no result.json when ``result``
    is None: unfinished). The mappings are read as the results records, so a key the
    contract does not know, or a missing required one, fails here as it would in scoring."""
    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    results.write_identity(trial_dir, results.TrialIdentity.from_json(config))
    results.write_meta(trial_dir, results.TrialMeta.from_json(
        {'hardware': HARDWARE, 'hardware_class': hardware_class, **(meta_extra or {})}))
    results.write_evals(trial_dir, [results.EvalRecord.from_json(row) for row in evals])
    if result is not None:
        results.write_result(trial_dir, results.TrialResult.from_json(result))
    return trial_dir


def generate(
    root: Path,
    *,
    n_workloads: int = 3,
    n_submissions: int = 3,
    n_studies: int = 3,
    n_trials: int = 4,
    n_evals: int = 20,
    experiment: str = 'synthetic',
    framework: str = 'jax',
    ruleset: str = 'external',
    seed: int = 0,
    variants: bool = False,
    stop_at_target: bool = True,
) -> Path:
    """Write ``n_workloads x n_submissions x n_studies x n_trials`` trials; returns the
    experiment directory. With ``variants``, workload 0 also gets a variant ``wide``.
    ``stop_at_target=False`` keeps every trial to ``n_evals`` evaluations (the
    harness's continue-past-target mode), as the speed benchmark wants.
    """
    rng = np.random.default_rng(seed)
    exp_dir = Path(root) / experiment
    budget_s = 1000.0
    eval_period_s = budget_s / n_evals
    workloads = [(f'wl{w:02d}', None) for w in range(n_workloads)]
    if variants and n_workloads:
        workloads.append(('wl00', 'wide'))
    targets = {wl: 1.0 + 0.1 * i for i, wl in enumerate(workloads)}
    # Shared by every submission: the same seeds give the same data order and init.
    study_offsets = {
        (wl, study): np.random.default_rng(trial_seed(seed, *wl, study)).normal(0.0, 0.1)
        for wl in workloads
        for study in range(n_studies)
    }
    for s in range(n_submissions):
        submission = f'sub{s:02d}'
        # Each submission is faster on some workloads than others.
        speed = rng.uniform(0.5, 2.0, size=len(workloads))
        for w, (workload, variant) in enumerate(workloads):
            wl_dir = f'{workload}-{variant}' if variant else workload
            target = targets[(workload, variant)]
            for study in range(n_studies):
                study_offset = study_offsets[(workload, variant), study]
                for trial in range(n_trials):
                    lr = float(10 ** rng.uniform(-4, -2))
                    scale = 150.0 / speed[w] * math.exp(study_offset + rng.normal(0.0, 0.3))
                    floor = target * rng.uniform(0.85, 1.05)
                    start = target * 4.0
                    evals, hit = [], None
                    for e in range(1, n_evals + 1):
                        t = e * eval_period_s
                        loss = floor + (start - floor) * math.exp(-t / scale)
                        step = e * 100
                        evals.append(
                            {
                                'step': step,
                                'submission_time_s': t,
                                'wall_time_s': t * 1.1 + e * 2.0,
                                'eval_time_s': 2.0,
                                'examples_seen': step * 128,
                                'validation/loss': loss,
                                'train/loss': loss * 0.95,
                            }
                        )
                        if hit is None and loss <= target:
                            hit = evals[-1]
                            if stop_at_target:
                                break
                    last = evals[-1]
                    result = {
                        'status': 'reached' if hit else 'budget_exhausted',
                        'time_to_target_s': hit['submission_time_s'] if hit else None,
                        'steps_to_target': hit['step'] if hit else None,
                        'examples_to_target': hit['examples_seen'] if hit else None,
                        'final_step': last['step'],
                        'submission_time_s': last['submission_time_s'],
                        'error': None,
                    }
                    config = {
                        'workload': workload,
                        'variant': variant,
                        'size': 'tiny',
                        'framework': framework,
                        'submission': submission,
                        'ruleset': ruleset,
                        'study': study,
                        'trial': trial,
                        'hparams': {'learning_rate': lr},
                        'seed': trial_seed(seed, wl_dir, study, trial),
                        'target': {'metric': 'validation/loss', 'value': target, 'mode': 'min'},
                    }
                    trial_dir = (
                        exp_dir
                        / submission
                        / f'{wl_dir}_{framework}'
                        / f'study_{study}'
                        / f'trial_{trial}'
                    )
                    write_trial(trial_dir, config=config, evals=evals, result=result)
    return exp_dir
