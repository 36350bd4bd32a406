"""The results contract end to end: what the runner writes is what scoring reads.

A real trial (the toy workload, the real runner, run_trial) is written to disk and
read back through scoring's loader and through ``harness.results``; the test
stand-ins (tests/suites/fakes.py, tests/submit/fakes.py, scoring.synthetic) must
write files of the same shape, so a drift between them and the runner fails here.
"""

from __future__ import annotations

import json

import pytest

from harness import results
from harness.trial.run import run_trial
from scoring.load import load_results
from scoring.synthetic import write_trial
from tests.harness import toy
from tests.submit import fakes as submit_fakes
from tests.suites import fakes as suite_fakes


def _keys(path):
    return set(json.loads(path.read_text()))


@pytest.fixture
def real_trial(toy_env):
    make_config, _ = toy_env
    toy.COSTS.update(step=0.01)
    config = make_config(hparams={'learning_rate': 0.2})
    result = run_trial(config, clock=toy.CLOCK)
    return config, result


def test_a_real_trial_reads_back_through_scoring(real_trial):
    config, result = real_trial
    trial_dir = config.trial_dir()
    assert result['status'] == 'reached'
    loaded = load_results(config.results_dir)
    assert loaded.problems == []
    row = loaded.trials.iloc[0]
    on_disk = results.read_result(trial_dir)
    assert on_disk.to_json() == json.loads((trial_dir / results.RESULT_JSON).read_text())
    assert row['status'] == on_disk.status == result['status']
    assert row['time_to_target_s'] == on_disk.time_to_target_s
    assert row['steps_to_target'] == on_disk.steps_to_target
    assert row['examples_to_target'] == on_disk.examples_to_target
    assert row['final_step'] == on_disk.final_step
    assert row['submission_time_s'] == on_disk.submission_time_s
    identity = results.read_identity(trial_dir)
    assert identity.key() == config.identity()
    assert (row['workload'], row['submission'], row['framework']) == (
        identity.workload, identity.submission, identity.framework)
    assert (row['target_metric'], row['target_value'], row['target_mode']) == (
        identity.target.metric, identity.target.value, identity.target.mode)
    assert row['hardware_class'] == results.read_meta(trial_dir).hardware_class
    evals = results.read_evals(trial_dir)
    assert len(evals) == row['n_evals'] == on_disk.num_evals
    frame = loaded.evals[loaded.evals['trial_id'] == row['trial_id']]
    assert frame['step'].tolist() == [e.step for e in evals]
    assert frame['validation/loss'].tolist() == [e.metrics['validation/loss'] for e in evals]
    # The first evaluation meeting the target is the one result.json names.
    first = next(e for e in evals if identity.target.met_by(e.metrics['validation/loss']))
    assert (first.step, first.submission_time_s) == (on_disk.steps_to_target,
                                                    on_disk.time_to_target_s)


def test_every_file_reads_as_its_record_with_nothing_undeclared(real_trial):
    """The runner writes no key the records do not declare (extra stays empty)."""
    config, _ = real_trial
    trial_dir = config.trial_dir()
    assert results.read_identity(trial_dir).extra == {}
    assert results.read_meta(trial_dir).extra == {}
    assert results.read_result(trial_dir).extra == {}
    assert all(e.extra == {} for e in results.read_evals(trial_dir))


def test_stand_ins_write_what_the_runner_writes(real_trial, toy_env, tmp_path, monkeypatch):
    """The stand-ins the suite, submit and scoring tests run on write the runner's required
    keys in the runner's files; none writes a key the contract does not know."""
    config, _ = real_trial
    real = config.trial_dir()
    make_config, _ = toy_env
    monkeypatch.setenv('FAKE_HW_CLASS', 'cpu-fake-2c')
    stand_ins = {
        'suites': results.read_json(
            suite_fakes.fake_run(make_config(experiment='suite_fake')) and
            make_config(experiment='suite_fake').trial_dir() / results.RESULT_JSON),
        'submit': submit_fakes.fake_run(make_config(experiment='submit_fake')),
    }
    assert all(r['status'] == 'reached' for r in stand_ins.values())
    synthetic = write_trial(
        tmp_path / 'synthetic' / 'study_0' / 'trial_0',
        config=json.loads((real / results.TRIAL_JSON).read_text()),
        evals=results.read_jsonl(real / results.EVALS_JSONL),
        result=json.loads((real / results.RESULT_JSON).read_text()))
    dirs = [make_config(experiment='suite_fake').trial_dir(),
            make_config(experiment='submit_fake').trial_dir(), synthetic]
    required_result = {f for f in ('status', 'time_to_target_s', 'steps_to_target',
                                   'examples_to_target', 'final_step', 'submission_time_s',
                                   'error')}
    for d in dirs:
        assert results.read_identity(d).extra == {}
        assert results.read_result(d).extra == {}
        assert required_result <= _keys(d / results.RESULT_JSON)
        assert _keys(d / results.RESULT_JSON) <= _keys(real / results.RESULT_JSON) | {
            'hardware_class'}
        for record in results.read_evals(d):
            assert record.extra == {}
    # Identities: the same required keys as the runner's.
    required_identity = {'workload', 'variant', 'size', 'framework', 'submission', 'ruleset',
                         'study', 'trial', 'hparams', 'seed', 'target'}
    for d in [real, *dirs]:
        assert required_identity <= _keys(d / results.TRIAL_JSON)


def test_records_refuse_files_missing_a_required_key(tmp_path):
    (tmp_path / results.RESULT_JSON).write_text(json.dumps({'status': 'reached'}))
    with pytest.raises(ValueError, match='missing key'):
        results.read_result(tmp_path)


def test_legacy_trial_yaml_is_read(tmp_path):
    import yaml

    identity = {'workload': 'lm', 'variant': None, 'size': 'tiny', 'framework': 'jax',
                'submission': 'adamw', 'ruleset': 'external', 'study': 0, 'trial': 0,
                'hparams': {'learning_rate': 1e-3}, 'seed': 3,
                'target': {'metric': 'validation/loss', 'value': 4.75, 'mode': 'min'}}
    (tmp_path / results.LEGACY_TRIAL_YAML).write_text(yaml.safe_dump(identity))
    assert results.has_identity(tmp_path)
    read = results.read_identity(tmp_path)
    assert read.target.met_by(4.7) and not read.target.met_by(4.8)
    assert read.hparams == {'learning_rate': 1e-3}
