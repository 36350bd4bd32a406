"""Optional report sections: CTR metrics with the replica prediction difference, teacher cost."""

import json
import os

import numpy as np
import pytest

from harness import results

from scoring.api import score
from scoring.ctr import replica_prediction_difference
from scoring_fixtures import trial


def test_rpd_formula():
    p1 = np.array([0.2, 0.5, 0.0], dtype=np.float32)
    p2 = np.array([0.4, 0.5, 0.0], dtype=np.float32)
    # |0.2-0.4| / 0.3 = 2/3, then 0, then 0 (both zero) -> mean 2/9
    assert replica_prediction_difference(p1, p2) == pytest.approx(2 / 9, rel=1e-6)
    assert replica_prediction_difference(p1, p1) == 0.0


def _ctr_tree(root):
    finals = [(0.75, 1.1), (0.80, 0.9), (0.78, 1.0)]
    predictions = [[0.2, 0.5], [0.4, 0.5], [0.2, 0.5]]
    for study, ((auc, cal), preds) in enumerate(zip(finals, predictions)):
        d = trial(
            root,
            submission='selfie',
            workload='ctr',
            study=study,
            ruleset='self',
            reach_at_s=20,
            n_evals=3,
            extra_metrics={
                'validation/auc': [0.7, 0.72, auc],
                'validation/calibration': [1.3, 1.2, cal],
            },
        )
        np.save(d / 'validation_predictions.npy', np.asarray(preds, dtype=np.float32))
    for study in range(2):
        trial(
            root,
            submission='tuned',
            workload='ctr',
            study=study,
            reach_at_s=30,
            extra_metrics={'validation/auc': [0.7, 0.71, 0.74], 'validation/calibration': [1.0]},
        )
    trial(root, submission='tuned', workload='mnist', reach_at_s=30)


def test_ctr_table_with_rpd_for_self_tuned_entrants(tmp_path):
    _ctr_tree(tmp_path)
    rep = score(tmp_path, bootstrap_samples=0, out_dir=tmp_path / 'out')
    table = rep.ctr.set_index('entrant')
    assert list(rep.ctr['workload_id'].unique()) == ['ctr']  # mnist has no AUC
    assert table.loc['selfie', 'final_auc'] == pytest.approx(0.78)
    assert table.loc['selfie', 'final_calibration'] == pytest.approx(1.0)
    assert table.loc['selfie', 'rpd'] == pytest.approx(2 / 9, rel=1e-6)  # (1/3 + 0 + 1/3) / 3
    assert table.loc['selfie', 'rpd_pairs'] == 3
    # The spread over pairs and the step all replicas stopped at (3 evals x 100 steps).
    assert table.loc['selfie', 'rpd_min'] == 0.0
    assert table.loc['selfie', 'rpd_max'] == pytest.approx(1 / 3, rel=1e-6)
    assert table.loc['selfie', 'rpd_step'] == 300
    assert table.loc['tuned', 'final_auc'] == pytest.approx(0.74)
    assert np.isnan(table.loc['tuned', 'rpd'])  # no predictions saved
    html = (tmp_path / 'out' / 'report.html').read_text()
    assert 'id="table-ctr"' in html and (tmp_path / 'out' / 'ctr.csv').exists()


def test_mismatched_predictions_are_reported_and_left_out(tmp_path):
    _ctr_tree(tmp_path)
    bad = tmp_path / 'exp' / 'selfie' / 'ctr_jax' / 'study_2' / 'trial_0'
    np.save(bad / 'validation_predictions.npy', np.zeros(5, dtype=np.float32))
    rep = score(tmp_path, bootstrap_samples=0)
    table = rep.ctr.set_index('entrant')
    assert table.loc['selfie', 'rpd_pairs'] == 1
    assert table.loc['selfie', 'rpd'] == pytest.approx(1 / 3, rel=1e-6)
    assert sum('5 predictions but 2' in p.reason for p in rep.problems) == 2


def test_replicas_stopped_at_different_steps_get_no_rpd_and_a_reason(tmp_path):
    """Trials that stop at their target end at different steps: no RPD between them."""
    _ctr_tree(tmp_path)
    result_path = tmp_path / 'exp' / 'selfie' / 'ctr_jax' / 'study_1' / 'trial_0' / 'result.json'
    result = json.loads(result_path.read_text())
    result_path.write_text(json.dumps({**result, 'final_step': 250}))
    rep = score(tmp_path, bootstrap_samples=0)
    row = rep.ctr.set_index('entrant').loc['selfie']
    assert np.isnan(row['rpd']) and np.isnan(row['rpd_step']) and row['rpd_pairs'] == 0
    (problem,) = [p for p in rep.problems if 'different steps' in p.reason]
    assert 'study 0: 300, study 1: 250, study 2: 300' in problem.reason
    assert 'stop_at_target: false and max_steps' in problem.reason
    assert problem.path.endswith(os.path.join('selfie', 'ctr_jax'))


def test_studies_with_different_hyperparameters_are_not_replicas(tmp_path):
    for study, lr in enumerate([0.001, 0.002]):
        d = trial(
            tmp_path,
            submission='tuned',
            workload='ctr',
            study=study,
            reach_at_s=30,
            extra_metrics={'validation/auc': [0.7], 'validation/calibration': [1.0]},
        )
        identity = results.read_identity(d)
        identity.hparams = {'learning_rate': lr}
        results.write_identity(d, identity)
        np.save(d / 'validation_predictions.npy', np.full(4, 0.1 * (study + 1), np.float32))
    rep = score(tmp_path, bootstrap_samples=0)
    row = rep.ctr.set_index('entrant').loc['tuned']
    assert np.isnan(row['rpd']) and row['rpd_pairs'] == 0
    assert not [p for p in rep.problems if 'RPD' in p.reason or 'replica' in p.reason]


def test_teacher_cost_section_is_data_driven(tmp_path):
    for study in range(3):
        trial(
            tmp_path,
            submission='salt',
            workload='lm',
            study=study,
            reach_at_s=50,
            result_extra={'teacher_time_s': 5.0 * (study + 1)},
            meta_extra={'teacher_training_cost': {'time_s': 100.0, 'flops': 1e15}},
        )
        trial(tmp_path, submission='adamw', workload='lm', study=study, reach_at_s=60)
    rep = score(tmp_path, bootstrap_samples=0, out_dir=tmp_path / 'out')
    table = rep.teacher.set_index('entrant')
    assert list(table.index) == ['salt']  # adamw has no teacher
    assert table.loc['salt', 'teacher_time_s'] == 10.0
    assert table.loc['salt', 'teacher_share_of_submission_time'] == pytest.approx(0.2)
    assert table.loc['salt', 'teacher_training_time_s'] == 100.0
    assert table.loc['salt', 'teacher_training_flops'] == 1e15
    assert 'id="table-teacher"' in (tmp_path / 'out' / 'report.html').read_text()


def test_sections_absent_without_their_data(tmp_path):
    trial(tmp_path, reach_at_s=10)
    rep = score(tmp_path, bootstrap_samples=0, out_dir=tmp_path / 'out')
    assert rep.ctr is None and rep.teacher is None
    html = (tmp_path / 'out' / 'report.html').read_text()
    assert 'table-ctr' not in html and 'table-teacher' not in html
    assert not (tmp_path / 'out' / 'ctr.csv').exists()
