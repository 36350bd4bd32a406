"""scoring/salt.py on a hand-checkable results tree: the three ratios, spread, steps, HTML."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from scoring.load import load_results
from scoring.salt import salt_section, salt_table
from scoring.synthetic import write_trial

TARGET = {'metric': 'validation/loss', 'value': 5.0, 'mode': 'min'}
TRAINING_S = 50.0


def _trial(
    root,
    submission,
    workload,
    study,
    reach_s,
    trial=0,
    variant=None,
    teacher_at_target=None,
    teacher_per_s=0.0,
    size='tiny',
    target=TARGET,
):
    """Evaluations every 10 s (10 steps/s); loss meets the target at ``reach_s``.

    A teacher entrant logs teacher_time_s = teacher_per_s · t, except at the evaluation
    that meets the target, where it logs ``teacher_at_target``.
    """
    n_evals = int((reach_s or 50.0) / 10)
    evals, hit = [], None
    for e in range(1, n_evals + 1):
        t = 10.0 * e
        met = reach_s is not None and t >= reach_s
        row = {
            'step': int(10 * t),
            'submission_time_s': t,
            'wall_time_s': t,
            'eval_time_s': 1.0,
            'examples_seen': 160 * e,
            'validation/loss': 4.9 if met else 6.0,
        }
        if teacher_per_s:
            row['teacher_time_s'] = teacher_at_target if met else teacher_per_s * t
        evals.append(row)
        hit = hit or (row if met else None)
    result = {
        'status': 'reached' if hit else 'budget_exhausted',
        'time_to_target_s': hit and hit['submission_time_s'],
        'steps_to_target': hit and hit['step'],
        'examples_to_target': None,
        'final_step': evals[-1]['step'],
        'submission_time_s': evals[-1]['submission_time_s'],
        'error': None,
    }
    meta = None
    if teacher_per_s:
        result['teacher_time_s'] = evals[-1]['teacher_time_s']
        meta = {'teacher_training_cost': {'time_s': TRAINING_S, 'flops': 1e12}}
    config = {
        'workload': workload,
        'variant': variant,
        'size': size,
        'framework': 'jax',
        'submission': submission,
        'ruleset': 'external',
        'study': study,
        'trial': trial,
        'hparams': {},
        'seed': 0,
        'target': target,
    }
    wl = f'{workload}-{variant}' if variant else workload
    write_trial(
        root / 'exp' / submission / f'{wl}_jax' / f'study_{study}' / f'trial_{trial}',
        config=config,
        evals=evals,
        result=result,
        meta_extra=meta,
    )


@pytest.fixture
def results(tmp_path):
    for study, (a, n) in enumerate([(100, 90), (120, 130), (110, 100)]):
        _trial(tmp_path, 'adamw', 'lm', study, a)
        _trial(tmp_path, 'nadamw', 'lm', study, n)  # best baseline: median 100 s, 1000 steps
    # salt, study 0: two trials (80 s with 10 s of teacher; 90 s with 30 s), study 1: 70 s
    # with 7 s, study 2: not reached.
    _trial(tmp_path, 'salt', 'lm_slm', 0, 80, teacher_at_target=10.0, teacher_per_s=0.1)
    _trial(tmp_path, 'salt', 'lm_slm', 0, 90, trial=1, teacher_at_target=30.0, teacher_per_s=0.1)
    _trial(tmp_path, 'salt', 'lm_slm', 1, 70, teacher_at_target=7.0, teacher_per_s=0.1)
    _trial(tmp_path, 'salt', 'lm_slm', 2, None, teacher_per_s=0.1)
    _trial(
        tmp_path,
        'salt',
        'lm_slm',
        0,
        150,
        variant='weaker_teacher',
        teacher_at_target=20.0,
        teacher_per_s=0.1,
    )
    return load_results(tmp_path)


def test_three_ratios_against_the_best_baseline(results):
    table = salt_table(results.trials, results.evals)
    assert list(table['workload']) == ['lm_slm', 'lm_slm-weaker_teacher']
    row = table.iloc[0]
    assert (row['entrant'], row['baseline'], row['baseline_time_s']) == ('salt', 'nadamw (lm)', 100)
    assert (row['n_studies'], row['n_studies_reached']) == (3, 2)
    # (a) per study min: 80, 70, ∞ -> median 80.
    assert row['on_clock_time_s'] == 80 and row['on_clock_ratio'] == pytest.approx(0.8)
    # (b) per study: min(80 − 10, 90 − 30) = 60, 70 − 7 = 63, ∞ -> median 63.
    assert row['teacher_excluded_time_s'] == pytest.approx(63)
    assert row['teacher_excluded_ratio'] == pytest.approx(0.63)
    # (c) per study min: 80 + 50, 70 + 50, ∞ -> median 130.
    assert row['amortized_ratio'] == pytest.approx(1.3)
    assert row['teacher_training_time_s'] == TRAINING_S
    assert row['on_clock_ratio_min'] == pytest.approx(0.7)
    assert math.isinf(row['on_clock_ratio_max'])
    assert row['steps_ratio'] == pytest.approx(0.8)  # 10 steps/s throughout
    quarter = table.iloc[1]
    assert quarter['on_clock_ratio'] == pytest.approx(1.5)
    assert quarter['teacher_excluded_ratio'] == pytest.approx(1.3)


def test_same_numbers_from_the_files_alone(results):
    """Without the evals frame, teacher time at the target is read from evals.jsonl."""
    from_files = salt_table(results.trials)
    pd.testing.assert_frame_equal(from_files, salt_table(results.trials, results.evals))


def test_baseline_on_lm_slm_counts_and_html(tmp_path):
    _trial(tmp_path, 'adamw', 'lm_slm', 0, 60)  # ran on lm_slm without touching the teacher
    _trial(tmp_path, 'adamw', 'lm', 0, 100)
    _trial(tmp_path, 'kd_only', 'lm_slm', 0, 90, teacher_at_target=9.0, teacher_per_s=0.1)
    loaded = load_results(tmp_path)
    html = salt_section(loaded.trials, tmp_path / 'out', loaded.evals)
    table = pd.read_csv(tmp_path / 'out' / 'salt.csv')
    assert table['baseline'].tolist() == ['adamw (lm_slm)'] and table[
        'baseline_time_s'
    ].tolist() == [60]
    assert table['on_clock_ratio'].tolist() == [1.5]
    assert 'id="table-salt"' in html and 'kd_only' in html and '(b) teacher excluded' in html


def test_no_teacher_no_section(tmp_path):
    _trial(tmp_path, 'adamw', 'lm', 0, 60)
    loaded = load_results(tmp_path)
    assert salt_table(loaded.trials) is None
    assert salt_section(loaded.trials, None) == ''


def test_only_trials_of_one_target_are_compared(tmp_path):
    _trial(tmp_path, 'adamw', 'lm', 0, 60, target={**TARGET, 'value': 5.5})
    _trial(tmp_path, 'adamw', 'lm_slm', 0, 100)
    _trial(tmp_path, 'salt', 'lm_slm', 0, 80, teacher_at_target=8.0, teacher_per_s=0.1)
    loaded = load_results(tmp_path)
    table = salt_table(loaded.trials, loaded.evals)
    assert table['target'].tolist() == ['validation/loss <= 5']
    assert table['baseline'].tolist() == ['adamw (lm_slm)']
    assert table['on_clock_ratio'].tolist() == [pytest.approx(0.8)]
