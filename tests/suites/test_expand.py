"""Expansion: stable trial ids, hyperparameters regenerable from (seed, index), held-out rows."""

from __future__ import annotations

from harness.submission import search_space
from harness.launch.suite import derive_seed, expand, load_suite, trial_id
from tests.suites.conftest import BASIC


def test_ids_order_and_counts(write_suite, tmp_path):
    trials = expand(load_suite(write_suite(BASIC.format(results=tmp_path))))
    ids = [trial_id(t) for t in trials]
    assert len(ids) == len(set(ids)) == 2 * 2 * 2 * 2   # studies x submissions x fw x trials
    assert ids[:4] == ['sub_a/fakewl_jax/study_0/trial_0', 'sub_a/fakewl_jax/study_0/trial_1',
                       'sub_a/fakewl_pytorch/study_0/trial_0',
                       'sub_a/fakewl_pytorch/study_0/trial_1']
    # Study-major: all of study 0 before study 1.
    assert [t.study for t in trials] == [0] * 8 + [1] * 8
    for t in trials:
        assert t.trial_dir() == tmp_path / 'exp' / trial_id(t)
        assert t.experiment == 'exp' and t.budget_factor == 1.0 and t.ruleset == 'external'


def test_hparams_come_from_seed_and_index_alone(write_suite, tmp_path):
    suite = load_suite(write_suite(BASIC.format(results=tmp_path)))
    trials = expand(suite)
    space = search_space.load(tmp_path / 'sub_a' / 'search_space.yaml')
    for t in trials:
        seed = derive_seed(suite.seed, 'hparams', t.display_submission, 'fakewl', t.study)
        assert t.hparams == search_space.sample(space, seed, t.trial)
    by_id = {trial_id(t): t for t in trials}
    jax0, torch0 = by_id['sub_a/fakewl_jax/study_0/trial_0'], by_id[
        'sub_a/fakewl_pytorch/study_0/trial_0']
    # Both frameworks run the same hyperparameters and seeds (paired comparison) ...
    assert jax0.hparams == torch0.hparams and jax0.seed == torch0.seed
    # ... and so do both submissions' seeds, while studies and trials differ.
    assert by_id['sub_b/fakewl_jax/study_0/trial_0'].seed == jax0.seed
    assert by_id['sub_a/fakewl_jax/study_1/trial_0'].hparams != jax0.hparams
    assert by_id['sub_a/fakewl_jax/study_0/trial_1'].hparams != jax0.hparams
    # Re-expanding gives the same trials; another suite seed gives other ones.
    assert expand(suite) == trials
    other = expand(suite.replace(seed=4))
    assert [t.hparams for t in other] != [t.hparams for t in trials]


def test_self_tuning_has_no_hparams_and_a_budget_factor(write_suite, tmp_path):
    text = BASIC.format(results=tmp_path).replace('trials: 2', 'ruleset: self')
    text = text.replace('seed: 3', 'seed: 3\n    self_tuning_budget_factor: 2.0')
    trials = expand(load_suite(write_suite(text)))
    assert len(trials) == 2 * 2 * 2
    assert all(t.hparams is None and t.budget_factor == 2.0 and t.ruleset == 'self'
               for t in trials)


def test_held_out_variants_are_sampled_with_the_seed_and_get_their_own_rows(write_suite,
                                                                            tmp_path):
    text = BASIC.format(results=tmp_path).replace('seed: 3', 'seed: 3\n    held_out_variants: true')
    suite = load_suite(write_suite(text))
    held = [w for w in suite.workloads if w.held_out]
    assert len(held) == 1 and held[0].variant in ('wide', 'deep', 'noisy')
    assert held[0].size == 'tiny'
    ids = [trial_id(t) for t in expand(suite)]
    assert f'sub_a/fakewl-{held[0].variant}_jax/study_0/trial_0' in ids
    assert len(ids) == 2 * 16
    # Deterministic for a seed; over seeds, more than one variant gets picked.
    assert [w.key for w in load_suite(write_suite(text)).workloads] == [
        w.key for w in suite.workloads]
    picked = {[w for w in suite.replace().workloads if w.held_out][0].variant}
    for seed in range(4, 12):
        s = load_suite(write_suite(text.replace('seed: 3', f'seed: {seed}'), name=f's{seed}.yaml'))
        picked.add([w for w in s.workloads if w.held_out][0].variant)
    assert len(picked) > 1


def test_explicit_variants_and_the_base_workload(write_suite, tmp_path):
    text = BASIC.format(results=tmp_path).replace(
        '{name: fakewl, size: tiny}', '{name: fakewl, size: tiny, variants: [null, deep]}')
    trials = expand(load_suite(write_suite(text)))
    dirs = sorted({t.workload_dirname for t in trials})
    assert dirs == ['fakewl-deep_jax', 'fakewl-deep_pytorch', 'fakewl_jax', 'fakewl_pytorch']


def test_paths_relative_to_the_suite_and_results_relative_to_cwd(write_suite, tmp_path,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path / 'sub_a')
    path = write_suite('''
        workloads: [fakewl]
        submissions: [sub_b]
        frameworks: [jax]
    ''', name='mysuite.yaml')
    suite = load_suite(path)
    assert suite.experiment == 'mysuite'            # the file's stem
    assert suite.results_dir == tmp_path / 'sub_a' / 'results'
    (t,) = expand(suite)
    assert t.submission == str(tmp_path / 'sub_b') and t.submission_name == 'sub_b'
    assert t.size == 'tiny'                          # the smallest size by default


def _mixed(tmp_path, workloads, submissions):
    suite = tmp_path / 'mixed.yaml'
    suite.write_text(f'''
results_dir: {tmp_path}
ruleset: self
studies: 2
workloads: {workloads}
submissions: {submissions}
frameworks: [jax]
''', encoding='utf-8')
    return suite


def test_a_suite_mixes_contracts_each_submission_on_its_own_kind(tmp_path):
    """Federated submissions train the federated workloads, centralized ones the others;
    a workload entry's ``submissions:`` narrows who trains it."""
    from harness.launch.suite import expand, load_suite

    suite = load_suite(_mixed(
        tmp_path, '[{name: lm, submissions: [adamw]}, ctr, federated_shakespeare]',
        '[adamw, nadamw, fedavg]'))
    pairs = {(c.display_submission, c.workload) for c in expand(suite)}
    assert pairs == {('adamw', 'lm'), ('adamw', 'ctr'), ('nadamw', 'ctr'),
                     ('fedavg', 'federated_shakespeare')}
    assert len(expand(suite)) == 2 * len(pairs)


def test_a_submission_listing_a_workload_of_the_other_contract_is_refused(tmp_path):
    import pytest

    from harness.errors import UserInputError
    from harness.launch.suite import load_suite

    with pytest.raises(UserInputError) as e:
        load_suite(_mixed(
            tmp_path, '[lm, {name: federated_shakespeare, submissions: [adamw, fedav]}]',
            '[adamw, fedavg]'))
    text = str(e.value)
    assert ('adamw is a centralized submission; federated_shakespeare is a federated workload'
            in text)
    assert "'fedav' is not one of the suite's submissions (adamw, fedavg); did you mean fedavg?" \
        in text
    only_fed = tmp_path / 'only_fed.yaml'
    only_fed.write_text(f'''
results_dir: {tmp_path}
ruleset: self
workloads: [federated_shakespeare]
submissions: [adamw]
frameworks: [jax]
''', encoding='utf-8')
    with pytest.raises(UserInputError, match='the suite has no centralized workload for it'):
        load_suite(only_fed)
