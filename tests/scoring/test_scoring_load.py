"""Loading results trees: schema, names, recomputation and every kind of bad file."""

import json

import numpy as np
import pytest
import yaml
from scoring_fixtures import trial

from harness.errors import UserInputError
from scoring.load import TRIAL_COLUMNS, find_trial_dirs, load_results


def _problems(loaded):
    return {str(p.path): p.reason for p in loaded.problems}


def test_schema_and_values(tmp_path):
    trial(tmp_path, submission='adamw', workload='mnist', reach_at_s=30)
    trial(tmp_path, submission='adamw', workload='mnist', trial_index=1, reach_at_s=None)
    loaded = load_results(tmp_path)
    t = loaded.trials
    assert tuple(t.columns) == TRIAL_COLUMNS
    assert list(t['trial_id']) == [0, 1]
    row = t.iloc[0]
    assert (row['experiment'], row['submission'], row['entrant'], row['workload_id']) == (
        'exp',
        'adamw',
        'adamw',
        'mnist',
    )
    assert row['reached'] and row['status'] == 'reached'
    assert (row['time_to_target_s'], row['steps_to_target'], row['examples_to_target']) == (
        30.0,
        300.0,
        9600.0,
    )
    assert row['evals_time_to_target_s'] == 30.0
    assert (row['best_metric'], row['final_metric'], row['n_evals']) == (0.9, 0.9, 3)
    assert row['hardware_class'] == 'cpu-test-2c'
    assert row['hparams'] == {'learning_rate': 0.001}
    assert not t.iloc[1]['reached'] and np.isnan(t.iloc[1]['time_to_target_s'])
    e = loaded.evals
    assert list(e.columns[:7]) == [
        'trial_id',
        'eval_index',
        'step',
        'submission_time_s',
        'wall_time_s',
        'eval_time_s',
        'examples_seen',
    ]
    assert 'validation/loss' in e.columns
    assert list(e.loc[e['trial_id'] == 0, 'eval_index']) == [0, 1, 2]
    assert loaded.problems == []
    assert loaded.hardware == {
        'cpu-test-2c': {
            'accelerator': None,
            'accelerator_count': 0,
            'cpu_model': 'Synthetic CPU',
            'cpu_cores': 2,
            'memory_gib': 24.0,
        }
    }


@pytest.mark.parametrize('depth', [0, 1, 2, 3])
def test_results_dir_may_be_a_root_or_any_level_below(tmp_path, depth):
    trial(tmp_path, reach_at_s=10)
    trial(tmp_path, reach_at_s=10, experiment='exp2')
    start = [
        tmp_path,
        tmp_path / 'exp',
        tmp_path / 'exp' / 'adamw',
        tmp_path / 'exp' / 'adamw' / 'mnist_jax',
    ][depth]
    dirs = find_trial_dirs(start)
    assert len(dirs) == (2 if depth == 0 else 1)
    assert set(load_results(start).trials['experiment']) == (
        {'exp', 'exp2'} if depth == 0 else {'exp'}
    )


def test_checkpoint_and_other_folders_are_not_walked(tmp_path):
    d = trial(tmp_path, reach_at_s=10)
    (d / 'checkpoint' / 'study_0' / 'trial_0').mkdir(parents=True)
    (tmp_path / 'exp' / 'scoring').mkdir()
    assert find_trial_dirs(tmp_path) == [d]


def test_names_are_qualified_only_where_they_collide(tmp_path):
    trial(tmp_path, submission='adamw', framework='jax', reach_at_s=10)
    trial(tmp_path, submission='adamw', framework='pytorch', reach_at_s=10)
    trial(tmp_path, submission='sgd', framework='jax', reach_at_s=10)
    # The directory layout has no size: two sizes live in two experiments.
    trial(tmp_path, submission='sgd', workload='lm', size='tiny', reach_at_s=10)
    trial(
        tmp_path, submission='sgd', workload='lm', size='base', reach_at_s=10, experiment='exp_base'
    )
    trial(
        tmp_path,
        submission='sgd',
        workload='lm',
        variant='wide',
        size='base',
        reach_at_s=10,
        experiment='exp_base',
    )
    t = load_results(tmp_path).trials
    assert sorted(set(t['entrant'])) == ['adamw@jax', 'adamw@pytorch', 'sgd']
    assert sorted(set(t['workload_id'])) == ['lm-wide@base', 'lm@base', 'lm@tiny', 'mnist']
    assert set(t.loc[t['variant'].notna(), 'base_id']) == {'lm@base'}


def test_missing_values_in_result_json_are_recomputed_from_evals(tmp_path):
    trial(
        tmp_path,
        reach_at_s=20,
        result_extra={
            'time_to_target_s': None,
            'steps_to_target': None,
            'examples_to_target': None,
        },
    )
    row = load_results(tmp_path).trials.iloc[0]
    assert row['reached']
    assert (row['time_to_target_s'], row['steps_to_target'], row['examples_to_target']) == (
        20.0,
        200.0,
        6400.0,
    )


def test_continue_past_target_counts_as_reached(tmp_path):
    trial(tmp_path, reach_at_s=20, n_evals=5, status='budget_exhausted')
    row = load_results(tmp_path).trials.iloc[0]
    assert row['reached'] and row['time_to_target_s'] == 20.0


def test_nested_metrics_mapping_is_flattened(tmp_path):
    d = trial(tmp_path, reach_at_s=10)
    rows = [{'step': 5, 'submission_time_s': 1.0, 'metrics': {'validation/loss': 0.5}}]
    (d / 'evals.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    loaded = load_results(tmp_path)
    assert loaded.evals['validation/loss'].tolist() == [0.5]
    assert loaded.trials.iloc[0]['best_metric'] == 0.5


def test_bad_files_are_reported_and_skipped_without_stopping_the_rest(tmp_path):
    trial(tmp_path, submission='good', reach_at_s=10)
    bad_json = trial(tmp_path, submission='bad_json', reach_at_s=10)
    (bad_json / 'trial.json').write_text('{"workload": [')
    no_keys = trial(tmp_path, submission='no_keys', reach_at_s=10)
    (no_keys / 'trial.json').write_text('{"workload": "mnist", "study": "one"}')
    no_identity = trial(tmp_path, submission='no_identity', reach_at_s=10)
    (no_identity / 'trial.json').unlink()
    # Results written before trial.json kept the identity in trial.yaml: still read.
    legacy = trial(tmp_path, submission='legacy', reach_at_s=10)
    identity = json.loads((legacy / 'trial.json').read_text())
    (legacy / 'trial.json').unlink()
    (legacy / 'trial.yaml').write_text(yaml.safe_dump(identity))
    bad_yaml = trial(tmp_path, submission='bad_yaml', reach_at_s=10)
    (bad_yaml / 'trial.json').unlink()
    (bad_yaml / 'trial.yaml').write_text('workload: [unclosed\n')
    bad_result = trial(tmp_path, submission='bad_result', reach_at_s=10)
    (bad_result / 'result.json').write_text('{"status": "reached", ')
    bad_status = trial(tmp_path, submission='bad_status', reach_at_s=10)
    (bad_status / 'result.json').write_text('{"status": "done"}')
    bad_line = trial(tmp_path, submission='bad_line', reach_at_s=30)
    lines = (bad_line / 'evals.jsonl').read_text().splitlines()
    lines[1] = '{"step": 2, oops'
    (bad_line / 'evals.jsonl').write_text('\n'.join(lines) + '\n{"step": 9')  # torn last
    bad_meta = trial(tmp_path, submission='bad_meta', reach_at_s=10)
    (bad_meta / 'meta.json').write_text('[1, 2]')

    loaded = load_results(tmp_path)
    problems = _problems(loaded)
    assert sorted(set(loaded.trials['submission'])) == [
        'bad_line',
        'bad_meta',
        'bad_result',
        'bad_status',
        'good',
        'legacy',
    ]
    assert 'not valid YAML' in problems[str(bad_yaml / 'trial.yaml')]
    assert 'unreadable' in problems[str(bad_json / 'trial.json')]
    reason = problems[str(no_keys / 'trial.json')]
    assert (
        'missing keys: variant, size, framework' in reason
        and "'study' must be an integer" in reason
    )
    assert 'missing' in problems[str(no_identity / 'trial.json')]
    assert 'unfinished' in problems[str(bad_result / 'result.json')]
    assert "found 'done'" in problems[str(bad_status / 'result.json')]
    assert 'line skipped' in problems[f'{bad_line / "evals.jsonl"}:2']
    assert 'hardware class unknown' in problems[str(bad_meta / 'meta.json')]
    assert len(problems) == 8  # the torn last line is a write in progress, not a problem
    by_sub = loaded.trials.set_index('submission')
    assert by_sub.loc['bad_line', 'n_evals'] == 2 and by_sub.loc['bad_line', 'reached']
    assert by_sub.loc['bad_result', 'status'] == 'unfinished'
    assert not by_sub.loc['bad_result', 'reached']
    assert by_sub.loc['good', 'reached']
    assert by_sub.loc['bad_meta', 'hardware_class'] is None or np.isnan(
        by_sub.loc['bad_meta', 'hardware_class']
    )


def test_string_metric_values_become_nan(tmp_path):
    d = trial(tmp_path, reach_at_s=10)
    rows = [
        {'step': 1, 'submission_time_s': 10.0, 'validation/loss': 0.5, 'note': 'warm'},
        {'step': 2, 'submission_time_s': 20.0, 'validation/loss': 'nan?'},
    ]
    (d / 'evals.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    e = load_results(tmp_path).evals
    assert 'note' not in e.columns
    assert e['validation/loss'].iloc[0] == 0.5 and np.isnan(e['validation/loss'].iloc[1])


def test_missing_directory_and_empty_directory_are_user_errors(tmp_path):
    with pytest.raises(UserInputError, match='does not exist'):
        load_results(tmp_path / 'nope')
    with pytest.raises(UserInputError, match='No trials found'):
        load_results(tmp_path)


def test_files_that_are_not_utf8_are_reported_not_raised(tmp_path):
    bad_result = trial(tmp_path, submission='a', reach_at_s=10)
    (bad_result / 'result.json').write_bytes(b'{"status": "\xff"}')
    bad_evals = trial(tmp_path, submission='b', reach_at_s=10)
    (bad_evals / 'evals.jsonl').write_bytes(b'\xfe\xff\n')
    loaded = load_results(tmp_path)
    problems = _problems(loaded)
    assert 'not UTF-8' in problems[str(bad_result / 'result.json')]
    assert 'evaluations skipped' in problems[str(bad_evals / 'evals.jsonl')]
    by_submission = loaded.trials.set_index('submission')
    assert by_submission.loc['a', 'status'] == 'unfinished'
    assert by_submission.loc['b', 'n_evals'] == 0
