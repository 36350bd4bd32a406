"""A newcomer's single-file submission: its framework read from its imports, by `timetrial
check` and `timetrial submit`; `--framework` and `--name`; a failing trial reported as
failed with its error, never as "not reached"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import registry, results
from harness.cli import main as cli
from harness.errors import UserInputError
from harness.submission import framework
from tests.submit import fakes

ROOT = Path(__file__).resolve().parents[2]
TORCH = 'import torch\n'
JAX = 'import jax\nimport optax\n'
RAISING_INIT = '''
def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    raise RuntimeError('optimizer state for a|b is not built yet\\nsecond line')
'''


def write_file(path: Path, header: str, body: str = fakes.SIGNATURES, space=fakes.SPACE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + body, encoding='utf-8')
    if space is not None:
        (path.parent / 'search_space.yaml').write_text(space, encoding='utf-8')
    return path


def raising(body: str = fakes.SIGNATURES) -> str:
    """The signatures with init_optimizer_state raising (defined last, so it wins)."""
    return body + RAISING_INIT


# ---- detection from the source -----------------------------------------------------------


@pytest.mark.parametrize(
    'source, expected',
    [
        ('import torch.nn as nn\n', {'pytorch': 'torch at line 1'}),
        ('from jax import numpy as jnp\nimport flax.linen as nn\n',
         {'jax': 'jax at line 1, flax at line 2'}),
        ('from algoperf import jax_sharding_utils, spec\n',
         {'jax': 'algoperf.jax_sharding_utils at line 1'}),
        ('from algoperf.pytorch_utils import pytorch_setup\n',
         {'pytorch': 'algoperf.pytorch_utils at line 1'}),
        ('import numpy\n\ndef f():\n    import torch\n', {'pytorch': 'torch at line 4'}),
        ('import chex\ntry:\n    import torch\nexcept ImportError:\n    pass\n',
         {'jax': 'chex at line 1', 'pytorch': 'torch at line 3'}),
        ('from algoperf import spec\nfrom .helpers import jax\nimport torchmetrics_like\n', {}),
    ],
)
def test_detection_reads_every_import_of_the_file(tmp_path, source, expected):
    d = framework.detect(write_file(tmp_path / 'sub.py', source, body=''))
    assert {fw: d.evidence(fw) for fw in d.frameworks} == expected
    assert d.framework == (next(iter(expected)) if len(expected) == 1 else None)


def test_a_file_that_is_not_python_is_refused_with_its_line(tmp_path):
    file = write_file(tmp_path / 'sub.py', 'import torch\ndef (:\n', body='')
    with pytest.raises(UserInputError, match=r'sub\.py:2: the submission is not valid Python'):
        framework.file_framework(file)


# ---- timetrial check -------------------------------------------------------------------


def test_check_names_the_framework_of_a_torch_only_file(tmp_path, capsys):
    file = write_file(tmp_path / 'my_algo.py', TORCH)
    assert cli.main(['check', str(file)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f'ok: {file} (pytorch; detected from its imports: torch at line 1)')


def test_check_of_a_jax_only_file_never_imports_torch(tmp_path):
    """Decided from the source: a JAX user's check does not pull in torch."""
    file = write_file(tmp_path / 'my_algo.py', JAX)
    probe = ('import sys\nfrom harness.cli.main import main\n'
             f'rc = main(["check", {str(file)!r}])\n'
             'print("torch imported:", "torch" in sys.modules)\nsys.exit(rc)\n')
    run = subprocess.run([sys.executable, '-c', probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert run.returncode == 0, run.stderr
    out = run.stdout.splitlines()
    assert out[0] == f'ok: {file} (jax; detected from its imports: jax at line 1, optax at line 2)'
    assert out[-1] == 'torch imported: False'


def test_check_refuses_an_ambiguous_file_listing_what_it_found(tmp_path, capsys):
    both = write_file(tmp_path / 'both.py', 'import torch\nimport jax.numpy as jnp\n')
    assert cli.main(['check', str(both)]) == 2
    err = capsys.readouterr().err
    assert (f'{both} imports both jax (jax at line 2) and pytorch (torch at line 1), so its '
            'framework is ambiguous. Say which with --framework jax or --framework pytorch'
            ) in err
    neither = write_file(tmp_path / 'neither.py', 'import numpy as np\n')
    assert cli.main(['check', str(neither)]) == 2
    err = capsys.readouterr().err
    assert f'{neither} imports neither torch nor jax, jaxlib, flax' in err
    assert '--framework jax or --framework pytorch' in err


def test_framework_decides_an_ambiguous_file_and_is_checked_against_the_imports(
        tmp_path, capsys):
    both = write_file(tmp_path / 'both.py', 'import torch\nimport jax.numpy as jnp\n')
    assert cli.main(['check', str(both), '--framework', 'pytorch']) == 0
    assert f'ok: {both} (pytorch; --framework)' in capsys.readouterr().out
    jax_file = write_file(tmp_path / 'jax_algo.py', JAX)
    assert cli.main(['check', str(jax_file), '--framework', 'pytorch']) == 2
    assert (f'{jax_file} is a jax submission (it imports jax at line 1, optax at line 2 and '
            'no pytorch package): it cannot run under --framework pytorch. Leave out '
            '--framework (it is detected), or give --framework jax; in a suite file, give the '
            'submission `frameworks: [jax]`.'
            ) in capsys.readouterr().err


def test_check_warns_where_get_batch_size_would_fail_a_trial(tmp_path, capsys):
    body = fakes.SIGNATURES.replace(
        'def get_batch_size(workload_name):\n    return 8',
        "def get_batch_size(workload_name):\n"
        "    if workload_name == 'ctr':\n        raise ValueError('no size for ctr')\n"
        "    if workload_name == 'lm':\n        return None\n"
        "    return {'lm_slm': 0}[workload_name]\n")
    file = write_file(tmp_path / 'my_algo.py', TORCH, body)
    assert cli.main(['check', str(file)]) == 0, 'warnings, not problems'
    out = capsys.readouterr().out
    warned = {line.split(': ')[2].split()[0] for line in out.splitlines()
              if line.startswith('warning: ')}
    names = {n for n, i in registry.workload_infos().items() if i.kind == 'centralized'}
    # ctr (ValueError) and lm (None) get the default; lm_slm returns 0; others: KeyError.
    assert warned == names - {'ctr', 'lm'}
    assert ("warning: my_algo.py: lm_slm trials would fail: ValueError: "
            "get_batch_size('lm_slm') returned 0; it must return a positive int") in out
    other = sorted(names - {'ctr', 'lm', 'lm_slm'})
    if other:
        assert (f"warning: my_algo.py: {other[0]} trials would fail: KeyError: '{other[0]}'; "
                'return None or raise ValueError for a workload you have no batch size for'
                ) in out


# ---- timetrial submit --------------------------------------------------------------------


def test_submit_runs_a_torch_file_under_pytorch_only(world):
    suite = world.write_suite(frameworks='jax, pytorch')
    world.build(suite)
    logged = []
    file = write_file(world.root / 'mine' / 'my_algo.py', TORCH)
    out = world.submit(file, suite, log=logged.append)
    assert f'submit: {file} is a pytorch submission (detected from its imports: torch at ' \
           'line 1)' in logged
    assert {d.name for d in (out.experiment_dir / out.entry).iterdir()} == {'fakewl_pytorch'}
    mine = [r for r in world.runs() if out.entry in r]
    assert len(mine) == 4 and all('fakewl_pytorch' in r for r in mine)
    text = out.summary_path.read_text(encoding='utf-8')
    assert 'frameworks run: pytorch (detected from its imports: torch at line 1)' in text
    assert 'The suite also runs jax, which this submission does not implement' in text
    assert results.read_json(out.entry_dir / 'submission.json')['frameworks'] == ['pytorch']


def test_submit_runs_a_jax_file_under_jax_only(world):
    suite = world.write_suite(frameworks='jax, pytorch')
    world.build(suite)
    out = world.submit(write_file(world.root / 'mine' / 'my_algo.py', JAX), suite)
    assert {d.name for d in (out.experiment_dir / out.entry).iterdir()} == {'fakewl_jax'}


def test_submit_refuses_an_ambiguous_file_before_anything_runs(world):
    suite = world.write_suite(frameworks='jax, pytorch')
    world.build(suite)
    ran = len(world.runs())
    both = write_file(world.root / 'mine' / 'both.py', 'import torch\nimport jax\n')
    with pytest.raises(UserInputError, match='so its framework is ambiguous'):
        world.submit(both, suite)
    with pytest.raises(UserInputError, match='cannot run under --framework jax'):
        world.submit(write_file(world.root / 'mine' / 'torch_algo.py', TORCH), suite,
                     framework='jax')
    assert len(world.runs()) == ran
    out = world.submit(both, suite, framework='jax')
    assert {d.name for d in (out.experiment_dir / out.entry).iterdir()} == {'fakewl_jax'}
    assert 'frameworks run: jax (--framework)' in out.summary_path.read_text(encoding='utf-8')


def test_framework_limits_a_folder_to_one_of_its_files(world):
    suite = world.write_suite(frameworks='jax, pytorch')
    world.build(suite)
    out = world.submit(fakes.make_submission(world.root / 'both'), suite, framework='pytorch')
    assert {d.name for d in (out.experiment_dir / out.entry).iterdir()} == {'fakewl_pytorch'}
    torch_only = fakes.make_submission(world.root / 'torch_only', frameworks=('pytorch',))
    with pytest.raises(UserInputError, match='--framework jax: submission .* has no '
                                             'jax_submission.py'):
        world.submit(torch_only, suite, framework='jax')


def test_a_failing_init_optimizer_state_is_reported_failed_with_its_error(
        world, monkeypatch, capsys):
    """The issue's case: the trial fails in init_optimizer_state; the console, report.md
    and report.html say `failed: <error>` — not "not reached"."""
    world.build()
    monkeypatch.setattr('harness.trial.run.run_trial', fakes.init_then_fake_run)
    file = write_file(world.root / 'mine' / 'my_algo.py', TORCH, raising())
    rc = cli.main(['submit', str(file), '--suite', str(world.write_suite()),
                   '--executor', 'debug'])
    printed = capsys.readouterr().out
    assert rc == 0
    error = r'init_optimizer_state: RuntimeError: optimizer state for a\|b is not built yet'
    row = f'| fakewl | failed: {error} | base_a | 10.0 s | – |'
    assert row in printed
    assert 'done:' in printed and (
        'status:failed error:init_optimizer_state: RuntimeError: optimizer state for a|b is '
        'not built yet') in printed
    report_dir = next((world.results / 'submissions').glob('*/my_algo-*/report-mini'))
    text = (report_dir / 'report.md').read_text(encoding='utf-8')
    head = text.split('## Leaderboard')[0]
    assert row in head and 'not reached' not in head
    assert '4 of 4 trials failed; see Failed trials below.' in head
    failed = [line for line in head.splitlines() if line.startswith('- fakewl: ')]
    assert len(failed) == 1 and failed[0].startswith(
        '- fakewl: 4 trial(s) failed: init_optimizer_state: RuntimeError: optimizer state for '
        'a|b is not built yet — traceback in ')
    traceback_file = Path(failed[0].split('traceback in ')[1])
    entry_dir = report_dir.parent
    assert traceback_file == (entry_dir / 'mini' / entry_dir.name / 'fakewl_pytorch' / 'study_0'
                              / 'trial_0' / 'error.txt').resolve()
    assert 'Traceback' in traceback_file.read_text() and 'second line' in traceback_file.read_text()
    page = (report_dir / 'report.html').read_text(encoding='utf-8')
    section = page[page.index('<section id="submission"'):page.index('</section>')]
    assert ('<td>failed: init_optimizer_state: RuntimeError: optimizer state for a|b is not '
            'built yet</td><td>base_a</td>') in section
    assert 'not reached' not in section


def test_trials_failing_at_some_hyperparameters_are_counted_in_the_cell(world):
    world.build()
    body = raising().replace(
        "    raise RuntimeError(", "    if hyperparameters.learning_rate > 1e-3:\n"
        "        return {}\n    raise RuntimeError(")
    out = world.submit(write_file(world.root / 'mine' / 'my_algo.py', TORCH, body),
                       run_fn=fakes.init_then_fake_run)
    dirs = sorted(out.experiment_dir.glob('*/*/study_*/trial_*'))
    failed = [results.read_json(d / 'result.json')['status'] == 'failed' for d in dirs]
    k = sum(failed)
    assert 0 < k < 4, 'the search space puts some trials on either side of 1e-3'
    error = r'init_optimizer_state: RuntimeError: optimizer state for a\|b is not built yet'
    # The others reach the target in the fake's 12 s: the time stands, the failures noted.
    assert f'| fakewl | 12.0 s ({k} of 4 trials failed) | base_a | 10.0 s | 1.20 |' \
        in out.summary_head
    assert f'{k} of 4 trials failed; see Failed trials below.' in out.summary_head
    world.set_times(my_algo=None)
    (world.root / 'mine' / 'my_algo.py').write_text(TORCH + body + '\n# never reaches\n')
    out = world.submit(world.root / 'mine' / 'my_algo.py', run_fn=fakes.init_then_fake_run)
    assert f'| fakewl | failed in {k} of 4 trials: {error} | base_a | 10.0 s | – |' \
        in out.summary_head


def test_trials_without_a_result_are_said_unfinished_not_unreached(world):
    world.build()
    world.set_times(my_algo=None)
    out = world.submit(write_file(world.root / 'mine' / 'my_algo.py', TORCH),
                       run_fn=fakes.killed_run)
    assert out.job_failures == 2
    assert ('| fakewl | unfinished: 2 of 4 trials have no result | base_a | 10.0 s | – |'
            in out.summary_head)


def test_submit_warns_where_get_batch_size_would_fail_the_suites_workloads(world):
    world.build()
    body = fakes.SIGNATURES.replace('    return 8', "    return {'lm': 32}[workload_name]")
    logged = []
    out = world.submit(write_file(world.root / 'mine' / 'my_algo.py', TORCH, body),
                       log=logged.append)
    warning = ("my_algo.py: fakewl trials would fail: KeyError: 'fakewl'; return None or raise "
               'ValueError for a workload you have no batch size for')
    assert any(line.startswith(f'warning: {warning}') for line in logged)
    assert f'- {warning}' in out.summary_path.read_text(encoding='utf-8')


# ---- --name ---------------------------------------------------------------------------------


def test_name_names_the_entry(world, monkeypatch, capsys):
    world.build()
    monkeypatch.setattr('harness.trial.run.run_trial', fakes.fake_run)
    file = write_file(world.root / 'mine' / 'submission.py', TORCH)
    out = world.submit(file, name='my_nadamw')
    assert out.entry == f'my_nadamw-{out.entry.split("-")[-1]}' and len(out.entry) == 18
    assert (out.experiment_dir / out.entry).is_dir()
    assert out.summary_head[0] == f'# TimeTrial submission report: {out.entry}'
    assert results.read_json(out.entry_dir / 'submission.json')['submission'] == 'my_nadamw'
    rc = cli.main(['submit', str(file), '--suite', str(world.write_suite()), '--executor',
                   'debug', '--name', 'my_nadamw'])
    assert rc == 0 and f'# TimeTrial submission report: {out.entry}' in capsys.readouterr().out


@pytest.mark.parametrize('name', ['my algo', '../up', '.hidden', 'a/b', 'adamw@jax', '', 'x' * 65])
def test_an_unusable_name_is_refused_before_anything_runs(world, capsys, name):
    world.build()
    ran = len(world.runs())
    file = write_file(world.root / 'mine' / 'submission.py', TORCH)
    rc = cli.main(['submit', str(file), '--suite', str(world.write_suite()), '--name', name])
    err = capsys.readouterr().err
    assert rc == 2
    assert f'--name {name!r} cannot name a submission: use letters, digits' in err
    assert len(world.runs()) == ran and not (world.results / 'submissions').exists()


@pytest.mark.parametrize('name', ['base_a', 'Base_A'])
def test_a_name_of_a_baseline_is_refused(world, name):
    world.build()
    ran = len(world.runs())
    file = write_file(world.root / 'mine' / 'submission.py', TORCH)
    with pytest.raises(UserInputError) as e:
        world.submit(file, name=name)
    assert f"--name '{name}' is the name of a baseline on the leaderboard" in str(e.value)
    assert 'the baselines are base_a, base_b' in str(e.value)
    assert len(world.runs()) == ran
