"""Trials in the report: failures with their error, resolution, contention; parallel work."""

import html as html_mod

import pandas as pd
import pytest
from scoring_fixtures import trial

from scoring.api import score
from scoring.load import load_results
from scoring.outputs import write_outputs
from scoring.parallel import can_fork, fork_map

FIDELITY = {
    'time_to_target_resolution_s': 0.4,
    'extra_evals': 3,
    'eval_wall_share': 0.052,
    'cpu_share': 0.97,
    'load_average': 1.1,
    'timing_disturbed': False,
}


def _table_rows(page: str, table_id: str) -> str:
    start = page.index(f'id="{table_id}"')
    return page[start:page.index('</table>', start)]


def test_failed_trials_show_failed_and_their_error_never_not_reached(tmp_path):
    for study in range(2):
        trial(tmp_path, submission='adamw', study=study, reach_at_s=30)
        trial(tmp_path, submission='broken', study=study, status='failed',
              result_extra={'error': 'ValueError: learning rate must be > 0\nTraceback ...'})
    # A mix: one failure next to a trial that ran and missed.
    trial(tmp_path, submission='flaky', study=0, status='failed',
          result_extra={'error': 'RuntimeError: out of memory'})
    trial(tmp_path, submission='flaky', study=1, reach_at_s=None)
    rep = score(tmp_path, reference='adamw', bootstrap_samples=0, out_dir=tmp_path / 'out')
    times = rep.times.set_index('entrant')
    assert times.loc['broken', 'note'] == 'failed'
    assert times.loc['broken', 'first_error'] == 'ValueError: learning rate must be > 0'
    assert times.loc['broken', 'n_trials_failed'] == 2
    assert times.loc['flaky', 'note'] == 'not reached'
    assert times.loc['flaky', 'n_trials_failed'] == 1
    page = html_mod.unescape((tmp_path / 'out' / 'report.html').read_text())
    grid = _table_rows(page, 'table-time-to-target')
    assert 'failed: ValueError: learning rate must be > 0' in grid
    assert '∞ (not reached) · 1 failed' in grid
    listed = _table_rows(page, 'table-trials')
    assert listed.count('failed: ValueError: learning rate must be > 0') == 2
    assert 'failed: RuntimeError: out of memory' in listed
    assert 'Traceback' not in listed  # the first line only
    md = (tmp_path / 'out' / 'time_to_target.md').read_text()
    assert 'failed: ValueError: learning rate must be > 0' in md
    csv = pd.read_csv(tmp_path / 'out' / 'trials.csv')
    assert sorted(csv.loc[csv['status'] == 'failed', 'error'].unique()) == [
        'RuntimeError: out of memory', 'ValueError: learning rate must be > 0']
    assert '6 trials (6 finished, 2 reached the target, 3 failed)' in page


def test_resolution_shares_and_disturbed_trials_are_shown(tmp_path):
    trial(tmp_path, submission='adamw', study=0, reach_at_s=70, result_extra=FIDELITY)
    trial(tmp_path, submission='adamw', study=1, reach_at_s=80,
          result_extra={**FIDELITY, 'timing_disturbed': True, 'cpu_share': 0.61})
    trial(tmp_path, submission='sgd', study=0, reach_at_s=90)  # written before the fields
    rep = score(tmp_path, bootstrap_samples=0, out_dir=tmp_path / 'out')
    row = rep.trials.set_index(['submission', 'study']).loc[('adamw', 1)]
    assert row['time_to_target_resolution_s'] == 0.4 and row['timing_disturbed'] is True
    assert pd.isna(rep.trials.set_index('submission').loc['sgd', 'cpu_share'])
    page = html_mod.unescape((tmp_path / 'out' / 'report.html').read_text())
    listed = _table_rows(page, 'table-trials')
    assert '70 s ± 0.4 s' in listed and '80 s ± 0.4 s' in listed
    assert '⚠ disturbed' in listed and '61%' in listed and '5%' in listed
    assert '90 s</td>' in listed  # no resolution recorded: none shown
    assert '⚠ 1 disturbed' in _table_rows(page, 'table-time-to-target')
    assert any('1 trials were flagged as disturbed' in n for n in rep.notes)
    csv = pd.read_csv(tmp_path / 'out' / 'trials.csv').set_index(['entrant', 'study'])
    assert csv.loc[('adamw', 0), 'extra_evals'] == 3
    assert csv.loc[('adamw', 1), 'timing_disturbed']


def _tree(root):
    for submission in ('adamw', 'sgd', 'lion'):
        for workload in ('mnist', 'lm', 'ctr'):
            for study in range(2):
                for t in range(2):
                    trial(root, submission=submission, workload=workload, study=study,
                          trial_index=t, reach_at_s=10 * (1 + study + t) if t or study else None)
    trial(root, submission='sgd', workload='lm', study=0, trial_index=2, status='failed')
    (root / 'exp' / 'sgd' / 'lm_jax' / 'study_1' / 'trial_0' / 'result.json').write_text('{')


def _require_fork():
    # At run time: another test module may have imported torch or jax since collection.
    if not can_fork():
        pytest.skip('forked workers need Linux and a process without torch or jax')


def test_parallel_reading_and_drawing_give_the_same_outputs(tmp_path):
    _require_fork()
    _tree(tmp_path / 'r')
    one = load_results(tmp_path / 'r', workers=1)
    three = load_results(tmp_path / 'r', workers=3)
    pd.testing.assert_frame_equal(one.trials, three.trials)
    pd.testing.assert_frame_equal(one.evals, three.evals)
    assert one.problems == three.problems and one.problems
    assert one.hardware == three.hardware
    serial = score(tmp_path / 'r', out_dir=tmp_path / 'a', workers=1, bootstrap_samples=50)
    parallel = score(tmp_path / 'r', out_dir=tmp_path / 'b', workers=2, bootstrap_samples=50)
    assert set(serial.paths) == set(parallel.paths)
    for name in serial.paths:
        if name.endswith('.csv') or name.endswith('.md'):
            assert (tmp_path / 'a' / name).read_text() == (tmp_path / 'b' / name).read_text()
        else:
            assert (tmp_path / 'b' / name).stat().st_size > 0


def test_fork_map_keeps_order_and_raises_what_a_worker_raised():
    _require_fork()
    assert fork_map(lambda x: x * x, list(range(7)), workers=3) == [x * x for x in range(7)]

    def boom(x):
        if x == 2:
            raise ValueError('item 2 is bad')
        return x

    with pytest.raises(ValueError, match='item 2 is bad'):
        fork_map(boom, [0, 1, 2, 3], workers=2)


def test_write_outputs_draws_a_curve_per_workload_from_selected_trials(tmp_path):
    _tree(tmp_path / 'r')
    rep = score(tmp_path / 'r', bootstrap_samples=0)
    paths = write_outputs(rep, tmp_path / 'out', workers=2)
    assert {'curves_mnist.svg', 'curves_lm.svg', 'curves_ctr.svg', 'trials.csv'} <= set(paths)


def test_curves_are_svg_with_their_text_as_text(tmp_path):
    _tree(tmp_path / 'r')
    score(tmp_path / 'r', bootstrap_samples=0, out_dir=tmp_path / 'out')
    svg = (tmp_path / 'out' / 'curves_mnist.svg').read_text()
    assert svg.lstrip().startswith('<?xml') and '<text' in svg
    # The legend: each entrant with the trials drawn (each study's selected trial), the target.
    for label in ('adamw (2 trials)', 'sgd (2 trials)', 'target validation/loss ≤ 1'):
        assert label in svg
    assert '<dc:date>' not in svg  # no timestamp: the same results give the same file


def test_no_fork_once_a_multithreaded_framework_is_loaded(monkeypatch):
    import os
    import sys
    import types

    _require_fork()
    assert set(fork_map(lambda _: os.getpid(), list(range(4)), workers=2)) != {os.getpid()}
    monkeypatch.setitem(sys.modules, 'torch', types.ModuleType('torch'))
    assert fork_map(lambda _: os.getpid(), list(range(4)), workers=2) == [os.getpid()] * 4
