"""scoring/salt.py on hand-made trees: ratios paired per study with the base optimizer."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness import results
from scoring.api import score
from scoring.load import load_results
from scoring.noise_floor import NoiseFloors
from scoring.salt import salt_markdown, salt_section, salt_table
from scoring.synthetic import trial_seed
from tests.salt.salt_tree import TARGET, TRAINING_S, write_salt_trial, write_suite_tree


def _table(root, **kwargs):
    loaded = load_results(root)
    return salt_table(loaded.trials, loaded.evals, **kwargs)


def _row(table, entrant, workload='lm_slm'):
    rows = table[(table['entrant'] == entrant) & (table['workload'] == workload)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_ratios_are_per_study_not_of_the_medians(tmp_path):
    """Per study the entrant is 10 % faster but for one slow study; the medians say 1.2x slower."""
    base_s = (100.0, 60.0, 200.0, 150.0, 80.0)
    salt_s = (90.0, 120.0, 180.0, 135.0, 72.0)  # per study: 0.9, 2.0, 0.9, 0.9, 0.9
    for study, (b, s) in enumerate(zip(base_s, salt_s)):
        write_salt_trial(tmp_path, 'nadamw', study, b)
        write_salt_trial(tmp_path, 'salt', study, s, teacher_at_hit=5.0)
    row = _row(_table(tmp_path), 'salt')
    assert (row['on_clock_time_s'], row['baseline_time_s']) == (120.0, 100.0)  # 1.2 of medians
    assert row['on_clock_ratio'] == pytest.approx(0.9)
    assert row['on_clock_per_study'] == '0.90 2.00 0.90 0.90 0.90'
    assert row['steps_ratio'] == pytest.approx(0.9)
    assert (row['paired'], row['n_pairs'], row['baseline']) == (True, 5, 'nadamw (lm_slm)')


@pytest.fixture
def suite(tmp_path):
    write_suite_tree(tmp_path)
    return _table(tmp_path)


def test_the_three_times_and_the_counts(suite):
    salt = _row(suite, 'salt')
    # (a) 75, 85, 105 against 100 each.
    assert salt['on_clock_ratio'] == pytest.approx(0.85)
    assert (salt['on_clock_ci_low'], salt['on_clock_ci_high']) == pytest.approx((0.75, 1.05))
    # (b) from the hit's teacher time (8, 9, 11 s: the probe that met the target), not from
    # the regular evaluation after it nor result.json (2.5 s more): 67, 76, 94.
    assert salt['teacher_out_ratio'] == pytest.approx(0.76)
    # (c) the teacher's training time added: 125, 135, 155.
    assert salt['training_charged_ratio'] == pytest.approx(1.35)
    assert salt['teacher_training_time_s'] == TRAINING_S
    assert (salt['teacher'], salt['teacher_role']) == ('quarter', 'weak')
    assert salt['teacher_margin_nats'] == pytest.approx(0.17)
    assert (salt['n_studies'], salt['n_studies_reached'], salt['baseline_n_reached']) == (3, 3, 3)
    kd_only = _row(suite, 'kd_only')
    assert kd_only['teacher_out_ratio'] == pytest.approx((95.0 - 12.0) / 100.0)


def test_salt_ds_pays_for_its_pool_in_examples(suite):
    salt_ds = _row(suite, 'salt_ds')
    assert salt_ds['steps_ratio'] == pytest.approx(0.9)
    assert salt_ds['examples_ratio'] == pytest.approx(1.8)  # a pool of 2 x the batch per step
    assert salt_ds['examples_verdict'] == 'slower' and salt_ds['steps_verdict'] == 'faster'


def test_variant_rows_pair_with_the_base_workloads_optimizer(suite):
    assert list(suite['workload']) == ['lm_slm'] * 3 + [
        'lm_slm-strong_teacher', 'lm_slm-weaker_teacher']
    strong = _row(suite, 'salt', 'lm_slm-strong_teacher')
    assert strong['baseline'] == 'nadamw (lm_slm)' and strong['paired']
    assert strong['on_clock_ratio'] == pytest.approx(0.75)
    assert (strong['teacher'], strong['teacher_role']) == ('half', 'strong_control')
    assert strong['teacher_margin_nats'] == pytest.approx(-0.06)
    weaker = _row(suite, 'salt', 'lm_slm-weaker_teacher')
    # Reached in study 0 only (1.2); the base optimizer reached in all three: ∞, ∞.
    assert weaker['on_clock_per_study'] == '1.20 ∞ ∞'
    assert math.isinf(weaker['on_clock_ratio']) and weaker['on_clock_verdict'] == 'slower'
    assert weaker['teacher_margin_nats'] == pytest.approx(0.45)


def test_stage_at_target_counts_studies(tmp_path):
    for study in range(4):
        write_salt_trial(tmp_path, 'nadamw', study, 100.0)
    write_salt_trial(tmp_path, 'salt', 0, 80.0, teacher_at_hit=5.0, stage=0)
    # Study 1: the faster trial met the target while decaying, the slower one in plain training.
    write_salt_trial(tmp_path, 'salt', 1, 85.0, teacher_at_hit=5.0, stage=1)
    write_salt_trial(tmp_path, 'salt', 1, 95.0, trial=1, teacher_at_hit=5.0, stage=2,
                     seed=trial_seed(0, 'lm_slm', 1, 1))
    write_salt_trial(tmp_path, 'nadamw', 1, 100.0, trial=1, seed=trial_seed(0, 'lm_slm', 1, 1))
    write_salt_trial(tmp_path, 'salt', 2, 90.0, teacher_at_hit=5.0, stage=2)
    write_salt_trial(tmp_path, 'salt', 3, None, teacher_at_hit=5.0)
    row = _row(_table(tmp_path), 'salt')
    stages = [row[f'stage_{s}'] for s in ('distilling', 'decaying', 'plain', 'unknown')]
    assert stages == [1, 1, 1, 0]
    assert salt_markdown(_table(tmp_path)).splitlines()[2].endswith('| 1 / 1 / 1 |')


def test_seeds_that_differ_are_not_paired(tmp_path):
    for study in range(3):
        write_salt_trial(tmp_path, 'nadamw', study, 100.0)
        write_salt_trial(tmp_path, 'salt', study, 80.0, teacher_at_hit=5.0)
        # A variant run on its own seeds (a suite without paired_variants).
        write_salt_trial(tmp_path, 'salt', study, 70.0, variant='strong_teacher',
                         teacher_at_hit=5.0,
                         seed=trial_seed(0, 'lm_slm-strong_teacher', study, 0))
    table = _table(tmp_path)
    strong = _row(table, 'salt', 'lm_slm-strong_teacher')
    assert not strong['paired'] and pd.isna(strong['baseline'])
    assert 'seed' in strong['why_unpaired'] and 'study 0' in strong['why_unpaired']
    assert math.isnan(strong['on_clock_ratio']) and pd.isna(strong['on_clock_verdict'])
    assert _row(table, 'salt')['paired']
    html = salt_section(table)
    assert 'not paired: study 0 of experiment salt, trial 0: seed' in html


def test_a_baseline_on_lm_pairs_only_on_shared_seeds(tmp_path):
    """lm's trials take lm's seeds in a suite; run on the entrant's seeds, they pair."""
    for study in range(2):
        for root in (tmp_path / 'lm_seeds', tmp_path / 'slm_seeds'):
            write_salt_trial(root, 'salt', study, 80.0, teacher_at_hit=5.0)
        write_salt_trial(tmp_path / 'lm_seeds', 'nadamw', study, 100.0, workload='lm',
                         seed=trial_seed(0, 'lm', study, 0))
        write_salt_trial(tmp_path / 'slm_seeds', 'nadamw', study, 100.0, workload='lm',
                         experiment='lm_runs', seed=trial_seed(0, 'lm_slm', study, 0))
    row = _row(_table(tmp_path / 'lm_seeds'), 'salt')
    assert not row['paired'] and 'seed' in row['why_unpaired']
    row = _row(_table(tmp_path / 'slm_seeds'), 'salt')
    assert row['paired'] and row['baseline'] == 'nadamw (lm)'
    assert row['on_clock_ratio'] == pytest.approx(0.8)


def test_the_base_optimizer_is_the_entrants_hyperparameter(tmp_path):
    for study in range(2):
        write_salt_trial(tmp_path, 'nadamw', study, 100.0)
        write_salt_trial(tmp_path, 'adamw', study, 50.0)  # faster, but not salt's base
        write_salt_trial(tmp_path, 'salt', study, 80.0, teacher_at_hit=5.0)
        write_salt_trial(tmp_path, 'kd_only', study, 80.0, teacher_at_hit=5.0, optimizer=None)
    table = _table(tmp_path)
    salt = _row(table, 'salt')
    assert salt['baseline'] == 'nadamw (lm_slm)' and salt['on_clock_ratio'] == pytest.approx(0.8)
    kd_only = _row(table, 'kd_only')
    assert not kd_only['paired'] and '`optimizer`' in kd_only['why_unpaired']


def test_ties_by_interval_noise_floor_or_untested(tmp_path):
    for study in range(3):
        write_salt_trial(tmp_path, 'nadamw', study, 100.0)
        write_salt_trial(tmp_path, 'salt', study, 80.0, teacher_at_hit=5.0)  # 0.8 every study
        write_salt_trial(tmp_path, 'kd_only', study, (90.0, 100.0, 120.0)[study],
                         teacher_at_hit=5.0)
    table = _table(tmp_path)
    salt, kd_only = _row(table, 'salt'), _row(table, 'kd_only')
    assert (salt['on_clock_ci_low'], salt['on_clock_ci_high']) == (0.8, 0.8)
    assert salt['on_clock_verdict'] == 'faster' and not salt['on_clock_tie']
    assert kd_only['on_clock_verdict'] == 'tie'  # 0.9, 1.0, 1.2: the interval holds 1
    floor = results.NoiseFloor(
        hardware_class='cpu-synthetic-2c', workload='lm_slm', size='tiny', variant=None,
        framework='jax', submission='nadamw', seeds='same', k=5, n_reached=5,
        time_to_target_cv=0.15, steps_to_target_cv=0.1)
    floors = NoiseFloors('test', [], [floor])
    salt = _row(_table(tmp_path, floors=floors), 'salt')
    # A paired ratio of two same-seed times: sqrt(2) x 15 % = 21 %.
    assert salt['on_clock_noise_floor_cv'] == pytest.approx(math.sqrt(2) * 0.15)
    assert salt['on_clock_verdict'] == 'tie'      # |0.8 − 1| within the ratio's floor
    assert salt['steps_verdict'] == 'faster'      # but not within the steps' CV
    salt = _row(_table(tmp_path, n_samples=0), 'salt')
    assert math.isnan(salt['on_clock_ci_low']) and salt['on_clock_verdict'] == 'untested'


def test_unknown_training_time_leaves_c_unknown(tmp_path):
    for study in range(2):
        write_salt_trial(tmp_path, 'nadamw', study, 100.0)
        write_salt_trial(tmp_path, 'salt', study, 80.0, teacher_at_hit=5.0, training_s=None)
    row = _row(_table(tmp_path), 'salt')
    assert row['training_charged_verdict'] == 'unknown'
    assert math.isnan(row['training_charged_ratio'])
    assert row['teacher_out_ratio'] == pytest.approx(0.75)


def test_only_trials_of_one_target_are_compared(tmp_path):
    write_salt_trial(tmp_path, 'nadamw', 0, 60.0, target={**TARGET, 'value': 5.5},
                     experiment='old')
    write_salt_trial(tmp_path, 'salt', 0, 80.0, teacher_at_hit=5.0)
    row = _row(_table(tmp_path), 'salt')
    assert not row['paired'] and 'no trial of nadamw' in row['why_unpaired']


def test_no_teacher_no_section(tmp_path):
    write_salt_trial(tmp_path, 'nadamw', 0, 60.0)
    assert _table(tmp_path) is None
    assert salt_section(None) == ''


def test_the_report_shows_it_and_writes_salt_csv(tmp_path):
    write_suite_tree(tmp_path / 'results')
    rep = score(tmp_path / 'results', out_dir=tmp_path / 'out', bootstrap_samples=200)
    written = pd.read_csv(rep.paths['salt.csv'])
    assert list(written['entrant']) == list(rep.salt['entrant'])
    assert written['on_clock_ratio'].tolist() == pytest.approx(rep.salt['on_clock_ratio'].tolist())
    page = rep.paths['report.html'].read_text(encoding='utf-8')
    assert 'id="table-salt"' in page and 'paired with the base optimizer' in page
    assert 'half_short (+0.45 nats, weak)' in page and 'not distinguishable' in page
