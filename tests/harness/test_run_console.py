"""`timetrial run` of one trial, as a user reads its last lines: a failed trial says
failed and its error's first line; a single file is refused under the other framework."""

from tests.harness.conftest import SUBMISSION
from harness.cli.main import main


def test_a_failed_trial_prints_failed_and_the_first_line_of_its_error(toy_env, capsys, tmp_path):
    _, loaded = toy_env
    loaded.RAISE_AT_STEP = 3
    hp = tmp_path / 'hp.yaml'
    hp.write_text('learning_rate: 0.1\n')
    argv = ['run', '--workload', 'toy', '--submission', SUBMISSION, '--framework', 'pytorch',
            '--max-steps', '6', '--hparams', str(hp), '--results-dir', str(tmp_path / 'r'),
            '--data-dir', str(tmp_path / 'd')]
    assert main(argv) == 0
    lines = capsys.readouterr().err.splitlines()
    status = next(line for line in lines if line.startswith('status:'))
    assert status.startswith('status:failed time_to_target_s:None steps:3 ')
    error = next(line for line in lines if line.startswith('error:'))
    trial_dir = status.split(' dir:')[1]
    assert error == (f'error: update_params: RuntimeError: boom in submission code '
                     f'(traceback: {trial_dir}/error.txt)')


def test_a_single_file_is_refused_under_a_framework_it_does_not_import(capsys, tmp_path):
    # The toy submission imports torch only.
    argv = ['run', '--workload', 'lm', '--size', 'tiny', '--submission', SUBMISSION,
            '--framework', 'jax', '--results-dir', str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f'{SUBMISSION} is a pytorch submission (it imports torch at line 9' in err
    assert 'it cannot run under --framework jax' in err
    assert not any(tmp_path.iterdir())


def test_a_single_file_runs_under_the_framework_its_imports_name(toy_env, capsys, tmp_path):
    hp = tmp_path / 'hp.yaml'
    hp.write_text('learning_rate: 0.1\n')
    argv = ['run', '--workload', 'toy', '--submission', SUBMISSION, '--max-steps', '2',
            '--hparams', str(hp), '--results-dir', str(tmp_path / 'r'),
            '--data-dir', str(tmp_path / 'd')]
    assert main(argv) == 0
    status = next(line for line in capsys.readouterr().err.splitlines()
                  if line.startswith('status:'))
    assert '_pytorch/study_0/trial_0' in status
