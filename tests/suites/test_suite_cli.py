"""`timetrial run SUITE`, `status` and `cancel` through the real command line."""

from __future__ import annotations

import json

import pytest

from harness.cli import main as cli
from tests.suites import fakes
from tests.suites.conftest import BASIC


@pytest.fixture
def suite_path(write_suite, tmp_path):
    return write_suite(BASIC.format(results=tmp_path / 'results'))


def test_dry_run_prints_the_plan_and_launches_nothing(suite_path, tmp_path, capsys):
    assert cli.main(['run', str(suite_path), '--dry-run', '--executor', 'slurm']) == 0
    out = capsys.readouterr().out
    assert '#SBATCH --array=0-15%16' in out and '#SBATCH --time=60' in out
    assert '16 array task(s) in 1 sbatch call(s)' in out
    assert 'trial:sub_a/fakewl_jax/study_0/trial_0 size:tiny' in out
    assert 'learning_rate=' in out and 'dry run: nothing was launched.' in out
    assert not (tmp_path / 'results').exists()


def test_bad_suite_exits_2_with_file_and_line(write_suite, capsys):
    path = write_suite('''
        workloads: [fakewl]
        submissions: [sub_a]
        frameworks: [jax]
        trials: "5"
    ''')
    assert cli.main(['run', str(path)]) == 2
    err = capsys.readouterr().err
    assert f'{path}:4: trials: expected an integer, got \'5\' (a string)' in err


def test_run_status_cancel_round_trip(suite_path, tmp_path, capsys, monkeypatch):
    import harness.trial.run

    monkeypatch.setattr(harness.trial.run, 'run_trial', fakes.fake_run)
    assert cli.main(['run', str(suite_path), '--executor', 'debug', '--experiment', 'cli',
                     '--max-steps', '7']) == 0
    out = capsys.readouterr().out
    exp = tmp_path / 'results' / 'cli'
    assert 'summary:' in out and 'reached:16' in out
    trial_yaml = exp / 'sub_a' / 'fakewl_jax' / 'study_0' / 'trial_0' / 'trial.json'
    assert trial_yaml.exists()
    from harness.launch.records import read_manifest

    assert {c.max_steps for c in read_manifest(exp).values()} == {7}

    assert cli.main(['status', str(exp), '--json']) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 16 and {r['state'] for r in rows} == {'reached'}
    assert cli.main(['status', str(exp)]) == 0
    assert 'reached:16' in capsys.readouterr().out
    assert cli.main(['cancel', str(exp)]) == 0
    assert 'nothing to cancel' in capsys.readouterr().out
    # Running it again skips everything.
    assert cli.main(['run', str(suite_path), '--executor', 'debug', '--experiment', 'cli',
                     '--max-steps', '7']) == 0
    assert 'finished:16 reattached:0 to_launch:0' in capsys.readouterr().out


def test_bad_overrides(suite_path, capsys):
    assert cli.main(['run', str(suite_path), '--experiment', 'a/b', '--dry-run']) == 2
    assert 'not a usable directory name' in capsys.readouterr().err
    assert cli.main(['run', str(suite_path), '--parallelism', '0', '--dry-run']) == 2
    with pytest.raises(SystemExit) as e:
        cli.main(['run', str(suite_path), '--executor', 'cloud'])
    assert e.value.code == 2
