"""The ctr_replicas suite end to end: replicas trained to one fixed step, RPD in the report."""

import numpy as np
import pytest

from harness.cli import main as cli
from harness.launch.suite import find_suite, load_suite
from scoring.api import score
from workloads.ctr import workload
from workloads.ctr.fakes import write_prepared

pytestmark = pytest.mark.integration
STEPS = 3


def test_ctr_replicas_suite_reports_the_rpd_at_one_step(tmp_path, monkeypatch):
    suite = load_suite(find_suite('ctr_replicas'))
    assert (suite.ruleset, suite.studies, suite.trials) == ('external', 3, 1)
    assert suite.stop_at_target is False and suite.max_steps == 600
    monkeypatch.setenv('TIMETRIAL_TARGETS_DIR', str(tmp_path / 'targets'))  # shipped budgets
    cfg = workload.model_config('tiny', None)
    write_prepared(tmp_path / 'data', 'movielens', cfg.num_dense, cfg.table_sizes, 2000, 1000)
    status = cli.main([
        'run', 'ctr_replicas', '--executor', 'debug', '--max-steps', str(STEPS),
        '--data-dir', str(tmp_path / 'data'), '--results-dir', str(tmp_path / 'results'),
    ])
    assert status == 0
    rep = score(tmp_path / 'results' / 'ctr_replicas', bootstrap_samples=0)
    table = rep.ctr.set_index('entrant')
    assert sorted(table.index) == ['adamw@jax', 'adamw@pytorch']
    for entrant, row in table.iterrows():
        assert row['rpd_step'] == STEPS and row['rpd_pairs'] == 3, entrant
        # Different seeds: different predictions, by a finite relative amount.
        assert 0.0 < row['rpd_min'] <= row['rpd'] <= row['rpd_max'] < 2.0, entrant
    steps = rep.trials.groupby('entrant')['final_step'].unique()
    assert all(list(s) == [STEPS] for s in steps)
    assert not np.isnan(table['final_auc']).any()
