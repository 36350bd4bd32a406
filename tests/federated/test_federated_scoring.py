"""The federated section of the report: straggler shares per entrant, the control, resolution."""

from __future__ import annotations

import math

import pytest

from scoring import federated as fed_scoring
from scoring.api import score
from scoring.load import load_results
from scoring.synthetic import write_trial

TARGET = 0.5


def federated_trial(root, submission, study, *, time_s, straggler_share, late):
    """One finished federated trial with the files the federated runner writes."""
    delivered = 100
    stragglers = round(straggler_share * delivered)
    config = {
        'workload': 'federated_shakespeare',
        'variant': 'heavy_stragglers',
        'size': 'tiny',
        'framework': 'jax',
        'submission': submission,
        'ruleset': 'self',
        'study': study,
        'trial': 0,
        'hparams': None,
        'seed': study,
        'target': {'metric': 'validation/accuracy', 'value': TARGET, 'mode': 'max'},
        'kind': 'federated',
        'clock': 'simulated',
    }
    end_s = time_s if time_s is not None else 7200.0
    evals = [
        {
            'step': step,
            'submission_time_s': t,
            'wall_time_s': t / 100,
            'eval_time_s': 1.0,
            'examples_seen': 32 * step,
            'validation/accuracy': acc,
            'validation/loss': 2.0,
        }
        for step, t, acc in ((10, 3600.0, 0.3), (20, end_s, 0.6 if time_s else 0.4))
    ]
    federated = {
        'event_digest': 'x',
        'delivered': delivered,
        'delivered_stragglers': stragglers,
        'delivered_share_stragglers': stragglers / delivered,
        'delivered_on_time_share_stragglers': 0.0,
        'dispatched_share_stragglers': 0.2,
        'late_delivered': late,
    }
    result = {
        'status': 'reached' if time_s else 'budget_exhausted',
        'time_to_target_s': time_s,
        'steps_to_target': 20 if time_s else None,
        'examples_to_target': 640 if time_s else None,
        'final_step': 20,
        'submission_time_s': end_s,
        'error': None,
        'clock': 'simulated',
        'time_to_target_resolution_s': 120.0 if time_s else None,
        'extra_evals': 7,
        'eval_wall_share': 0.1,
        'extra': {'federated': federated},
    }
    write_trial(
        root
        / 'fed'
        / submission
        / 'federated_shakespeare-heavy_stragglers_jax'
        / f'study_{study}'
        / 'trial_0',
        config=config,
        evals=evals,
        result=result,
    )


@pytest.fixture
def federated_results(tmp_path):
    for study, t in enumerate((5000.0, 6000.0)):
        federated_trial(tmp_path, 'fedavg', study, time_s=t, straggler_share=0.0, late=0)
        federated_trial(
            tmp_path, 'fedavg_distill', study, time_s=t - 1000, straggler_share=0.2, late=30
        )
        federated_trial(
            tmp_path, 'fedavg_distill_control', study, time_s=None, straggler_share=0.2, late=30
        )
    return tmp_path


def test_federated_table_per_entrant(federated_results):
    table = fed_scoring.federated_table(load_results(federated_results).trials)
    rows = {r['entrant']: r for _, r in table.iterrows()}
    assert set(rows) == {'fedavg', 'fedavg_distill', 'fedavg_distill_control'}
    assert rows['fedavg']['time_to_target_s'] == 5500.0  # median over the two studies
    assert rows['fedavg_distill']['time_to_target_s'] == 4500.0
    assert rows['fedavg_distill_control']['time_to_target_s'] == math.inf
    assert rows['fedavg_distill_control']['n_studies_reached'] == 0
    assert rows['fedavg']['straggler_share'] == 0.0
    assert rows['fedavg_distill']['straggler_share'] == pytest.approx(0.2)
    assert rows['fedavg_distill_control']['control_of'] == 'fedavg_distill'
    assert rows['fedavg']['control_of'] == ''
    assert rows['fedavg_distill']['time_to_target_resolution_s'] == 120.0
    assert rows['fedavg_distill']['extra_evals'] == 7
    assert rows['fedavg']['late_delivered'] == 0 and rows['fedavg_distill']['late_delivered'] == 30
    text = fed_scoring.format_text(table)
    assert 'fedavg_distill_control is the control of fedavg_distill' in text


def test_the_report_shows_the_federated_section(federated_results, tmp_path):
    out = tmp_path / 'scoring'
    rep = score(federated_results, out_dir=out, bootstrap_samples=0)
    assert 'federated.csv' in rep.paths
    page = (out / 'report.html').read_text(encoding='utf-8')
    assert 'id="table-federated"' in page and 'fedavg_distill_control' in page
    assert 'straggler_share' in (out / 'federated.csv').read_text()


def test_no_federated_trials_no_section(tmp_path):
    from scoring.synthetic import generate

    generate(tmp_path, n_workloads=1, n_submissions=1, n_studies=1, n_trials=1)
    trials = load_results(tmp_path).trials
    assert fed_scoring.federated_table(trials) is None
    assert fed_scoring.federated_section(trials) == ''


def test_command_line(federated_results, capsys):
    assert fed_scoring.main([str(federated_results)]) == 0
    printed = capsys.readouterr().out
    assert 'straggler_share' in printed and 'fedavg_distill_control' in printed
    assert (federated_results / 'scoring' / 'federated.csv').exists()
