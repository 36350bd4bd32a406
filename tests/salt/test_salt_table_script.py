"""benchmarks/salt_table.py end to end on a hand-made tree: score, write the files, the README."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.salt.salt_tree import write_salt_trial, write_suite_tree

ROOT = Path(__file__).resolve().parents[2]
README = '''# lm_slm

Text before.

<!-- salt-table:begin -->
(old table)
<!-- salt-table:end -->

Text after.
'''


@pytest.fixture(scope='module')
def script():
    path = ROOT / 'benchmarks' / 'salt_table.py'
    spec = importlib.util.spec_from_file_location('salt_table', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(tmp_path, *extra):
    return ['--results-dir', str(tmp_path / 'results'), '--out-dir', str(tmp_path / 'out'),
            '--readme', str(tmp_path / 'README.md'), *extra]


def test_scores_writes_the_table_and_regenerates_the_readme(script, tmp_path, capsys):
    write_suite_tree(tmp_path / 'results')
    (tmp_path / 'README.md').write_text(README, encoding='utf-8')
    assert script.main(_args(tmp_path, '--skip-run')) == 0
    table = pd.read_csv(tmp_path / 'out' / 'salt_table.csv')
    assert list(table['entrant']) == ['kd_only', 'salt', 'salt_ds', 'salt', 'salt']
    assert table.loc[1, 'on_clock_ratio'] == pytest.approx(0.85)
    meta = json.loads((tmp_path / 'out' / 'salt_table.json').read_text())
    assert meta['n_trials'] == 18 and meta['machines'][0]['hardware_class'] == 'cpu-synthetic-2c'
    assert meta['max_steps'] == [] and meta['run_wall_s'] is None
    readme = (tmp_path / 'README.md').read_text()
    assert readme.startswith('# lm_slm\n\nText before.\n\n<!-- salt-table:begin -->\n')
    assert readme.endswith('<!-- salt-table:end -->\n\nText after.\n')
    assert '(old table)' not in readme and 'Smoke run' not in readme
    assert '| lm_slm | salt | quarter (+0.17 nats, weak) | nadamw (lm_slm), 3 studies' in readme
    assert '0.76 [0.67–0.94] helped' in readme  # (b) of salt
    assert '- salt on lm_slm, teacher quarter (+0.17 nats, weak), against nadamw' in readme
    assert (tmp_path / 'results' / 'salt' / 'scoring' / 'report.html').exists()
    printed = capsys.readouterr().out
    assert 'score_s:' in printed and 'salt_ds on lm_slm' in printed
    # Regenerated from the two files alone, the block is the same.
    assert script.main(_args(tmp_path, '--readme-only')) == 0
    assert (tmp_path / 'README.md').read_text() == readme


def test_a_capped_run_says_it_is_no_result(script, tmp_path):
    for study in range(2):
        for submission in ('nadamw', 'salt'):
            d = write_salt_trial(tmp_path / 'results', submission, study, None,
                                 teacher_at_hit=None)
            identity = json.loads((d / 'trial.json').read_text())
            (d / 'trial.json').write_text(json.dumps({**identity, 'max_steps': 5}))
    (tmp_path / 'README.md').write_text(README, encoding='utf-8')
    assert script.main(_args(tmp_path, '--skip-run')) == 0
    readme = (tmp_path / 'README.md').read_text()
    assert 'Smoke run (every trial capped at 5 steps)' in readme
    assert 'neither reached' in readme


def test_bad_input_exits_2_and_writes_nothing(script, tmp_path, capsys):
    (tmp_path / 'README.md').write_text(README, encoding='utf-8')
    assert script.main(_args(tmp_path, '--readme-only')) == 2
    assert 'without --readme-only first' in capsys.readouterr().err
    write_suite_tree(tmp_path / 'results')
    (tmp_path / 'README.md').write_text('# no markers\n', encoding='utf-8')
    assert script.main(_args(tmp_path, '--skip-run')) == 2
    assert '<!-- salt-table:begin -->' in capsys.readouterr().err
    assert (tmp_path / 'README.md').read_text() == '# no markers\n'
    assert not (tmp_path / 'out').exists()  # checked before scoring, so nothing written
    write_salt_trial(tmp_path / 'plain', 'nadamw', 0, 60.0)
    (tmp_path / 'README.md').write_text(README, encoding='utf-8')
    args = ['--results-dir', str(tmp_path / 'plain'), '--out-dir', str(tmp_path / 'out'),
            '--readme', str(tmp_path / 'README.md'), '--skip-run']
    assert script.main(args) == 2
    assert 'no SALT table' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists() and '(old table)' in (tmp_path / 'README.md').read_text()


def test_the_shipped_readme_has_the_markers():
    text = (ROOT / 'workloads' / 'lm_slm' / 'README.md').read_text(encoding='utf-8')
    assert text.count('<!-- salt-table:begin -->') == text.count('<!-- salt-table:end -->') == 1


def test_a_bad_noise_floor_file_is_refused_before_any_trial_runs(script, tmp_path, capsys,
                                                                  monkeypatch):
    (tmp_path / 'README.md').write_text(README, encoding='utf-8')
    ran = []
    monkeypatch.setattr(script, 'run_suite', lambda *a: ran.append(a) or 0.0)
    missing = tmp_path / 'no_such_floor.json'
    assert script.main(_args(tmp_path, '--noise-floor', str(missing))) == 2
    err = capsys.readouterr().err
    assert 'salt_table: error:' in err and 'no_such_floor.json' in err and 'does not exist' in err
    assert not ran and not (tmp_path / 'out').exists()
    assert (tmp_path / 'README.md').read_text() == README


def test_the_table_states_the_trials_own_wall_time(script, tmp_path):
    write_suite_tree(tmp_path / 'results')
    (tmp_path / 'README.md').write_text(README, encoding='utf-8')
    assert script.main(_args(tmp_path, '--skip-run')) == 0
    meta = json.loads((tmp_path / 'out' / 'salt_table.json').read_text())
    readme = (tmp_path / 'README.md').read_text()
    # The sum of the trials' own wall times (result.json), whoever ran them.
    walls = [json.loads(f.read_text()).get('wall_time_s')
             for f in (tmp_path / 'results' / 'salt').rglob('result.json')]
    walls = [w for w in walls if w is not None]  # a trial that failed early records none
    assert meta['trials_wall_s'] == pytest.approx(sum(walls)) and sum(walls) > 0
    assert f'{sum(walls) / 60:.0f} min of trial wall time in all' in readme
