"""Outputs on disk, the command line, and every kind of bad input (exit status 2)."""

import argparse
import math

import pandas as pd
import pytest
from scoring_fixtures import study_table, trial

from harness.errors import UserInputError
from scoring import cli
from scoring.api import score
from scoring.report import report_contents

OUTPUTS = [
    'performance_profile.png',
    'performance_profile.svg',
    'time_to_target.csv',
    'time_to_target.md',
    'scores.csv',
    'speedups.csv',
    'trials.csv',
    'report.html',
]


def _demo(root):
    return study_table(
        root,
        {
            ('adamw', 'mnist'): [20, 30, 40],
            ('adamw', 'mnist-wide'): [30, 30, None],
            ('sgd', 'mnist'): [40, 50, 60],
            ('sgd', 'mnist-wide'): [None, None, None],
            ('adamw', 'lm'): [None, 90, 100],
            ('sgd', 'lm'): [70, 80, 80],
        },
    )


def _cli(argv):
    parser = cli.add_arguments(argparse.ArgumentParser())
    return cli.run(parser.parse_args(argv))


def test_score_writes_every_output(tmp_path):
    exp = _demo(tmp_path / 'results')
    rep = score(exp, out_dir=tmp_path / 'out', bootstrap_samples=50)
    out = tmp_path / 'out'
    for name in OUTPUTS + ['curves_lm.svg', 'curves_mnist.svg', 'curves_mnist-wide.svg']:
        assert (out / name).stat().st_size > 0, name
    assert set(rep.paths) >= set(OUTPUTS)
    assert rep.out_dir == out
    scores = pd.read_csv(out / 'scores.csv')
    assert list(scores['entrant']) == list(rep.scores['entrant'])
    assert scores['score'].tolist() == pytest.approx(rep.scores['score'].tolist())
    times = pd.read_csv(out / 'time_to_target.csv')
    assert math.isinf(
        times.loc[
            (times['entrant'] == 'sgd') & (times['workload_id'] == 'mnist-wide'), 'time'
        ].iloc[0]
    )
    md = (out / 'time_to_target.md').read_text()
    assert '| workload | adamw | sgd |' in md and '(missed variant)' in md
    html = (out / 'report.html').read_text()
    contents = report_contents(rep)
    for table_id in contents['tables']:
        assert f'id="{table_id}"' in html
    assert html.count('<img src="data:image/') == len(contents['images']) == 4
    assert html.count('<img src="data:image/png;base64,') == 1  # the profile
    assert html.count('<img src="data:image/svg+xml;base64,') == 3  # the curves
    assert 'cpu-test-2c' in html and 'TimeTrial scores: exp' in html
    assert 'http://' not in html and 'https://' not in html  # opens offline


def test_profile_svg_is_vector(tmp_path):
    exp = _demo(tmp_path / 'results')
    score(exp, out_dir=tmp_path / 'out', bootstrap_samples=0)
    svg = (tmp_path / 'out' / 'performance_profile.svg').read_text()
    assert svg.lstrip().startswith('<?xml') and '<svg' in svg


def test_cli_default_out_dir_and_summary(tmp_path, capsys):
    exp = _demo(tmp_path / 'results')
    assert _cli([str(exp), '--bootstrap-samples', '20', '--time-col', 'steps']) == 0
    assert (exp / 'scoring' / 'report.html').exists()
    out = capsys.readouterr().out
    assert 'score:' in out and str(exp / 'scoring' / 'report.html') in out
    # Scoring again with scoring/ inside the results directory still works.
    assert _cli([str(exp), '--bootstrap-samples', '0']) == 0


def test_cli_returns_2_with_a_message_for_bad_input(tmp_path, capsys):
    exp = _demo(tmp_path / 'results')
    assert _cli([str(exp), '--time-col', 'minutes', '--out', str(tmp_path / 'o')]) == 2
    err = capsys.readouterr().err
    assert "Unknown time column 'minutes'" in err and 'seconds, steps' in err
    assert _cli([str(tmp_path / 'nowhere')]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_empty_directory(tmp_path):
    with pytest.raises(UserInputError, match='No trials found'):
        score(tmp_path)


def test_no_finished_trials(tmp_path):
    trial(tmp_path, reach_at_s=10, finished=False)
    trial(tmp_path, reach_at_s=20, finished=False, trial_index=1)
    with pytest.raises(UserInputError, match='(?s)No finished trials.*2 trials found'):
        score(tmp_path)


def test_only_unreadable_trials(tmp_path):
    d = trial(tmp_path, reach_at_s=10)
    (d / 'trial.json').write_text('["not a mapping"]\n')
    with pytest.raises(UserInputError, match='(?s)No readable trials.*expected a mapping'):
        score(tmp_path)


def test_one_workload_with_different_targets(tmp_path):
    trial(tmp_path, submission='a', reach_at_s=10)
    trial(
        tmp_path,
        submission='b',
        reach_at_s=10,
        target={'metric': 'validation/loss', 'value': 0.5, 'mode': 'min'},
    )
    trial(
        tmp_path,
        submission='c',
        reach_at_s=10,
        target={'metric': 'validation/loss', 'value': 0.5, 'mode': 'min'},
    )
    with pytest.raises(UserInputError) as info:
        score(tmp_path)
    message = str(info.value)
    assert 'workload mnist (size tiny) has 2 different targets' in message
    assert 'validation/loss min 1.0: 1 trials' in message
    assert 'validation/loss min 0.5: 2 trials' in message


def test_unknown_time_column_and_bad_options(tmp_path):
    trial(tmp_path, reach_at_s=10)
    with pytest.raises(UserInputError, match="Unknown time column 'wall'"):
        score(tmp_path, time_col='wall')
    with pytest.raises(UserInputError, match='r_max must be a number above 1'):
        score(tmp_path, r_max=1.0)
    with pytest.raises(UserInputError, match='bootstrap_samples'):
        score(tmp_path, bootstrap_samples=-1)


def test_mixed_hardware_stops_unless_allowed(tmp_path):
    trial(tmp_path, submission='a', reach_at_s=10, hardware_class='cpu-amd-epyc-2c')
    trial(tmp_path, submission='b', reach_at_s=20, hardware_class='gpu-nvidia-h100-x8')
    with pytest.raises(UserInputError) as info:
        score(tmp_path)
    message = str(info.value)
    assert 'Found trials from 2 hardware classes' in message
    assert 'cpu-amd-epyc-2c: 1 trials' in message and 'gpu-nvidia-h100-x8: 1 trials' in message
    assert '--allow-mixed-hardware' in message
    rep = score(tmp_path, allow_mixed_hardware=True, bootstrap_samples=0)
    assert rep.hardware_classes == ['cpu-amd-epyc-2c', 'gpu-nvidia-h100-x8']
    assert any('Mixed hardware allowed' in n for n in rep.notes)
    assert _cli([str(tmp_path), '--allow-mixed-hardware', '--bootstrap-samples', '0']) == 0


def test_report_lists_skipped_files_and_notes(tmp_path):
    exp = _demo(tmp_path / 'results')
    bad = exp / 'sgd' / 'lm_jax' / 'study_0' / 'trial_0' / 'result.json'
    bad.write_text('not json')
    score(exp, out_dir=tmp_path / 'out', bootstrap_samples=0)
    html = (tmp_path / 'out' / 'report.html').read_text()
    assert 'Files skipped (1)' in html and str(bad) in html
    assert 'top-scoring entrant' in html  # a note


def test_synthetic_tree_scores_end_to_end(tmp_path):
    from scoring.synthetic import generate

    exp = generate(
        tmp_path, n_workloads=2, n_submissions=3, n_studies=2, n_trials=2, n_evals=8, variants=True
    )
    rep = score(exp, out_dir=tmp_path / 'out', bootstrap_samples=20)
    assert len(rep.trials) == 3 * 3 * 2 * 2  # 2 workloads + 1 variant
    assert rep.scored_workloads == ['wl00', 'wl01'] and rep.variants == {'wl00-wide': 'wl00'}
    assert rep.scores['score'].between(0, 1).all()
    assert (tmp_path / 'out' / 'curves_wl00-wide.svg').exists()
