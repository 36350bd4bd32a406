"""The command line as a user drives it: bad input → a clear message and exit status 2."""

import textwrap

import pytest

from harness.cli.main import main
from tests.harness.conftest import SUBMISSION


def _write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def broken_submission(tmp_path):
    folder = tmp_path / 'my algo; "quoted"'  # a path with spaces, quotes and ';'
    folder.mkdir()
    _write(folder / 'pytorch_submission.py', '''
        def get_batch_size(workload_name):
            return 8

        def init_optimizer_state(workload, model_params, model_state, hyperparameters):
            return {}

        def update_params(workload, current_param_container, current_params_types, model_state,
                          hyperparameters, batch, loss_type, optimizer_state, eval_results,
                          global_step, rng, extra_thing):
            return optimizer_state, current_param_container, model_state
    ''')
    _write(folder / 'search_space.yaml', '''
        learning_rate: {min: 0.1, max: 0.01, scaling: log}
        momentum: {min: 0.5, maxx: 0.9}
    ''')
    return folder


def test_check_reports_every_problem_at_once(broken_submission, capsys):
    assert main(['check', str(broken_submission)]) == 2
    err = capsys.readouterr().err
    assert 'data_selection: missing' in err
    assert 'init_optimizer_state' in err and 'missing parameter(s) rng' in err
    assert 'extra_thing' in err
    assert 'min (0.1) is greater than max (0.01)' in err
    assert "unknown key(s) ['maxx']" in err
    assert '5 problem(s)' in err or '6 problem(s)' in err


def test_check_ok_for_builtin_and_algoperf_style(capsys):
    assert main(['check', 'adamw']) == 0
    assert main(['check', 'tests/algoperf_style']) == 0
    assert 'ok:' in capsys.readouterr().out


def test_check_import_error_names_file_and_line(tmp_path, capsys):
    folder = tmp_path / 'broken'
    folder.mkdir()
    _write(folder / 'jax_submission.py', 'import os\nraise RuntimeError("bad import")\n')
    assert main(['check', str(folder)]) == 2
    err = capsys.readouterr().err
    assert 'jax_submission.py:2' in err and 'bad import' in err


@pytest.mark.parametrize('argv, message', [
    (['run', '--workload', 'lmm', '--submission', 'adamw', '--framework', 'jax'],
     "Unknown workload 'lmm'. Did you mean: lm"),
    (['run', '--workload', 'lm', '--size', 'huge', '--submission', 'adamw', '--framework', 'jax'],
     "'huge'"),
    (['run', '--workload', 'lm', '--submission', 'adamx', '--framework', 'jax'],
     "Unknown submission 'adamx'. Did you mean: adamw"),
    (['run', '--workload', 'lm', '--submission', 'adamw', '--framework', 'tensorflow'],
     "Unknown framework 'tensorflow'"),
    (['run', '--workload', 'lm', '--submission', 'adamw'], '--framework'),
    (['run', '--workload', 'lm', '--submission', 'adamw', '--framework', 'jax',
      '--max-steps', '0'], '--max-steps must be a positive'),
    (['run', '--workload', 'lm', '--submission', 'adamw', '--framework', 'jax',
      '--tuning-search-space', '/nonexistent/space.yaml'], 'Cannot read search space'),
    (['run', '--workload', 'lm', '--submission', 'adamw', '--framework', 'pytorch',
      '--devices', '0'], '--devices must be a positive'),
    # adamw's global batch for lm tiny is 16: three DDP processes cannot share it evenly.
    (['run', '--workload', 'lm', '--size', 'tiny', '--submission', 'adamw', '--framework',
      'pytorch', '--devices', '3'],
     'The global batch size (16) has to be divisible by the number of DDP processes (3)'),
    (['run', '--workload', 'lm', '--size', 'tiny', '--submission', 'adamw', '--framework',
      'jax', '--devices', '2'], 'devices: 2 asked for, but JAX sees 1 device(s)'),
    (['run', '--workload', 'federated_shakespeare', '--submission', 'fedavg', '--framework',
      'jax', '--devices', '2'], 'a federated trial simulates its clients on one device'),
    # SALT distills from lm_slm's teacher; ctr has none.
    (['run', '--workload', 'ctr', '--size', 'tiny', '--submission', 'salt', '--framework',
      'jax'], "workload 'ctr' does not offer"),
])
def test_run_bad_input_exits_2(argv, message, capsys, tmp_path):
    assert main(argv + ['--results-dir', str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_run_refuses_results_dir_of_another_configuration(toy_env, capsys, tmp_path):
    base = ['run', '--workload', 'toy', '--submission', SUBMISSION, '--framework', 'pytorch',
            '--max-steps', '2', '--results-dir', str(tmp_path / 'r'), '--data-dir',
            str(tmp_path / 'd')]
    hp1, hp2 = tmp_path / 'hp1.yaml', tmp_path / 'hp2.yaml'
    hp1.write_text('learning_rate: 0.1\n')
    hp2.write_text('learning_rate: 0.2\n')
    assert main(base + ['--hparams', str(hp1)]) == 0
    assert 'status:budget_exhausted' in capsys.readouterr().err
    assert main(base + ['--hparams', str(hp2)]) == 2
    assert 'belongs to a different configuration' in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
