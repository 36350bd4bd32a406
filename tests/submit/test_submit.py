"""timetrial submit and leaderboards on the fake workload (trials written by fakes.fake_run)."""

from __future__ import annotations

import json

import pytest

from harness import results
from harness.cli import main as cli
from harness.errors import UserInputError
from harness.leaderboard import board as leaderboard
from harness.leaderboard import provenance
from tests.submit import fakes


def _score(r, r_max=4.0):
    """AlgoPerf's score on one workload with ratio r."""
    return max(0.0, r_max - r) / (r_max - 1)


def test_submit_ranks_against_the_leaderboard_and_reports(world):
    world.build()
    out = world.submit(fakes.make_submission(world.root / 'my_algo', frameworks=('pytorch',)))

    assert out.entry.startswith('my_algo-') and len(out.entry) == len('my_algo-') + 8
    scores = out.score_report.scores.set_index('entrant')
    assert list(out.score_report.scores['entrant']) == ['base_a', out.entry, 'base_b']
    assert scores.loc[out.entry, 'rank'] == 2
    assert scores.loc[out.entry, 'score'] == pytest.approx(_score(12.0 / 10.0))

    head = out.summary_head
    assert head[0] == f'# TimeTrial submission report: {out.entry}'
    assert head[2] == (
        f'{out.entry}: benchmark score {_score(1.2):.3f} (95% CI 0.933–0.933), '
        f'rank 2 of 3 on the leaderboard of suite mini for '
        f'{leaderboard.this_hardware_class()}.'
    )
    assert '| fakewl | 12.0 s | base_a | 10.0 s | 1.20 |' in head
    text = out.summary_path.read_text(encoding='utf-8')
    assert text.startswith('\n'.join(head))
    page = out.html_path.read_text(encoding='utf-8')
    assert 'rank 2 of 3' in page and out.score_report.paths['report.html'] == out.html_path


def test_a_faster_submission_ranks_first_and_one_that_never_reaches_last(world):
    world.build()
    world.set_times(fast=5.0, stuck=None)
    fast = world.submit(fakes.make_submission(world.root / 'fast', frameworks=('pytorch',)))
    assert '| fakewl | 5.0 s | base_a | 10.0 s | 0.50 |' in fast.summary_head
    assert 'rank 1 of 3' in fast.summary_head[2]
    stuck = world.submit(fakes.make_submission(world.root / 'stuck', frameworks=('pytorch',)))
    assert 'benchmark score 0.000' in stuck.summary_head[2]
    assert 'rank 3 of 3' in stuck.summary_head[2]
    assert '| fakewl | not reached | base_a | 10.0 s | – |' in stuck.summary_head


def test_resubmitting_reuses_trials_and_a_changed_folder_is_a_new_entry(world):
    world.build()
    folder = fakes.make_submission(world.root / 'my_algo', frameworks=('pytorch',))
    first = world.submit(folder)
    ran = len(world.runs())
    again = world.submit(folder)
    assert again.entry == first.entry
    assert len(world.runs()) == ran, 'finished trials of the same content are reused'
    assert again.summary_head == first.summary_head

    (folder / 'pytorch_submission.py').write_text(
        fakes.SIGNATURES + '\n# tuned\n', encoding='utf-8'
    )
    changed = world.submit(folder)
    assert changed.entry != first.entry
    assert len(world.runs()) == ran + 4, 'a changed folder runs its own 2 studies x 2 trials'
    assert first.experiment_dir.is_dir() and changed.experiment_dir.is_dir()
    baselines = first.leaderboard_dir / leaderboard.BASELINES
    assert len(list(baselines.glob('*/*/study_*/trial_*/result.json'))) == 8, 'left intact'


def test_provenance_is_recorded_with_every_trial_and_in_the_report(world):
    world.build()
    folder = fakes.make_submission(world.root / 'my_algo', frameworks=('pytorch',))
    out = world.submit(folder)
    digest = provenance.content_hash(folder)
    trial_dirs = sorted(out.experiment_dir.glob('*/*/study_*/trial_*'))
    assert len(trial_dirs) == 4
    for trial_dir in trial_dirs:
        record = results.read_json(trial_dir / provenance.PROVENANCE_JSON)
        assert record['content_sha256'] == digest
        assert record['search_space'] == fakes.SPACE
        assert record['timetrial_version'] == '0.1.0'
        assert record['files'].keys() == {'pytorch_submission.py', 'search_space.yaml'}
    text = out.summary_path.read_text(encoding='utf-8')
    assert f'content sha256: {digest}' in text and 'TimeTrial version: 0.1.0' in text
    assert 'learning_rate: {min: 1.0e-4' in text
    assert results.read_json(out.entry_dir / 'submission.json')['content_sha256'] == digest


def test_publishing_is_explicit(world):
    lb_dir = world.build()
    mine = fakes.make_submission(world.root / 'my_algo', frameworks=('pytorch',))
    out = world.submit(mine)
    assert out.published is None
    assert leaderboard.read_manifest(lb_dir)['published'] == []
    assert not (lb_dir / leaderboard.PUBLISHED).exists()

    out = world.submit(mine, publish=True)
    assert out.published is True
    manifest = leaderboard.read_manifest(lb_dir)
    assert [p['entry'] for p in manifest['published']] == [out.entry]
    copied = sorted((lb_dir / leaderboard.PUBLISHED / out.entry).glob('*/study_*/trial_*'))
    assert len(copied) == 4 and all((d / provenance.PROVENANCE_JSON).exists() for d in copied)
    assert world.submit(mine, publish=True).published is False

    # Re-scoring the published entry does not count it twice; another one meets it.
    assert 'rank 2 of 3' in world.submit(mine).summary_head[2]
    world.set_times(other=30.0)
    other = world.submit(fakes.make_submission(world.root / 'other', frameworks=('pytorch',)))
    assert 'rank 4 of 4' in other.summary_head[2]
    kinds = dict(
        zip(leaderboard.standings(lb_dir)['entrant'], leaderboard.standings(lb_dir)['kind'])
    )
    assert kinds == {'base_a': 'baseline', 'base_b': 'baseline', out.entry: 'published'}


def test_a_submission_with_some_of_the_suites_frameworks_runs_those(world):
    suite = world.write_suite(frameworks='jax, pytorch')
    world.build(suite)
    out = world.submit(
        fakes.make_submission(world.root / 'torch_only', frameworks=('pytorch',)), suite
    )
    entrants = set(out.score_report.scores['entrant'])
    assert entrants == {'base_a@jax', 'base_a@pytorch', 'base_b@jax', 'base_b@pytorch', out.entry}
    assert {d.name for d in (out.experiment_dir / out.entry).iterdir()} == {'fakewl_pytorch'}
    assert 'which this submission does not implement' in out.summary_path.read_text()


def test_two_frameworks_give_two_ranked_entrants(world):
    suite = world.write_suite(frameworks='jax, pytorch')
    world.build(suite)
    out = world.submit(fakes.make_submission(world.root / 'both'), suite)
    assert out.summary_head[2].startswith(f'- {out.entry}@jax: benchmark score')
    assert out.summary_head[3].startswith(f'- {out.entry}@pytorch: benchmark score')
    assert any(
        line.startswith(f'| fakewl | {out.entry}@jax | 10.0 s |') for line in out.summary_head
    )


# ---- refusals ---------------------------------------------------------------------------


def test_another_hardware_class_is_refused_naming_both(world, monkeypatch):
    here = leaderboard.this_hardware_class()
    monkeypatch.setenv('FAKE_HW_CLASS', 'gpu-fake-x8')
    lb_dir = world.build(hardware_class='gpu-fake-x8')
    monkeypatch.delenv('FAKE_HW_CLASS')
    mine = fakes.make_submission(world.root / 'my_algo', frameworks=('pytorch',))
    with pytest.raises(UserInputError) as e:
        world.submit(mine)
    msg = str(e.value)
    assert f'for hardware class {here}' in msg and 'gpu-fake-x8' in msg
    assert 'timetrial leaderboard build' in msg

    # The leaderboard moved under this machine's class: its manifest still says otherwise.
    moved = leaderboard.leaderboard_dir(world.results, here, 'mini')
    moved.parent.mkdir(parents=True)
    lb_dir.rename(moved)
    with pytest.raises(
        UserInputError,
        match=f'built on hardware class gpu-fake-x8, but this submission runs on {here}',
    ):
        world.submit(mine)
    assert world.runs() == [line for line in world.runs() if 'gpu-fake-x8' in line]


def test_trials_of_another_class_than_the_leaderboard_are_not_scored(world, monkeypatch):
    world.build()
    monkeypatch.setenv('FAKE_HW_CLASS', 'gpu-fake-x8')
    with pytest.raises(UserInputError) as e:
        world.submit(fakes.make_submission(world.root / 'my_algo', frameworks=('pytorch',)))
    assert 'ran on hardware class gpu-fake-x8' in str(e.value)
    assert f'is for hardware class {leaderboard.this_hardware_class()}' in str(e.value)


def test_no_leaderboard_says_how_to_build_one(world):
    with pytest.raises(UserInputError) as e:
        world.submit(fakes.make_submission(world.root / 'my_algo', frameworks=('pytorch',)))
    assert 'No leaderboard of suite mini' in str(e.value)
    assert f'timetrial leaderboard build {world.root / "suite.yaml"}' in str(e.value)
    assert world.runs() == []


def test_changed_suite_settings_or_an_unfinished_leaderboard_are_refused(world):
    lb_dir = world.build()
    mine = fakes.make_submission(world.root / 'my_algo', frameworks=('pytorch',))
    changed = world.write_suite(text=fakes.SUITE.replace('trials: 2', 'trials: 3'))
    with pytest.raises(UserInputError, match='trials: 2 on the leaderboard, 3 now'):
        world.submit(mine, changed)
    with pytest.raises(UserInputError, match='built from other settings'):
        world.build(changed)
    world.write_suite()
    manifest = leaderboard.read_manifest(lb_dir)
    results.atomic_write_json(
        lb_dir / leaderboard.MANIFEST, {**manifest, 'complete': False, 'n_finished': 3}
    )
    with pytest.raises(UserInputError, match=r'incomplete \(3 of 8 baseline trials'):
        world.submit(mine)


def test_a_suite_the_submission_cannot_run_is_refused(world):
    world.build()
    with pytest.raises(UserInputError) as e:
        world.submit(fakes.make_submission(world.root / 'jax_only', frameworks=('jax',)))
    assert 'runs pytorch, but submission' in str(e.value)
    assert 'Add pytorch_submission.py' in str(e.value)


def test_every_contract_problem_is_reported_before_anything_runs(world):
    world.build()
    ran = len(world.runs())
    broken = fakes.make_submission(
        world.root / 'broken',
        frameworks=('pytorch',),
        body='def get_batch_size(workload_name):\n    return 8\n',
        space=None,
    )
    with pytest.raises(UserInputError) as e:
        world.submit(broken)
    for missing in ('init_optimizer_state', 'update_params', 'data_selection', 'search space'):
        assert missing in str(e.value)
    assert len(world.runs()) == ran


# ---- command line -------------------------------------------------------------------------


def test_cli_submit_prints_the_report_head(world, monkeypatch, capsys):
    world.build()
    monkeypatch.setattr('harness.trial.run.run_trial', fakes.fake_run)
    folder = fakes.make_submission(world.root / 'my_algo', frameworks=('pytorch',))
    rc = cli.main(
        ['submit', str(folder), '--suite', str(world.write_suite()), '--executor', 'debug']
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert 'benchmark score 0.933' in out and 'rank 2 of 3' in out
    assert '| fakewl | 12.0 s | base_a | 10.0 s | 1.20 |' in out
    assert 'report: ' in out and 'report_html: ' in out


@pytest.mark.parametrize(
    'make, expected',
    [
        (lambda root: root / 'missing', 'does not exist'),
        (lambda root: (root / 'empty').mkdir() or root / 'empty', 'is not a submission folder'),
        (
            lambda root: (root / 'notes.txt').write_text('x') and root / 'notes.txt',
            'is not a submission',
        ),
    ],
)
def test_cli_refuses_a_path_that_is_not_a_submission(world, capsys, make, expected):
    rc = cli.main(['submit', str(make(world.root)), '--suite', str(world.write_suite())])
    assert rc == 2
    assert expected in capsys.readouterr().err


def test_cli_rules_violation_exits_2_with_file_and_line(world, capsys):
    world.build()
    ran = len(world.runs())
    body = fakes.SIGNATURES.replace(
        '    return optimizer_state, current_param_container, model_state',
        '    import os\n    os.environ["XLA_FLAGS"] = "--fast"\n'
        '    return optimizer_state, current_param_container, model_state',
    )
    folder = fakes.make_submission(world.root / 'cheat', frameworks=('pytorch',), body=body)
    rc = cli.main(
        ['submit', str(folder), '--suite', str(world.write_suite()), '--executor', 'debug']
    )
    err = capsys.readouterr().err
    assert rc == 2
    line = body.splitlines().index('    os.environ["XLA_FLAGS"] = "--fast"') + 1
    assert f'{folder / "pytorch_submission.py"}:{line}:5: error: [environment]' in err
    assert 'nothing was run' in err
    assert len(world.runs()) == ran


def test_cli_leaderboard_show(world, capsys):
    world.build()
    assert cli.main(['leaderboard', 'show', '--results-dir', str(world.results)]) == 0
    out = capsys.readouterr().out.splitlines()
    here = leaderboard.this_hardware_class()
    assert out[0].startswith(
        f'leaderboard:mini hardware_class:{here} (this machine) complete:true trials:8/8'
    )
    assert out[2].split() == ['1', 'base_a', '1.000', '1/1', 'baseline']
    assert out[3].split() == ['2', 'base_b', '0.667', '1/1', 'baseline']
    rc = cli.main(
        [
            'leaderboard',
            'show',
            '--results-dir',
            str(world.results),
            '--hardware-class',
            'gpu-fake-x8',
        ]
    )
    assert rc == 2 and 'No leaderboard for gpu-fake-x8' in capsys.readouterr().err


def test_cli_leaderboard_build_needs_a_class_for_slurm(world, capsys):
    rc = cli.main(['leaderboard', 'build', str(world.write_suite()), '--executor', 'slurm'])
    assert rc == 2 and '--hardware-class' in capsys.readouterr().err


def test_leaderboard_manifest_records_the_build(world):
    lb_dir = world.build()
    m = leaderboard.read_manifest(lb_dir)
    assert lb_dir == world.results / 'leaderboard' / leaderboard.this_hardware_class() / 'mini'
    assert m['complete'] is True and m['n_trials'] == m['n_finished'] == 8
    assert [b['name'] for b in m['baselines']] == ['base_a', 'base_b']
    assert m['baselines'][0]['content_sha256'] == provenance.content_hash(world.root / 'base_a')
    assert m['settings']['studies'] == 2 and m['timetrial_version'] == '0.1.0'
    assert json.loads(json.dumps(m)) == m


def test_self_tuning_runs_without_a_search_space(world):
    text = fakes.SUITE.replace('    trials: 2\n', '    ruleset: self\n')
    suite = world.write_suite(text=text, name='self.yaml')
    world.build(suite)
    folder = fakes.make_submission(world.root / 'my_algo', frameworks=('pytorch',), space=None)
    out = world.submit(folder, suite)
    trial_dirs = sorted(out.experiment_dir.glob('*/*/study_*/trial_*'))
    assert [d.name for d in trial_dirs] == ['trial_0', 'trial_0']
    assert all(results.read_identity(d).hparams is None for d in trial_dirs)
    assert 'rank 2 of 3' in out.summary_head[2]
    assert '- search space: none' in out.summary_path.read_text(encoding='utf-8')


def test_command_line_options_reach_the_suite(world, tmp_path):
    suite = leaderboard.load_suite_with(
        str(world.write_suite()), results_dir=str(tmp_path / 'elsewhere'), partition='gpu-a'
    )
    assert suite.slurm.partition == 'gpu-a'
    assert suite.results_dir == (tmp_path / 'elsewhere').resolve()
