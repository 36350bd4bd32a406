"""`timetrial noise`: K repeats with one seed and K with K seeds; CVs into a file scoring reads."""

from __future__ import annotations

import json

import pytest

from harness import hardware, paths, results, spec
from harness.cli.main import main
from tests.harness import toy
from tests.harness.conftest import SUBMISSION


@pytest.fixture(autouse=True)
def _quick_evaluations(monkeypatch):
    """Real clocks here (each repeat is a real trial): evaluate every 20 ms of training."""
    monkeypatch.setattr(toy.ToyWorkload, 'BUDGET', spec.Budget(
        validation_target_value=1e-3, max_allowed_runtime_sec=20.0,
        eval_period_time_sec=0.02, step_hint=20))


def _argv(tmp_path, *extra):
    hp = tmp_path / 'hp.yaml'
    hp.write_text('learning_rate: 0.2\n')
    return ['noise', 'toy', '--submission', SUBMISSION, '--executor', 'debug',
            '--hparams', str(hp), '--results-dir', str(tmp_path / 'results'),
            '--data-dir', str(tmp_path / 'data'), *extra]


def test_noise_floor_of_the_toy_workload(toy_env, tmp_path, capsys):
    assert main(_argv(tmp_path, '--repeats', '3')) == 0
    out = capsys.readouterr().out
    exp = tmp_path / 'results' / 'noise-toy-tiny'
    floors = {f.seeds: f for f in results.read_noise_floors(exp / 'noise_floor.json')}
    assert set(floors) == {'same', 'different'}
    same, different = floors['same'], floors['different']
    assert same.k == different.k == same.n_reached == different.n_reached == 3
    assert same.framework == 'pytorch' and same.workload == 'toy' and same.size == 'tiny'
    # One seed: the same data and initialization, the same steps to target.
    assert len(set(same.steps_to_target)) == 1 and same.steps_to_target_cv == 0.0
    assert len(set(different.steps_to_target)) > 1
    assert same.time_to_target_cv is not None and same.time_to_target_cv >= 0.0
    assert 'noise_floor workload:toy@tiny framework:pytorch seeds:same k:3' in out
    # The machine's record, which scoring reads, has them too.
    record = paths.noise_floor_file(hardware.hardware_class(hardware.fingerprint()))
    assert {f.seeds for f in results.read_noise_floors(record)} == {'same', 'different'}
    # Each repeat is a trial of its own, in its own directory.
    trials = sorted(exp.glob('*-seed/*/toy_pytorch/study_*/trial_0/result.json'))
    assert len(trials) == 6
    assert len({json.loads((t.parent / 'trial.json').read_text())['seed']
                for t in trials if '/same-seed/' in str(t)}) == 1


def test_fewer_than_two_repeats_is_refused(toy_env, tmp_path, capsys):
    assert main(_argv(tmp_path, '--repeats', '1')) == 2
    assert '--repeats must be at least 2' in capsys.readouterr().err
    assert not (tmp_path / 'results').exists()


def test_a_target_the_repeats_never_reach_writes_no_noise_floor(toy_env, tmp_path, capsys):
    assert main(_argv(tmp_path, '--repeats', '2', '--max-steps', '2')) == 2
    err = capsys.readouterr().err
    assert 'No noise floor written: fewer than two repeats reached the target' in err
    assert not (tmp_path / 'results' / 'noise-toy-tiny' / 'noise_floor.json').exists()
    record = paths.noise_floor_file(hardware.hardware_class(hardware.fingerprint()))
    assert not record.exists()
