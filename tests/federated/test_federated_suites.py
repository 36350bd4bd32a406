"""The shipped federated suites validate and pair fedavg_distill with its control."""

from __future__ import annotations

import pytest

from harness.launch.suite import expand, find_suite, load_suite


@pytest.mark.parametrize('name', ['federated', 'federated_stragglers'])
def test_federated_suites_validate_and_run_the_control(name):
    suite = load_suite(find_suite(name))
    assert suite.experiment == name and suite.ruleset == 'self'
    names = [s.name for s in suite.submissions]
    assert {'fedavg', 'fedbuff', 'fedavg_distill', 'fedavg_distill_control'} <= set(names)
    trials = expand(suite)
    # The control runs wherever fedavg_distill runs, with the same trial seeds and no
    # hyperparameters (both run their defaults: the same clients report).
    distill = {(t.workload_dirname, t.study): t for t in trials if t.submission == 'fedavg_distill'}
    control = {
        (t.workload_dirname, t.study): t for t in trials if t.submission == 'fedavg_distill_control'
    }
    assert distill.keys() == control.keys() and distill
    for key, t in distill.items():
        assert t.seed == control[key].seed and t.hparams is None is control[key].hparams
