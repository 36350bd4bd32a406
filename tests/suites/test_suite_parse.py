"""Suite files: validation reports every problem at once, with file and line."""

from __future__ import annotations

import re

import pytest

from harness.errors import UserInputError
from harness.launch.suite import expand, find_suite, load_suite
from tests.suites.conftest import BASIC, make_submission


def problems(path) -> str:
    with pytest.raises(UserInputError) as e:
        load_suite(path)
    return str(e.value)


def test_basic_suite_parses_with_defaults(write_suite, tmp_path):
    suite = load_suite(write_suite(BASIC.format(results=tmp_path / 'r')))
    assert suite.experiment == 'exp'
    assert suite.experiment_dir() == tmp_path / 'r' / 'exp'
    assert [w.key for w in suite.workloads] == ['fakewl']
    assert [s.name for s in suite.submissions] == ['sub_a', 'sub_b']
    assert suite.frameworks == ('jax', 'pytorch')
    assert suite.executor == 'local' and suite.parallelism == 1
    assert suite.ruleset == 'external' and suite.self_tuning_budget_factor == 1.5
    assert suite.slurm.time_limit_min == 60 and suite.slurm.gpus_per_node == 0


def test_every_problem_is_reported_at_once_with_its_line(write_suite):
    path = write_suite('''
        experiment: exp
        seed: "7"
        trails: 3
        trials: 2.5
        studies: true
        workloads:
          - {name: fakewll, size: tiny}
          - {name: fakewl, size: huge}
          - {name: fakewl, variant: wid}
        submissions: [sub_a, nosuchsub]
        frameworks: [jax, tensorflow]
        executor:
          default: slurm
          slurm:
            gpus: 2
          local: {parallelism: two}
    ''')
    text = problems(path)
    lines = {int(m) for m in re.findall(rf'{re.escape(str(path))}:(\d+):', text)}
    assert lines == {2, 3, 4, 5, 7, 8, 9, 10, 11, 15, 16}
    assert "seed: expected an integer, got '7' (a string)" in text
    assert 'trials: expected an integer, got 2.5' in text
    assert 'studies: expected an integer, got True' in text
    assert "unknown suite key 'trails'. Did you mean: trials" in text
    assert "Unknown workload 'fakewll'. Did you mean: fakewl?" in text
    assert "has no size 'huge'; its sizes: tiny, small" in text
    assert "has no variant 'wid'. Did you mean: wide?" in text
    assert "Unknown submission 'nosuchsub'" in text
    assert "frameworks[1]: must be one of jax, pytorch, got 'tensorflow'" in text
    # An executor parameter that does not exist: the valid ones are listed.
    assert "unknown slurm executor key 'gpus'. Did you mean: gpus_per_node?" in text
    assert 'Valid keys: partition, gpus_per_node, cpus_per_task, mem_gb' in text
    assert "parallelism: expected an integer, got 'two'" in text


def test_missing_required_keys_and_empty_or_invalid_files(write_suite):
    text = problems(write_suite('seed: 1\n'))
    for key in ('workloads', 'submissions', 'frameworks'):
        assert f"missing required key '{key}'" in text
    assert 'empty' in problems(write_suite(''))
    assert 'not valid YAML' in problems(write_suite('workloads: [fakewl\n'))
    assert 'a suite is a mapping' in problems(write_suite('- fakewl\n'))


def test_duplicate_keys_are_an_error_not_silently_overwritten(write_suite, tmp_path):
    text = problems(write_suite(BASIC.format(results=tmp_path) + '    seed: 4\n'))
    assert "seed: duplicate key 'seed'" in text


def test_self_tuning_runs_one_trial_per_study(write_suite, tmp_path):
    text = problems(write_suite(BASIC.format(results=tmp_path).replace(
        'seed: 3', 'seed: 3\n    ruleset: self')))
    assert 'self-tuning runs one trial per study, got 2' in text
    suite = load_suite(write_suite(BASIC.format(results=tmp_path).replace(
        'trials: 2', 'ruleset: self')))
    assert suite.trials == 1 and suite.ruleset == 'self'


def test_unknown_ruleset_and_negative_counts(write_suite, tmp_path):
    text = problems(write_suite(BASIC.format(results=tmp_path).replace(
        'studies: 2', 'studies: 0\n    ruleset: extrenal\n    self_tuning_budget_factor: -1')))
    assert "ruleset: must be one of external, self, got 'extrenal'. Did you mean 'external'?" \
        in text
    assert 'studies: must be at least 1, got 0' in text
    assert 'self_tuning_budget_factor: must be greater than 0' in text


def test_framework_missing_in_workload_or_submission(write_suite, tmp_path):
    make_submission(tmp_path / 'jax_sub', frameworks=('jax',))
    text = problems(write_suite(f'''
        results_dir: {tmp_path}
        workloads: [jaxonly]
        submissions: [jax_sub]
        frameworks: [jax, pytorch]
    '''))
    assert "workload 'jaxonly' has no pytorch implementation" in text
    assert 'no pytorch_submission.py' in text
    # Narrowing the frameworks per entry fixes both.
    suite = load_suite(write_suite(f'''
        results_dir: {tmp_path}
        workloads: [{{name: jaxonly, frameworks: [jax]}}]
        submissions: [{{name: jax_sub, frameworks: [jax]}}]
        frameworks: [jax, pytorch]
    '''))
    assert suite.workloads[0].frameworks == ('jax',)


def test_external_ruleset_needs_a_search_space(write_suite, tmp_path):
    make_submission(tmp_path / 'nospace', space=None)
    text = problems(write_suite(f'''
        results_dir: {tmp_path}
        workloads: [fakewl]
        submissions: [nospace]
        frameworks: [jax]
    '''))
    assert 'no search space' in text
    (tmp_path / 'elsewhere.yaml').write_text('learning_rate: 0.1\n')
    suite = load_suite(write_suite(f'''
        results_dir: {tmp_path}
        workloads: [fakewl]
        submissions: [{{name: nospace, search_space: elsewhere.yaml}}]
        frameworks: [jax]
    '''))
    assert suite.submissions[0].search_space == tmp_path / 'elsewhere.yaml'


def test_a_broken_submission_is_reported_before_launch(write_suite, tmp_path):
    broken = make_submission(tmp_path / 'broken')
    (broken / 'jax_submission.py').write_text('def get_batch_size(workload_name):\n    return 1\n')
    text = problems(write_suite(f'''
        results_dir: {tmp_path}
        workloads: [fakewl]
        submissions: [broken]
        frameworks: [jax]
    '''))
    assert 'update_params: missing' in text and 'suite.yaml:3:' in text


def test_one_size_per_workload_and_unique_submission_names(write_suite, tmp_path):
    make_submission(tmp_path / 'other' / 'sub_a')
    text = problems(write_suite(f'''
        results_dir: {tmp_path}
        workloads: [{{name: fakewl, size: tiny}}, {{name: fakewl, size: small}}]
        submissions: [sub_a, other/sub_a]
        frameworks: [jax]
    '''))
    assert 'fakewl is listed twice' in text
    assert "another submission is also named 'sub_a'" in text


def test_executor_given_as_a_name_gets_a_hint(write_suite, tmp_path):
    text = problems(write_suite(BASIC.format(results=tmp_path) + '    executor: slurm\n'))
    assert 'executor: expected a mapping, e.g. `executor: {default: slurm}`' in text


@pytest.mark.parametrize('reference, ok', [('sub_a', True), ('sub_b@pytorch', True),
                                            ('sub_c', False), ('sub_a@tensorflow', False)])
def test_reference_names_an_entrant_of_the_suite(write_suite, tmp_path, reference, ok):
    text = BASIC.format(results=tmp_path) + f'    reference: {reference}\n'
    if ok:
        assert load_suite(write_suite(text)).reference == reference
    else:
        assert f"reference: '{reference}' is not an entrant of this suite" in problems(
            write_suite(text))


def test_bad_experiment_names(write_suite, tmp_path):
    text = problems(write_suite(BASIC.format(results=tmp_path).replace(
        'experiment: exp', 'experiment: ../escape')))
    assert 'not a usable directory name' in text


def test_shipped_suites_are_found_by_name_and_valid():
    demo = load_suite(find_suite('demo'))
    assert demo.experiment == 'demo' and demo.executor == 'local'
    assert [w.key for w in demo.workloads] == ['lm_slm', 'ctr',
                                               'federated_shakespeare-early_target']
    assert {w.size for w in demo.workloads} == {'tiny'}
    assert [s.name for s in demo.submissions] == ['nadamw', 'salt', 'fedavg', 'fedadam']
    assert demo.frameworks == ('jax', 'pytorch') and (demo.studies, demo.trials) == (2, 1)
    # Each entrant on its own workloads: SALT (jax) on lm_slm only, NAdamW in both
    # frameworks on lm_slm and ctr, the federated pair (jax) on the federated workload.
    runs = sorted({(c.submission, c.framework, c.workload) for c in expand(demo)})
    assert runs == sorted([
        ('nadamw', 'jax', 'lm_slm'), ('nadamw', 'pytorch', 'lm_slm'), ('salt', 'jax', 'lm_slm'),
        ('nadamw', 'jax', 'ctr'), ('nadamw', 'pytorch', 'ctr'),
        ('fedavg', 'jax', 'federated_shakespeare'), ('fedadam', 'jax', 'federated_shakespeare')])
    assert len(expand(demo)) == 14
    # Its report compares with SALT's base optimizer (scoring resolves submission@framework).
    assert demo.reference == 'nadamw@jax'
    full = load_suite(find_suite('full'))
    assert full.executor == 'slurm' and (full.studies, full.trials) == (3, 5)
    assert full.slurm.gpus_per_node == 1
    # Every shipped suite validates (each submission against its workloads' contract).
    for name in ('salt', 'salt_small', 'federated'):
        assert load_suite(find_suite(name)).experiment == name
    federated = load_suite(find_suite('federated'))
    assert {s.name for s in federated.submissions} >= {'fedavg', 'fedbuff'}
    with pytest.raises(UserInputError, match="Unknown suite 'dmo'. Did you mean: demo?"):
        find_suite('dmo')
    with pytest.raises(UserInputError, match='does not exist'):
        find_suite('nowhere/suite.yaml')


def test_devices_per_trial_reach_every_trial_config(write_suite, tmp_path):
    from harness.launch.suite import expand

    suite = load_suite(write_suite(BASIC.format(results=tmp_path) + '    devices: 2\n'))
    assert suite.devices == 2
    assert {t.devices for t in expand(suite)} == {2}
    assert load_suite(write_suite(BASIC.format(results=tmp_path))).devices is None
    text = problems(write_suite(BASIC.format(results=tmp_path) + '    devices: 0\n'))
    assert 'devices: must be at least 1, got 0' in text



def test_a_submitted_entrant_runs_every_workload_of_its_contract(tmp_path):
    """`timetrial submit --suite demo`: the demo's workload entries name the baselines that
    run on them (SALT on lm_slm only); a submitted optimizer runs both centralized ones."""
    import types

    from harness.leaderboard.submit import submission_suite
    from harness.registry import resolve_submission

    demo = load_suite(find_suite('demo'))
    path = resolve_submission('adamw')
    identity = types.SimpleNamespace(path=path, entry_name='my_adamw-12345678',
                                     search_space_path=path / 'search_space.yaml')
    own = submission_suite(demo, identity, ['jax'], tmp_path)
    trials = expand(own)
    assert {c.submission for c in trials} == {str(path)}
    assert sorted({c.workload for c in trials}) == ['ctr', 'lm_slm']
    assert len(trials) == 4   # 2 workloads x 2 studies, jax
